// chunk_coder.hpp: coding one chunk with 1, 2, 4 or 8 interleaved lanes.
//
// READ ME FIRST
// Chunk body = [state-size codes][lane final states][32-bit words, little-endian].
//  - Every lane starts the encoder at x = L = 2^31; the decoder must end every lane exactly
//    there. That 31-bit check per lane catches most corruption and wrong tables; the chunk
//    checksum (checksum.hpp) catches the rest.
//  - A final state x is written in 4 + c bytes, little-endian, c = 0..3 in 2 bits per lane
//    (lane l in bits 2(l mod 4) of code byte l / 4). A state >= 2^56 first emits its low word
//    into the word stream (then it is below L and the decoder's first refill restores it).
//    So a lane costs 31 bits (its start state) + about 5.5 bits of flush rounding + 2 bits.
//  - Lanes emit extra words from the last lane to the first, so the decoder, initialising
//    lanes 0, 1, ... in order, reads them first-lane first.
//  - Lane 0 then carries the chunk's 32-bit symbol checksum (checksum.hpp) as two 16-bit
//    bypass groups, high half first, decoded before the symbols.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/buffer_pool.hpp"
#include "core/checksum.hpp"
#include "core/error.hpp"
#include "core/escape.hpp"
#include "core/format.hpp"
#include "core/rans.hpp"
#include "core/symbol_tables.hpp"
#include "core/vector_lanes.hpp"

namespace ransform {

inline std::string index_error(uint64_t pos, int64_t value, size_t rows) {
  return "indexes[" + std::to_string(pos) + "] = " + std::to_string(value) + " is out of range for a table with " +
         std::to_string(rows) + " rows";
}

[[noreturn]] RANSFORM_COLD inline void throw_index_error(uint64_t pos, int64_t value, size_t rows) {
  throw InputError(index_error(pos, value, rows));
}

// Throws for the first index of idx[0..) outside [0, rows); first is idx[0]'s position in the
// stream. REQUIRES: there is one.
[[noreturn]] RANSFORM_COLD inline void throw_first_bad_index(const int32_t* idx, uint32_t rows, uint64_t first) {
  size_t i = 0;
  while (static_cast<uint32_t>(idx[i]) < rows) ++i;
  throw_index_error(first + i, idx[i], rows);
}

[[noreturn]] RANSFORM_COLD inline void throw_no_escape(uint64_t pos, int32_t value, int32_t r, const RowInfo& row) {
  throw InputError("symbols[" + std::to_string(pos) + "] = " + std::to_string(value) + " is outside row " +
                   std::to_string(r) + "'s range [" + std::to_string(row.offset) + ", " +
                   std::to_string(static_cast<int64_t>(row.offset) + row.nsym - 1) +
                   "] and that row has no escape symbol (tail_mass 0)");
}

// Calls fn(std::integral_constant<int, K>{}, std::integral_constant<int, P>{}) for the runtime
// lanes K in {1, 2, 4, 8} and precision P in 12..16, so the hot loops see both as constants.
template <class Fn>
void with_layout(int lanes, int precision, Fn&& fn) {
  auto by_precision = [&](auto k) {
    switch (precision) {
      case 12: fn(k, std::integral_constant<int, 12>{}); break;
      case 13: fn(k, std::integral_constant<int, 13>{}); break;
      case 14: fn(k, std::integral_constant<int, 14>{}); break;
      case 15: fn(k, std::integral_constant<int, 15>{}); break;
      default: fn(k, std::integral_constant<int, 16>{}); break;
    }
  };
  switch (lanes) {
    case 1: by_precision(std::integral_constant<int, 1>{}); break;
    case 2: by_precision(std::integral_constant<int, 2>{}); break;
    case 4: by_precision(std::integral_constant<int, 4>{}); break;
    default: by_precision(std::integral_constant<int, 8>{}); break;
  }
}

// Calls fn(std::integral_constant<int, B>{}) for a table's bucket bits B (symbol_tables.hpp).
template <class Fn>
void with_bucket_bits(int bits, Fn&& fn) {
  if (bits == SymbolTables::kFewBucketBits)
    fn(std::integral_constant<int, SymbolTables::kFewBucketBits>{});
  else
    fn(std::integral_constant<int, SymbolTables::kBucketBits>{});
}

// An encoded chunk body.
class ChunkBuffer {
 public:
  ChunkBuffer() = default;
  ChunkBuffer(const uint8_t* begin, const uint8_t* end)
      : buf_(BufferPool::chunk_bodies(), static_cast<size_t>(end - begin)), size_(static_cast<size_t>(end - begin)) {
    std::memcpy(buf_.data(), begin, size_);
  }
  const uint8_t* begin() const { return buf_.data(); }
  size_t size() const { return size_; }

 private:
  PooledBuffer buf_;
  size_t size_ = 0;
};

class ChunkEncoder {
 public:
  explicit ChunkEncoder(const SymbolTables& t)
      : t_(t), rows_(t.row_data()), enc_(t.enc()), nrows_(static_cast<uint32_t>(t.rows())), precision_(t.precision()) {}

  // Encodes count symbols with lanes lanes; first is the chunk's position in the stream
  // (for error messages).
  ChunkBuffer encode(const int32_t* sym, const int32_t* idx, size_t count, int lanes, uint64_t first) const {
    // Worst case per symbol: P bits + escape (sign, 33-bit prefix, 31-bit suffix) < 96 bits.
    const size_t cap_words = 3 * count + 2 * kMaxLanes + 8;
    const PooledBuffer scratch(BufferPool::encoder_scratch(), 4 * cap_words);  // only the written part is touched
    uint32_t* const words_end = reinterpret_cast<uint32_t*>(scratch.data()) + cap_words;
    uint32_t* out = words_end;
    uint64_t x[kMaxLanes];
    for (int l = 0; l < lanes; ++l) x[l] = kRansL;
    // Blocks from the last to the first: checksum a block while it is in cache, then code it.
    uint32_t checksum = 0;
    with_layout(lanes, precision_, [&](auto k, auto p) {
      for (size_t end = count; end > 0;) {
        const size_t begin = (end - 1) / kChecksumBlock * kChecksumBlock;
        checksum = checksum_add(checksum, sym + begin, end - begin, first + begin);
        run<k(), p()>(x, out, sym, idx, begin, end, first);
        end = begin;
      }
    });
    enc_put_bits(x[0], out, checksum & 0xFFFF, 16);
    enc_put_bits(x[0], out, checksum >> 16, 16);
    // Flush: oversized states emit one word (last lane first), then states and codes go
    // in front of the words, written backwards.
    int code[kMaxLanes];
    for (int l = lanes - 1; l >= 0; --l) {
      if (x[l] >= (uint64_t{1} << 56)) {
        *--out = static_cast<uint32_t>(x[l]);
        x[l] >>= 32;
      }
      int nbytes = 4;
      while (nbytes < 8 && (x[l] >> (8 * nbytes))) ++nbytes;
      code[l] = nbytes - 4;
    }
    uint8_t* p = reinterpret_cast<uint8_t*>(out);
    for (int l = lanes - 1; l >= 0; --l) {
      const int nbytes = 4 + code[l];
      p -= nbytes;
      for (int b = 0; b < nbytes; ++b) p[b] = static_cast<uint8_t>(x[l] >> (8 * b));
    }
    const int ncode = (lanes + 3) / 4;
    p -= ncode;
    std::memset(p, 0, ncode);
    for (int l = 0; l < lanes; ++l) p[l / 4] |= static_cast<uint8_t>(code[l] << (2 * (l % 4)));
    return ChunkBuffer(p, reinterpret_cast<const uint8_t*>(words_end));
  }

 private:
  // Copies of the table fields the hot loop reads. Being locals of run(), they cannot be
  // aliased by the stores to the output words, so the compiler keeps them in registers.
  struct View {
    const RowInfo* rows;
    const EncSymbol* enc;
    uint32_t nrows;
  };

  // Codes symbols [begin, end) of the chunk backwards; symbol j goes to lane j mod K.
  // REQUIRES: begin is a multiple of K.
  template <int K, int P>
  void run(uint64_t* x, uint32_t*& out_ref, const int32_t* sym, const int32_t* idx, size_t begin, size_t end,
           uint64_t first) const {
    const View v{rows_, enc_, nrows_};
    uint32_t* out = out_ref;
    size_t j = end;
    while (j % K) {
      --j;
      put<P, (K == 8)>(v, x[j % K], out, sym[j], idx[j], first + j);
    }
    uint64_t s[K];
    for (int l = 0; l < K; ++l) s[l] = x[l];
    while (j > begin) {
      j -= K;
      put_group<P>(v, s, out, sym + j, idx + j, first + j, std::make_index_sequence<K>{});
    }
    for (int l = 0; l < K; ++l) x[l] = s[l];
    out_ref = out;
  }

  // Symbols j + K - 1 down to j, one per lane. A fold rather than a loop: GCC 12 kept the loop
  // rolled despite an unroll pragma, with the states in memory and 42 instructions a symbol;
  // unrolled, W1 encodes at 303-306 Msym/s in C++ instead of 252-270.
  template <int P, int K, size_t... L>
  RANSFORM_HOT void put_group(const View& v, uint64_t (&s)[K], uint32_t*& out, const int32_t* sym, const int32_t* idx,
                              uint64_t first, std::index_sequence<L...>) const {
    constexpr size_t kLast = K - 1;
    (put<P, (K == 8)>(v, s[kLast - L], out, sym[kLast - L], idx[kLast - L], first + kLast - L), ...);
  }

  // kBranchless: see enc_put; 8 lanes are the high-rate streams (format.hpp).
  template <int P, bool kBranchless>
  RANSFORM_HOT void put(const View& v, uint64_t& x, uint32_t*& out, int32_t value, int32_t r, uint64_t pos) const {
    if (static_cast<uint32_t>(r) >= v.nrows) throw_index_error(pos, r, v.nrows);
    const RowInfo& row = v.rows[r];
    const uint32_t local = static_cast<uint32_t>(value) - static_cast<uint32_t>(row.offset);
    if (local < row.nsym) {
      enc_put<kBranchless>(x, out, v.enc[row.enc_base + local], P);
    } else {
      const EscapeState e = put_outside(x, out, value, r, pos);
      x = e.x;
      out = e.out;
    }
  }

  // A value outside its row: the escape code, or an error for a row without one.
  RANSFORM_COLD EscapeState put_outside(uint64_t x, uint32_t* out, int32_t value, int32_t r, uint64_t pos) const {
    if (!t_.has_escape(r)) throw_no_escape(pos, value, r, t_.row(r));
    return enc_put_escape(x, out, t_, t_.row(r), value, t_.version());
  }

  const SymbolTables& t_;
  const RowInfo* rows_;
  const EncSymbol* enc_;
  uint32_t nrows_;
  int precision_;
};

// Decodes one chunk, possibly over several calls (the incremental decoder).
class ChunkDecoder {
 public:
  // version: the stream's format version, which says how escaped values are coded.
  ChunkDecoder(const SymbolTables& t, const uint8_t* body, size_t size, int version, int lanes, uint64_t count,
               uint64_t first)
      : t_(t),
        rows_(t.row_data()),
        dec_(t.dec()),
        nrows_(static_cast<uint32_t>(t.rows())),
        precision_(t.precision()),
        version_(version),
        lanes_(lanes),
        count_(count),
        first_(first),
        vector_(use_vector_lanes(t, lanes)) {
    const uint8_t* p = body;
    const uint8_t* end = body + size;
    const int ncode = (lanes + 3) / 4;
    if (end - p < ncode) throw StreamError("stream is truncated (chunk header)");
    const uint8_t* codes = p;
    p += ncode;
    for (int l = 0; l < lanes; ++l) {
      const int nbytes = 4 + ((codes[l / 4] >> (2 * (l % 4))) & 3);
      if (end - p < nbytes) throw StreamError("stream is truncated (lane states)");
      uint64_t v = 0;
      for (int b = 0; b < nbytes; ++b) v |= static_cast<uint64_t>(p[b]) << (8 * b);
      p += nbytes;
      // Canonical form only: the top byte is non-zero (a 4-byte state below L is a pre-emitted
      // one, >= 2^24 since it was >= 2^56 before its low word left).
      if (v < (uint64_t{1} << (8 * nbytes - 8))) throw StreamError("stream is corrupted (lane state)");
      x_[l] = v;
    }
    if (lanes % 4 && (codes[ncode - 1] >> (2 * (lanes % 4))))
      throw StreamError("stream is corrupted (unused state-size bits are set)");
    if ((end - p) % 4 != 0) throw StreamError("stream is truncated or corrupted (chunk size)");
    in_ = WordReader{p, end};
    for (int l = 0; l < lanes; ++l) refill(in_, x_[l]);
    checksum_expected_ = dec_take_bits_checked(x_[0], in_, 16) << 16;
    checksum_expected_ |= dec_take_bits_checked(x_[0], in_, 16);
  }

  uint64_t remaining() const { return count_ - pos_; }

  // REQUIRES: m <= remaining(). Decodes the next m symbols of the chunk.
  void decode(const int32_t* idx, int32_t* out, size_t m) {
    for (size_t done = 0; done < m;) {  // in blocks, checksummed while in cache
      const size_t n = std::min(kChecksumBlock, m - done);
      block_idx_ = idx + done;
      decode_span(idx + done, out + done, n);
      end_block(out + done, n);
      done += n;
    }
  }

  // Decodes all of a and b, fresh decoders of two chunks of one stream, with the same result as
  // a.decode and b.decode. On the vector kernel the two take turns group by group, which keeps
  // two chains of dependent loads in flight (vector_lanes.hpp; four chunks gained nothing more on
  // Zen 4).
  static void decode_pair(ChunkDecoder& a, const int32_t* idx_a, int32_t* out_a, ChunkDecoder& b, const int32_t* idx_b,
                          int32_t* out_b) {
    size_t done = 0;
#ifdef RANSFORM_AVX512_KERNELS
    const bool pair = a.vector_ && b.vector_ && &a.t_ == &b.t_ && a.pos_ == 0 && b.pos_ == 0;
    for (; pair && a.remaining() >= kChecksumBlock && b.remaining() >= kChecksumBlock; done += kChecksumBlock) {
      a.block_idx_ = idx_a + done;
      b.block_idx_ = idx_b + done;
      VectorLanes c[2] = {{a.x_, a.in_.pos, a.in_.end, idx_a + done, out_a + done, kChecksumBlock},
                          {b.x_, b.in_.pos, b.in_.end, idx_b + done, out_b + done, kChecksumBlock}};
      with_layout(8, a.precision_, [&](auto, auto p) {
        with_bucket_bits(a.t_.bucket_bits(), [&](auto bits) {
          while (c[0].left >= 8 && c[1].left >= 8) {
            decode_groups<p(), 2>(a.t_, c);
            a.one_group<p(), bits()>(c[0]);  // the group(s) that stopped the pair
            b.one_group<p(), bits()>(c[1]);
          }
          a.vector_span<p(), bits()>(c[0]);
          b.vector_span<p(), bits()>(c[1]);
        });
      });
      a.in_.pos = c[0].pos;
      b.in_.pos = c[1].pos;
      a.end_block(out_a + done, kChecksumBlock);
      b.end_block(out_b + done, kChecksumBlock);
    }
#endif
    a.decode(idx_a + done, out_a + done, a.remaining());
    b.decode(idx_b + done, out_b + done, b.remaining());
  }

  // After the last symbol: every word read, every lane back at its start state, and the
  // symbols' checksum equal to the one the encoder stored.
  void finish() const {
    if (pos_ != count_) throw StreamError("internal: chunk not fully decoded");
    if (in_.pos != in_.end) throw StreamError("stream is corrupted (unread data at the end of a chunk)");
    for (int l = 0; l < lanes_; ++l)
      if (x_[l] != kRansL)
        throw StreamError(
            "stream is corrupted, or decoded with other indexes or another table than it was "
            "encoded with (final state check failed)");
    if (checksum_ != checksum_expected_)
      throw StreamError(
          "stream is corrupted, or decoded with other indexes or another table than it was "
          "encoded with (checksum mismatch)");
  }

 private:
  void decode_span(const int32_t* idx, int32_t* out, size_t m) {
    size_t i = 0;
    while (i < m && (pos_ + i) % lanes_) {
      out[i] = get_one(x_[(pos_ + i) % lanes_], idx[i]);
      ++i;
    }
    with_layout(lanes_, precision_, [&](auto k, auto p) {
      with_bucket_bits(t_.bucket_bits(), [&](auto b) {
        if constexpr (k() == 8) {
          if (vector_) {
            i = run_vector<p(), b()>(idx, out, i, m);
            return;
          }
        }
        i = run<k(), p(), b()>(idx, out, i, m);
      });
    });
    for (; i < m; ++i) out[i] = get_one(x_[(pos_ + i) % lanes_], idx[i]);
  }

  void end_block(const int32_t* out, size_t n) {
    checksum_ = checksum_add(checksum_, out, n, first_ + pos_);
    pos_ += n;
  }

  // Copies of the table fields the hot loop reads, kept in registers (see ChunkEncoder::View).
  struct View {
    const RowInfo* rows;
    const uint64_t* dec;
    uint32_t nrows;
  };
  View view() const { return View{rows_, dec_, nrows_}; }

  // Groups of K symbols. A symbol refills at most one word and an escape reads at most 3 more
  // (at most 65 bits: sign, 33-bit prefix, 31-bit suffix), so while 4K words are left no symbol of
  // the group can run out of input and refills skip the check.
  template <int K, int P, int B>
  size_t run(const int32_t* idx, int32_t* out, size_t i, size_t m) {
    const View v = view();
    WordReader in = in_;
    uint64_t s[K];
    for (int l = 0; l < K; ++l) s[l] = x_[l];
    for (; i + K <= m; i += K) {
      if (in.words_left() >= 4 * K) {
#pragma GCC unroll 8
        for (int l = 0; l < K; ++l) out[i + l] = get<false, P, B>(v, in, s[l], idx[i + l]);
      } else {
        for (int l = 0; l < K; ++l) out[i + l] = get<true, P, B>(v, in, s[l], idx[i + l]);
      }
    }
    for (int l = 0; l < K; ++l) x_[l] = s[l];
    in_ = in;
    return i;
  }

  // 8 lanes on the vector kernel (vector_lanes.hpp), with the groups it leaves to the scalar
  // code in between.
  template <int P, int B>
  size_t run_vector(const int32_t* idx, int32_t* out, size_t i, size_t m) {
#ifdef RANSFORM_AVX512_KERNELS
    VectorLanes c{x_, in_.pos, in_.end, idx + i, out + i, m - i};
    vector_span<P, B>(c);
    in_.pos = c.pos;
    i = m - c.left;
#endif
    return i;
  }

#ifdef RANSFORM_AVX512_KERNELS
  // Decodes c's groups until fewer than 8 symbols are left.
  template <int P, int B>
  void vector_span(VectorLanes& c) {
    for (;;) {
      decode_groups<P, 1>(t_, &c);
      if (c.left < 8) return;
      scalar_group<P, B>(c);
    }
  }

  // Decodes c's next group (if 8 symbols are left), on the vector kernel if it can.
  template <int P, int B>
  void one_group(VectorLanes& c) {
    if (c.left < 8) return;
    const size_t left = c.left;
    c.left = 8;
    decode_groups<P, 1>(t_, &c);
    if (c.left == 8) scalar_group<P, B>(c);
    c.left = left - 8;
  }

  template <int P, int B>
  void scalar_group(VectorLanes& c) {
    const View v = view();
    WordReader in{c.pos, c.end};
    const bool unchecked = in.words_left() >= 4 * 8;
    for (int l = 0; l < 8; ++l)
      c.out[l] = unchecked ? get<false, P, B>(v, in, x_[l], c.idx[l]) : get<true, P, B>(v, in, x_[l], c.idx[l]);
    c.pos = in.pos;
    c.idx += 8;
    c.out += 8;
    c.left -= 8;
  }
#endif

  int32_t get_one(uint64_t& x, int32_t r) {
    const View v = view();
    int32_t value = 0;
    with_layout(1, precision_, [&](auto, auto p) {
      with_bucket_bits(t_.bucket_bits(), [&](auto b) { value = get<true, p(), b()>(v, in_, x, r); });
    });
    return value;
  }

  RANSFORM_HOT static void refill(WordReader& in, uint64_t& x) {
    if (x < kRansL) {
      uint32_t w;
      if (!in.read(w)) throw StreamError("stream is truncated");
      x = (x << 32) | w;
    }
  }

  // B: the table's bucket bits, so that the bucket's shift and the blocks' stride are constants.
  template <bool kChecked, int P, int B>
  RANSFORM_HOT int32_t get(const View& v, WordReader& in, uint64_t& x, int32_t r) {
    if (static_cast<uint32_t>(r) >= v.nrows) throw_first_bad_index(block_idx_, v.nrows, first_ + pos_);
    const RowInfo& row = v.rows[r];
    constexpr int kShift = P - B;
    const uint64_t* bucket = v.dec + static_cast<size_t>(r) * ((size_t{1} << B) + 2);
    const uint32_t slot = static_cast<uint32_t>(x) & ((1u << P) - 1);
    const uint64_t e = bucket[slot >> kShift];
    uint32_t s = e & 0xFFFF;
    uint32_t start = (e >> 16) & 0xFFFF;
    uint32_t freq = ((e >> 32) & 0xFFFF) + 1;
    if ((e >> 48) == SymbolTables::kCrowded) {
      const uint32_t* cdf = t_.cdf(row);
      s = crowded_symbol(bucket, cdf, slot >> kShift, slot);
      start = cdf[s];
      freq = cdf[s + 1] - start;
    } else {  // s0 or s0 + 1, without a branch
      const uint32_t next = start + freq;
      const bool second = slot >= next;
      s += second;
      start = second ? next : start;
      freq = second ? static_cast<uint32_t>(e >> 48) + 1 : freq;
    }
    x = dec_advance(x, start, freq, slot, P);
    if (kChecked)
      refill(in, x);
    else
      in.refill_unchecked(x);
    if (s < row.nsym) return row.offset + static_cast<int32_t>(s);
    const EscapeResult esc = dec_get_escape(x, in, row, version_);
    x = esc.x;
    in.pos = esc.pos;
    return esc.value;
  }

  const SymbolTables& t_;
  const RowInfo* rows_;
  const uint64_t* dec_;
  uint32_t nrows_;
  int precision_;
  int version_;
  int lanes_;
  uint64_t count_;
  uint64_t first_;
  bool vector_;                         // 8 lanes on a CPU with the vector kernel
  uint64_t pos_ = 0;                    // the first symbol of the block being decoded
  const int32_t* block_idx_ = nullptr;  // and its index (for error messages)
  uint64_t x_[kMaxLanes] = {};
  WordReader in_{nullptr, nullptr};
  uint32_t checksum_expected_ = 0;
  uint32_t checksum_ = 0;
};

}  // namespace ransform
