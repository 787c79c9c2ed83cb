// intnet.hpp: integer convolutions with exact, order-free arithmetic: the layers of the
// portable entropy-parameter networks (docs/FORMAT.md section 11). Every machine, thread
// count and instruction set computes the same bits, so the coder rows and means a decoder
// derives from them are the encoder's.
//
// READ ME FIRST
// 1. Activations and weights are int16 in [-32767, 32767]; a product fits int32 and so does
//    the sum of two (pmaddwd's pairs: 2 * 32767^2 < 2^31).
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

#include "core/error.hpp"
#include "core/parallel.hpp"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define RANSFORM_X86 1
#endif

namespace ransform {
namespace intnet {

constexpr int32_t kActivationLimit = 32767;  // int16 activations and weights: [-limit, limit]
constexpr int kPanel = 8;                     // columns of B per packed panel
constexpr int kRows = 4;                      // rows of A per micro-tile

// B (K x N) packed for the micro-kernel: panel q holds columns 8q .. 8q+7; inside it, pair
// kp of rows (2kp, 2kp+1) is 16 int16 values [b(2kp, j), b(2kp+1, j)] for j = 0..7, the
// operand order of pmaddwd. K is padded to even and N to a multiple of 8 with zeros.
struct PackedB {
  int64_t k_pairs = 0, panels = 0;
  std::vector<int16_t> data;  // panels * k_pairs * 16
  PackedB(int64_t K, int64_t N) : k_pairs((K + 1) / 2), panels((N + kPanel - 1) / kPanel) {
    data.assign(static_cast<size_t>(panels * k_pairs * 2 * kPanel), 0);
  }
  int16_t& at(int64_t k, int64_t n) {
    return data[static_cast<size_t>(((n / kPanel) * k_pairs + k / 2) * 2 * kPanel + (n % kPanel) * 2 + (k & 1))];
  }
};

// A (M x K) padded to M a multiple of kRows and K even, row-major. A matrix already of that
// shape (the usual case for weights) is used in place instead of copied.
struct PaddedA {
  int64_t rows = 0, cols = 0;
  std::vector<int16_t> storage;
  const int16_t* data = nullptr;
  PaddedA(int64_t M, int64_t K) : rows((M + kRows - 1) / kRows * kRows), cols((K + 1) / 2 * 2) {
    storage.assign(static_cast<size_t>(rows * cols), 0);
    data = storage.data();
  }
  // A row-major M x K matrix, copied only if it needs padding.
  PaddedA(const int16_t* a, int64_t M, int64_t K) : PaddedA(M % kRows == 0 && K % 2 == 0 ? 0 : M, K) {
    if (storage.empty()) {
      rows = M;
      data = a;
    } else {
      for (int64_t m = 0; m < M; ++m) std::memcpy(&at(m, 0), a + m * K, sizeof(int16_t) * K);
    }
  }
  int16_t& at(int64_t m, int64_t k) { return storage[static_cast<size_t>(m * cols + k)]; }
};

// C[m][n] (kRows rows from m0, one 8-column panel) = sum_k A[m][k] B[k][n] modulo 2^32.
// Three kernels, one result (READ ME FIRST 2): scalar, SSE2 (every x86-64), AVX2.
inline void tile_scalar(const PaddedA& a, const PackedB& b, int64_t m0, int64_t panel, uint32_t* c) {
  const int16_t* bp = b.data.data() + panel * b.k_pairs * 2 * kPanel;
  uint32_t acc[kRows][kPanel] = {};
  for (int64_t kp = 0; kp < b.k_pairs; ++kp, bp += 2 * kPanel)
    for (int r = 0; r < kRows; ++r) {
      const int16_t* ar = a.data + (m0 + r) * a.cols + 2 * kp;
      for (int j = 0; j < kPanel; ++j)
        acc[r][j] += static_cast<uint32_t>(int32_t{ar[0]} * bp[2 * j] + int32_t{ar[1]} * bp[2 * j + 1]);
    }
  std::memcpy(c, acc, sizeof(acc));
}

#ifdef RANSFORM_X86
inline void tile_sse2(const PaddedA& a, const PackedB& b, int64_t m0, int64_t panel, uint32_t* c) {
  const int16_t* bp = b.data.data() + panel * b.k_pairs * 2 * kPanel;
  __m128i acc[kRows][2];
  for (auto& row : acc) row[0] = row[1] = _mm_setzero_si128();
  for (int64_t kp = 0; kp < b.k_pairs; ++kp, bp += 2 * kPanel) {
    const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bp));
    const __m128i hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bp + kPanel));
    for (int r = 0; r < kRows; ++r) {
      int32_t pair;
      std::memcpy(&pair, a.data + (m0 + r) * a.cols + 2 * kp, 4);
      const __m128i ap = _mm_set1_epi32(pair);
      acc[r][0] = _mm_add_epi32(acc[r][0], _mm_madd_epi16(lo, ap));
      acc[r][1] = _mm_add_epi32(acc[r][1], _mm_madd_epi16(hi, ap));
    }
  }
  for (int r = 0; r < kRows; ++r) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(c + r * kPanel), acc[r][0]);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(c + r * kPanel + 4), acc[r][1]);
  }
}

__attribute__((target("avx2"))) inline void tile_avx2(const PaddedA& a, const PackedB& b, int64_t m0,
                                                      int64_t panel, uint32_t* c) {
  const int16_t* bp = b.data.data() + panel * b.k_pairs * 2 * kPanel;
  __m256i acc[kRows];
  for (auto& v : acc) v = _mm256_setzero_si256();
  for (int64_t kp = 0; kp < b.k_pairs; ++kp, bp += 2 * kPanel) {
    const __m256i bv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bp));
    for (int r = 0; r < kRows; ++r) {
      int32_t pair;
      std::memcpy(&pair, a.data + (m0 + r) * a.cols + 2 * kp, 4);
      acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(bv, _mm256_set1_epi32(pair)));
    }
  }
  for (int r = 0; r < kRows; ++r) _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * kPanel), acc[r]);
}
#endif

// Which kernel runs changes the speed, never the bits.
enum class Kernel { scalar, sse2, avx2 };

inline Kernel best_kernel() {
#ifdef RANSFORM_X86
  static const Kernel k = __builtin_cpu_supports("avx2") ? Kernel::avx2 : Kernel::sse2;
  return k;
#else
  return Kernel::scalar;
#endif
}

// C (a.rows x b.panels*8, row-major uint32) = A B modulo 2^32, row tiles split over threads.
inline std::vector<uint32_t> gemm(const PaddedA& a, const PackedB& b, int threads, Kernel kernel) {
  const int64_t width = b.panels * kPanel, tiles = a.rows / kRows;
  std::vector<uint32_t> c(static_cast<size_t>(a.rows * width));
  const int64_t work = tiles * b.panels * b.k_pairs;
  const int tasks = work < (int64_t{1} << 16) ? 1 : std::max(1, threads) * 4;
  const int64_t per_task = (tiles + tasks - 1) / tasks;
  parallel_for(static_cast<size_t>(tasks), threads, [&](size_t task) {
    uint32_t tile[kRows * kPanel];
    for (int64_t t = task * per_task; t < std::min(tiles, (int64_t(task) + 1) * per_task); ++t)
      for (int64_t p = 0; p < b.panels; ++p) {
#ifdef RANSFORM_X86
        if (kernel == Kernel::avx2)
          tile_avx2(a, b, t * kRows, p, tile);
        else if (kernel == Kernel::sse2)
          tile_sse2(a, b, t * kRows, p, tile);
        else
#endif
          tile_scalar(a, b, t * kRows, p, tile);
        for (int r = 0; r < kRows; ++r)
          std::memcpy(&c[static_cast<size_t>((t * kRows + r) * width + p * kPanel)], tile + r * kPanel,
                      sizeof(uint32_t) * kPanel);
      }
  });
  return c;
}

// One output channel's requantization (READ ME FIRST 3).
struct Requant {
  const int32_t* bias;   // per output channel
  const int32_t* m_pos;  // multiplier for a >= 0
  const int32_t* m_neg;  // multiplier for a < 0
  const int32_t* shift;  // 0 .. 62
  int64_t limit;         // 32767 for int16 outputs, 2^31 - 1 for int32 outputs
};

inline int64_t requantize(uint32_t acc, const Requant& q, int64_t ch) {
  const int64_t a = static_cast<int32_t>(acc + static_cast<uint32_t>(q.bias[ch]));
  const int64_t m = a >= 0 ? q.m_pos[ch] : q.m_neg[ch];
  const int s = q.shift[ch];
  const int64_t y = (a * m + ((int64_t{1} << s) >> 1)) >> s;
  return std::clamp<int64_t>(y, -q.limit, q.limit);
}

struct ConvShape {
  int64_t cin, h, w;            // input
  int64_t cout, kh, kw;         // weight: (cout, cin, kh, kw), or (cin, cout, kh, kw) if transposed
  int64_t stride, pad, out_pad;
  bool transposed;
  int64_t out_h() const { return transposed ? (h - 1) * stride - 2 * pad + kh + out_pad : (h + 2 * pad - kh) / stride + 1; }
  int64_t out_w() const { return transposed ? (w - 1) * stride - 2 * pad + kw + out_pad : (w + 2 * pad - kw) / stride + 1; }
};

// REQUIRES: shapes checked (out_h, out_w >= 1, stride >= 1, 0 <= pad, 0 <= out_pad < stride),
// values in [-32767, 32767], shift in 0..62.
// Writes the (cout, out_h, out_w) requantized output to `out` (int16_t or int32_t).
template <class Out>
void conv2d(const int16_t* x, const int16_t* weight, const ConvShape& s, const Requant& q, Out* out, int threads,
            Kernel kernel = best_kernel()) {
  const int64_t oh = s.out_h(), ow = s.out_w(), taps = s.kh * s.kw;
  if (!s.transposed) {
    // im2col straight into the packed panels: B[(ci, ky, kx)][(oy, ox)].
    const int64_t K = s.cin * taps, P = oh * ow;
    const PaddedA a(weight, s.cout, K);
    PackedB b(K, P);
    for (int64_t ci = 0; ci < s.cin; ++ci)
      for (int64_t ky = 0; ky < s.kh; ++ky)
        for (int64_t kx = 0; kx < s.kw; ++kx) {
          const int64_t k = (ci * s.kh + ky) * s.kw + kx;
          for (int64_t oy = 0; oy < oh; ++oy) {
            const int64_t iy = oy * s.stride - s.pad + ky;
            if (iy < 0 || iy >= s.h) continue;
            for (int64_t ox = 0; ox < ow; ++ox) {
              const int64_t ix = ox * s.stride - s.pad + kx;
              if (ix >= 0 && ix < s.w) b.at(k, oy * ow + ox) = x[(ci * s.h + iy) * s.w + ix];
            }
          }
        }
    const std::vector<uint32_t> c = gemm(a, b, threads, kernel);
    const int64_t width = b.panels * kPanel;
    for (int64_t co = 0; co < s.cout; ++co)
      for (int64_t p = 0; p < P; ++p)
        out[co * P + p] = static_cast<Out>(requantize(c[static_cast<size_t>(co * width + p)], q, co));
    return;
  }
  // Transposed: C[(co, ky, kx)][(iy, ix)] = sum_ci w[ci][co][ky][kx] x[ci][iy][ix], then every
  // product lands at output (iy * stride - pad + ky, ix * stride - pad + kx) (col2im).
  const int64_t P = s.h * s.w, rows = s.cout * taps;
  PaddedA a(rows, s.cin);
  for (int64_t ci = 0; ci < s.cin; ++ci)
    for (int64_t r = 0; r < rows; ++r) a.at(r, ci) = weight[ci * rows + r];
  PackedB b(s.cin, P);
  for (int64_t ci = 0; ci < s.cin; ++ci)
    for (int64_t p = 0; p < P; ++p) b.at(ci, p) = x[ci * P + p];
  const std::vector<uint32_t> c = gemm(a, b, threads, kernel);
  const int64_t width = b.panels * kPanel;
  std::vector<uint32_t> acc(static_cast<size_t>(s.cout * oh * ow), 0u);
  parallel_for(static_cast<size_t>(s.cout), threads, [&](size_t co) {
    uint32_t* plane = acc.data() + co * oh * ow;
    for (int64_t ky = 0; ky < s.kh; ++ky)
      for (int64_t kx = 0; kx < s.kw; ++kx) {
        const uint32_t* src = c.data() + ((co * s.kh + ky) * s.kw + kx) * width;
        for (int64_t iy = 0; iy < s.h; ++iy) {
          const int64_t oy = iy * s.stride - s.pad + ky;
          if (oy < 0 || oy >= oh) continue;
          for (int64_t ix = 0; ix < s.w; ++ix) {
            const int64_t ox = ix * s.stride - s.pad + kx;
            if (ox >= 0 && ox < ow) plane[oy * ow + ox] += src[iy * s.w + ix];
          }
        }
      }
  });
  for (int64_t co = 0; co < s.cout; ++co)
    for (int64_t p = 0; p < oh * ow; ++p)
      out[co * oh * ow + p] = static_cast<Out>(requantize(acc[static_cast<size_t>(co * oh * ow + p)], q, co));
}

}  // namespace intnet
}  // namespace ransform
