// escape.hpp: coding a value outside its row's range (the exp-Golomb bypass).
//
// In decoding order a value v outside [lo, hi] = [offset, offset + nsym - 1] is
//   escape symbol | sign (1 bit: 1 below lo, 0 above hi) | exp-Golomb(d), d >= 0,
// with d = lo - 1 - v below the range and d = v - hi - 1 above it. exp-Golomb of order 0:
// with u = d + 1 and k = floor(log2 u): k zero bits, a one bit, then the low k bits of u,
// most significant 16-bit group first. The bits are pushed through the lane's state as
// uniform symbols (rans.hpp enc_put_bits), so they cost exactly 2k + 2 bits after the escape
// symbol: +-1000 next to a table of +-10 costs 20 bits. Every int32 is reachable (d <= 2^32 - 2,
// so k <= 31); the decoder rejects k > 31 and values outside int32 as corruption.
//
// Escape check. Bypass bits never reach the rANS state (any bit pattern is a valid suffix), so
// the final-state check cannot see a corrupted suffix, nor an escape decoded with the wrong
// row. So each chunk codes in lane 0, decoded before its first symbol, a flag "this chunk has
// escapes" (frequency 1 out of 2^P for yes, 2^P - 1 for no: a chunk without escapes pays
// about 2e-5 bits) and, when set, the 32-bit sum over the chunk's escapes of
// escape_mix(position, row, value), high 16 bits first. The decoder recomputes the sum.
#pragma once

#include <cstdint>

#include "core/error.hpp"
#include "core/rans.hpp"
#include "core/symbol_tables.hpp"

namespace ransform {

// Bits an escaped value costs beyond the escape symbol itself.
inline int escape_extra_bits(const RowInfo& row, int32_t value) {
  const int64_t lo = row.offset, hi = static_cast<int64_t>(row.offset) + row.nsym - 1;
  const uint64_t d = value < lo ? static_cast<uint64_t>(lo - 1 - value) : static_cast<uint64_t>(value - hi - 1);
  int k = 0;
  while ((d + 1) >> (k + 1)) ++k;
  return 2 * k + 2;
}

struct EscapeState {
  uint64_t x;
  uint32_t* out;
};

// Encoder side (runs backwards): pushes the bits in reverse decoding order, then the escape
// symbol. By value in and out, like dec_get_escape.
RANSFORM_COLD inline EscapeState enc_put_escape(uint64_t x, uint32_t* out, const SymbolTables& t, const RowInfo& row,
                                                int32_t value) {
  const int64_t lo = row.offset, hi = static_cast<int64_t>(row.offset) + row.nsym - 1;
  const bool below = value < lo;
  const uint64_t u = (below ? static_cast<uint64_t>(lo - 1 - value) : static_cast<uint64_t>(value - hi - 1)) + 1;
  int k = 0;
  while (u >> (k + 1)) ++k;
  // Suffix groups in decoding order have sizes 16, 16, ..., rest; push the last group first.
  int groups[3];
  int ngroups = 0;
  for (int left = k; left > 0; left -= 16) groups[ngroups++] = left < 16 ? left : 16;
  int low = 0;  // bit position of the group being pushed
  for (int g = ngroups - 1; g >= 0; --g) {
    enc_put_bits(x, out, static_cast<uint32_t>((u >> low) & ((uint64_t{1} << groups[g]) - 1)), groups[g]);
    low += groups[g];
  }
  enc_put_bits(x, out, 1, 1);
  for (int i = 0; i < k; ++i) enc_put_bits(x, out, 0, 1);
  enc_put_bits(x, out, below ? 1 : 0, 1);
  enc_put(x, out, t.enc()[row.enc_base + row.nsym], t.precision());
  return {x, out};
}

// A 32-bit mix of one escape: its position in the stream, its row and its value.
inline uint32_t escape_mix(uint64_t pos, uint32_t row, int32_t value) {
  uint64_t h = (pos + 1) * 0x9E3779B97F4A7C15ull;  // 2^64 / golden ratio
  h ^= (static_cast<uint64_t>(row) << 32) | static_cast<uint32_t>(value);
  h ^= h >> 31;
  h *= 0xD6E8FEB86659FD93ull;
  h ^= h >> 32;
  return static_cast<uint32_t>(h);
}

// Sum of escape_mix over a chunk's escapes, in any order.
struct EscapeCheck {
  uint32_t sum = 0;
  uint64_t count = 0;
  void add(uint64_t pos, uint32_t row, int32_t value) {
    sum += escape_mix(pos, row, value);
    ++count;
  }
};

// Encoder side, after the chunk's last symbol (so the decoder reads it first), in lane 0.
inline void enc_put_escape_check(uint64_t& x, uint32_t*& out, const EscapeCheck& check, int precision) {
  const uint32_t total = 1u << precision;
  if (check.count) {
    enc_put_bits(x, out, check.sum & 0xFFFF, 16);
    enc_put_bits(x, out, check.sum >> 16, 16);
    enc_put(x, out, EncSymbol::make(total - 1, 1, precision), precision);
  } else {
    enc_put(x, out, EncSymbol::make(0, total - 1, precision), precision);
  }
}

// n bypass bits with a checked refill (shared by the escape paths).
inline uint32_t dec_take_bits_checked(uint64_t& x, WordReader& in, int n) {
  const uint32_t bits = dec_take_bits(x, n);
  if (x < kRansL) {
    uint32_t w;
    if (!in.read(w)) throw StreamError("stream is truncated (inside an escaped value)");
    x = (x << 32) | w;
  }
  return bits;
}

// Decoder side of enc_put_escape_check. Sets has_escapes and, if set, expected_sum.
inline void dec_get_escape_check(uint64_t& x, WordReader& in, int precision, bool& has_escapes,
                                 uint32_t& expected_sum) {
  const uint32_t total = 1u << precision;
  const uint32_t slot = static_cast<uint32_t>(x) & (total - 1);
  has_escapes = slot == total - 1;
  x = has_escapes ? x >> precision : dec_advance(x, 0, total - 1, slot, precision);
  if (x < kRansL) {
    uint32_t w;
    if (!in.read(w)) throw StreamError("stream is truncated");
    x = (x << 32) | w;
  }
  expected_sum = 0;
  if (has_escapes) {
    expected_sum = dec_take_bits_checked(x, in, 16) << 16;
    expected_sum |= dec_take_bits_checked(x, in, 16);
  }
}

// Decoder side, called right after the escape symbol was decoded and the state refilled.
// State and cursor go in and come back by value, so that the hot loop's copies never have
// their address taken and stay in registers.
struct EscapeResult {
  uint64_t x;
  const uint8_t* pos;
  int32_t value;
};

// @return : the escaped value with the updated state and cursor; throws StreamError on
//           malformed bits or a truncated stream.
RANSFORM_COLD inline EscapeResult dec_get_escape(uint64_t x, WordReader in, const RowInfo& row) {
  auto take = [&](int n) { return dec_take_bits_checked(x, in, n); };
  const bool below = take(1) != 0;
  int k = 0;
  while (take(1) == 0)
    if (++k > 31) throw StreamError("stream is corrupted (exp-Golomb prefix too long)");
  uint64_t u = 1;
  for (int left = k; left > 0; left -= 16) {
    const int n = left < 16 ? left : 16;
    u = (u << n) | take(n);
  }
  const int64_t d = static_cast<int64_t>(u - 1);
  const int64_t v = below ? static_cast<int64_t>(row.offset) - 1 - d
                          : static_cast<int64_t>(row.offset) + row.nsym + d;
  if (v < INT32_MIN || v > INT32_MAX) throw StreamError("stream is corrupted (escaped value outside int32)");
  return {x, in.pos, static_cast<int32_t>(v)};
}

}  // namespace ransform
