// checksum.hpp: the 32-bit checksum of a chunk's symbols.
//
// Why: the final-state check sees a corruption only when it changes a lane's state, and some
// do not: a slot that moves to another symbol with the same frequency and the same offset
// from its start (common among the frequency-1 symbols of a table's tails) gives the same
// next state, and escape suffix bits never enter the state. So each chunk also carries
//   checksum = sum over its symbols of mix(uint32(value_i) + uint32(pos_i + 1) * 0x9E3779B1)  (mod 2^32)
//   mix(x)   = x ^= x >> 16; x *= 0x7FEB352D; x ^= x >> 15; x *= 0x846CA68B; x ^= x >> 16
// (pos: the symbol's position in the stream). mix is a bijection of uint32, so changing any
// single value always changes the sum; it is also non-linear, so several changes (even
// structured ones, like two values off by 2^31) cancel only with probability about 2^-32.
// The sum does not depend on the order of its terms, so the encoder (running backwards) and
// the incremental decoder (running in pieces) compute it in whatever blocks suit them.
#pragma once

#include <cstddef>
#include <cstdint>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace ransform {

inline constexpr uint32_t kChecksumMultiplier = 0x9E3779B1u;  // 2^32 / golden ratio, odd

inline uint32_t checksum_mix(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7FEB352Du;
  x ^= x >> 15;
  x *= 0x846CA68Bu;
  x ^= x >> 16;
  return x;
}

inline uint32_t checksum_add_scalar(uint32_t sum, const int32_t* values, size_t n, uint64_t first) {
  uint32_t pos = static_cast<uint32_t>(first) + 1;
  for (size_t i = 0; i < n; ++i, ++pos)
    sum += checksum_mix(static_cast<uint32_t>(values[i]) + pos * kChecksumMultiplier);
  return sum;
}

#if defined(__x86_64__) && defined(__GNUC__)
// The same sum, 8 terms per step (baseline x86-64 has no 32-bit vector multiply). The position
// term w = pos * multiplier advances by 8 * multiplier per step (mod 2^32).
__attribute__((target("avx2"))) inline uint32_t checksum_add_avx2(uint32_t sum, const int32_t* values, size_t n,
                                                                  uint64_t first) {
  const uint32_t p0 = static_cast<uint32_t>(first) + 1;
  __m256i w = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  w = _mm256_mullo_epi32(_mm256_add_epi32(w, _mm256_set1_epi32(static_cast<int>(p0))),
                         _mm256_set1_epi32(static_cast<int>(kChecksumMultiplier)));
  const __m256i step = _mm256_set1_epi32(static_cast<int>(8u * kChecksumMultiplier));
  const __m256i m1 = _mm256_set1_epi32(0x7FEB352D), m2 = _mm256_set1_epi32(static_cast<int>(0x846CA68Bu));
  __m256i acc = _mm256_setzero_si256();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256i x = _mm256_add_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(values + i)), w);
    x = _mm256_mullo_epi32(_mm256_xor_si256(x, _mm256_srli_epi32(x, 16)), m1);
    x = _mm256_mullo_epi32(_mm256_xor_si256(x, _mm256_srli_epi32(x, 15)), m2);
    acc = _mm256_add_epi32(acc, _mm256_xor_si256(x, _mm256_srli_epi32(x, 16)));
    w = _mm256_add_epi32(w, step);
  }
  alignas(32) uint32_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), acc);
  for (uint32_t lane : lanes) sum += lane;
  return checksum_add_scalar(sum, values + i, n - i, first + i);
}
#endif

// Adds the terms of values[0..n), which sit at stream positions first .. first + n - 1.
inline uint32_t checksum_add(uint32_t sum, const int32_t* values, size_t n, uint64_t first) {
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool has_avx2 = __builtin_cpu_supports("avx2");
  if (has_avx2) return checksum_add_avx2(sum, values, n, first);
#endif
  return checksum_add_scalar(sum, values, n, first);
}

// Symbols are coded in blocks of this many (a multiple of every lane count), checksummed
// while the block is in L1.
inline constexpr size_t kChecksumBlock = 4096;

}  // namespace ransform
