// GPU table builders. Both run the core's own row functions (csrc/core/scale_rows.hpp,
// csrc/core/mixture.hpp) compiled for the device with --fmad=false, so their results are
// bit-identical to the CPU's: same IEEE double operations in the same order, no contraction.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "core/families.hpp"
#include "core/mixture.hpp"
#include "core/scale_rows.hpp"

namespace ransform::cuda {

// The rows and crossings of a scale table of format version `version` (see ScaleTable), one
// GPU thread per row / pair. Host in, host out: the inputs are a few hundred scales. Throws
// std::runtime_error on CUDA errors.
ScaleRows build_scale_rows(Family family, const std::vector<float>& scales, int precision, double tail_mass,
                           int version, cudaStream_t stream);

// Per-element mixture rows on device arrays of n x K weights, means and scales (row-major):
// mixture_support writes offsets and lengths (and sets *invalid to 1 when an element's
// parameters are invalid); mixture_frequencies fills freqs (n x width, row-major, zeros past
// each length). Asynchronous on `stream`.
void mixture_support(const MixtureParams& q, const float* w, const float* m, const float* s, int64_t n,
                     int32_t* offsets, int32_t* lengths, int* invalid, cudaStream_t stream);
void mixture_frequencies(const MixtureParams& q, const float* w, const float* m, const float* s, int64_t n,
                         const int32_t* offsets, const int32_t* lengths, int32_t width, uint32_t* freqs,
                         cudaStream_t stream);

}  // namespace ransform::cuda
