// checksum.hpp: the 32-bit checksum of a chunk's symbols.
//
// Why: the final-state check sees a corruption only when it changes a lane's state, and some
// do not: a slot that moves to another symbol with the same frequency and the same offset
// from its start (common among the frequency-1 symbols of a table's tails) gives the same
// next state, and escape suffix bits never enter the state. So each chunk also carries
//   checksum = sum over its symbols of uint32(value_i) * w(pos_i)   (mod 2^32)
//   w(pos)   = (uint32(pos + 1) * 0x9E3779B1) | 1                   (pos: position in the stream)
// Every weight is odd, so changing any single value always changes the sum; the weights are
// scrambled by position, so two or more changes cancel with probability about 2^-32. The sum
// does not depend on the order of its terms, so the encoder (running backwards) and the
// incremental decoder (running in pieces) compute it in whatever blocks suit them.
#pragma once

#include <cstddef>
#include <cstdint>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace ransform {

inline constexpr uint32_t kChecksumMultiplier = 0x9E3779B1u;  // 2^32 / golden ratio, odd

inline uint32_t checksum_add_scalar(uint32_t sum, const int32_t* values, size_t n, uint64_t first) {
  uint32_t pos = static_cast<uint32_t>(first) + 1;
  for (size_t i = 0; i < n; ++i, ++pos) sum += static_cast<uint32_t>(values[i]) * ((pos * kChecksumMultiplier) | 1u);
  return sum;
}

#if defined(__x86_64__) && defined(__GNUC__)
// The same sum, 8 terms per step (baseline x86-64 has no 32-bit vector multiply).
__attribute__((target("avx2"))) inline uint32_t checksum_add_avx2(uint32_t sum, const int32_t* values, size_t n,
                                                                  uint64_t first) {
  const uint32_t p0 = static_cast<uint32_t>(first) + 1;
  __m256i pos = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(p0)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  const __m256i eight = _mm256_set1_epi32(8), mult = _mm256_set1_epi32(static_cast<int>(kChecksumMultiplier));
  const __m256i odd = _mm256_set1_epi32(1);
  __m256i acc = _mm256_setzero_si256();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i w = _mm256_or_si256(_mm256_mullo_epi32(pos, mult), odd);
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(values + i));
    acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(v, w));
    pos = _mm256_add_epi32(pos, eight);
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
