// intnet.hpp: integer convolutions with exact, order-free arithmetic: the layers of the
// portable entropy-parameter networks (docs/FORMAT.md section 11). Every machine, thread
// count and instruction set computes the same bits, so the coder rows and means a decoder
// derives from them are the encoder's.
//
// READ ME FIRST
// 1. Activations and weights are int16 (layers write [-32767, 32767]; any int16 input is
//    accepted). A product fits int32; the sum of two, as pmaddwd / vpdpwssd form it, is taken
//    modulo 2^32 like every other sum (only (-32768)^2 + (-32768)^2 = 2^31 wraps).
// 2. Accumulators are uint32: sums are taken modulo 2^32. Addition modulo 2^32 is
//    associative and commutative, so any blocking, SIMD width or thread split gives the same
//    bits, even for hostile inputs whose true sums overflow. Converted networks are sized so
//    that calibrated data stays within int32, where the modular sum is the true sum.
// 3. requantize: a = int32(acc + bias) (two's complement), m = (a >= 0 ? m_pos : m_neg),
//    y = clamp((a * m + (2^s >> 1)) >> s, -limit, limit), in int64 with >> rounding toward
//    -inf. One rule gives ReLU (m_neg = 0), leaky ReLU (m_neg ~ slope * m_pos) and identity.
// 4. Layout is channel-major: a tensor is (C, H, W), C-contiguous; a linear layer is a 1x1
//    convolution over a (K, 1, P) "image" of P positions.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/parallel.hpp"
#include "core/requant.hpp"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define RANSFORM_X86 1
#endif

namespace ransform {
namespace intnet {

constexpr int kPanel = 16;  // columns of B per packed panel
constexpr int kRows = 4;    // rows of A per micro-tile

// Scratch memory reused across calls, owned by the calling thread (workers are handed
// slices of it): fresh pages would cost a page fault each, and a 4 MB buffer faults for
// about 2 ms, longer than the work done in it.
template <class T, int Slot>
T* scratch(size_t n) {
  thread_local std::vector<T> buffer;
  if (buffer.size() < n) buffer.resize(n);
  return buffer.data();
}

inline int64_t round_up(int64_t n, int64_t multiple) { return (n + multiple - 1) / multiple * multiple; }

// B (K x N) packed for the micro-kernel: panel q holds columns 16q .. 16q+15; inside it, pair
// kp of rows (2kp, 2kp+1) is 32 int16 values [b(2kp, j), b(2kp+1, j)] for j = 0..15, the
// operand order of pmaddwd. K is padded to even and N to a multiple of 16 with zeros.
struct PackedB {
  int64_t k_pairs = 0, panels = 0;
  int16_t* data = nullptr;  // panels * k_pairs * 32 values
  PackedB() = default;
  static int64_t size(int64_t K, int64_t N) { return round_up(K, 2) * round_up(N, kPanel); }
  // Packs the row-major K x N matrix `rows` (rows `ld` apart) into `storage` (size(K, N)).
  PackedB(const int16_t* rows, int64_t K, int64_t N, int64_t ld, int16_t* storage)
      : k_pairs((K + 1) / 2), panels((N + kPanel - 1) / kPanel), data(storage) {
    for (int64_t kp = 0; kp < k_pairs; ++kp) {
      const int16_t* r0 = rows + 2 * kp * ld;
      const int16_t* r1 = 2 * kp + 1 < K ? r0 + ld : nullptr;
      for (int64_t p = 0; p < panels; ++p) {
        int16_t* dst = data + (p * k_pairs + kp) * 2 * kPanel;
        const int64_t n0 = p * kPanel, count = std::min<int64_t>(kPanel, N - n0);
        for (int64_t j = 0; j < count; ++j) {
          dst[2 * j] = r0[n0 + j];
          dst[2 * j + 1] = r1 ? r1[n0 + j] : 0;
        }
        std::fill(dst + 2 * count, dst + 2 * kPanel, int16_t{0});
      }
    }
  }
};

// A (M x K) row-major with M a multiple of kRows and K even (zero padded), `cols` apart.
struct PaddedA {
  int64_t rows = 0, cols = 0;
  const int16_t* data = nullptr;
};
// The micro-kernels: C[m0 .. m0+kRows)[16 columns of panel] += sum over the k pairs
// [kp0, kp1) of A[m][k] B[k][n], modulo 2^32; C rows are `ldc` apart. Three kernels, one
// result (READ ME FIRST 2): scalar, SSE2 (every x86-64), AVX2, AVX-512 VNNI.
struct TileArgs {
  const PaddedA& a;
  const PackedB& b;
  int64_t m0, panel, kp0, kp1;
  uint32_t* c;
  int64_t ldc;
  const int16_t* b_at(int64_t kp) const { return b.data + (panel * b.k_pairs + kp) * 2 * kPanel; }
  const int16_t* a_at(int64_t r, int64_t kp) const { return a.data + (m0 + r) * a.cols + 2 * kp; }
};

inline void tile_scalar(const TileArgs& t) {
  for (int r = 0; r < kRows; ++r) {
    uint32_t* cr = t.c + r * t.ldc;
    for (int64_t kp = t.kp0; kp < t.kp1; ++kp) {
      const int16_t* ar = t.a_at(r, kp);
      const int16_t* bp = t.b_at(kp);
      for (int j = 0; j < kPanel; ++j)
        cr[j] +=
            static_cast<uint32_t>(int32_t{ar[0]} * bp[2 * j]) + static_cast<uint32_t>(int32_t{ar[1]} * bp[2 * j + 1]);
    }
  }
}

#ifdef RANSFORM_X86
// Two rows at a time: 8 accumulators of 4 lanes, so that B and the broadcast fit the 16 registers.
inline void tile_sse2(const TileArgs& t) {
  for (int r0 = 0; r0 < kRows; r0 += 2) {
    __m128i acc[2][4];
    for (int r = 0; r < 2; ++r)
      for (int q = 0; q < 4; ++q)
        acc[r][q] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(t.c + (r0 + r) * t.ldc + 4 * q));
    for (int64_t kp = t.kp0; kp < t.kp1; ++kp) {
      const int16_t* bp = t.b_at(kp);
      __m128i bv[4];
      for (int q = 0; q < 4; ++q) bv[q] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bp + 8 * q));
      for (int r = 0; r < 2; ++r) {
        int32_t pair;
        std::memcpy(&pair, t.a_at(r0 + r, kp), 4);
        const __m128i ap = _mm_set1_epi32(pair);
        for (int q = 0; q < 4; ++q) acc[r][q] = _mm_add_epi32(acc[r][q], _mm_madd_epi16(bv[q], ap));
      }
    }
    for (int r = 0; r < 2; ++r)
      for (int q = 0; q < 4; ++q)
        _mm_storeu_si128(reinterpret_cast<__m128i*>(t.c + (r0 + r) * t.ldc + 4 * q), acc[r][q]);
  }
}

__attribute__((target("avx2"))) inline void tile_avx2(const TileArgs& t) {
  __m256i acc[kRows][2];
  for (int r = 0; r < kRows; ++r)
    for (int h = 0; h < 2; ++h)
      acc[r][h] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.c + r * t.ldc + 8 * h));
  for (int64_t kp = t.kp0; kp < t.kp1; ++kp) {
    const int16_t* bp = t.b_at(kp);
    const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bp));
    const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bp + kPanel));
    for (int r = 0; r < kRows; ++r) {
      int32_t pair;
      std::memcpy(&pair, t.a_at(r, kp), 4);
      const __m256i ap = _mm256_set1_epi32(pair);
      acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(lo, ap));
      acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(hi, ap));
    }
  }
  for (int r = 0; r < kRows; ++r)
    for (int h = 0; h < 2; ++h) _mm256_storeu_si256(reinterpret_cast<__m256i*>(t.c + r * t.ldc + 8 * h), acc[r][h]);
}

// One 16-lane vector per row: vpdpwssd adds both products of a pair to the accumulator,
// wrapping modulo 2^32 (the non-saturating form).
__attribute__((target("avx512f,avx512bw,avx512vnni"))) inline void tile_avx512(const TileArgs& t) {
  __m512i acc[kRows];
  for (int r = 0; r < kRows; ++r) acc[r] = _mm512_loadu_si512(t.c + r * t.ldc);
  for (int64_t kp = t.kp0; kp < t.kp1; ++kp) {
    const __m512i bv = _mm512_loadu_si512(t.b_at(kp));
    for (int r = 0; r < kRows; ++r) {
      int32_t pair;
      std::memcpy(&pair, t.a_at(r, kp), 4);
      acc[r] = _mm512_dpwssd_epi32(acc[r], bv, _mm512_set1_epi32(pair));
    }
  }
  for (int r = 0; r < kRows; ++r) _mm512_storeu_si512(t.c + r * t.ldc, acc[r]);
}
#endif

// Which kernel runs changes the speed, never the bits.
enum class Kernel { scalar, sse2, avx2, avx512 };

inline Kernel best_kernel() {
#ifdef RANSFORM_X86
  static const Kernel k = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw") ? Kernel::avx512
                          : __builtin_cpu_supports("avx2")                                           ? Kernel::avx2
                                                                                                     : Kernel::sse2;
  return k;
#else
  return Kernel::scalar;
#endif
}

// C (a.rows x 16 b.panels, rows `ldc` apart) = A B modulo 2^32, on the calling thread.
// Blocked so that kBlockPairs k pairs of one panel (16 KB) stay in L1 while every row tile
// of A passes over them.
constexpr int64_t kBlockPairs = 256;

inline void gemm(const PaddedA& a, const PackedB& b, uint32_t* c, int64_t ldc, Kernel kernel) {
  for (int64_t m = 0; m < a.rows; ++m) std::fill(c + m * ldc, c + m * ldc + b.panels * kPanel, 0u);
  for (int64_t kp0 = 0; kp0 < b.k_pairs; kp0 += kBlockPairs)
    for (int64_t p = 0; p < b.panels; ++p)
      for (int64_t m0 = 0; m0 < a.rows; m0 += kRows) {
        const TileArgs args{a, b, m0, p, kp0, std::min(b.k_pairs, kp0 + kBlockPairs), c + m0 * ldc + p * kPanel, ldc};
#ifdef RANSFORM_X86
        if (kernel == Kernel::avx512)
          tile_avx512(args);
        else if (kernel == Kernel::avx2)
          tile_avx2(args);
        else if (kernel == Kernel::sse2)
          tile_sse2(args);
        else
#endif
          tile_scalar(args);
      }
}

// Runs fn(task, worker) for task = 0 .. tasks-1 on `workers` threads; worker w takes tasks
// w, w + workers, ... (disjoint outputs, so the assignment cannot change any result) and owns
// slice w of the caller's scratch.
template <class Fn>
void for_each_task(int64_t tasks, int64_t workers, Fn fn) {
  parallel_for(static_cast<size_t>(workers), static_cast<int>(workers), [&](size_t worker) {
    for (int64_t task = static_cast<int64_t>(worker); task < tasks; task += workers)
      fn(task, static_cast<int64_t>(worker));
  });
}

// REQUIRES: shapes checked (out_h, out_w >= 1, stride >= 1, 0 <= pad, 0 <= out_pad < stride),
// shift in 0..62.
// Writes the (cout, out_h, out_w) requantized output to `out` (int16_t or int32_t).
//
// Convolution: out[co][n] = sum_k W[co][k] B[k][n] over k = (ci, ky, kx), B the im2col of x.
// Tasks take blocks of kColumns output positions (and, when there are fewer blocks than
// threads, ranges of output channels): each builds its own block of B and runs the GEMM on
// it, so its working set stays in cache.
constexpr int64_t kColumns = 256;

template <class Out>
void conv2d_direct(const int16_t* x, const int16_t* weight, const ConvShape& s, const Requant& q, Out* out, int threads,
                   Kernel kernel) {
  const int64_t oh = s.out_h(), ow = s.out_w(), taps = s.kh * s.kw, K = s.cin * taps, P = oh * ow;
  const int64_t Kp = round_up(K, 2), Mp = round_up(s.cout, kRows);
  // A: the weights, copied only if they need padding.
  PaddedA a{Mp, Kp, weight};
  if (Mp != s.cout || Kp != K) {
    int16_t* copy = scratch<int16_t, 0>(static_cast<size_t>(Mp * Kp));
    std::fill(copy, copy + Mp * Kp, int16_t{0});
    for (int64_t co = 0; co < s.cout; ++co) std::memcpy(copy + co * Kp, weight + co * K, sizeof(int16_t) * K);
    a.data = copy;
  }
  const int64_t blocks = (P + kColumns - 1) / kColumns;
  // Below ~8M multiply-adds a second thread costs more to start than it saves.
  const int64_t lanes = Mp * Kp * P < (int64_t{1} << 23) ? 1 : std::max(1, threads);
  const int64_t groups = std::max<int64_t>(1, std::min<int64_t>(Mp / kRows, (2 * lanes + blocks - 1) / blocks));
  const int64_t rows_per_group = round_up((Mp + groups - 1) / groups, kRows);
  const int64_t tasks = blocks * groups, nb = std::min(kColumns, round_up(P, kPanel));
  const int64_t im2col_size = K * nb, packed_size = PackedB::size(K, nb), c_size = rows_per_group * nb;
  const int64_t workers = std::min<int64_t>(tasks, lanes);  // each reuses its buffers
  int16_t* im2col_all = scratch<int16_t, 1>(static_cast<size_t>(workers * im2col_size));
  int16_t* packed_all = scratch<int16_t, 2>(static_cast<size_t>((workers + 1) * packed_size));
  uint32_t* c_all = scratch<uint32_t, 3>(static_cast<size_t>(workers * c_size));
  const bool pointwise = s.kh == 1 && s.kw == 1 && s.stride == 1 && s.pad == 0;
  // Block `block` of B: x itself for a 1x1 convolution, else its im2col (row k = (ci, ky, kx):
  // what each position sees through that tap), packed.
  auto pack_block = [&](int64_t block, int16_t* rows, int16_t* packed) {
    const int64_t n0 = block * kColumns, n = std::min(kColumns, P - n0);
    if (pointwise) return PackedB(x + n0, K, n, P, packed);
    for (int64_t k = 0; k < K; ++k) {
      const int64_t ci = k / taps, ky = (k % taps) / s.kw, kx = k % s.kw;
      int16_t* row = rows + k * n;
      for (int64_t j = 0, oy = n0 / ow, ox = n0 % ow; j < n; ++oy, ox = 0) {  // one output row at a time
        const int64_t iy = oy * s.stride - s.pad + ky, count = std::min(n - j, ow - ox);
        if (iy < 0 || iy >= s.h) {
          std::fill(row + j, row + j + count, int16_t{0});
          j += count;
          continue;
        }
        const int16_t* src = x + (ci * s.h + iy) * s.w;
        for (int64_t end = j + count; j < end; ++j, ++ox) {
          const int64_t ix = ox * s.stride - s.pad + kx;
          row[j] = ix >= 0 && ix < s.w ? src[ix] : int16_t{0};
        }
      }
    }
    return PackedB(rows, K, n, n, packed);
  };
  // With a single block every row group uses it: pack it once, before the tasks.
  const bool shared = blocks == 1;
  const PackedB single = shared ? pack_block(0, im2col_all, packed_all + workers * packed_size) : PackedB();
  for_each_task(tasks, workers, [&](int64_t task, int64_t worker) {
    const int64_t block = task / groups, group = task % groups;
    const int64_t n0 = block * kColumns, n = std::min(kColumns, P - n0);
    const int64_t m0 = group * rows_per_group, m1 = std::min(Mp, m0 + rows_per_group);
    if (m0 >= m1) return;
    const PackedB b =
        shared ? single : pack_block(block, im2col_all + worker * im2col_size, packed_all + worker * packed_size);
    uint32_t* c = c_all + worker * c_size;
    gemm(PaddedA{m1 - m0, Kp, a.data + m0 * Kp}, b, c, nb, kernel);
    for (int64_t co = m0; co < std::min(m1, s.cout); ++co)
      for (int64_t j = 0; j < n; ++j) out[co * P + n0 + j] = static_cast<Out>(requantize(c[(co - m0) * nb + j], q, co));
  });
}

// Transposed: C[(co, ky, kx)][(iy, ix)] = sum_ci w[ci][co][ky][kx] x[ci][iy][ix], then every
// product lands at output (iy * stride - pad + ky, ix * stride - pad + kx) (col2im). Tasks
// take groups of output channels: their rows of A and C, their output planes.
template <class Out>
void conv2d_transposed(const int16_t* x, const int16_t* weight, const ConvShape& s, const Requant& q, Out* out,
                       int threads, Kernel kernel) {
  const int64_t oh = s.out_h(), ow = s.out_w(), taps = s.kh * s.kw, P = s.h * s.w, plane = oh * ow;
  const int64_t per_group = std::max<int64_t>(1, (64 + taps - 1) / taps);  // output channels per task
  const int64_t tasks = (s.cout + per_group - 1) / per_group;
  const int64_t Kp = round_up(s.cin, 2), Mp = round_up(per_group * taps, kRows), width = round_up(P, kPanel);
  int16_t* packed = scratch<int16_t, 0>(static_cast<size_t>(PackedB::size(s.cin, P)));
  const PackedB b(x, s.cin, P, P, packed);
  const int64_t lanes = s.cout * taps * s.cin * P < (int64_t{1} << 23) ? 1 : std::max(1, threads);
  const int64_t workers = std::min<int64_t>(tasks, lanes);  // each reuses its buffers
  int16_t* a_all = scratch<int16_t, 1>(static_cast<size_t>(workers * Mp * Kp));
  uint32_t* c_all = scratch<uint32_t, 3>(static_cast<size_t>(workers * Mp * width));
  uint32_t* acc_all = scratch<uint32_t, 4>(static_cast<size_t>(workers * per_group * plane));
  for_each_task(tasks, workers, [&](int64_t task, int64_t worker) {
    const int64_t co0 = task * per_group, co1 = std::min(s.cout, co0 + per_group);
    int16_t* a = a_all + worker * Mp * Kp;
    std::fill(a, a + Mp * Kp, int16_t{0});
    for (int64_t r = 0; r < (co1 - co0) * taps; ++r)  // row (co, ky, kx), column ci
      for (int64_t ci = 0; ci < s.cin; ++ci) a[r * Kp + ci] = weight[(ci * s.cout + co0) * taps + r];
    uint32_t* c = c_all + worker * Mp * width;
    gemm(PaddedA{Mp, Kp, a}, b, c, width, kernel);
    uint32_t* acc = acc_all + worker * per_group * plane;
    for (int64_t co = co0; co < co1; ++co) {
      uint32_t* dst = acc + (co - co0) * plane;
      std::fill(dst, dst + plane, 0u);
      for (int64_t ky = 0; ky < s.kh; ++ky)
        for (int64_t kx = 0; kx < s.kw; ++kx) {
          const uint32_t* src = c + (((co - co0) * s.kh + ky) * s.kw + kx) * width;
          for (int64_t iy = 0; iy < s.h; ++iy) {
            const int64_t oy = iy * s.stride - s.pad + ky;
            if (oy < 0 || oy >= oh) continue;
            for (int64_t ix = 0; ix < s.w; ++ix) {
              const int64_t ox = ix * s.stride - s.pad + kx;
              if (ox >= 0 && ox < ow) dst[oy * ow + ox] += src[iy * s.w + ix];
            }
          }
        }
      for (int64_t p = 0; p < plane; ++p) out[co * plane + p] = static_cast<Out>(requantize(dst[p], q, co));
    }
  });
}

template <class Out>
void conv2d(const int16_t* x, const int16_t* weight, const ConvShape& s, const Requant& q, Out* out, int threads,
            Kernel kernel = best_kernel()) {
  if (s.transposed)
    conv2d_transposed(x, weight, s, q, out, threads, kernel);
  else
    conv2d_direct(x, weight, s, q, out, threads, kernel);
}

}  // namespace intnet
}  // namespace ransform
