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
// Bypass bits never reach the rANS state (any bit pattern is a valid suffix); the chunk
// checksum (checksum.hpp) is what catches a corrupted escaped value.
#pragma once

#include <cstdint>

#include "core/error.hpp"
#include "core/rans.hpp"
#include "core/symbol_tables.hpp"

namespace ransform {

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
  while (c.u >> (c.k + 1)) ++c.k;
  return c;
}

// Bits an escaped value costs beyond the escape symbol itself.
inline int escape_extra_bits(const RowInfo& row, int32_t value) { return 2 * escape_code(row, value).k + 2; }

struct EscapeState {
  uint64_t x;
  uint32_t* out;
};

// Encoder side (runs backwards): pushes the bits in reverse decoding order, then the escape
// symbol. By value in and out, like dec_get_escape.
RANSFORM_COLD inline EscapeState enc_put_escape(uint64_t x, uint32_t* out, const SymbolTables& t, const RowInfo& row,
                                                int32_t value) {
  const EscapeCode code = escape_code(row, value);
  const uint64_t u = code.u;
  const int k = code.k;
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
  const int64_t v = below ? static_cast<int64_t>(row.offset) - 1 - d : static_cast<int64_t>(row.offset) + row.nsym + d;
  if (v < INT32_MIN || v > INT32_MAX) throw StreamError("stream is corrupted (escaped value outside int32)");
  return {x, in.pos, static_cast<int32_t>(v)};
}

}  // namespace ransform
