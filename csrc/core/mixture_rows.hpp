// mixture_rows.hpp: the CPU's rows of a mixture entropy model, one per element, over a thread
// pool (mixture.hpp holds the per-element math, shared with the GPU builder). Every element's
// row depends on its own parameters alone, so the rows are the same for every thread count.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

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

// The frequencies of every row, padded with zeros to `width` (>= every length): freqs is
// n x width, row-major.
inline void mixture_table(const MixtureParams& q, const float* w, const float* mu, const float* s, int64_t n,
                          const int32_t* offset, const int32_t* length, int32_t width, uint32_t* freqs, int threads) {
  const int64_t k = q.components;
  const size_t blocks = (static_cast<size_t>(n) + kMixtureBlock - 1) / kMixtureBlock;
  parallel_for(blocks, resolve_threads(threads), [&](size_t b) {
    const int64_t end = std::min<int64_t>(n, (b + 1) * kMixtureBlock);
    for (int64_t i = b * kMixtureBlock; i < end; ++i) {
      uint32_t* row = freqs + i * width;
      mixture_frequencies(q, w + i * k, mu + i * k, s + i * k, offset[i], length[i], row);
      std::fill(row + length[i], row + width, 0u);
    }
  });
}

}  // namespace ransform
