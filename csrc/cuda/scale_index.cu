#include "cuda/scale_index.cuh"

namespace ransform::cuda {
namespace {

__global__ void scale_index_kernel(const float* scales, int64_t n, const float* thresholds, int count, int32_t* rows,
                                   int* invalid) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float s = scales[i];
    if (!(s >= 0.f) || isinf(s)) {  // NaN fails the comparison
      *invalid = 1;
      rows[i] = 0;
      continue;
    }
    int lo = 0, hi = count;  // first threshold > s
    while (lo < hi) {
      const int mid = (lo + hi) >> 1;
      if (thresholds[mid] <= s)
        lo = mid + 1;
      else
        hi = mid;
    }
    rows[i] = lo;
  }
}

}  // namespace

void scale_index(const float* scales, int64_t n, const float* thresholds, int count, int32_t* rows, int* invalid,
                 cudaStream_t stream) {
  if (n == 0) return;
  constexpr int kThreads = 256;
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  scale_index_kernel<<<static_cast<int>(blocks < 65535 * 32 ? blocks : 65535 * 32), kThreads, 0, stream>>>(
      scales, n, thresholds, count, rows, invalid);
}

}  // namespace ransform::cuda
