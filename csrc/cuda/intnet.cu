#include "cuda/intnet.cuh"

namespace ransform::cuda {
namespace {

// One thread per output element; a transposed convolution gathers the inputs that land on
// its element instead of scattering (no atomics). Sums modulo 2^32 make the order irrelevant.
template <class Out>
__global__ void int_conv2d_kernel(const int16_t* x, const int16_t* weight, intnet::Requant q, intnet::ConvShape s,
                                  Out* out) {
  const int64_t oh = s.out_h(), ow = s.out_w(), total = s.cout * oh * ow;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t co = i / (oh * ow), oy = (i / ow) % oh, ox = i % ow;
    uint32_t acc = 0;
    for (int64_t ky = 0; ky < s.kh; ++ky)
      for (int64_t kx = 0; kx < s.kw; ++kx) {
        int64_t iy, ix;
        if (s.transposed) {  // oy = iy * stride - pad + ky
          const int64_t ny = oy + s.pad - ky, nx = ox + s.pad - kx;
          if (ny < 0 || nx < 0 || ny % s.stride || nx % s.stride) continue;
          iy = ny / s.stride;
          ix = nx / s.stride;
        } else {
          iy = oy * s.stride - s.pad + ky;
          ix = ox * s.stride - s.pad + kx;
        }
        if (iy < 0 || iy >= s.h || ix < 0 || ix >= s.w) continue;
        for (int64_t ci = 0; ci < s.cin; ++ci) {
          const int64_t wi =
              s.transposed ? ((ci * s.cout + co) * s.kh + ky) * s.kw + kx : ((co * s.cin + ci) * s.kh + ky) * s.kw + kx;
          acc += static_cast<uint32_t>(int32_t{weight[wi]} * int32_t{x[(ci * s.h + iy) * s.w + ix]});
        }
      }
    out[i] = static_cast<Out>(intnet::requantize(acc, q, co));
  }
}

}  // namespace

void int_conv2d(const int16_t* x, const int16_t* weight, const intnet::Requant& q, const intnet::ConvShape& s,
                void* out, int out_bits, cudaStream_t stream) {
  const int64_t total = s.cout * s.out_h() * s.out_w();
  if (total == 0) return;
  constexpr int kThreads = 256;
  const int64_t blocks = (total + kThreads - 1) / kThreads;
  const int grid = static_cast<int>(blocks < 65535 * 32 ? blocks : 65535 * 32);
  if (out_bits == 16)
    int_conv2d_kernel<<<grid, kThreads, 0, stream>>>(x, weight, q, s, static_cast<int16_t*>(out));
  else
    int_conv2d_kernel<<<grid, kThreads, 0, stream>>>(x, weight, q, s, static_cast<int32_t*>(out));
}

}  // namespace ransform::cuda
