// scale_rows.hpp: the two computations behind a scale table (scale_table.hpp), written as
// functions of one row, or of one pair of adjacent rows, in caller-provided memory. The CPU
// builder loops over them; the GPU builder (csrc/cuda/tables.cu) runs one thread per row on
// the same code, which is how GPU-built tables come out bit-identical to the CPU's.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/detmath.hpp"
#include "core/families.hpp"
#include "core/hd.hpp"
#include "core/quantize.hpp"

namespace ransform {

// Rows keep within half the CDF range.
RANSFORM_HD inline int32_t max_row_radius(int precision) { return ((1 << precision) / 2 - 2) / 2; }

// Working memory of one row whose radius is at most `bound`.
struct RowScratch {
  double* tails;   // bound + 1
  double* p;       // 2 bound + 2
  uint32_t* f;     // 2 bound + 2
  void* quantize;  // quantize_scratch_bytes(2 bound + 2)
};

RANSFORM_HD inline size_t row_scratch_bytes(int32_t bound) {
  const size_t n = 2 * static_cast<size_t>(bound) + 2;
  return (bound + 1 + n) * sizeof(double) + quantize_scratch_bytes(n) + ((n * sizeof(uint32_t) + 7) & ~size_t{7});
}

// REQUIRES: base is 8-byte aligned and holds row_scratch_bytes(bound) bytes.
RANSFORM_HD inline RowScratch carve_row_scratch(void* base, int32_t bound) {
  const size_t n = 2 * static_cast<size_t>(bound) + 2;
  double* tails = static_cast<double*>(base);
  double* p = tails + bound + 1;
  void* quantize = p + n;
  uint32_t* f = reinterpret_cast<uint32_t*>(static_cast<char*>(quantize) + quantize_scratch_bytes(n));
  return RowScratch{tails, p, f, quantize};
}

// Expected bits of the row cut at radius r from tails[0..bound] = T(k + 1/2): in-range symbols
// under the quantized row, plus the values past r at the escape symbol's cost and their
// exp-Golomb bits (see ScaleTable for why the radius is chosen this way).
RANSFORM_HD inline double radius_cost(const double* tails, int32_t bound, int32_t r, int precision, RowScratch s) {
  const int32_t n = 2 * r + 2;
  pmf_from_tails_into(tails, r, s.p);
  quantize_pmf_into(s.p, n, precision, s.f, s.quantize);
  const double total = static_cast<double>(1u << precision);
  double bits = 0.0;
  for (int32_t k = 0; k < n; ++k) bits -= s.p[k] * detmath::log2(s.f[k] / total);
  for (int32_t k = r + 1; k <= bound; ++k)  // both tails, value k = r + 1 + d
    bits += 2.0 * (tails[k - 1] - tails[k]) * escape_payload_bits(k - r - 1);
  return bits + 2.0 * tails[bound] * escape_payload_bits(bound - r);
}

// The radius <= bound of least radius_cost: ternary search (the cost is unimodal except near a
// precision cap), then the bound itself for the jagged case. Deterministic either way.
RANSFORM_HD inline int32_t best_radius(const double* tails, int32_t bound, int precision, RowScratch s) {
  int32_t lo = 0, hi = bound;
  while (hi - lo > 2) {
    const int32_t m1 = lo + (hi - lo) / 3, m2 = hi - (hi - lo) / 3;
    if (radius_cost(tails, bound, m1, precision, s) <= radius_cost(tails, bound, m2, precision, s))
      hi = m2;
    else
      lo = m1;
  }
  int32_t best = lo;
  double best_cost = radius_cost(tails, bound, lo, precision, s);
  for (int32_t r = lo + 1; r <= hi; ++r) {
    const double c = radius_cost(tails, bound, r, precision, s);
    if (c < best_cost) best = r, best_cost = c;
  }
  if (best != bound && radius_cost(tails, bound, bound, precision, s) < best_cost) best = bound;
  return best;
}

// Format version 2 quantizes a row with its escape's probability raised to at least this, by
// the row's radius: values past a trained model's rows are far likelier than the family's tails
// say (the shipped models escape 75-132 times per million values), and an escape symbol of
// 2^-12 costs 12 bits instead of up to 16 (benchmarks/escapes.py). Narrow rows, whose other
// symbols cost a fraction of a bit, pay most for the escape's share, so they get less.
RANSFORM_HD inline double escape_probability_floor_v2(int32_t radius) {
  return radius >= 2 ? 1.0 / 4096.0 : radius == 1 ? 1.0 / 16384.0 : 0.0;
}

// One table row of format version `version`: the family at `scale` with support bound `bound`
// (support_radius of the tail mass). Writes the 2R + 2 frequencies (-R..R, then escape) to
// freqs; returns R. The radius is chosen the same way in both versions.
RANSFORM_HD inline int32_t build_scale_row(Family family, double scale, int32_t bound, int precision, int version,
                                           RowScratch s, uint32_t* freqs) {
  half_integer_tails_into(family, scale, bound, s.tails);
  const int32_t r = best_radius(s.tails, bound, precision, s);
  pmf_from_tails_into(s.tails, r, s.p);
  if (version >= 2) s.p[2 * r + 1] = ::fmax(s.p[2 * r + 1], escape_probability_floor_v2(r));
  quantize_pmf_into(s.p, 2 * r + 2, precision, freqs, s.quantize);
  return r;
}

// len[k] = -log2(f[k] / 2^precision), the code length of each symbol of a row.
RANSFORM_HD inline void code_lengths_into(const uint32_t* f, int32_t n, int precision, double* len) {
  const double total = static_cast<double>(1u << precision);
  for (int32_t k = 0; k < n; ++k) len[k] = -detmath::log2(f[k] / total);
}

// Expected bits of the row of radius `radius` and code lengths len for data with pmf p over
// -big..big (p[big + k] = P(k)) and tails tail[k] = T(k + 1/2): in-range symbols exactly, the
// escape region as its mass times (escape symbol + the 2 bits of the shortest exp-Golomb code).
RANSFORM_HD inline double expected_row_bits(int32_t radius, const double* len, const double* p, const double* tail,
                                            int32_t big) {
  double bits = 0.0;
  for (int32_t k = -radius; k <= radius; ++k) bits += p[big + k] * len[radius + k];
  return bits + 2.0 * tail[radius] * (len[2 * radius + 1] + 2.0);
}

// Scale in [s_lo, s_hi] where the rows of those scales have equal expected code length (the
// lower row is better below). 20 bisection steps narrow the interval to 1e-6 of its width,
// far below the index grid. tails and p hold big + 1 and 2 big + 2 doubles, big = max radius.
RANSFORM_HD inline double row_crossing(Family family, double s_lo, double s_hi, int32_t r_lo, const double* len_lo,
                                       int32_t r_hi, const double* len_hi, double* tails, double* p) {
  const int32_t big = r_lo > r_hi ? r_lo : r_hi;
  double lo = s_lo, hi = s_hi;
  for (int it = 0; it < 20; ++it) {
    const double mid = 0.5 * (lo + hi);
    half_integer_tails_into(family, mid, big, tails);
    pmf_from_tails_into(tails, big, p);
    if (expected_row_bits(r_lo, len_lo, p, tails, big) <= expected_row_bits(r_hi, len_hi, p, tails, big))
      lo = mid;
    else
      hi = mid;
  }
  return hi;
}

// What a scale table is made of, before the index lookup: one row per scale (its radius R_j
// and 2 R_j + 2 frequencies) and the crossing scale of each adjacent pair of rows.
struct ScaleRows {
  std::vector<int32_t> radius;
  std::vector<std::vector<uint32_t>> freqs;
  std::vector<double> crossings;
};

// Support bound of each row: the radius beyond which the tail is below tail_mass.
inline std::vector<int32_t> support_bounds(Family family, const std::vector<float>& scales, int precision,
                                           double tail_mass) {
  std::vector<int32_t> bounds;
  for (float s : scales) bounds.push_back(support_radius(family, s, tail_mass, max_row_radius(precision)));
  return bounds;
}

// The CPU builder (the GPU's, csrc/cuda/tables.cu, runs the same row functions).
inline ScaleRows build_scale_rows(Family family, const std::vector<float>& scales, int precision, double tail_mass,
                                  int version) {
  ScaleRows rows;
  std::vector<double> scratch;
  for (int32_t bound : support_bounds(family, scales, precision, tail_mass)) {
    scratch.resize(row_scratch_bytes(bound) / sizeof(double) + 1);
    std::vector<uint32_t> f(2 * static_cast<size_t>(bound) + 2);
    const double scale = scales[rows.radius.size()];
    const int32_t r =
        build_scale_row(family, scale, bound, precision, version, carve_row_scratch(scratch.data(), bound), f.data());
    f.resize(2 * static_cast<size_t>(r) + 2);
    rows.radius.push_back(r);
    rows.freqs.push_back(std::move(f));
  }
  std::vector<std::vector<double>> len;
  for (const auto& f : rows.freqs) {
    len.emplace_back(f.size());
    code_lengths_into(f.data(), static_cast<int32_t>(f.size()), precision, len.back().data());
  }
  for (size_t j = 0; j + 1 < scales.size(); ++j) {
    const int32_t big = std::max(rows.radius[j], rows.radius[j + 1]);
    std::vector<double> tails(big + 1), p(2 * static_cast<size_t>(big) + 2);
    rows.crossings.push_back(row_crossing(family, scales[j], scales[j + 1], rows.radius[j], len[j].data(),
                                          rows.radius[j + 1], len[j + 1].data(), tails.data(), p.data()));
  }
  return rows;
}

}  // namespace ransform
