// symbol_tables.hpp: a set of quantized distributions ("rows") laid out for coding.
//
// READ ME FIRST
// Row r codes the integers offset_r .. offset_r + nsym_r - 1 directly. If the row has an
// escape symbol (its tail mass is > 0), every other int32 is coded as the escape symbol
// (local index nsym_r) followed by a sign bit and an exp-Golomb code, see escape.hpp.
// Per row the tables hold
//   cdf[0..ntot]      cumulative frequencies, cdf[0] = 0, cdf[ntot] = 2^precision
//   enc[0..ntot-1]    encoder entries: reciprocal of the frequency, see rans.hpp
//   bucket[0..2^B]    decoder lookup over buckets of W = 2^(P - B) slots; bucket[b] packs
//                       bits 0-15  s0, the symbol holding the bucket's first slot b W
//                       bits 16-24 t, the bucket-relative slot where s0 + 1 starts (W if none)
//                       bit 31     set when the bucket holds three or more symbols
// so that in the common case (one or two symbols per bucket) the symbol is
//   s = s0 + (slot mod W >= t)
// with no dependent load; otherwise a binary search over [s0, s0 of bucket b + 1] makes the
// decoder O(log n) in the worst case. It is never linear in the alphabet.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/detmath.hpp"
#include "core/error.hpp"
#include "core/rans.hpp"

namespace ransform {

struct RowInfo {
  int32_t offset;        // value of local symbol 0
  uint32_t nsym;         // in-range symbols; the escape symbol, if any, is local index nsym
  uint32_t has_escape;   // 0 or 1
  uint32_t cdf_base;     // row's cdf starts at cdf[cdf_base], length nsym + has_escape + 1
  uint32_t enc_base;     // row's encoder entries start at enc[enc_base]
  uint32_t bucket_base;  // row's bucket lookup starts at bucket[bucket_base]
};

class SymbolTables {
 public:
  static constexpr int kMinPrecision = 12;
  static constexpr int kMaxPrecision = 16;
  static constexpr int kBucketBits = 8;
  static_assert(kMaxPrecision - kBucketBits <= 8, "bucket entries keep a slot offset < 2^9 (W <= 256)");

  explicit SymbolTables(int precision) : precision_(precision) {
    if (precision < kMinPrecision || precision > kMaxPrecision)
      throw InputError("precision must be between 12 and 16 bits, got " + std::to_string(precision));
  }

  // Appends a row from integer frequencies (each >= 1, summing to 2^precision).
  // freqs has nsym entries, plus one for the escape symbol when has_escape.
  void add_row(int32_t offset, const std::vector<uint32_t>& freqs, bool has_escape) {
    const uint64_t total = uint64_t{1} << precision_;
    const size_t ntot = freqs.size();
    if (ntot == 0 || ntot > total || (has_escape && ntot < 2))
      throw InputError("row " + std::to_string(rows_.size()) + " has an invalid alphabet size");
    const uint32_t nsym = static_cast<uint32_t>(ntot - (has_escape ? 1 : 0));
    if (static_cast<int64_t>(offset) + nsym - 1 > INT32_MAX)
      throw InputError("row " + std::to_string(rows_.size()) + ": offset + size exceeds int32");
    if (cdf_.size() + ntot + 1 > UINT32_MAX || bucket_.size() + (1u << kBucketBits) + 1 > UINT32_MAX)
      throw InputError("tables too large");
    RowInfo row{offset,
                nsym,
                has_escape ? 1u : 0u,
                static_cast<uint32_t>(cdf_.size()),
                static_cast<uint32_t>(enc_.size()),
                static_cast<uint32_t>(bucket_.size())};
    uint64_t acc = 0;
    cdf_.push_back(0);
    for (size_t s = 0; s < ntot; ++s) {
      if (freqs[s] == 0) throw InputError("every symbol needs a frequency of at least 1");
      enc_.push_back(EncSymbol::make(static_cast<uint32_t>(acc), freqs[s], precision_));
      acc += freqs[s];
      if (acc > total) break;
      cdf_.push_back(static_cast<uint32_t>(acc));
    }
    if (acc != total) throw InputError("frequencies must sum to 2^precision");

    // Walk symbols and buckets together (see the layout of bucket[] above).
    const uint32_t width = 1u << (precision_ - kBucketBits);
    const uint32_t* cdf = cdf_.data() + row.cdf_base;
    uint32_t s = 0;
    for (uint32_t b = 0; b < (1u << kBucketBits); ++b) {
      const uint32_t first = b * width, last = first + width - 1;
      while (cdf[s + 1] <= first) ++s;
      uint32_t entry = s | width << 16;                                   // one symbol
      if (cdf[s + 1] <= last) entry = s | (cdf[s + 1] - first) << 16;     // a second one starts inside
      if (s + 2 <= ntot - 1 && cdf[s + 2] <= last) entry = s | 1u << 31;  // three or more
      bucket_.push_back(entry);
    }
    bucket_.push_back(static_cast<uint32_t>(ntot - 1));

    double entropy = 0.0;
    for (size_t k = 0; k < ntot; ++k) {
      const double q = static_cast<double>(freqs[k]) / static_cast<double>(total);
      entropy -= q * detmath::log2(q);
    }
    entropy_.push_back(entropy);
    rows_.push_back(row);
  }

  int precision() const { return precision_; }
  size_t rows() const { return rows_.size(); }
  const RowInfo& row(size_t r) const { return rows_[r]; }
  const RowInfo* row_data() const { return rows_.data(); }
  const uint32_t* cdf() const { return cdf_.data(); }
  const EncSymbol* enc() const { return enc_.data(); }
  const uint32_t* bucket() const { return bucket_.data(); }
  // Entropy of row r's quantized distribution in bits (used to size streams).
  double entropy(size_t r) const { return entropy_[r]; }

  // Local frequencies of row r (nsym + has_escape entries).
  std::vector<uint32_t> frequencies(size_t r) const {
    const RowInfo& ri = rows_[r];
    std::vector<uint32_t> f(ri.nsym + ri.has_escape);
    for (size_t s = 0; s < f.size(); ++s) f[s] = cdf_[ri.cdf_base + s + 1] - cdf_[ri.cdf_base + s];
    return f;
  }

 private:
  int precision_;
  std::vector<RowInfo> rows_;
  std::vector<uint32_t> cdf_;
  std::vector<EncSymbol> enc_;
  std::vector<uint32_t> bucket_;
  std::vector<double> entropy_;
};

}  // namespace ransform
