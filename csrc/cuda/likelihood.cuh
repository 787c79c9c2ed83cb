// Fused likelihoods of the conditional entropy models (Gaussian, Laplace, logistic), forward
// and backward in one pass over the elements, with the scale bound and the likelihood bound
// of the PyTorch path (ransform/ops.py: max(x, bound) whose gradient passes where x >= bound
// or where it pushes x up).
//
//   d = |v - m|, s = max(scale, scale_bound), u = (d - 1/2) / s, l = (d + 1/2) / s
//   lik = T(u) - T(l)          T: the unit family's upper tail, p = -T' its density
//   dlik/dd = (p(u) - p(l)) * (-1 / s)      dlik/ds = (p(u) u - p(l) l) / s
#pragma once

#include <cstdint>

#include "core/families.hpp"  // Family: the one definition, shared with the CPU and Python

namespace ransform::cuda {

// The unit family's upper tail and density in float32, for the likelihoods (the tables use
// the double ransform::upper_tail of families.hpp, which must match the CPU bit for bit).
__device__ __forceinline__ float upper_tail(Family family, float t) {
  switch (family) {
    case Family::kGaussian: return 0.5f * erfcf(t * 0.70710678118654752f);
    case Family::kLaplace: {
      const float e = 0.5f * expf(-fabsf(t));
      return t >= 0.f ? e : 1.f - e;
    }
    default: return 1.f / (1.f + expf(t));
  }
}

__device__ __forceinline__ float density(Family family, float t) {
  switch (family) {
    case Family::kGaussian: return 0.39894228040143268f * expf(-0.5f * t * t);
    case Family::kLaplace: return 0.5f * expf(-fabsf(t));
    default: {
      const float e = expf(-fabsf(t));  // symmetric: sigmoid(t) (1 - sigmoid(t))
      return e / ((1.f + e) * (1.f + e));
    }
  }
}

struct ConditionalArgs {
  const float* values;
  const float* scales;
  const float* means;  // may be null: zero means
  int64_t n;
  Family family;
  float scale_bound;
  float likelihood_bound;  // <= 0: no bound
};

void conditional_likelihood_forward(const ConditionalArgs& a, float* likelihood, float* bits, cudaStream_t stream);
void conditional_likelihood_backward(const ConditionalArgs& a, const float* grad_likelihood, float* grad_values,
                                     float* grad_scales, float* grad_means, cudaStream_t stream);

}  // namespace ransform::cuda
