#include <iterator>

#include "cuda/bottleneck.cuh"

namespace ransform::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
// Elements per thread the grid aims at: the forward amortizes loading the parameters, the
// backward the block reduction of the parameter gradients (about one element's work).
constexpr int64_t kForwardPerThread = 4;
constexpr int64_t kBackwardPerThread = 16;

// Blocks along K for each channel (gridDim.y is the channel).
dim3 grid_for(const BottleneckArgs& a, int64_t per_thread) {
  const int64_t chunks = (a.n + kThreads * per_thread - 1) / (kThreads * per_thread);
  return dim3(static_cast<unsigned>(chunks < 65535 ? chunks : 65535), static_cast<unsigned>(a.channels));
}

// Calls f(Net<W, H>{}) for the compiled shape (width, hidden); false when there is none.
template <int I = 0, class F>
bool dispatch(int width, int hidden, F&& f) {
  if constexpr (I < static_cast<int>(std::size(kNetShapes))) {
    constexpr NetShape s = kNetShapes[I];
    if (s.width == width && s.hidden == hidden) {
      f(Net<s.width, s.hidden>{});
      return true;
    }
    return dispatch<I + 1>(width, hidden, f);
  } else {
    return false;
  }
}

// The block's channel parameters into shared memory: every thread reads all of them.
template <class N>
__device__ void load_params(const float* params, float* shared) {
  const float* own = params + int64_t(blockIdx.y) * N::kParams;
  for (int i = threadIdx.x; i < N::kParams; i += blockDim.x) shared[i] = own[i];
  __syncthreads();
}

// Calls f(i) for every element index i of the block's channel this thread owns (grid-stride along K).
template <class F>
__device__ void for_each_element(const BottleneckArgs& a, F&& f) {
  const int64_t base = int64_t(blockIdx.y) * a.n;
  for (int64_t k = blockIdx.x * int64_t(kThreads) + threadIdx.x; k < a.n; k += int64_t(gridDim.x) * kThreads) {
    f(base + k);
  }
}

// The density network traced at both ends of x's quantization bin, x - 1/2 and x + 1/2.
template <class N>
struct BinEnds {
  Trace<N::kWidth, N::kHidden> lower, upper;
  __device__ BinEnds(const float* p, float x) {
    evaluate(p, x - 0.5f, lower);
    evaluate(p, x + 0.5f, upper);
  }
};

template <class N>
__global__ void __launch_bounds__(kThreads) forward_kernel(BottleneckArgs a, float* likelihood, float* bits) {
  __shared__ float p[N::kParams];
  load_params<N>(a.params, p);
  for_each_element(a, [&](int64_t i) {
    const BinEnds<N> ends(p, a.values[i]);
    float lik = interval_likelihood(ends.lower.f, ends.upper.f).lik;
    if (a.likelihood_bound > 0.f) lik = fmaxf(lik, a.likelihood_bound);
    if (likelihood) likelihood[i] = lik;
    if (bits) bits[i] = -log2f(lik);
  });
}

// Sums acc over the block (warp shuffles, then the warps' partials) into out with one atomic
// per parameter and block.
template <int P>
__device__ void reduce_block(float (&acc)[P], float (*partial)[P], float* out) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
  for (int i = 0; i < P; ++i) {
    float v = acc[i];
#pragma unroll
    for (int s = 16; s > 0; s /= 2) v += __shfl_down_sync(0xffffffffu, v, s);
    if (lane == 0) partial[warp][i] = v;
  }
  __syncthreads();
  for (int i = threadIdx.x; i < P; i += kThreads) {
    float sum = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) sum += partial[w][i];
    atomicAdd(out + i, sum);
  }
}

// Recomputes the forward (nothing is saved between the passes), then backpropagates both logits.
template <class N>
__global__ void __launch_bounds__(kThreads)
    backward_kernel(BottleneckArgs a, const float* grad_likelihood, float* grad_values, float* grad_params) {
  __shared__ float p[N::kParams];
  __shared__ float partial[kWarps][N::kParams];
  load_params<N>(a.params, p);
  float acc[N::kParams];
#pragma unroll
  for (int i = 0; i < N::kParams; ++i) acc[i] = 0.f;
  for_each_element(a, [&](int64_t i) {
    const BinEnds<N> ends(p, a.values[i]);
    const IntervalLikelihood r = interval_likelihood(ends.lower.f, ends.upper.f);
    float g = grad_likelihood[i];
    // Likelihood bound: the gradient passes above the bound, or where it raises the value.
    if (a.likelihood_bound > 0.f && !(r.lik >= a.likelihood_bound || g < 0.f)) g = 0.f;
    const float dx =
        backpropagate(p, ends.lower, g * r.d_lower, acc) + backpropagate(p, ends.upper, g * r.d_upper, acc);
    if (grad_values) grad_values[i] = dx;
  });
  if (grad_params) reduce_block(acc, partial, grad_params + int64_t(blockIdx.y) * N::kParams);
}

}  // namespace

bool bottleneck_supported(int width, int hidden) {
  return dispatch(width, hidden, [](auto) {});
}

void bottleneck_likelihood_forward(const BottleneckArgs& a, float* likelihood, float* bits, cudaStream_t stream) {
  if (a.n == 0 || a.channels == 0) return;
  dispatch(a.width, a.hidden, [&](auto net) {
    forward_kernel<decltype(net)><<<grid_for(a, kForwardPerThread), kThreads, 0, stream>>>(a, likelihood, bits);
  });
}

void bottleneck_likelihood_backward(const BottleneckArgs& a, const float* grad_likelihood, float* grad_values,
                                    float* grad_params, cudaStream_t stream) {
  // The kernel accumulates parameter gradients over K with atomics, onto zeros.
  if (grad_params && a.channels > 0) {
    cudaMemsetAsync(grad_params, 0, sizeof(float) * a.channels * param_count(a.width, a.hidden), stream);
  }
  if (a.n == 0 || a.channels == 0) return;
  dispatch(a.width, a.hidden, [&](auto net) {
    backward_kernel<decltype(net)>
        <<<grid_for(a, kBackwardPerThread), kThreads, 0, stream>>>(a, grad_likelihood, grad_values, grad_params);
  });
}

}  // namespace ransform::cuda
