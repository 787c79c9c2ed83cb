// symbol_tables.hpp: a set of quantized distributions ("rows") laid out for coding.
//
// READ ME FIRST
// Row r codes the integers offset_r .. offset_r + nsym_r - 1 directly. If the row has an
// escape symbol (its tail mass is > 0), every other int32 is coded as the escape symbol
// (local index nsym_r) followed by a sign bit and an exp-Golomb code, see escape.hpp.
// Per row the tables hold
//   enc[0..ntot-1]    encoder entries: reciprocal of the frequency, see rans.hpp
//   cdf[0..ntot]      cumulative frequencies, cdf[0] = 0, cdf[ntot] = 2^precision
// and a block of 2^B + 2 64-bit decoder entries at r (2^B + 2) (a fixed stride, so that the
// decoder finds a row's block from its index alone, with no load):
//   bucket[0..2^B-1]  decoder lookup over buckets of W = 2^(P - B) slots; bucket[b] packs
//                       bits 0-15  s0, the symbol holding the bucket's first slot b W
//                       bits 16-31 c0, s0's cumulative start
//                       bits 32-47 f0 - 1, s0's frequency minus one
//                       bits 48-63 f1 - 1, the frequency of s0 + 1 minus one (0 if none), or
//                                  0xFFFF when the bucket holds three or more symbols
//   bucket[2^B]       s0 = ntot - 1 (the last search bound)
//   bucket[2^B + 1]   offset | nsym << 32, the row's range (for the vector decoder)
// so that in the common case (one or two symbols per bucket) one load gives the symbol and its
// interval: s0 + 1 starts at c1 = c0 + f0, so slot >= c1 selects s0 + 1 with [c1, c1 + f1).
// (f1 - 1 = 0xFFFF cannot be a real second symbol: f0 + f1 <= 2^P.) A crowded bucket takes a
// binary search over cdf[s0 .. s0 of bucket b + 1], so the decoder is O(log n) in the worst
// case. It is never linear in the alphabet.
// B is 8 (2 KB a row) for tables of few rows, each coding many symbols. A table of many rows
// codes a few symbols with each (a mixture's: one row per element), so building 256 buckets a row
// would cost more than it saves: such tables get B = 4 (see bucket_bits_for).
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "core/detmath.hpp"
#include "core/error.hpp"
#include "core/format.hpp"
#include "core/rans.hpp"

namespace ransform {

// 16 bytes, so that a row is one shift away from its index.
struct RowInfo {
  int32_t offset;     // value of local symbol 0
  uint32_t nsym;      // in-range symbols; the escape symbol, if any, is local index nsym
  uint32_t cdf_base;  // row's cdf starts at cdf[cdf_base]
  uint32_t enc_base;  // row's encoder entries start at enc[enc_base]
};
static_assert(sizeof(RowInfo) == 16, "rows are 16 bytes");

class SymbolTables {
 public:
  static constexpr int kMinPrecision = 12;
  static constexpr int kMaxPrecision = 16;
  static constexpr int kBucketBits = 8;     // tables of few rows
  static constexpr int kFewBucketBits = 4;  // tables of many rows
  static constexpr size_t kManyRows = 4096;
  static constexpr uint64_t kCrowded = 0xFFFF;  // bucket bits 48-63 of a crowded bucket

  static int bucket_bits_for(size_t rows) { return rows > kManyRows ? kFewBucketBits : kBucketBits; }

  explicit SymbolTables(int precision, int bucket_bits = kBucketBits)
      : precision_(precision), bucket_bits_(bucket_bits), dec_stride_((1u << bucket_bits) + 2) {
    if (precision < kMinPrecision || precision > kMaxPrecision)
      throw InputError("precision must be between 12 and 16 bits, got " + std::to_string(precision));
    if (bucket_bits < kFewBucketBits || bucket_bits > kBucketBits) throw InputError("bucket_bits must be 4..8");
  }

  // Room for `rows` more rows of `symbols` entries in all (escapes included), so that a table
  // of many rows is built without its arrays growing (and copied) along the way.
  void reserve(size_t rows, size_t symbols) {
    rows_.reserve(rows_.size() + rows);
    escape_.reserve(escape_.size() + rows);
    entropy_.reserve(entropy_.size() + rows);
    enc_.reserve(enc_.size() + symbols);
    cdf_.reserve(cdf_.size() + symbols + rows);
    dec_.reserve(dec_.size() + rows * dec_stride_);
  }

  // Appends a row from integer frequencies (each >= 1, summing to 2^precision).
  // freqs has nsym entries, plus one for the escape symbol when has_escape.
  void add_row(int32_t offset, const std::vector<uint32_t>& freqs, bool has_escape) {
    add_row(offset, freqs.data(), freqs.size(), has_escape);
  }

  void add_row(int32_t offset, const uint32_t* freqs, size_t ntot, bool has_escape) {
    const uint64_t total = uint64_t{1} << precision_;
    if (ntot == 0 || ntot > total || (has_escape && ntot < 2))
      throw InputError("row " + std::to_string(rows_.size()) + " has an invalid alphabet size");
    const uint32_t nsym = static_cast<uint32_t>(ntot - (has_escape ? 1 : 0));
    if (static_cast<int64_t>(offset) + nsym - 1 > INT32_MAX)
      throw InputError("row " + std::to_string(rows_.size()) + ": offset + size exceeds int32");
    if (cdf_.size() + ntot + 1 > UINT32_MAX || dec_.size() + dec_stride_ > INT32_MAX)
      throw InputError("tables too large");
    const RowInfo row{offset, nsym, static_cast<uint32_t>(cdf_.size()), static_cast<uint32_t>(enc_.size())};
    // The row's cdf goes straight into cdf_; a row found invalid is taken back out.
    const size_t base = cdf_.size();
    cdf_.push_back(0);
    uint64_t sum = 0;
    for (size_t s = 0; s < ntot && sum <= total; ++s) {
      if (freqs[s] == 0) {
        cdf_.resize(base);
        throw InputError("every symbol needs a frequency of at least 1");
      }
      sum += freqs[s];
      cdf_.push_back(static_cast<uint32_t>(sum));
    }
    if (cdf_.size() - base != ntot + 1 || sum != total) {
      cdf_.resize(base);
      throw InputError("frequencies must sum to 2^precision");
    }
    const uint32_t* cdf = cdf_.data() + base;
    for (size_t s = 0; s < ntot; ++s) enc_.push_back(EncSymbol::make(cdf[s], freqs[s], precision_));

    // Walk symbols and buckets together (see the layout of bucket[] above).
    const uint32_t width = 1u << (precision_ - bucket_bits_);
    uint32_t s = 0;
    for (uint32_t b = 0; b < (1u << bucket_bits_); ++b) {
      const uint32_t first = b * width, last = first + width - 1;
      while (cdf[s + 1] <= first) ++s;
      const uint64_t f1 = s + 1 < ntot ? freqs[s + 1] - 1 : 0;
      const bool crowded = s + 2 <= ntot - 1 && cdf[s + 2] <= last;
      dec_.push_back(s | uint64_t{cdf[s]} << 16 | uint64_t{freqs[s] - 1} << 32 | (crowded ? kCrowded : f1) << 48);
    }
    dec_.push_back(ntot - 1);
    dec_.push_back(static_cast<uint32_t>(offset) | uint64_t{nsym} << 32);

    const double* terms = entropy_terms(precision_).data();
    double entropy = 0.0;
    for (size_t k = 0; k < ntot; ++k) entropy -= terms[freqs[k]];
    entropy_.push_back(entropy);
    escape_.push_back(has_escape);
    rows_.push_back(row);
  }

  // The stream version this table writes (format.hpp), and whether its rows are that version's
  // alone: a scale table's escape frequency changed in version 2, so a stream of the other
  // version does not decode with it (with other tables either version does).
  void set_version(int version, bool rows_of_version) {
    check_format_version(version);
    version_ = version;
    rows_of_version_ = rows_of_version;
  }
  int version() const { return version_; }
  bool decodes_version(int version) const { return !rows_of_version_ || version == version_; }

  int precision() const { return precision_; }
  int bucket_bits() const { return bucket_bits_; }
  uint32_t dec_stride() const { return dec_stride_; }  // a row's block: buckets, search bound, range
  size_t rows() const { return rows_.size(); }
  const RowInfo& row(size_t r) const { return rows_[r]; }
  const RowInfo* row_data() const { return rows_.data(); }
  bool has_escape(size_t r) const { return escape_[r]; }
  const uint64_t* dec() const { return dec_.data(); }
  const uint32_t* cdf(const RowInfo& row) const { return cdf_.data() + row.cdf_base; }
  const EncSymbol* enc() const { return enc_.data(); }
  // Entropy of row r's quantized distribution in bits (used to size streams).
  double entropy(size_t r) const { return entropy_[r]; }

  // Local frequencies of row r (nsym + has_escape entries).
  std::vector<uint32_t> frequencies(size_t r) const {
    const uint32_t* c = cdf(rows_[r]);
    std::vector<uint32_t> f(rows_[r].nsym + (escape_[r] ? 1 : 0));
    for (size_t s = 0; s < f.size(); ++s) f[s] = c[s + 1] - c[s];
    return f;
  }

 private:
  // q log2 q for q = f / 2^precision, f = 1 .. 2^precision, once per precision: a row's entropy
  // is minus the sum of its symbols' terms, and a table of one row per element (a mixture's)
  // would otherwise spend most of its build in log2. Each term is the expression a row would
  // evaluate for itself, so the sums have the same bits either way.
  static const std::vector<double>& entropy_terms(int precision) {
    constexpr int kPrecisions = kMaxPrecision - kMinPrecision + 1;
    static const std::vector<double>* terms[kPrecisions] = {};
    static std::once_flag once[kPrecisions];
    const int i = precision - kMinPrecision;
    std::call_once(once[i], [&] {
      const uint64_t total = uint64_t{1} << precision;
      auto* t = new std::vector<double>(total + 1, 0.0);  // lives as long as the process, like the tables
      for (uint64_t f = 1; f <= total; ++f) {
        const double q = static_cast<double>(f) / static_cast<double>(total);
        (*t)[f] = q * detmath::log2(q);
      }
      terms[i] = t;
    });
    return *terms[i];
  }

  int version_ = kFormatVersion;
  bool rows_of_version_ = false;
  int precision_;
  int bucket_bits_;
  uint32_t dec_stride_;
  std::vector<RowInfo> rows_;
  std::vector<bool> escape_;
  std::vector<EncSymbol> enc_;
  std::vector<uint32_t> cdf_;
  std::vector<uint64_t> dec_;  // dec_stride_ entries a row
  std::vector<double> entropy_;
};

// The symbol of a crowded bucket b that holds slot: the largest s in [s0, s0 of bucket b + 1]
// with cdf[s] <= slot (binary search). block and cdf are the row's.
RANSFORM_COLD inline uint32_t crowded_symbol(const uint64_t* block, const uint32_t* cdf, uint32_t b, uint32_t slot) {
  uint32_t lo = block[b] & 0xFFFF, hi = block[b + 1] & 0xFFFF;
  while (lo < hi) {
    const uint32_t mid = (lo + hi + 1) >> 1;
    if (cdf[mid] <= slot)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

}  // namespace ransform
