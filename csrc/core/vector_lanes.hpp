// vector_lanes.hpp: the 8-lane decoder's common case in one AVX-512 register.
//
// READ ME FIRST
// An 8-lane chunk keeps its 8 states in one 512-bit register: symbol j of a group goes to lane j
// (format.hpp), so the 8 symbols of a group are independent and their table reads become
// gathers. What the scalar decoder does lane after lane, the vector does at once:
//  - the refill reads the group's words in lane order (lane 0 first), which is what an
//    expanding load does with the mask of the lanes that need one;
//  - a lane whose bucket holds three or more symbols takes the scalar search (out of line);
//  - a group where any lane meets an escape or an index out of range (an error to report), or
//    with fewer than 8 words left, is not started: the kernel returns and the caller decodes
//    that group with the scalar code, from the same states.
// So the symbols, states and cursor are those of the scalar decoder, bit for bit; which one runs
// changes the speed only (the tests decode with both and compare).
// The encoder has no such kernel: its table reads are four gathers a group, and on Zen 4 they
// alone cost about what the scalar encoder takes (a version that ran: 218 against 244 Msym/s).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/cpu_features.hpp"
#include "core/rans.hpp"
#include "core/symbol_tables.hpp"

#ifdef RANSFORM_AVX512_KERNELS
#include <immintrin.h>
#endif

namespace ransform {

// Whether the kernel may decode an 8-lane chunk with table t: it finds a row's block as
// index * stride in 32-bit arithmetic.
inline bool use_vector_lanes(const SymbolTables& t, int lanes) {
  return lanes == 8 && use_avx512() && t.rows() * t.dec_stride() < (size_t{1} << 31);
}

#ifdef RANSFORM_AVX512_KERNELS
// GCC 12's AVX-512 intrinsics start from a deliberately undefined vector that its own
// -Wmaybe-uninitialized then reports at every use; the warnings are about its header.
#pragma GCC diagnostic push
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// One chunk as the vector kernels see it: states, input cursor, and the indexes and output of
// the symbols still to decode in this call.
struct VectorLanes {
  uint64_t* x;
  const uint8_t* pos;
  const uint8_t* end;
  const int32_t* idx;
  int32_t* out;
  size_t left;
};

// s, c and f of the lanes in `lanes`, whose buckets are crowded, by the scalar search (rare: a
// bucket holds three symbols only where they are improbable). Arrays rather than vectors, so that
// the hot loop's vectors never have their address taken.
template <int P>
__attribute__((noinline, cold)) void resolve_crowded(const SymbolTables& t, unsigned lanes, const int32_t* idx,
                                                     const uint64_t* slot, uint64_t* s, uint64_t* start,
                                                     uint64_t* freq) {
  for (int l = 0; l < 8; ++l) {
    if (!(lanes >> l & 1)) continue;
    const uint64_t* block = t.dec() + static_cast<size_t>(idx[l]) * t.dec_stride();
    const uint32_t* cdf = t.cdf(t.row(idx[l]));
    const uint32_t slot_l = static_cast<uint32_t>(slot[l]);
    s[l] = crowded_symbol(block, cdf, slot_l >> (P - t.bucket_bits()), slot_l);
    start[l] = cdf[s[l]];
    freq[l] = cdf[s[l] + 1] - cdf[s[l]];
  }
}

// Decodes the next group of 8 symbols of c with the states in `state` and returns true, or
// returns false without a change when the scalar code must take the group.
// REQUIRES: c.left >= 8; use_vector_lanes.
template <int P>
RANSFORM_AVX512 inline __attribute__((always_inline)) bool decode_group(const SymbolTables& t, const uint64_t* dec,
                                                                        __m128i shift, __m512i& state, VectorLanes& c) {
  const __m512i field = _mm512_set1_epi64(0xFFFF);
  const __m512i one = _mm512_set1_epi64(1);
  if (c.end - c.pos < 32) return false;
  // The rows' blocks and ranges (off the states' dependency chain).
  const __m256i r = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c.idx));
  if (_mm256_cmpge_epu32_mask(r, _mm256_set1_epi32(static_cast<int>(t.rows())))) return false;  // an error
  const __m512i block =
      _mm512_cvtepu32_epi64(_mm256_mullo_epi32(r, _mm256_set1_epi32(static_cast<int>(t.dec_stride()))));
  const __m512i range = _mm512_i64gather_epi64(_mm512_add_epi64(block, _mm512_set1_epi64(t.dec_stride() - 1)), dec, 8);
  // The bucket, then s0 or s0 + 1 as in the scalar decoder (symbol_tables.hpp).
  const __m512i slot = _mm512_and_si512(state, _mm512_set1_epi64((1 << P) - 1));
  const __m512i e = _mm512_i64gather_epi64(_mm512_add_epi64(block, _mm512_srl_epi64(slot, shift)), dec, 8);
  const __m512i s0 = _mm512_and_si512(e, field);
  const __m512i c0 = _mm512_and_si512(_mm512_srli_epi64(e, 16), field);
  const __m512i f0 = _mm512_add_epi64(_mm512_and_si512(_mm512_srli_epi64(e, 32), field), one);
  const __m512i top = _mm512_srli_epi64(e, 48);
  const __m512i c1 = _mm512_add_epi64(c0, f0);
  const __mmask8 second = _mm512_cmpge_epu64_mask(slot, c1);
  __m512i s = _mm512_mask_add_epi64(s0, second, s0, one);
  __m512i start = _mm512_mask_mov_epi64(c0, second, c1);
  __m512i freq = _mm512_mask_add_epi64(f0, second, top, one);
  const __mmask8 crowded = _mm512_cmpeq_epi64_mask(top, _mm512_set1_epi64(SymbolTables::kCrowded));
  if (crowded) {
    alignas(64) uint64_t sl[8], sv[8], cv[8], fv[8];
    _mm512_store_si512(sl, slot);
    _mm512_store_si512(sv, s);
    _mm512_store_si512(cv, start);
    _mm512_store_si512(fv, freq);
    resolve_crowded<P>(t, crowded, c.idx, sl, sv, cv, fv);
    s = _mm512_load_si512(sv);
    start = _mm512_load_si512(cv);
    freq = _mm512_load_si512(fv);
  }
  if (_mm512_cmpge_epu64_mask(s, _mm512_srli_epi64(range, 32))) return false;  // an escape
  // x = f floor(x / M) + slot - c, then the refill: the lanes that need a word take the next ones
  // in lane order.
  __m512i x = _mm512_add_epi64(_mm512_mullo_epi64(freq, _mm512_srli_epi64(state, P)), _mm512_sub_epi64(slot, start));
  const __mmask8 need = _mm512_cmplt_epu64_mask(x, _mm512_set1_epi64(static_cast<long long>(kRansL)));
  const __m512i words = _mm512_cvtepu32_epi64(
      _mm256_maskz_expand_epi32(need, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c.pos))));
  state = _mm512_mask_or_epi64(x, need, _mm512_slli_epi64(x, 32), words);
  c.pos += 4 * _mm_popcnt_u32(need);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(c.out), _mm512_cvtepi64_epi32(_mm512_add_epi64(range, s)));
  c.idx += 8;
  c.out += 8;
  c.left -= 8;
  return true;
}

// Decodes groups of the N chunks c[0..N), taking turns, until a group of any needs the scalar
// code (an escape, an index out of range, or fewer than 8 words left) or one has fewer than 8
// symbols left. A group waits on a chain of dependent steps (state, bucket gather, state); N
// chunks keep N chains in flight.
template <int P, int N>
RANSFORM_AVX512 void decode_groups(const SymbolTables& t, VectorLanes* lanes) {
  const uint64_t* dec = t.dec();
  const __m128i shift = _mm_cvtsi32_si128(P - t.bucket_bits());  // slot >> shift is the bucket
  VectorLanes c[N];                                              // local copies stay in registers
  __m512i state[N];
  for (int k = 0; k < N; ++k) {
    c[k] = lanes[k];
    state[k] = _mm512_loadu_si512(c[k].x);
  }
  for (bool more = true; more;) {
    for (int k = 0; k < N; ++k) more = more && c[k].left >= 8;
    if (!more) break;
    for (int k = 0; k < N; ++k) more = decode_group<P>(t, dec, shift, state[k], c[k]) && more;
  }
  for (int k = 0; k < N; ++k) {
    _mm512_storeu_si512(c[k].x, state[k]);
    lanes[k] = c[k];
  }
}

#pragma GCC diagnostic pop
#endif

}  // namespace ransform
