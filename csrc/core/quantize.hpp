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
// within a count or two of the optimum per symbol. Two indexed heaps (gains; losses of the
// symbols with f > 1) make each step O(log n): never the O(n^2) passes of "give the slack to
// the last symbol" schemes. Ties go to the lower symbol index, so the result is a pure
// function of the inputs (all arithmetic is detmath, see detmath.hpp).
//
// quantize_pmf_into works in caller-provided memory and compiles for the GPU too
// (csrc/cuda/tables.cu builds scale tables with it); quantize_pmf is the checked host entry.
#pragma once

#include <cstdint>
#include <vector>

#include "core/detmath.hpp"
#include "core/error.hpp"
#include "core/hd.hpp"

namespace ransform {

// A binary heap of symbol indexes ordered by value[] (largest first when kLargest, else
// smallest first; ties: lower index first), with pos[] so that an entry can be re-keyed.
template <bool kLargest>
struct KeyedHeap {
  const double* value;
  int32_t* heap;
  int32_t* pos;  // pos[k] = k's slot in heap, -1 when absent
  int32_t size;

  RANSFORM_HD bool before(int32_t a, int32_t b) const {
    const double va = value[a], vb = value[b];
    return (kLargest ? va > vb : va < vb) || (va == vb && a < b);
  }
  RANSFORM_HD void place(int32_t slot, int32_t k) {
    heap[slot] = k;
    pos[k] = slot;
  }
  RANSFORM_HD void sift(int32_t slot) {  // restores the order around one changed slot
    const int32_t k = heap[slot];
    while (slot > 0 && before(k, heap[(slot - 1) / 2])) {
      place(slot, heap[(slot - 1) / 2]);
      slot = (slot - 1) / 2;
    }
    for (;;) {
      const int32_t left = 2 * slot + 1, right = left + 1;
      int32_t child = left;
      if (left >= size) break;
      if (right < size && before(heap[right], heap[left])) child = right;
      if (!before(heap[child], k)) break;
      place(slot, heap[child]);
      slot = child;
    }
    place(slot, k);
  }
  RANSFORM_HD bool contains(int32_t k) const { return pos[k] >= 0; }
  RANSFORM_HD int32_t top() const { return heap[0]; }
  RANSFORM_HD void push(int32_t k) {
    place(size++, k);
    sift(size - 1);
  }
  RANSFORM_HD void rekey(int32_t k) { sift(pos[k]); }
  RANSFORM_HD void remove(int32_t k) {
    const int32_t slot = pos[k];
    pos[k] = -1;
    if (slot == --size) return;
    place(slot, heap[size]);
    sift(slot);
  }
};

// Memory for quantize_pmf_into with n symbols: 2n doubles, then 4n int32.
RANSFORM_HD inline size_t quantize_scratch_bytes(size_t n) { return n * (2 * sizeof(double) + 4 * sizeof(int32_t)); }

// REQUIRES: as quantize_pmf; scratch holds quantize_scratch_bytes(n) bytes, 8-byte aligned.
RANSFORM_HD inline void quantize_pmf_into(const double* p, int32_t n, int precision, uint32_t* f, void* scratch) {
  const uint32_t total = uint32_t{1} << precision;
  double mass = 0.0;
  for (int32_t i = 0; i < n; ++i) mass += p[i];
  double* gain = static_cast<double*>(scratch);  // p_i ln((f+1)/f)
  double* loss = gain + n;                       // p_i ln(f/(f-1)), for f > 1
  int32_t* slots = reinterpret_cast<int32_t*>(loss + n);
  KeyedHeap<true> gains{gain, slots, slots + n, 0};
  KeyedHeap<false> losses{loss, slots + 2 * n, slots + 3 * n, 0};

  int64_t assigned = 0;
  for (int32_t i = 0; i < n; ++i) {
    const double scaled = ::floor(p[i] / mass * static_cast<double>(total));
    f[i] = scaled < 1.0 ? 1u : static_cast<uint32_t>(::fmin(scaled, static_cast<double>(total)));
    assigned += f[i];
  }
  auto rekey = [&](int32_t i) {
    gain[i] = p[i] * (detmath::log(f[i] + 1.0) - detmath::log(f[i]));
    if (gains.contains(i))
      gains.rekey(i);
    else
      gains.push(i);
    if (f[i] > 1) {
      loss[i] = p[i] * (detmath::log(f[i]) - detmath::log(f[i] - 1.0));
      if (losses.contains(i))
        losses.rekey(i);
      else
        losses.push(i);
    } else if (losses.contains(i)) {
      losses.remove(i);
    }
  };
  for (int32_t i = 0; i < n; ++i) gains.pos[i] = losses.pos[i] = -1;
  for (int32_t i = 0; i < n; ++i) rekey(i);
  for (int64_t excess = assigned - total; excess != 0;) {
    // Short: give counts where they gain most. Over: take them where they cost least
    // (sum(f - 1) >= excess, so the loss heap is not empty).
    const int32_t i = excess < 0 ? gains.top() : losses.top();
    if (excess < 0)
      ++f[i], ++excess;
    else
      --f[i], --excess;
    rekey(i);
  }
  while (losses.size > 0) {
    const int32_t up = gains.top(), down = losses.top();
    if (!(gain[up] > loss[down]) || up == down) break;  // up == down cannot happen for concave terms
    ++f[up];
    --f[down];
    rekey(up);
    rekey(down);
  }
}

inline std::vector<uint32_t> quantize_pmf(const std::vector<double>& p, int precision) {
  const uint64_t total = uint64_t{1} << precision;
  const size_t n = p.size();
  if (n == 0 || n > total) throw InputError("quantize_pmf: alphabet size out of range");
  double mass = 0.0;
  for (double v : p) {
    if (!(v >= 0.0) || v == detmath::kInf) throw InputError("probabilities must be finite and non-negative");
    mass += v;
  }
  if (!(mass > 0.0)) throw InputError("probabilities sum to zero");
  std::vector<uint32_t> f(n);
  std::vector<double> scratch((quantize_scratch_bytes(n) + sizeof(double) - 1) / sizeof(double));
  quantize_pmf_into(p.data(), static_cast<int32_t>(n), precision, f.data(), scratch.data());
  return f;
}

}  // namespace ransform
