// scale_table.hpp: one quantized distribution per tabulated scale, and the map scale -> row.
//
// READ ME FIRST
// Row j holds the family at scale s_j, support -R_j..R_j (R_j from the tail mass) and an escape
// symbol. A float32 scale s is coded with the row whose expected code length for data of
// scale s is least. Between rows j and j+1 that choice flips at one scale t_j, so the map is
//   index(s) = number of thresholds t_j with t_j <= s           (j = 0 .. m-2)
// a comparison of float32 values, exact and identical on every machine. t_j is where the
// expected code lengths of the two *quantized* rows cross, found by bisection (for wide rows
// this is not the geometric mean of the scales: the tails' minimum counts move it by percents).
// Scales below t_0
// (including 0) map to row 0, scales above the last threshold to the last row; NaN, inf and
// negative scales are rejected.
//
// The lookup is one load: the float32 bit pattern of a positive float is monotone in its
// value, and every threshold is snapped to a grid of 2^shift bit patterns (shift <= 14, i.e.
// at most 1/512 of an octave, 0.14 % in scale). Only scales within half a grid step of a
// crossing can get the worse neighbour, by at most ~1e-4 bits per symbol on the default table
// (measured), about 1e-6 bits on average over a log-uniform range. With u the bit pattern of
// s clamped to the grid's span,
//   index(s) = lut[(u - lo) >> shift]
// Custom tables whose scales are closer than the grid get a finer grid.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <string>
#include <vector>

#include "core/detmath.hpp"
#include "core/error.hpp"
#include "core/families.hpp"
#include "core/parallel.hpp"
#include "core/quantize.hpp"
#include "core/scale_rows.hpp"
#include "core/symbol_tables.hpp"

namespace ransform {

inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

inline float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// The default scale table: 160 scales spaced evenly in log from 0.11 to 256.
inline std::vector<float> default_scales() {
  const int n = 160;
  const double lo = detmath::log(0.11), hi = detmath::log(256.0);
  std::vector<float> s(n);
  for (int i = 0; i < n; ++i) s[i] = static_cast<float>(detmath::exp(lo + (hi - lo) * i / (n - 1)));
  return s;
}

// The hot loop of ScaleTable::index; returns true if some scale was invalid.
inline bool index_lut_scalar(const float* scales, int32_t* out, size_t n, const int32_t* lut, uint32_t lo, uint32_t hi,
                             uint32_t shift) {
  uint32_t invalid = 0;
  for (size_t i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, scales + i, 4);
    u = u == 0x80000000u ? 0u : u;  // -0.0 is zero
    invalid |= u >= 0x7F800000u;    // +inf, NaN, and every negative (sign bit set)
    u = u < lo ? lo : (u > hi ? hi : u);
    out[i] = lut[(u - lo) >> shift];
  }
  return invalid != 0;
}

#if defined(__x86_64__) && defined(__GNUC__)
// The same with AVX2, 8 scales per step (the LUT lookups become one gather). Selected at run
// time when the CPU has AVX2; the result is identical to the scalar loop.
__attribute__((target("avx2"))) inline bool index_lut_avx2(const float* scales, int32_t* out, size_t n,
                                                           const int32_t* lut, uint32_t lo, uint32_t hi,
                                                           uint32_t shift) {
  const __m256i vlo = _mm256_set1_epi32(static_cast<int>(lo));
  const __m256i vhi = _mm256_set1_epi32(static_cast<int>(hi));
  const __m256i neg_zero = _mm256_set1_epi32(static_cast<int>(0x80000000u));
  const __m256i max_finite = _mm256_set1_epi32(0x7F7FFFFF);
  const __m128i count = _mm_cvtsi32_si128(static_cast<int>(shift));
  __m256i bad = _mm256_setzero_si256();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256i u = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(scales + i));
    u = _mm256_andnot_si256(_mm256_cmpeq_epi32(u, neg_zero), u);  // -0.0 -> 0
    // Invalid: sign bit set (negative) or above the largest finite float (inf, NaN).
    bad = _mm256_or_si256(bad, _mm256_or_si256(u, _mm256_cmpgt_epi32(u, max_finite)));
    // u >= 0 for valid scales, so signed clamping is the unsigned one.
    const __m256i uc = _mm256_min_epi32(_mm256_max_epi32(u, vlo), vhi);
    const __m256i k = _mm256_srl_epi32(_mm256_sub_epi32(uc, vlo), count);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm256_i32gather_epi32(lut, k, 4));
  }
  const bool invalid = _mm256_movemask_ps(_mm256_castsi256_ps(bad)) != 0;
  return index_lut_scalar(scales + i, out + i, n - i, lut, lo, hi, shift) || invalid;
}
#endif

inline bool index_lut(const float* scales, int32_t* out, size_t n, const int32_t* lut, uint32_t lo, uint32_t hi,
                      uint32_t shift) {
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool has_avx2 = __builtin_cpu_supports("avx2");
  if (has_avx2) return index_lut_avx2(scales, out, n, lut, lo, hi, shift);
#endif
  return index_lut_scalar(scales, out, n, lut, lo, hi, shift);
}

class ScaleTable {
 public:
  // Row j holds the family at scale s_j with support -R_j..R_j and an escape symbol. R_j is
  // not simply the tail-mass bound: at large scales that bound leaves hundreds of symbols far
  // below 2^-P, each still taking a count of 1 that the central symbols lose (about 9 % of the
  // counts, 1.3 % more code length, at scale 200 for Laplace rows). So R_j is the radius under
  // the bound with the least expected code length, escapes and exp-Golomb bits included
  // (scale_rows.hpp). `rows`, when given, are rows built elsewhere (the GPU) from the same
  // arguments; they are checked for shape and validity, not recomputed.
  // `version` is the format version whose rows it holds and whose streams it writes and reads.
  ScaleTable(Family family, std::vector<float> scales, int precision, double tail_mass, int version = kFormatVersion,
             const ScaleRows* rows = nullptr)
      : family_(family), scales_(std::move(scales)), tail_mass_(tail_mass), tables_(precision) {
    check_arguments(scales_, precision, tail_mass, version);
    tables_.set_version(version, /*rows_of_version=*/true);
    const ScaleRows built = rows ? ScaleRows{} : build_scale_rows(family_, scales_, precision, tail_mass_, version);
    const ScaleRows& use = rows ? *rows : built;
    if (use.radius.size() != scales_.size() || use.freqs.size() != scales_.size() ||
        use.crossings.size() + 1 != scales_.size())
      throw InputError("prebuilt scale rows do not match the scale table's size");
    for (size_t j = 0; j < scales_.size(); ++j) {
      if (use.radius[j] < 0 || use.freqs[j].size() != 2 * static_cast<size_t>(use.radius[j]) + 2)
        throw InputError("prebuilt scale row " + std::to_string(j) + " has an inconsistent radius");
      tables_.add_row(-use.radius[j], use.freqs[j], /*has_escape=*/true);
    }
    build_thresholds(use.crossings);
  }

  // Throws InputError unless a table can be built from these arguments.
  static void check_arguments(const std::vector<float>& scales, int precision, double tail_mass, int version) {
    check_format_version(version);
    SymbolTables{precision};  // checks the precision
    if (scales.empty()) throw InputError("the scale table is empty");
    for (size_t i = 0; i < scales.size(); ++i) {
      const float s = scales[i];
      if (!(s > 0.0f) || !(s < 3.0e38f))
        throw InputError("table scales must be positive and finite; scales[" + std::to_string(i) +
                         "] = " + std::to_string(s));
      if (i > 0 && !(s > scales[i - 1])) throw InputError("table scales must be strictly increasing");
    }
    if (!(tail_mass > 0.0 && tail_mass < 1.0)) throw InputError("tail_mass must be in (0, 1)");
  }

  Family family() const { return family_; }
  const std::vector<float>& scales() const { return scales_; }
  double tail_mass() const { return tail_mass_; }
  const SymbolTables& tables() const { return tables_; }
  std::vector<float> thresholds() const {
    std::vector<float> t;
    for (size_t j = 0; j + 1 < scales_.size(); ++j) t.push_back(bits_float(t_bits_[j]));
    return t;
  }

  // REQUIRES: scales and out hold n elements.
  // @return : n when every scale was valid (out filled), else the position of the first
  //           invalid scale (NaN, infinite or negative; out is then unspecified).
  size_t index(const float* scales, int32_t* out, size_t n) const {
    if (!index_lut(scales, out, n, lut_.data(), lo_, hi_, shift_)) return n;
    for (size_t i = 0; i < n; ++i) {
      uint32_t u;
      std::memcpy(&u, scales + i, 4);
      if (u != 0x80000000u && u >= 0x7F800000u) return i;
    }
    return n;
  }

 private:
  // Snaps the crossings to the index grid and fills the lookup.
  void build_thresholds(const std::vector<double>& crossings) {
    if (scales_.size() == 1) {  // one row: everything maps to it
      lo_ = 0;
      hi_ = 0;
      shift_ = 0;
      lut_.assign(1, 0);
      return;
    }
    // Grid: at most 2^14 bit patterns, and no coarser than the closest pair of table scales,
    // so that every interval (s_j, s_{j+1}] holds a grid point.
    uint32_t min_gap = UINT32_MAX;
    for (size_t j = 1; j < scales_.size(); ++j)
      min_gap = std::min(min_gap, float_bits(scales_[j]) - float_bits(scales_[j - 1]));
    shift_ = 0;
    while (shift_ < 14 && (uint32_t{2} << shift_) <= min_gap) ++shift_;
    const uint32_t step = uint32_t{1} << shift_;
    for (size_t j = 0; j + 1 < scales_.size(); ++j) {
      const uint32_t c = float_bits(static_cast<float>(crossings[j]));
      uint32_t t = (c + step / 2) & ~(step - 1);                             // nearest grid point
      const uint32_t first = (float_bits(scales_[j]) & ~(step - 1)) + step;  // first grid point > s_j
      const uint32_t last = float_bits(scales_[j + 1]) & ~(step - 1);        // last grid point <= s_{j+1}
      t = t < first ? first : (t > last ? last : t);
      t_bits_.push_back(t);
    }
    lo_ = t_bits_.front() - step;
    hi_ = t_bits_.back();
    const uint64_t entries = ((hi_ - lo_) >> shift_) + 1;
    if (entries > (uint64_t{1} << 22))
      throw InputError(
          "table scales are too close together for the index lookup (adjacent scales must differ by "
          "at least 1e-6 relative over a range of 16 octaves)");
    lut_.resize(entries);
    size_t j = 0;
    for (uint64_t k = 0; k < entries; ++k) {
      while (j < t_bits_.size() && t_bits_[j] <= lo_ + (k << shift_)) ++j;
      lut_[k] = static_cast<int32_t>(j);
    }
  }

  Family family_;
  std::vector<float> scales_;
  double tail_mass_;
  SymbolTables tables_;
  std::vector<uint32_t> t_bits_;  // thresholds as float32 bit patterns, on the grid, increasing
  std::vector<int32_t> lut_;      // lut[k] = number of thresholds <= lo + k 2^shift
  uint32_t lo_ = 0, hi_ = 0, shift_ = 0;
};

// ScaleTable::index over many scales on `threads` threads (blocks of 2^20; each block's rows do
// not depend on who computed them). Returns the first position holding an invalid scale (NaN,
// negative or infinite), or n when all are valid.
inline size_t index_scales(const ScaleTable& t, const float* in, int32_t* out, size_t n, int threads) {
  const size_t block = size_t{1} << 20;
  const size_t blocks = (n + block - 1) / block;
  std::vector<size_t> first_bad(blocks, n);
  parallel_for(blocks, resolve_threads(threads), [&](size_t b) {
    const size_t begin = b * block, count = std::min(block, n - begin);
    const size_t r = t.index(in + begin, out + begin, count);
    if (r != count) first_bad[b] = begin + r;
  });
  return blocks ? *std::min_element(first_bad.begin(), first_bad.end()) : n;
}

}  // namespace ransform
