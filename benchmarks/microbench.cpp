// microbench.cpp: C++ throughput of the coder on generated workloads (no Python in the loop).
//   cmake -S . -B build -DRANSFORM_BENCHMARKS=ON -DRANSFORM_PYTHON=OFF && cmake --build build
//   ./build/ransform_bench [threads]
// W1: 4,718,592 symbols, Gaussian scales log-uniform in [0.11, 20], values rint(scale * N(0,1)).
// W3: W1 with 0.01 % of the values replaced by +-1000 / +-100000 (escape path).
// Prints Msym/s for the scale -> index map, encode and decode, best of 5.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "core/scale_table.hpp"
#include "core/stream.hpp"

using namespace ransform;
using Clock = std::chrono::steady_clock;

template <class Fn>
double best_seconds(Fn fn, int reps = 5) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return best;
}

struct Workload {
  const char* name;
  std::vector<float> scales;
  std::vector<int32_t> values;
};

Workload make_w1(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(std::log(0.11), std::log(20.0));
  std::normal_distribution<double> z;
  Workload w{"W1", std::vector<float>(n), std::vector<int32_t>(n)};
  for (size_t i = 0; i < n; ++i) {
    w.scales[i] = static_cast<float>(std::exp(u(rng)));
    w.values[i] = static_cast<int32_t>(std::lrint(w.scales[i] * z(rng)));
  }
  return w;
}

Workload make_w3(size_t n, uint64_t seed) {
  Workload w = make_w1(n, seed);
  w.name = "W3";
  std::mt19937_64 rng(seed + 1);
  const int32_t outliers[] = {1000, -1000, 100000, -100000};
  for (size_t k = 0; k < n / 10000; ++k) w.values[rng() % n] = outliers[rng() % 4];
  return w;
}

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 1;
  const size_t n = 16 * 192 * 32 * 48;
  const ScaleTable table(Family::kGaussian, default_scales(), 16, 1e-9);
  std::printf("ransform C++ microbenchmark, %zu symbols, threads=%d, best of 5\n", n, threads);
  std::printf("%-4s %10s %10s %10s %12s\n", "", "index", "encode", "decode", "bytes");
  for (const Workload& w : {make_w1(n, 1), make_w3(n, 1)}) {
    std::vector<int32_t> idx(n), out(n);
    const double t_index = best_seconds([&] { table.index(w.scales.data(), idx.data(), n); });
    EncodedStream s;
    const double t_enc =
        best_seconds([&] { s = encode_stream(table.tables(), w.values.data(), idx.data(), n, threads); });
    std::vector<uint8_t> bytes(s.size());
    s.write_to(bytes.data());
    const double t_dec = best_seconds(
        [&] { decode_stream(table.tables(), bytes.data(), bytes.size(), idx.data(), out.data(), n, threads); });
    if (out != w.values) {
      std::printf("%s: ROUND TRIP FAILED\n", w.name);
      return 1;
    }
    std::printf("%-4s %7.1f Ms %7.1f Ms %7.1f Ms %12zu   (Msym/s)\n", w.name, n / t_index / 1e6, n / t_enc / 1e6,
                n / t_dec / 1e6, bytes.size());
  }
  return 0;
}
