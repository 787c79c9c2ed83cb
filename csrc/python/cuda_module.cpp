// ransform._cuda: launchers for the CUDA kernels. Torch-agnostic: the Python side
// (ransform/kernels/) validates tensors and passes raw device pointers, sizes and the
// current CUDA stream handle; nothing here touches libtorch.
#include <cuda_runtime.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "cuda/intnet.cuh"
#include "cuda/likelihood.cuh"
#include "cuda/scale_index.cuh"
#include "python/cuda_util.hpp"

namespace py = pybind11;
using ransform::cuda::ConditionalArgs;
using ransform::py_cuda::check;
using ransform::py_cuda::ptr;

void bind_bottleneck(py::module_& m);  // cuda_bottleneck.cpp
void bind_tables(py::module_& m);      // cuda_tables.cpp

namespace {

int device_count() {
  int n = 0;
  // Without a driver or a GPU this reports an error: that is simply "no device".
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

ConditionalArgs args(std::uintptr_t values, std::uintptr_t scales, std::uintptr_t means, int64_t n, int family,
                     float scale_bound, float likelihood_bound) {
  if (n < 0) throw py::value_error("n must be >= 0");
  if (!(scale_bound > 0.f)) throw py::value_error("scale_bound must be positive");
  return ConditionalArgs{ptr<const float>(values),
                         ptr<const float>(scales),
                         ptr<const float>(means),
                         n,
                         ransform::family_from_code(family),
                         scale_bound,
                         likelihood_bound};
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "CUDA kernels of ransform; takes device pointers from ransform.kernels";
  m.def("device_count", &device_count, "Number of CUDA devices (0 without a driver or GPU)");
  bind_bottleneck(m);
  bind_tables(m);
  m.def(
      "conditional_likelihood_forward",
      [](std::uintptr_t values, std::uintptr_t scales, std::uintptr_t means, int64_t n, int family, float scale_bound,
         float likelihood_bound, std::uintptr_t likelihood, std::uintptr_t bits, std::uintptr_t stream) {
        const ConditionalArgs a = args(values, scales, means, n, family, scale_bound, likelihood_bound);
        {
          py::gil_scoped_release release;
          ransform::cuda::conditional_likelihood_forward(a, ptr<float>(likelihood), ptr<float>(bits),
                                                         reinterpret_cast<cudaStream_t>(stream));
        }
        check(cudaGetLastError(), "conditional_likelihood_forward");
      },
      py::arg("values"), py::arg("scales"), py::arg("means"), py::arg("n"), py::arg("family"), py::arg("scale_bound"),
      py::arg("likelihood_bound"), py::arg("likelihood"), py::arg("bits"), py::arg("stream"));
  m.def(
      "conditional_likelihood_backward",
      [](std::uintptr_t values, std::uintptr_t scales, std::uintptr_t means, int64_t n, int family, float scale_bound,
         float likelihood_bound, std::uintptr_t grad_likelihood, std::uintptr_t grad_values, std::uintptr_t grad_scales,
         std::uintptr_t grad_means, std::uintptr_t stream) {
        const ConditionalArgs a = args(values, scales, means, n, family, scale_bound, likelihood_bound);
        {
          py::gil_scoped_release release;
          ransform::cuda::conditional_likelihood_backward(a, ptr<const float>(grad_likelihood), ptr<float>(grad_values),
                                                          ptr<float>(grad_scales), ptr<float>(grad_means),
                                                          reinterpret_cast<cudaStream_t>(stream));
        }
        check(cudaGetLastError(), "conditional_likelihood_backward");
      },
      py::arg("values"), py::arg("scales"), py::arg("means"), py::arg("n"), py::arg("family"), py::arg("scale_bound"),
      py::arg("likelihood_bound"), py::arg("grad_likelihood"), py::arg("grad_values"), py::arg("grad_scales"),
      py::arg("grad_means"), py::arg("stream"));
  m.def(
      "int_conv2d",
      [](std::uintptr_t x, std::uintptr_t weight, std::uintptr_t bias, std::uintptr_t m_pos, std::uintptr_t m_neg,
         std::uintptr_t shift, int64_t cin, int64_t h, int64_t w, int64_t cout, int64_t k, int64_t stride,
         int64_t padding, int64_t output_padding, bool transposed, int out_bits, std::uintptr_t out,
         std::uintptr_t stream) {
        const ransform::intnet::ConvShape s{cin, h, w, cout, k, k, stride, padding, output_padding, transposed};
        if (cin < 1 || cout < 1 || k < 1 || stride < 1 || padding < 0 || output_padding < 0 || s.out_h() < 1 ||
            s.out_w() < 1 || (out_bits != 16 && out_bits != 32))
          throw py::value_error("invalid integer convolution shape");
        const ransform::intnet::Requant q{ptr<const int32_t>(bias), ptr<const int32_t>(m_pos),
                                          ptr<const int32_t>(m_neg), ptr<const int32_t>(shift),
                                          out_bits == 16 ? int64_t{32767} : int64_t{2147483647}};
        {
          py::gil_scoped_release release;
          ransform::cuda::int_conv2d(ptr<const int16_t>(x), ptr<const int16_t>(weight), q, s, ptr<void>(out), out_bits,
                                     reinterpret_cast<cudaStream_t>(stream));
        }
        check(cudaGetLastError(), "int_conv2d");
      },
      py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("m_pos"), py::arg("m_neg"), py::arg("shift"),
      py::arg("cin"), py::arg("h"), py::arg("w"), py::arg("cout"), py::arg("k"), py::arg("stride"), py::arg("padding"),
      py::arg("output_padding"), py::arg("transposed"), py::arg("out_bits"), py::arg("out"), py::arg("stream"),
      "Integer (transposed) convolution of docs/FORMAT.md section 11 on device pointers (ransform.portable.ops).");
  m.def(
      "scale_index",
      [](std::uintptr_t scales, int64_t n, std::uintptr_t thresholds, int count, std::uintptr_t rows,
         std::uintptr_t invalid, std::uintptr_t stream) {
        if (n < 0 || count < 0) throw py::value_error("n and count must be >= 0");
        {
          py::gil_scoped_release release;
          ransform::cuda::scale_index(ptr<const float>(scales), n, ptr<const float>(thresholds), count,
                                      ptr<int32_t>(rows), ptr<int>(invalid), reinterpret_cast<cudaStream_t>(stream));
        }
        check(cudaGetLastError(), "scale_index");
      },
      py::arg("scales"), py::arg("n"), py::arg("thresholds"), py::arg("count"), py::arg("rows"), py::arg("invalid"),
      py::arg("stream"));
}
