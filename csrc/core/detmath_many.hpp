// detmath_many.hpp: detmath::erfc over an array, kWidth arguments at a time (CPU only).
//
// READ ME FIRST
// The results are detmath::erfc's bits: every lane runs the scalar function's operations in
// its order, and an element of a vector + - * / rounds exactly as the scalar operation does
// (IEEE 754; FMA contraction is off for the whole build). What changes is speed: the series and
// the continued fraction are chains of divisions, each waiting for the one before; kWidth
// independent chains side by side keep the divider busy instead of waiting on it.
// Arguments are grouped by the branch they take (series, continued fraction of depth 120, 60
// or 30), so the lanes of a group run the same number of steps; the series' arguments are
// grouped further by size (a lane's term count grows with it, and a group runs as long as its
// slowest lane); the rest (NaN, negative, past 27.3) go through detmath::erfc itself. The same
// code is compiled twice: portable, and for AVX-512 where the CPU has it (cpu_features.hpp).
// On a Zen 4 core, 2.67 M arguments of a mixture's rows: 62.8 ns each with 16 lanes and four
// groups (SSE2), 54 with the series split, 33.5 with 32 lanes on AVX-512.
#pragma once

#include <cmath>
#include <cstddef>

#include "core/cpu_features.hpp"
#include "core/detmath.hpp"

namespace ransform::detmath {

#if defined(__GNUC__) || defined(__clang__)
#if !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"  // wide vectors passed between inline functions: no ABI is crossed
#endif

// Lanes per group (Zen 4): 4, 8 and 16 ran 1.4x, 2.5x and 2.8x the scalar loop's speed with SSE2;
// 32 is as fast as 16 there, and 1.35x faster than 16 with AVX-512 (more chains in flight).
inline constexpr int kWidth = 32;
// Every function below is inlined into the two instantiations of erfc_many_in_groups, so each
// is compiled for the instruction set of the one it is in.
#define RANSFORM_ERFC_INLINE inline __attribute__((always_inline))
typedef double VecD __attribute__((vector_size(8 * kWidth)));
typedef long long MaskD __attribute__((vector_size(8 * kWidth)));

// exp of kWidth arguments in [-745.3, 0], as detmath::exp computes each.
RANSFORM_ERFC_INLINE VecD exp_vec(VecD x) {
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
RANSFORM_ERFC_INLINE VecD erfc_series_vec(VecD x) {
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
RANSFORM_ERFC_INLINE VecD erfc_fraction_vec(VecD x, int depth) {
  VecD cf = x;
  for (int n = depth; n >= 1; --n) cf = x + (0.5 * n) / cf;
  return exp_vec(-x * x) * kInvSqrtPi / cf;
}

// The groups: the series in four by size ([0, 0.5), [0.5, 1), ...), then the continued
// fraction's three depths.
inline constexpr int kGroups = 7;
inline constexpr int kDepth[kGroups] = {0, 0, 0, 0, 120, 60, 30};                    // 0: the series
inline constexpr double kFiller[kGroups] = {0.25, 0.75, 1.25, 1.75, 2.5, 4.0, 6.0};  // for unused lanes

struct ErfcGroup {
  VecD x;
  double* out[kWidth];
  int size;
};

RANSFORM_ERFC_INLINE void run_group(ErfcGroup& g, int b) {
  for (int i = g.size; i < kWidth; ++i) g.x[i] = kFiller[b];
  const VecD y = kDepth[b] == 0 ? erfc_series_vec(g.x) : erfc_fraction_vec(g.x, kDepth[b]);
  for (int i = 0; i < g.size; ++i) *g.out[i] = y[i];
  g.size = 0;
}

RANSFORM_ERFC_INLINE void erfc_many_in_groups(const double* x, double* out, size_t n) {
  ErfcGroup groups[kGroups] = {};
  for (size_t i = 0; i < n; ++i) {
    const double v = x[i];
    if (!(v >= 0.0) || v > 27.3) {  // NaN, negative, or a tail below the smallest subnormal
      out[i] = erfc(v);
      continue;
    }
    // detmath::erfc's branches; the series' by size
    const int b = v < 2.0 ? static_cast<int>(v * 2.0) : v < 3.0 ? 4 : v < 5.0 ? 5 : 6;
    ErfcGroup& g = groups[b];
    g.x[g.size] = v;
    g.out[g.size++] = out + i;
    if (g.size == kWidth) run_group(g, b);
  }
  for (int b = 0; b < kGroups; ++b)
    if (groups[b].size) run_group(groups[b], b);
}

#ifdef RANSFORM_AVX512_KERNELS
RANSFORM_AVX512 inline void erfc_many_avx512(const double* x, double* out, size_t n) { erfc_many_in_groups(x, out, n); }
#endif

// out[i] = detmath::erfc(x[i]) for i < n.
inline void erfc_many(const double* x, double* out, size_t n) {
#ifdef RANSFORM_AVX512_KERNELS
  if (use_avx512()) return erfc_many_avx512(x, out, n);
#endif
  erfc_many_in_groups(x, out, n);
}

#undef RANSFORM_ERFC_INLINE
#if !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#else

inline void erfc_many(const double* x, double* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = erfc(x[i]);
}

#endif

}  // namespace ransform::detmath
