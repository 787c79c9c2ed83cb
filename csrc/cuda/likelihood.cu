#include "cuda/likelihood.cuh"

namespace ransform::cuda {
namespace {

constexpr int kThreads = 256;

int blocks_for(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<int>(b < 65535 * 32 ? (b > 0 ? b : 1) : 65535 * 32);
}

__global__ void forward_kernel(ConditionalArgs a, float* likelihood, float* bits) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < a.n; i += int64_t(gridDim.x) * blockDim.x) {
    const float d = fabsf(a.means ? a.values[i] - a.means[i] : a.values[i]);
    const float s = fmaxf(a.scales[i], a.scale_bound);
    float lik = upper_tail(a.family, (d - 0.5f) / s) - upper_tail(a.family, (d + 0.5f) / s);
    if (a.likelihood_bound > 0.f) lik = fmaxf(lik, a.likelihood_bound);
    likelihood[i] = lik;
    if (bits) bits[i] = -log2f(lik);
  }
}

__global__ void backward_kernel(ConditionalArgs a, const float* grad_likelihood, float* grad_values, float* grad_scales,
                                float* grad_means) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < a.n; i += int64_t(gridDim.x) * blockDim.x) {
    const float centred = a.means ? a.values[i] - a.means[i] : a.values[i];
    const float d = fabsf(centred);
    const float scale = a.scales[i];
    const float s = fmaxf(scale, a.scale_bound);
    const float u = (d - 0.5f) / s, l = (d + 0.5f) / s;
    const float lik = upper_tail(a.family, u) - upper_tail(a.family, l);
    float g = grad_likelihood[i];
    // Likelihood bound: the gradient passes above the bound, or where it raises the value.
    if (a.likelihood_bound > 0.f && !(lik >= a.likelihood_bound || g < 0.f)) g = 0.f;
    const float pu = density(a.family, u), pl = density(a.family, l);
    const float g_d = g * (pl - pu) / s;
    float g_s = g * (pu * u - pl * l) / s;
    if (!(scale >= a.scale_bound || g_s < 0.f)) g_s = 0.f;  // scale bound, same rule
    const float sign = centred > 0.f ? 1.f : (centred < 0.f ? -1.f : 0.f);
    if (grad_values) grad_values[i] = g_d * sign;
    if (grad_means) grad_means[i] = -g_d * sign;
    if (grad_scales) grad_scales[i] = g_s;
  }
}

}  // namespace

void conditional_likelihood_forward(const ConditionalArgs& a, float* likelihood, float* bits, cudaStream_t stream) {
  if (a.n == 0) return;
  forward_kernel<<<blocks_for(a.n), kThreads, 0, stream>>>(a, likelihood, bits);
}

void conditional_likelihood_backward(const ConditionalArgs& a, const float* grad_likelihood, float* grad_values,
                                     float* grad_scales, float* grad_means, cudaStream_t stream) {
  if (a.n == 0) return;
  backward_kernel<<<blocks_for(a.n), kThreads, 0, stream>>>(a, grad_likelihood, grad_values, grad_scales, grad_means);
}

}  // namespace ransform::cuda
