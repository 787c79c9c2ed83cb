// quantize.hpp: probabilities -> integer frequencies summing to 2^precision.
//
// REQUIRES: every p[i] >= 0 and finite, sum(p) > 0, p.size() <= 2^precision.
// @return : f with f[i] >= 1 for every i and sum(f) == 2^precision, maximising
//           sum_i p[i] * log f[i], i.e. minimising the expected code length -sum p log2(f/2^P).
//
// Method. Start from f[i] = max(1, floor(p[i] 2^P / sum p)), which is off the total by at most
// p.size() counts; add (remove) those counts one at a time where the gain p_i ln((f+1)/f) is
// largest (the loss p_i ln(f/(f-1)) smallest). Then exchange: while the largest gain exceeds
// the smallest loss, move one count. The objective is separable and concave, so an allocation
// that no single exchange improves is optimal; few exchanges are needed since the start is
// within a count or two of the optimum per symbol. Heaps with lazy deletion make each step
// O(log n): never the O(n^2) passes of "give the slack to the last symbol" schemes. Ties go
// to the lower symbol index, so the result is a pure function of the inputs (all arithmetic
// is detmath, see detmath.hpp).
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
  auto gain = [&](size_t i) { return p[i] * (detmath::log(f[i] + 1.0) - detmath::log(f[i])); };
  auto loss = [&](size_t i) { return p[i] * (detmath::log(f[i]) - detmath::log(f[i] - 1.0)); };
  // Heap entries carry the f they were computed for; an entry whose f changed is stale.
  struct Entry {
    double value;
    int64_t key;  // -index in the gain heap (lower index first), index in the loss heap
    uint32_t f;
  };
  auto more_gain = [](const Entry& a, const Entry& b) { return a.value < b.value || (a.value == b.value && a.key < b.key); };
  auto less_loss = [](const Entry& a, const Entry& b) { return a.value > b.value || (a.value == b.value && a.key > b.key); };
  std::priority_queue<Entry, std::vector<Entry>, decltype(more_gain)> gains(more_gain);
  std::priority_queue<Entry, std::vector<Entry>, decltype(less_loss)> losses(less_loss);
  auto push = [&](size_t i) {
    gains.push({gain(i), -static_cast<int64_t>(i), f[i]});
    if (f[i] > 1) losses.push({loss(i), static_cast<int64_t>(i), f[i]});
  };
  auto top_gain = [&]() -> const Entry& {  // REQUIRES: n >= 1 (every symbol has a gain entry)
    while (f[static_cast<size_t>(-gains.top().key)] != gains.top().f) gains.pop();
    return gains.top();
  };
  auto top_loss = [&]() -> const Entry* {
    while (!losses.empty() && f[static_cast<size_t>(losses.top().key)] != losses.top().f) losses.pop();
    return losses.empty() ? nullptr : &losses.top();
  };
  for (size_t i = 0; i < n; ++i) push(i);
  for (; excess < 0; ++excess) {
    const size_t i = static_cast<size_t>(-top_gain().key);
    ++f[i];
    push(i);
  }
  for (; excess > 0; --excess) {  // sum(f - 1) >= excess, so a loss entry always exists
    const size_t i = static_cast<size_t>(top_loss()->key);
    --f[i];
    push(i);
  }
  for (;;) {
    const Entry& g = top_gain();
    const Entry* l = top_loss();
    if (!l || !(g.value > l->value)) break;
    const size_t up = static_cast<size_t>(-g.key), down = static_cast<size_t>(l->key);
    if (up == down) break;  // cannot happen for concave terms; guards the loop anyway
    ++f[up];
    --f[down];
    push(up);
    push(down);
  }
  return f;
}

}  // namespace ransform
