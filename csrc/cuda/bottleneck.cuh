// Fused likelihood of the EntropyBottleneck (ransform/entropy_models/bottleneck.py), forward
// and backward, with the likelihood bound of the PyTorch path (ransform/ops.py).
//
// Each channel has a monotone network f: R -> R, the logit of its CDF:
//   layer 0        z = M0 x + b0   (M0: W x 1)    h = z + a0 tanh(z)
//   layer l < H    z = Ml h + bl   (Ml: W x W)    h = z + al tanh(z)
//   layer H        f = MH h + bH   (MH: 1 x W)
// with the effective parameters M = softplus(matrix), a = tanh(factor) computed by the caller,
// which also chains their derivatives. Narrower or shallower networks run exactly in a wider,
// deeper shape: zero rows and columns add exact zeros, and a layer M = I, b = 0, a = 0 is the
// identity. The likelihood of x, on the side of the median where both CDF values are small:
//   l = f(x - 1/2), u = f(x + 1/2), s = -sign(l + u), lik = |sigmoid(s u) - sigmoid(s l)|
//   dlik/du = sign(d) s sigmoid'(u), dlik/dl = -sign(d) s sigmoid'(l), d = sigmoid(s u) - sigmoid(s l)
// (s is held constant, as the PyTorch path detaches it).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#ifdef __CUDACC__
#include "cuda/likelihood.cuh"
#endif

namespace ransform::cuda {

// One channel's parameters lie consecutively, layer by layer, each as M (row-major, out x in),
// b, then a (the output layer has none): W + W + W, then W*W + W + W per hidden layer, then W + 1.
__host__ __device__ constexpr int layer_offset(int width, int layer) {
  return layer == 0 ? 0 : 3 * width + (layer - 1) * (width * width + 2 * width);
}

__host__ __device__ constexpr int param_count(int width, int hidden) { return layer_offset(width, hidden) + width + 1; }

template <int W, int H>
struct Net {
  static_assert(W >= 1 && H >= 1, "a network has at least one gated layer");
  static constexpr int kWidth = W;
  static constexpr int kHidden = H;
  static constexpr int kParams = param_count(W, H);
  __host__ __device__ static constexpr int offset(int layer) { return layer_offset(W, layer); }
};

struct NetShape {
  int width, hidden;
};

// The shapes kernels are compiled for; a network runs in the smallest that holds it. (3, 4) is
// the default (3, 3, 3, 3) filters exactly; the others pad.
inline constexpr NetShape kNetShapes[] = {{3, 4}, {3, 8}, {8, 4}, {8, 8}};

#ifdef __CUDACC__  // the device core; the bindings need only the shapes and the launchers
// What the backward needs of one evaluation of f.
template <int W, int H>
struct Trace {
  float x;
  float h[H][W];  // output of gated layer l, the input of layer l + 1
  float t[H][W];  // tanh(z) of gated layer l
  float f;
};

// Gated output z + a tanh(z); records tanh(z).
__device__ __forceinline__ float gate(float z, float a, float& t) {
  t = tanhf(z);
  return z + a * t;
}

template <int W, int H>
__device__ __forceinline__ void evaluate(const float* p, float x, Trace<W, H>& tr) {
  using N = Net<W, H>;
  tr.x = x;
#pragma unroll
  for (int o = 0; o < W; ++o) tr.h[0][o] = gate(p[o] * x + p[W + o], p[2 * W + o], tr.t[0][o]);
#pragma unroll
  for (int l = 1; l < H; ++l) {
    const float* m = p + N::offset(l);
#pragma unroll
    for (int o = 0; o < W; ++o) {
      float z = m[W * W + o];
#pragma unroll
      for (int i = 0; i < W; ++i) z += m[o * W + i] * tr.h[l - 1][i];
      tr.h[l][o] = gate(z, m[W * W + W + o], tr.t[l][o]);
    }
  }
  const float* m = p + N::offset(H);
  float f = m[W];
#pragma unroll
  for (int i = 0; i < W; ++i) f += m[i] * tr.h[H - 1][i];
  tr.f = f;
}

// dh -> dz through a gate, adding dL/da to acc_a: d(z + a tanh z)/dz = 1 + a (1 - tanh^2 z).
__device__ __forceinline__ float gate_backward(float dh, float a, float t, float& acc_a) {
  acc_a += dh * t;
  return dh * (1.f + a * (1.f - t * t));
}

// Adds g * df/dparams to acc and returns g * df/dx.
template <int W, int H>
__device__ __forceinline__ float backpropagate(const float* p, const Trace<W, H>& tr, float g,
                                               float (&acc)[Net<W, H>::kParams]) {
  using N = Net<W, H>;
  float dh[W];
  {
    constexpr int m = N::offset(H);
#pragma unroll
    for (int i = 0; i < W; ++i) {
      acc[m + i] += g * tr.h[H - 1][i];
      dh[i] = g * p[m + i];
    }
    acc[m + W] += g;
  }
#pragma unroll
  for (int l = H - 1; l >= 1; --l) {
    const int m = N::offset(l), b = m + W * W, a = b + W;
    float dz[W];
#pragma unroll
    for (int o = 0; o < W; ++o) {
      dz[o] = gate_backward(dh[o], p[a + o], tr.t[l][o], acc[a + o]);
      acc[b + o] += dz[o];
    }
#pragma unroll
    for (int i = 0; i < W; ++i) {
      float s = 0.f;
#pragma unroll
      for (int o = 0; o < W; ++o) {
        acc[m + o * W + i] += dz[o] * tr.h[l - 1][i];
        s += p[m + o * W + i] * dz[o];
      }
      dh[i] = s;
    }
  }
  float dx = 0.f;
#pragma unroll
  for (int o = 0; o < W; ++o) {
    const float dz = gate_backward(dh[o], p[2 * W + o], tr.t[0][o], acc[2 * W + o]);
    acc[W + o] += dz;
    acc[o] += dz * tr.x;
    dx += p[o] * dz;
  }
  return dx;
}

// sigmoid(y) is the logistic upper tail at -y.
__device__ __forceinline__ float sigmoid(float y) { return upper_tail(Family::kLogistic, -y); }

struct IntervalLikelihood {
  float lik, d_lower, d_upper;  // and its derivatives wrt the two logits
};

__device__ __forceinline__ IntervalLikelihood interval_likelihood(float lower, float upper) {
  const float sum = lower + upper;
  const float s = sum > 0.f ? -1.f : (sum < 0.f ? 1.f : 0.f);
  const float d = sigmoid(s * upper) - sigmoid(s * lower);
  const float sd = d > 0.f ? s : (d < 0.f ? -s : 0.f);  // sign(d) s: |.| has no slope at 0
  // sigmoid' from the logistic density, exact in both tails (unlike p (1 - p)).
  return {fabsf(d), -sd * density(Family::kLogistic, lower), sd * density(Family::kLogistic, upper)};
}

#endif  // __CUDACC__

struct BottleneckArgs {
  const float* values;  // (channels, n), channel-major
  const float* params;  // (channels, param_count(width, hidden))
  int channels;
  int64_t n;
  int width, hidden;       // one of kNetShapes
  float likelihood_bound;  // <= 0: no bound
};

bool bottleneck_supported(int width, int hidden);

// likelihood and bits (-log2 of the likelihood) may each be null.
void bottleneck_likelihood_forward(const BottleneckArgs& a, float* likelihood, float* bits, cudaStream_t stream);
// grad_values and grad_params may each be null; grad_params (channels x params) is overwritten.
void bottleneck_likelihood_backward(const BottleneckArgs& a, const float* grad_likelihood, float* grad_values,
                                    float* grad_params, cudaStream_t stream);

}  // namespace ransform::cuda
