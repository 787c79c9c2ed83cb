#include <stdexcept>
#include <string>

#include "cuda/tables.cuh"

namespace ransform::cuda {
namespace {

constexpr int kThreads = 64;

int blocks_for(size_t n) { return static_cast<int>((n + kThreads - 1) / kThreads); }

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("build_scale_rows: ") + what + ": " + cudaGetErrorString(e));
}

// Device memory freed on scope exit (the builder throws on CUDA errors).
template <class T>
struct DeviceArray {
  T* data = nullptr;
  explicit DeviceArray(size_t n) { check(cudaMalloc(&data, (n ? n : 1) * sizeof(T)), "cudaMalloc"); }
  ~DeviceArray() { cudaFree(data); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
};

template <class T>
void upload(DeviceArray<T>& to, const std::vector<T>& from, cudaStream_t stream) {
  check(cudaMemcpyAsync(to.data, from.data(), from.size() * sizeof(T), cudaMemcpyHostToDevice, stream), "upload");
}

template <class T>
std::vector<T> download(const DeviceArray<T>& from, size_t n, cudaStream_t stream) {
  std::vector<T> to(n);
  check(cudaMemcpyAsync(to.data(), from.data, n * sizeof(T), cudaMemcpyDeviceToHost, stream), "download");
  check(cudaStreamSynchronize(stream), "synchronize");
  return to;
}

__global__ void bounds_kernel(Family family, const float* scales, int rows, int precision, double tail_mass,
                              int32_t* bounds) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j < rows) bounds[j] = support_radius(family, scales[j], tail_mass, max_row_radius(precision));
}

// Row j works in scratch + scratch_at[j] (8-byte units) and writes its frequencies at freqs + freqs_at[j].
__global__ void rows_kernel(Family family, const float* scales, const int32_t* bounds, int rows, int precision,
                            int version, double* scratch, const uint64_t* scratch_at, uint32_t* freqs,
                            const uint64_t* freqs_at, int32_t* radius) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= rows) return;
  const RowScratch s = carve_row_scratch(scratch + scratch_at[j], bounds[j]);
  radius[j] = build_scale_row(family, scales[j], bounds[j], precision, version, s, freqs + freqs_at[j]);
}

// Pair j (rows j, j + 1): code lengths of both rows, then the crossing by bisection.
__global__ void crossings_kernel(Family family, const float* scales, const int32_t* radius, int pairs, int precision,
                                 const uint32_t* freqs, const uint64_t* freqs_at, double* scratch,
                                 const uint64_t* scratch_at, double* crossings) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= pairs) return;
  const int32_t r0 = radius[j], r1 = radius[j + 1], big = r0 > r1 ? r0 : r1;
  double* len0 = scratch + scratch_at[j];
  double* len1 = len0 + 2 * r0 + 2;
  double* tails = len1 + 2 * r1 + 2;
  double* p = tails + big + 1;
  code_lengths_into(freqs + freqs_at[j], 2 * r0 + 2, precision, len0);
  code_lengths_into(freqs + freqs_at[j + 1], 2 * r1 + 2, precision, len1);
  crossings[j] = row_crossing(family, scales[j], scales[j + 1], r0, len0, r1, len1, tails, p);
}

__global__ void support_kernel(MixtureParams q, const float* w, const float* m, const float* s, int64_t n,
                               int32_t* offsets, int32_t* lengths, int* invalid) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t at = i * q.components;
    if (!mixture_support(q, w + at, m + at, s + at, offsets + i, lengths + i)) {
      offsets[i] = 0;
      lengths[i] = 1;
      *invalid = 1;
    }
  }
}

__global__ void frequencies_kernel(MixtureParams q, const float* w, const float* m, const float* s, int64_t n,
                                   const int32_t* offsets, const int32_t* lengths, int32_t width, uint32_t* freqs) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t at = i * q.components;
    uint32_t* row = freqs + i * width;
    const int32_t length = lengths[i] < width ? lengths[i] : width;
    if (length >= 2) mixture_frequencies(q, w + at, m + at, s + at, offsets[i], length, row);
    for (int32_t j = length < 2 ? 0 : length; j < width; ++j) row[j] = 0;
  }
}

int grid_for(int64_t n) {
  const int64_t b = (n + 255) / 256;
  return static_cast<int>(b < 65535 * 32 ? (b > 0 ? b : 1) : 65535 * 32);
}

}  // namespace

void mixture_support(const MixtureParams& q, const float* w, const float* m, const float* s, int64_t n,
                     int32_t* offsets, int32_t* lengths, int* invalid, cudaStream_t stream) {
  if (n > 0) support_kernel<<<grid_for(n), 256, 0, stream>>>(q, w, m, s, n, offsets, lengths, invalid);
}

void mixture_frequencies(const MixtureParams& q, const float* w, const float* m, const float* s, int64_t n,
                         const int32_t* offsets, const int32_t* lengths, int32_t width, uint32_t* freqs,
                         cudaStream_t stream) {
  if (n > 0) frequencies_kernel<<<grid_for(n), 256, 0, stream>>>(q, w, m, s, n, offsets, lengths, width, freqs);
}

ScaleRows build_scale_rows(Family family, const std::vector<float>& scales, int precision, double tail_mass,
                           int version, cudaStream_t stream) {
  const int rows = static_cast<int>(scales.size());
  DeviceArray<float> d_scales(rows);
  DeviceArray<int32_t> d_bounds(rows), d_radius(rows);
  upload(d_scales, scales, stream);
  bounds_kernel<<<blocks_for(rows), kThreads, 0, stream>>>(family, d_scales.data, rows, precision, tail_mass,
                                                           d_bounds.data);
  check(cudaGetLastError(), "bounds kernel");
  const std::vector<int32_t> bounds = download(d_bounds, rows, stream);

  // Each row gets its scratch and a frequency slot sized by its bound (the radius is <= it).
  std::vector<uint64_t> scratch_at(rows + 1, 0), freqs_at(rows + 1, 0);
  for (int j = 0; j < rows; ++j) {
    scratch_at[j + 1] = scratch_at[j] + row_scratch_bytes(bounds[j]) / sizeof(double) + 1;
    freqs_at[j + 1] = freqs_at[j] + 2 * static_cast<uint64_t>(bounds[j]) + 2;
  }
  DeviceArray<double> d_scratch(scratch_at[rows]);
  DeviceArray<uint32_t> d_freqs(freqs_at[rows]);
  DeviceArray<uint64_t> d_scratch_at(rows + 1), d_freqs_at(rows + 1);
  upload(d_scratch_at, scratch_at, stream);
  upload(d_freqs_at, freqs_at, stream);
  rows_kernel<<<blocks_for(rows), kThreads, 0, stream>>>(family, d_scales.data, d_bounds.data, rows, precision, version,
                                                         d_scratch.data, d_scratch_at.data, d_freqs.data,
                                                         d_freqs_at.data, d_radius.data);
  check(cudaGetLastError(), "rows kernel");

  ScaleRows out;
  out.radius = download(d_radius, rows, stream);
  const std::vector<uint32_t> freqs = download(d_freqs, freqs_at[rows], stream);
  for (int j = 0; j < rows; ++j) {
    const uint32_t* f = freqs.data() + freqs_at[j];
    out.freqs.emplace_back(f, f + 2 * out.radius[j] + 2);
  }
  if (rows < 2) return out;

  std::vector<uint64_t> pair_at(rows, 0);  // lengths of both rows, tails and pmf at the larger radius
  for (int j = 0; j + 1 < rows; ++j) {
    const uint64_t r0 = out.radius[j], r1 = out.radius[j + 1], big = r0 > r1 ? r0 : r1;
    pair_at[j + 1] = pair_at[j] + (2 * r0 + 2) + (2 * r1 + 2) + (big + 1) + (2 * big + 2);
  }
  DeviceArray<double> d_pair_scratch(pair_at[rows - 1]), d_crossings(rows - 1);
  DeviceArray<uint64_t> d_pair_at(rows);
  upload(d_pair_at, pair_at, stream);
  crossings_kernel<<<blocks_for(rows - 1), kThreads, 0, stream>>>(
      family, d_scales.data, d_radius.data, rows - 1, precision, d_freqs.data, d_freqs_at.data, d_pair_scratch.data,
      d_pair_at.data, d_crossings.data);
  check(cudaGetLastError(), "crossings kernel");
  out.crossings = download(d_crossings, rows - 1, stream);
  return out;
}

}  // namespace ransform::cuda
