// requant.hpp: what the CPU and GPU integer convolutions share (docs/FORMAT.md section 11.1):
// the layer geometry and the requantization rule, compiled for both so they cannot differ.
#pragma once

#include <cstdint>

#include "core/hd.hpp"

namespace ransform {
namespace intnet {

// Per output channel: bias, multipliers for a >= 0 and a < 0, shift (0 .. 62); and the
// output limit: 32767 for int16 outputs, 2^31 - 1 for int32 outputs.
struct Requant {
  const int32_t* bias;
  const int32_t* m_pos;
  const int32_t* m_neg;
  const int32_t* shift;
  int64_t limit;
};

// y = clamp((a * m + (2^s >> 1)) >> s, -limit, limit) with a = int32(acc + bias), in int64;
// >> of a negative value rounds toward -inf (arithmetic shift, as every supported compiler does).
RANSFORM_HD inline int64_t requantize(uint32_t acc, const Requant& q, int64_t ch) {
  const int64_t a = static_cast<int32_t>(acc + static_cast<uint32_t>(q.bias[ch]));
  const int64_t m = a >= 0 ? q.m_pos[ch] : q.m_neg[ch];
  const int s = q.shift[ch];
  const int64_t y = (a * m + ((int64_t{1} << s) >> 1)) >> s;
  return y < -q.limit ? -q.limit : (y > q.limit ? q.limit : y);
}

struct ConvShape {
  int64_t cin, h, w;     // input
  int64_t cout, kh, kw;  // weight: (cout, cin, kh, kw), or (cin, cout, kh, kw) if transposed
  int64_t stride, pad, out_pad;
  bool transposed;
  RANSFORM_HD int64_t out_h() const {
    return transposed ? (h - 1) * stride - 2 * pad + kh + out_pad : (h + 2 * pad - kh) / stride + 1;
  }
  RANSFORM_HD int64_t out_w() const {
    return transposed ? (w - 1) * stride - 2 * pad + kw + out_pad : (w + 2 * pad - kw) / stride + 1;
  }
};

}  // namespace intnet
}  // namespace ransform
