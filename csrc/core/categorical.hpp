// categorical.hpp: categorical tables (one arbitrary distribution per row) from rows of
// probabilities or of frequencies, given as a (rows, width) array with per-row lengths.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/quantize.hpp"
#include "core/symbol_tables.hpp"

namespace ransform {

// lengths[r], checked to be in [1, width].
inline int64_t checked_row_length(const int32_t* lengths, int64_t r, int64_t width) {
  const int32_t len = lengths[r];
  if (len < 1 || len > width)
    throw InputError("lengths[" + std::to_string(r) + "] = " + std::to_string(len) + " must be in [1, " +
                     std::to_string(width) + "]");
  return len;
}

// Row r holds pmfs[r][0 .. lengths[r] - 1] for the symbols offsets[r], offsets[r] + 1, ..., plus
// an escape of mass tails[r] when it is > 0, quantized to 2^precision (quantize.hpp).
// REQUIRES: pmfs is rows x width, row-major; lengths, offsets and tails have rows entries.
inline SymbolTables categorical_from_pmfs(const double* pmfs, int64_t rows, int64_t width, const int32_t* lengths,
                                          const int32_t* offsets, const double* tails, int precision) {
  SymbolTables t(precision, SymbolTables::bucket_bits_for(static_cast<size_t>(rows)));
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t len = checked_row_length(lengths, r, width);
    const double tail = tails[r];
    if (!(tail >= 0.0 && tail < 1.0)) throw InputError("tail_mass[" + std::to_string(r) + "] must be in [0, 1)");
    std::vector<double> p(pmfs + r * width, pmfs + r * width + len);
    if (tail > 0.0) p.push_back(tail);
    double mass = 0.0;
    for (double v : p) {
      if (!(v >= 0.0) || v > 1e300)
        throw InputError("pmfs row " + std::to_string(r) + " has a negative, NaN or infinite entry");
      mass += v;
    }
    if (p.size() > (size_t{1} << precision))
      throw InputError("pmfs row " + std::to_string(r) + " has " + std::to_string(p.size()) +
                       " symbols (with escape) but precision " + std::to_string(precision) + " allows at most " +
                       std::to_string(1 << precision));
    if (!(mass > 0.0)) throw InputError("pmfs row " + std::to_string(r) + " has no probability mass");
    t.add_row(offsets[r], quantize_pmf(p, precision), tail > 0.0);
  }
  return t;
}

// Row r holds the integer frequencies freqs[r][0 .. lengths[r] - 1] as given (escape last when
// has_escape); SymbolTables::add_row checks that they sum to 2^precision.
inline SymbolTables categorical_from_frequencies(const uint32_t* freqs, int64_t rows, int64_t width,
                                                 const int32_t* lengths, const int32_t* offsets, bool has_escape,
                                                 int precision) {
  SymbolTables t(precision, SymbolTables::bucket_bits_for(static_cast<size_t>(rows)));
  size_t symbols = 0;
  for (int64_t r = 0; r < rows; ++r) symbols += static_cast<size_t>(checked_row_length(lengths, r, width));
  t.reserve(static_cast<size_t>(rows), symbols);
  for (int64_t r = 0; r < rows; ++r)
    t.add_row(offsets[r], freqs + r * width, static_cast<size_t>(lengths[r]), has_escape);
  return t;
}

}  // namespace ransform
