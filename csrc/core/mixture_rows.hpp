// mixture_rows.hpp: the CPU's rows of a mixture entropy model, one per element, over a thread
// pool (mixture.hpp holds the per-element math, shared with the GPU builder). Every element's
// row depends on its own parameters alone, so the rows are the same for every thread count.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/detmath_many.hpp"
#include "core/mixture.hpp"
#include "core/parallel.hpp"

namespace ransform {

constexpr size_t kMixtureBlock = 4096;  // elements per task

// The support of every element's row: offset[i] and length[i] (escape included). Returns the
// first element with invalid parameters, or n.
inline int64_t mixture_supports(const MixtureParams& q, const float* w, const float* mu, const float* s, int64_t n,
                                int32_t* offset, int32_t* length, int threads) {
  const int64_t k = q.components;
  const size_t blocks = (static_cast<size_t>(n) + kMixtureBlock - 1) / kMixtureBlock;
  std::vector<int64_t> first_bad(blocks, n);
  parallel_for(blocks, resolve_threads(threads), [&](size_t b) {
    const int64_t end = std::min<int64_t>(n, (b + 1) * kMixtureBlock);
    for (int64_t i = b * kMixtureBlock; i < end; ++i)
      if (!mixture_support(q, w + i * k, mu + i * k, s + i * k, offset + i, length + i)) {
        first_bad[b] = i;
        break;
      }
  });
  return blocks ? *std::min_element(first_bad.begin(), first_bad.end()) : n;
}

// A Gaussian mixture's erfc arguments for an element: upper_tail's at every boundary of its row
// (component-major), +inf where mixture_small_tail skips the tail (erfc(inf) = 0, its value).
inline void mixture_tail_arguments(const MixtureParams& q, const float* m, const float* s, int32_t offset,
                                   int32_t length, double* args) {
  const double first = offset - 0.5;
  for (int k = 0; k < q.components; ++k)
    for (int32_t j = 0; j < length; ++j) {
      const double d = ::fabs(first + j - m[k]);
      args[k * length + j] = mixture_tail_is_zero(q.family, d, s[k]) ? detmath::kInf : gaussian_tail_argument(d, s[k]);
    }
}

// Rows [begin, end) as mixture_frequencies gives them, padded with zeros to `width`. A Gaussian
// mixture's tails are computed first for many elements at once (detmath_many.hpp: the same
// bits, ~2x faster); the other families one boundary after the other.
inline void mixture_rows_of(const MixtureParams& q, const float* w, const float* mu, const float* s, int64_t begin,
                            int64_t end, const int32_t* offset, const int32_t* length, int32_t width, uint32_t* freqs) {
  const int64_t k = q.components;
  auto pad = [&](int64_t i) { std::fill(freqs + i * width + length[i], freqs + (i + 1) * width, 0u); };
  if (q.family != Family::kGaussian) {
    for (int64_t i = begin; i < end; ++i) {
      mixture_frequencies(q, w + i * k, mu + i * k, s + i * k, offset[i], length[i], freqs + i * width);
      pad(i);
    }
    return;
  }
  constexpr size_t kBatchArguments = 16384;  // erfc arguments per batch: few half-filled vector groups
  std::vector<double> args, tails;
  for (int64_t i = begin; i < end;) {
    int64_t last = i;  // the batch is [i, last)
    size_t count = 0;
    while (last < end && (last == i || count + k * length[last] <= kBatchArguments)) count += k * length[last++];
    args.resize(count);
    tails.resize(count);
    for (int64_t e = i, at = 0; e < last; at += k * length[e++])
      mixture_tail_arguments(q, mu + e * k, s + e * k, offset[e], length[e], args.data() + at);
    detmath::erfc_many(args.data(), tails.data(), count);
    for (size_t at = 0; i < last; at += k * length[i++]) {
      const double* t = tails.data() + at;
      const int32_t n = length[i];
      mixture_frequencies_with(
          q, w + i * k, mu + i * k, offset[i], n, [&](int c, int32_t j) { return 0.5 * t[c * n + j]; },
          freqs + i * width);
      pad(i);
    }
  }
}

// The frequencies of every row, padded with zeros to `width` (>= every length): freqs is
// n x width, row-major.
inline void mixture_table(const MixtureParams& q, const float* w, const float* mu, const float* s, int64_t n,
                          const int32_t* offset, const int32_t* length, int32_t width, uint32_t* freqs, int threads) {
  const size_t blocks = (static_cast<size_t>(n) + kMixtureBlock - 1) / kMixtureBlock;
  parallel_for(blocks, resolve_threads(threads), [&](size_t b) {
    mixture_rows_of(q, w, mu, s, b * kMixtureBlock, std::min<int64_t>(n, (b + 1) * kMixtureBlock), offset, length,
                    width, freqs);
  });
}

}  // namespace ransform
