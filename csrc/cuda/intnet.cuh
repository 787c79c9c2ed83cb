// Integer (transposed) convolution on the GPU, the arithmetic of csrc/core/intnet.hpp
// (docs/FORMAT.md section 11.1): uint32 sums (order-free), the shared requantization rule.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/requant.hpp"

namespace ransform::cuda {

// x: int16 (cin, h, w); weight: int16 in torch layout; q: per-channel int32 arrays, all on the
// device. Writes the (cout, out_h, out_w) output as int16 (out_bits 16) or int32 (32).
// REQUIRES: shapes checked by the caller; shift in 0..62.
void int_conv2d(const int16_t* x, const int16_t* weight, const intnet::Requant& q, const intnet::ConvShape& s,
                void* out, int out_bits, cudaStream_t stream);

}  // namespace ransform::cuda
