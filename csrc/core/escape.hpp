// escape.hpp: coding a value outside its row's range (the bypass bits after the escape symbol).
//
// In decoding order a value v outside [lo, hi] = [offset, offset + nsym - 1] is
//   escape symbol | sign (1 bit: 1 below lo, 0 above hi) | the distance d >= 0 past the range,
// with d = lo - 1 - v below the range and d = v - hi - 1 above it, coded from u = d + 1:
//   format version 1, exp-Golomb of order 0: with k = floor(log2 u), k zero bits, a one bit,
//     then the low k bits of u (2k + 1 bits);
//   format version 2, Elias delta: u's bit length n in Elias gamma (with L = floor(log2 n),
//     L zero bits, then n's L + 1 bits from the top), then the low n - 1 bits of u
//     (2L + n bits). The same at u = 1 and 4, shorter from u = 16 on: +-1000 next to a table of
//     +-10 costs 17 bits after the symbol instead of 20, +-100000 26 instead of 34.
// Bits come most significant first, in groups of at most 16. They are pushed through the lane's
// state as uniform symbols (rans.hpp enc_put_bits). Every int32 is reachable (d <= 2^32 - 2, so
// k <= 31 and n <= 32); the decoder rejects longer prefixes and values outside int32 as
// corruption. Bypass bits never reach the rANS state (any bit pattern is a valid suffix); the
// chunk checksum (checksum.hpp) is what catches a corrupted escaped value.
#pragma once

#include <cstdint>

#include "core/error.hpp"
#include "core/rans.hpp"
#include "core/symbol_tables.hpp"

namespace ransform {

inline int floor_log2(uint64_t v) {
  int l = 0;
  while (v >> (l + 1)) ++l;
  return l;
}

// The code of an escaped value: its side of the range, u = d + 1 and k = floor(log2 u).
struct EscapeCode {
  bool below;
  uint64_t u;
  int k;
};

inline EscapeCode escape_code(const RowInfo& row, int32_t value) {
  const int64_t lo = row.offset, hi = static_cast<int64_t>(row.offset) + row.nsym - 1;
  EscapeCode c{value < lo, 0, 0};
  c.u = (c.below ? static_cast<uint64_t>(lo - 1 - value) : static_cast<uint64_t>(value - hi - 1)) + 1;
  c.k = floor_log2(c.u);
  return c;
}

// Bits an escaped value costs beyond the escape symbol itself (the sign included).
inline int escape_extra_bits(const RowInfo& row, int32_t value, int version) {
  const int k = escape_code(row, value).k;
  if (version == 1) return 2 * k + 2;
  return 2 * floor_log2(k + 1) + k + 2;  // n = k + 1
}

struct EscapeState {
  uint64_t x;
  uint32_t* out;
};

// Pushes the low n bits of v, most significant group first in decoding order, so the last
// group goes in first. n <= 32.
inline void enc_put_high_first(uint64_t& x, uint32_t*& out, uint64_t v, int n) {
  int groups[2];
  int ngroups = 0;
  for (int left = n; left > 0; left -= 16) groups[ngroups++] = left < 16 ? left : 16;
  int low = 0;  // bit position of the group being pushed
  for (int g = ngroups - 1; g >= 0; --g) {
    enc_put_bits(x, out, static_cast<uint32_t>((v >> low) & ((uint64_t{1} << groups[g]) - 1)), groups[g]);
    low += groups[g];
  }
}

// Encoder side (runs backwards): pushes the bits in reverse decoding order, then the escape
// symbol. By value in and out, like dec_get_escape.
RANSFORM_COLD inline EscapeState enc_put_escape(uint64_t x, uint32_t* out, const SymbolTables& t, const RowInfo& row,
                                                int32_t value, int version) {
  const EscapeCode code = escape_code(row, value);
  enc_put_high_first(x, out, code.u, code.k);  // u's bits below its leading one
  if (version == 1) {
    enc_put_bits(x, out, 1, 1);
    for (int i = 0; i < code.k; ++i) enc_put_bits(x, out, 0, 1);
  } else {
    const uint32_t n = static_cast<uint32_t>(code.k + 1);
    const int l = floor_log2(n);
    if (l > 0) enc_put_bits(x, out, n & ((1u << l) - 1), l);
    enc_put_bits(x, out, 1, 1);
    for (int i = 0; i < l; ++i) enc_put_bits(x, out, 0, 1);
  }
  enc_put_bits(x, out, code.below ? 1 : 0, 1);
  enc_put(x, out, t.enc()[row.enc_base + row.nsym], t.precision());
  return {x, out};
}

// n bypass bits with a checked refill (escapes and the chunk checksum).
inline uint32_t dec_take_bits_checked(uint64_t& x, WordReader& in, int n) {
  const uint32_t bits = dec_take_bits(x, n);
  if (x < kRansL) {
    uint32_t w;
    if (!in.read(w)) throw StreamError("stream is truncated (inside an escaped value)");
    x = (x << 32) | w;
  }
  return bits;
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
RANSFORM_COLD inline EscapeResult dec_get_escape(uint64_t x, WordReader in, const RowInfo& row, int version) {
  auto take = [&](int n) { return dec_take_bits_checked(x, in, n); };
  const bool below = take(1) != 0;
  int k = 0;  // u's bits below its leading one
  if (version == 1) {
    while (take(1) == 0)
      if (++k > 31) throw StreamError("stream is corrupted (exp-Golomb prefix too long)");
  } else {
    int l = 0;
    while (take(1) == 0)
      if (++l > 5) throw StreamError("stream is corrupted (escape length prefix too long)");
    const uint32_t n = l ? (1u << l) | take(l) : 1u;
    if (n > 32) throw StreamError("stream is corrupted (escape length above 32 bits)");
    k = static_cast<int>(n) - 1;
  }
  uint64_t u = 1;
  for (int left = k; left > 0; left -= 16) {
    const int n = left < 16 ? left : 16;
    u = (u << n) | take(n);
  }
  const int64_t d = static_cast<int64_t>(u - 1);
  const int64_t v = below ? static_cast<int64_t>(row.offset) - 1 - d : static_cast<int64_t>(row.offset) + row.nsym + d;
  if (v < INT32_MIN || v > INT32_MAX) throw StreamError("stream is corrupted (escaped value outside int32)");
  return {x, in.pos, static_cast<int32_t>(v)};
}

}  // namespace ransform
