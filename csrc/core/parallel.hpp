// parallel.hpp: the one thread pool helper of the core. Work is split into tasks whose
// results do not depend on which thread ran them, so every output is independent of the
// thread count.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

// glibc's pthread_attr_setaffinity_np (<thread> has included <features.h>, which defines __GLIBC__).
#if defined(__linux__) && defined(__GLIBC__)
#define RANSFORM_WORKER_CPU_HINT 1
#include <pthread.h>
#include <sched.h>

#include <system_error>
#endif

namespace ransform {

// A thread that runs one function and is joined when destroyed.
//
// On Linux (glibc) it starts on another CPU than its creator's where the process may use more than
// one. Kernels that pack tasks onto few CPUs (this project's CI VMs boot with
// sched_vcpu_pack) otherwise queue a new thread behind its creator and leave an idle CPU idle
// for about a millisecond: as long as coding a Kodak latent takes, so a second thread gave
// 1.0x on it in half the runs. With the hint it starts in 40-130 us.
class WorkerThread {
 public:
  // The thread runs this object's fn_, so the object stays where it is until joined.
  explicit WorkerThread(std::function<void()> fn) : fn_(std::move(fn)) {
#if RANSFORM_WORKER_CPU_HINT
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    cpu_set_t cpus;
    const int here = sched_getcpu();
    const bool hinted =
        here >= 0 && sched_getaffinity(0, sizeof cpus, &cpus) == 0 && CPU_ISSET(here, &cpus) && CPU_COUNT(&cpus) > 1;
    if (hinted) {
      CPU_CLR(here, &cpus);
      pthread_attr_setaffinity_np(&attr, sizeof cpus, &cpus);
    }
    int rc = pthread_create(&thread_, &attr, &run, this);
    pthread_attr_destroy(&attr);
    if (rc != 0 && hinted) rc = pthread_create(&thread_, nullptr, &run, this);  // the CPUs changed meanwhile
    if (rc != 0) throw std::system_error(rc, std::generic_category(), "cannot start a thread");
#else
    thread_ = std::thread(fn_);
#endif
  }
  WorkerThread(const WorkerThread&) = delete;
  WorkerThread& operator=(const WorkerThread&) = delete;
  ~WorkerThread() {
#if RANSFORM_WORKER_CPU_HINT
    pthread_join(thread_, nullptr);
#else
    thread_.join();
#endif
  }

 private:
#if RANSFORM_WORKER_CPU_HINT
  static void* run(void* self) {
    static_cast<WorkerThread*>(self)->fn_();
    return nullptr;
  }
#endif
  std::function<void()> fn_;
#if RANSFORM_WORKER_CPU_HINT
  pthread_t thread_;
#else
  std::thread thread_;
#endif
};

// Runs fn(0) .. fn(count - 1) on up to `threads` threads; rethrows the first exception
// (by task order) after all tasks stopped.
template <class Fn>
void parallel_for(size_t count, int threads, Fn fn) {
  std::vector<std::exception_ptr> errors(count);
  std::atomic<size_t> next{0};
  auto body = [&] {
    for (size_t i; (i = next.fetch_add(1)) < count;) {
      try {
        fn(i);
      } catch (...) {
        errors[i] = std::current_exception();
      }
    }
  };
  const size_t workers = std::min<size_t>(count, threads < 1 ? 1 : static_cast<size_t>(threads));
  {
    std::vector<std::unique_ptr<WorkerThread>> pool;
    for (size_t w = 1; w < workers; ++w) pool.push_back(std::make_unique<WorkerThread>(body));
    body();
  }  // joins the pool
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

inline int resolve_threads(int threads) {
  if (threads > 0) return threads;
  const unsigned hw = std::thread::hardware_concurrency();
  return hw ? static_cast<int>(hw) : 1;
}

}  // namespace ransform
