// rans.hpp: one rANS lane with a 64-bit state and 32-bit renormalisation.
//
// READ ME FIRST
// 1. The state x lives in [L, 2^63) with L = 2^31, and moves 32 bits at a time. With
//    probabilities of P <= 16 bits, x / freq >= 2^15 after renormalisation, so the coder
//    loses less than 1e-4 % to the state's finite size (a 32-bit state with 16-bit
//    probabilities loses about 0.12 %).
// 2. rANS is last-in first-out: the encoder runs over the symbols backwards and writes words
//    backwards, so the decoder reads both forwards.
// 3. Functions take the state and the word cursor as arguments; several lanes interleave by
//    simply keeping several states (stream.hpp decides which symbol goes to which lane).
//
// Coding function (M = 2^P, symbol with cumulative start c and frequency f):
//   encode  x' = C(s, x) = floor(x / f) * M + (x mod f) + c
//   decode  slot = x' mod M, s = symbol with c <= slot < c + f, x = f * floor(x' / M) + slot - c
#pragma once

#include <cstdint>
#include <cstring>

// Hot-path functions are forced inline (the compiler otherwise gives up on the per-symbol
// bodies once lanes are unrolled); rare paths (escapes, errors) are kept out of line.
#if defined(__GNUC__)
#define RANSFORM_HOT inline __attribute__((always_inline))
#define RANSFORM_COLD __attribute__((noinline, cold))
#else
#define RANSFORM_HOT inline
#define RANSFORM_COLD
#endif

namespace ransform {

inline constexpr uint64_t kRansL = uint64_t{1} << 31;  // lower bound of the normalised state

RANSFORM_HOT uint64_t mul_hi64(uint64_t a, uint64_t b) {
  return static_cast<uint64_t>((static_cast<unsigned __int128>(a) * b) >> 64);
}

// Encoder view of one symbol. The division floor(x / f) is replaced by a multiply-high:
// with l = ceil(log2 f) and m = ceil(2^(63 + l) / f), floor(x * m / 2^(63 + l)) = floor(x / f)
// for every x < 2^63. (Write x m / 2^(63+l) = x/f + x e / (f 2^(63+l)) with 0 <= e < f; the
// second term is below 2^-l <= 1/f, too small to reach the next integer.) m < 2^64 because
// f > 2^(l-1), and for l >= 1 the quotient is mul_hi64(x, m) >> (l - 1).
// f = 1 has l = 0 and no such shift; there m = 2^64 - 1 gives mul_hi64(x, m) = x - 1 for
// x >= 1, and the one missing multiple of (M - f) is folded into the bias.
// Then C(s, x) = x + bias + q (M - f): with q = floor(x/f) this is q M + (x - q f) + c.
struct EncSymbol {
  uint64_t rcp;   // m, as above
  uint32_t bias;  // c, or c + M - 1 when f == 1
  uint16_t cmpl;  // M - f, which fits 16 bits since f >= 1 (the frequency is M - cmpl)
  uint8_t shift;  // l - 1, or 0 when f == 1
  uint8_t unused;

  static EncSymbol make(uint32_t start, uint32_t freq, int precision) {
    const uint32_t total = 1u << precision;
    EncSymbol e{};
    e.cmpl = static_cast<uint16_t>(total - freq);  // freq == total (a one-symbol row) gives 0
    if (freq == 1) {
      e.rcp = ~uint64_t{0};
      e.shift = 0;
      e.bias = start + total - 1;
    } else {
      uint32_t l = 0;
      while ((uint64_t{1} << l) < freq) ++l;
      const unsigned __int128 num = static_cast<unsigned __int128>(1) << (63 + l);
      e.rcp = static_cast<uint64_t>((num + freq - 1) / freq);
      e.shift = static_cast<uint8_t>(l - 1);
      e.bias = start;
    }
    return e;
  }
};
static_assert(sizeof(EncSymbol) == 16, "encoder entries are 16 bytes");

// REQUIRES: x in [L, 2^63); out[-2] is writable.
// Encodes one symbol; may emit one word at *--out. kBranchless: the renormalisation stores the
// word always and moves the cursor only when it counts, for streams where a lane emits every few
// symbols (8 lanes: 3 % faster on W1); otherwise a branch, which the predictor gets right where
// emitting is rare (the low-rate streams of 1-4 lanes: 23-33 % faster).
template <bool kBranchless = false>
RANSFORM_HOT void enc_put(uint64_t& x, uint32_t*& out, const EncSymbol& e, int precision) {
  const uint64_t freq = (uint64_t{1} << precision) - e.cmpl;
  const uint64_t x_max = freq << (63 - precision);  // (L >> P << 32) * freq
  // After emitting, x < x_max, so C(s, x) < 2^63 (never needs to loop).
  if (kBranchless) {
    const uint32_t emit = x >= x_max;
    out[-1] = static_cast<uint32_t>(x);
    out -= emit;
    x = emit ? x >> 32 : x;
  } else if (x >= x_max) {
    *--out = static_cast<uint32_t>(x);
    x >>= 32;
  }
  const uint64_t q = mul_hi64(x, e.rcp) >> e.shift;
  x = x + e.bias + q * e.cmpl;  // x = C(s, x)
}

// Bypass: n raw bits (1 <= n <= 16) as a symbol of frequency 1 at precision n, i.e. x = x 2^n + bits.
inline void enc_put_bits(uint64_t& x, uint32_t*& out, uint32_t bits, int n) {
  if (x >= (uint64_t{1} << (63 - n))) {
    *--out = static_cast<uint32_t>(x);
    x >>= 32;
  }
  x = (x << n) | bits;
}

// Decoder side. The cursor is checked against the end of the buffer on every read, so a
// truncated stream cannot read past its bytes.
struct WordReader {
  const uint8_t* pos;
  const uint8_t* end;

  size_t words_left() const { return static_cast<size_t>(end - pos) / 4; }

  // Returns false when no word is left.
  bool read(uint32_t& w) {
    if (end - pos < 4) return false;
    std::memcpy(&w, pos, 4);  // little-endian words (the format fixes this; x86/ARM are LE)
    pos += 4;
    return true;
  }

  // REQUIRES: words_left() >= 1. Refills x if it is below L. A branch: measured faster than a
  // branchless refill at every rate tried (1-8 lanes, 0.06-4.5 bits a symbol: 2-27 %).
  RANSFORM_HOT void refill_unchecked(uint64_t& x) {
    if (x < kRansL) {
      uint32_t w;
      std::memcpy(&w, pos, 4);
      x = (x << 32) | w;
      pos += 4;
    }
  }
};

// x = D(s, x) for a symbol with cumulative start c and frequency f, given slot = x mod M.
RANSFORM_HOT uint64_t dec_advance(uint64_t x, uint32_t start, uint32_t freq, uint32_t slot, int precision) {
  return freq * (x >> precision) + slot - start;
}

// Bypass read of n bits, the mirror of enc_put_bits (refill happens in the caller).
inline uint32_t dec_take_bits(uint64_t& x, int n) {
  const uint32_t bits = static_cast<uint32_t>(x) & ((1u << n) - 1);
  x >>= n;
  return bits;
}

}  // namespace ransform
