// parallel.hpp: the one thread pool helper of the core. Work is split into tasks whose
// results do not depend on which thread ran them, so every output is independent of the
// thread count.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <thread>
#include <vector>

namespace ransform {

// Runs fn(0) .. fn(count - 1) on up to `threads` threads; rethrows the first exception
// (by task order) after all tasks stopped.
template <class Fn>
void parallel_for(size_t count, int threads, Fn fn) {
  std::vector<std::exception_ptr> errors(count);
  auto body = [&](std::atomic<size_t>& next) {
    for (size_t i; (i = next.fetch_add(1)) < count;) {
      try {
        fn(i);
      } catch (...) {
        errors[i] = std::current_exception();
      }
    }
  };
  std::atomic<size_t> next{0};
  const size_t workers = std::min<size_t>(count, threads < 1 ? 1 : static_cast<size_t>(threads));
  std::vector<std::thread> pool;
  for (size_t w = 1; w < workers; ++w) pool.emplace_back(body, std::ref(next));
  body(next);
  for (auto& t : pool) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

inline int resolve_threads(int threads) {
  if (threads > 0) return threads;
  const unsigned hw = std::thread::hardware_concurrency();
  return hw ? static_cast<int>(hw) : 1;
}

}  // namespace ransform
