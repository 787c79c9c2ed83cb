// quantize.hpp: probabilities -> integer frequencies summing to 2^precision.
//
// REQUIRES: every p[i] >= 0 and finite, sum(p) > 0, p.size() <= 2^precision.
// @return : f with f[i] >= 1 for every i and sum(f) == 2^precision, maximising
//           sum_i p[i] * log f[i], i.e. minimising the expected code length -sum p log2(f/2^P).
//
// Method. The objective is separable and concave in each f[i], so moving one count at a time
// to (or from) the symbol with the largest gain (smallest loss) is optimal. Start from
// f[i] = max(1, floor(p[i] 2^P / sum p)); the start is off by at most p.size() counts, so the
// greedy repair costs O(n log n) with a heap, never the O(n^2) passes of "give the slack to
// the last symbol" schemes. Ties are broken by the symbol index so the result is a pure
// function of the inputs (all arithmetic is detmath, see detmath.hpp).
#pragma once

#include <cstdint>
#include <queue>
#include <vector>

#include "core/detmath.hpp"
#include "core/error.hpp"

namespace ransform {

inline std::vector<uint32_t> quantize_pmf(const std::vector<double>& p, int precision) {
  const uint64_t total = uint64_t{1} << precision;
  const size_t n = p.size();
  if (n == 0 || n > total) throw InputError("quantize_pmf: alphabet size out of range");
  double mass = 0.0;
  for (double v : p) {
    if (!(v >= 0.0) || v == std::numeric_limits<double>::infinity())
      throw InputError("probabilities must be finite and non-negative");
    mass += v;
  }
  if (!(mass > 0.0)) throw InputError("probabilities sum to zero");

  std::vector<uint32_t> f(n);
  int64_t assigned = 0;
  for (size_t i = 0; i < n; ++i) {
    const double scaled = std::floor(p[i] / mass * static_cast<double>(total));
    f[i] = scaled < 1.0 ? 1u : static_cast<uint32_t>(std::fmin(scaled, static_cast<double>(total)));
    assigned += f[i];
  }
  int64_t excess = assigned - static_cast<int64_t>(total);

  // Gain of one more count for symbol i: p_i ln((f+1)/f); loss of one count: p_i ln(f/(f-1)).
  using Item = std::pair<double, int64_t>;  // (value, -index): larger value first, then lower index
  auto gain = [&](size_t i) { return p[i] * (detmath::log(f[i] + 1.0) - detmath::log(f[i])); };
  auto loss = [&](size_t i) { return p[i] * (detmath::log(f[i]) - detmath::log(f[i] - 1.0)); };
  if (excess < 0) {
    std::priority_queue<Item> heap;
    for (size_t i = 0; i < n; ++i) heap.push({gain(i), -static_cast<int64_t>(i)});
    for (; excess < 0; ++excess) {
      const size_t i = static_cast<size_t>(-heap.top().second);
      heap.pop();
      ++f[i];
      heap.push({gain(i), -static_cast<int64_t>(i)});
    }
  } else if (excess > 0) {
    std::priority_queue<Item, std::vector<Item>, std::greater<Item>> heap;  // smallest loss first
    for (size_t i = 0; i < n; ++i)
      if (f[i] > 1) heap.push({loss(i), static_cast<int64_t>(i)});
    for (; excess > 0; --excess) {
      const size_t i = static_cast<size_t>(heap.top().second);
      heap.pop();
      --f[i];
      if (f[i] > 1) heap.push({loss(i), static_cast<int64_t>(i)});
    }
  }
  return f;
}

}  // namespace ransform
