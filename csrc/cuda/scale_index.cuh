// Scale -> table row on the GPU: row = #{thresholds <= scale}, the same float32 comparisons as
// the CPU (csrc/core/scale_table.hpp), so the rows are identical by construction.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace ransform::cuda {

// Writes rows to `rows`; sets *invalid to 1 if any scale is NaN, infinite or negative (their
// rows are 0). `thresholds` are increasing, `count` of them, on the device.
void scale_index(const float* scales, int64_t n, const float* thresholds, int count, int32_t* rows, int* invalid,
                 cudaStream_t stream);

}  // namespace ransform::cuda
