// cpu_features.hpp: whether this CPU runs the AVX-512 kernels (the 8-lane decoder in
// vector_lanes.hpp, the erfc groups in detmath_many.hpp), and a switch that turns them off. The
// kernels give the portable code's bits, so the switch exists only to compare the two.
#pragma once

#include <atomic>

#if defined(__x86_64__) && defined(__GNUC__)
#define RANSFORM_AVX512_KERNELS 1
// A function compiled for AVX-512 inside a portable build; call it only where cpu_has_avx512().
#define RANSFORM_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,popcnt")))
#endif

namespace ransform {

// Off only to compare with the portable code (tests, benchmarks).
inline std::atomic<bool>& avx512_allowed() {
  static std::atomic<bool> allowed{true};
  return allowed;
}

inline bool cpu_has_avx512() {
#ifdef RANSFORM_AVX512_KERNELS
  static const bool has =
      __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  return has;
#else
  return false;
#endif
}

inline bool use_avx512() { return cpu_has_avx512() && avx512_allowed().load(std::memory_order_relaxed); }

}  // namespace ransform
