// mixture.hpp: one quantized distribution per element for mixtures of K components (Gaussian
// mixtures and the other families), so that a mixture entropy model is coded without a table
// of fixed shapes.
//
// READ ME FIRST
// Element i has weights w_k >= 0 (normalised here), means m_k and scales s_k > 0. Its row
// covers the integers lo..hi,
//   lo = floor(min_k(m_k - c s_k)),  hi = ceil(max_k(m_k + c s_k)),   c = `deviations`
// (at most max_symbols of them, else max_symbols centred on round(sum w_k m_k)), plus an escape
// symbol for everything else. P(v) = sum_k w_k P_k(v - 1/2 < X <= v + 1/2), computed from the
// smaller tail at each half-integer boundary so that far tails keep their relative precision.
// Frequencies: f = 1 + floor(P (2^P - n) / sum w), and the few counts left over go to the most
// probable symbol (lowest on ties). Not the optimal allocation of quantize.hpp, which costs
// O(n log n) per element, but within 0.1 % of it for n << 2^P, and O(n).
//
// Everything is detmath in a fixed order, so the CPU and the GPU (csrc/cuda/tables.cu, which
// runs this code with --fmad=false) produce the same frequencies bit for bit.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "core/detmath.hpp"
#include "core/error.hpp"
#include "core/families.hpp"
#include "core/hd.hpp"

namespace ransform {

inline constexpr int kMaxMixtureComponents = 8;
inline constexpr int32_t kMaxMixtureSymbols = 4096;
inline constexpr double kMixtureLimit = 1 << 30;  // |lo|, |hi| stay far inside int32

struct MixtureParams {
  Family family;
  int components;     // K
  double deviations;  // c
  int32_t max_symbols;
  int precision;
};

inline MixtureParams mixture_params(Family family, int components, double deviations, int32_t max_symbols,
                                    int precision) {
  if (components < 1 || components > kMaxMixtureComponents)
    throw InputError("mixtures have 1 to " + std::to_string(kMaxMixtureComponents) + " components, got " +
                     std::to_string(components));
  if (!(deviations > 0.0 && deviations < 1e3)) throw InputError("deviations must be in (0, 1000)");
  if (precision < 12 || precision > 16) throw InputError("precision must be between 12 and 16 bits");
  const int32_t cap = std::min<int32_t>(kMaxMixtureSymbols, (1 << precision) / 4);
  if (max_symbols < 1 || max_symbols > cap)
    throw InputError("max_symbols must be in [1, " + std::to_string(cap) + "] at precision " +
                     std::to_string(precision) + ", got " + std::to_string(max_symbols));
  return MixtureParams{family, components, deviations, max_symbols, precision};
}

// The support of an element's row: *offset = lo and *length = n + 1 (n in-range symbols and
// the escape symbol). w, m, s point at the element's K weights, means and scales.
// @return : false when the parameters are invalid (a NaN, infinite, negative weight or
//           non-positive scale, or zero total weight).
RANSFORM_HD inline bool mixture_support(const MixtureParams& q, const float* w, const float* m, const float* s,
                                        int32_t* offset, int32_t* length) {
  double weight = 0.0, centre = 0.0, lo = kMixtureLimit, hi = -kMixtureLimit;
  for (int k = 0; k < q.components; ++k) {
    if (!(w[k] >= 0.0f && w[k] < 3.0e38f && s[k] > 0.0f && s[k] < 3.0e38f && m[k] > -3.0e38f && m[k] < 3.0e38f))
      return false;
    weight += w[k];
    centre += static_cast<double>(w[k]) * m[k];
    const double a = m[k] - q.deviations * s[k], b = m[k] + q.deviations * s[k];
    lo = a < lo ? a : lo;
    hi = b > hi ? b : hi;
  }
  if (!(weight > 0.0)) return false;
  auto clamp = [](double v) { return v < -kMixtureLimit ? -kMixtureLimit : (v > kMixtureLimit ? kMixtureLimit : v); };
  lo = ::floor(clamp(lo));
  hi = ::ceil(clamp(hi));
  if (hi - lo + 1.0 > q.max_symbols) {
    centre = ::floor(centre / weight + 0.5);
    centre = clamp(centre);
    lo = centre - q.max_symbols / 2;
    hi = lo + q.max_symbols - 1;
  }
  *offset = static_cast<int32_t>(lo);
  *length = static_cast<int32_t>(hi - lo) + 2;
  return true;
}

// The smaller tail of a component at a boundary: 0 past 9.2 scales of a Gaussian (below 1e-20,
// which no frequency can see), so its erfc is skipped.
RANSFORM_HD inline bool mixture_tail_is_zero(Family family, double distance, float scale) {
  return family == Family::kGaussian && distance > 9.2 * scale;
}

RANSFORM_HD inline double mixture_small_tail(Family family, double boundary, float mean, float scale) {
  const double d = ::fabs(boundary - mean);
  return mixture_tail_is_zero(family, d, scale) ? 0.0 : upper_tail(family, d, scale);
}

// The element's frequencies freqs[0 .. length - 1] for the support from mixture_support, with
// tail(k, j) the smaller tail of component k at boundary lo - 1/2 + j (j = 0 .. length - 1), as
// mixture_small_tail gives it: computed here one boundary after the other, or looked up in
// tails a batch computed beforehand (mixture_rows.hpp) - the same values, so the same bits.
// REQUIRES: mixture_support returned true for these parameters.
template <class Tail>
RANSFORM_HD inline void mixture_frequencies_with(const MixtureParams& q, const float* w, const float* m, int32_t offset,
                                                 int32_t length, Tail tail_at, uint32_t* freqs) {
  double weight = 0.0;
  for (int k = 0; k < q.components; ++k) weight += w[k];
  const double lo = offset, hi = offset + (length - 2.0);
  const int32_t n = length - 1;

  // Smaller tail of each component at boundary lo - 1/2 + j, carried from one symbol to the next.
  double tail[kMaxMixtureComponents];
  double escape = 0.0;
  for (int k = 0; k < q.components; ++k) {
    tail[k] = tail_at(k, 0);
    escape += w[k] * (lo - 0.5 <= m[k] ? tail[k] : 1.0 - tail[k]);
  }
  const uint32_t total = uint32_t{1} << q.precision;
  const double unit = (total - (n + 1.0)) / weight;  // counts per unit of probability, after the 1s
  uint32_t assigned = 0;
  int32_t mode = 0;
  double best = -1.0;
  for (int32_t j = 0; j < n; ++j) {
    const double below = lo - 0.5 + j, above = below + 1.0;
    double p = 0.0;
    for (int k = 0; k < q.components; ++k) {
      const double next = tail_at(k, j + 1);
      const double mass = below >= m[k] ? tail[k] - next : (above <= m[k] ? next - tail[k] : 1.0 - tail[k] - next);
      p += w[k] * (mass > 0.0 ? mass : 0.0);  // a non-monotone last bit must not go negative
      tail[k] = next;
    }
    freqs[j] = 1u + static_cast<uint32_t>(::floor(p * unit));
    assigned += freqs[j];
    if (p > best) best = p, mode = j;
  }
  for (int k = 0; k < q.components; ++k) escape += w[k] * (hi + 0.5 >= m[k] ? tail[k] : 1.0 - tail[k]);
  freqs[n] = 1u + static_cast<uint32_t>(::floor(escape * unit));
  assigned += freqs[n];
  if (escape > best) mode = n;
  freqs[mode] += total - assigned;
}

// The same, each tail computed when it is needed (the GPU's way, and the specification).
RANSFORM_HD inline void mixture_frequencies(const MixtureParams& q, const float* w, const float* m, const float* s,
                                            int32_t offset, int32_t length, uint32_t* freqs) {
  const double first = offset - 0.5;
  mixture_frequencies_with(
      q, w, m, offset, length, [&](int k, int32_t j) { return mixture_small_tail(q.family, first + j, m[k], s[k]); },
      freqs);
}

}  // namespace ransform
