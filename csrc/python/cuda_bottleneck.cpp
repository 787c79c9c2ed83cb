// ransform._cuda bindings of the EntropyBottleneck likelihood kernels (csrc/cuda/bottleneck.cuh).
// Torch-agnostic like cuda_module.cpp: ransform/kernels/fused_bottleneck.py packs the parameters,
// validates the tensors and passes raw device pointers and the current stream.
#include <cuda_runtime.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "cuda/bottleneck.cuh"
#include "python/cuda_util.hpp"

namespace py = pybind11;
using ransform::cuda::BottleneckArgs;
using ransform::py_cuda::check;
using ransform::py_cuda::ptr;

namespace {

std::vector<std::pair<int, int>> shapes() {
  std::vector<std::pair<int, int>> out;
  for (const auto& s : ransform::cuda::kNetShapes) out.emplace_back(s.width, s.hidden);
  return out;
}

BottleneckArgs args(std::uintptr_t values, std::uintptr_t params, int64_t channels, int64_t n, int width, int hidden,
                    float likelihood_bound) {
  if (n < 0) throw py::value_error("n must be >= 0");
  // Channels are the grid's y dimension.
  if (channels < 0 || channels > 65535) throw py::value_error("channels must be in 0..65535");
  if (!ransform::cuda::bottleneck_supported(width, hidden)) {
    throw py::value_error("no kernel for width " + std::to_string(width) + " and " + std::to_string(hidden) +
                          " hidden layers (see bottleneck_shapes())");
  }
  if (n > 0 && channels > 0 && (values == 0 || params == 0)) throw py::value_error("values and params must be set");
  return BottleneckArgs{
      ptr<const float>(values), ptr<const float>(params), static_cast<int>(channels), n, width, hidden,
      likelihood_bound};
}

}  // namespace

void bind_bottleneck(py::module_& m) {
  m.def("bottleneck_shapes", &shapes,
        "(width, hidden layers) of the compiled networks; smaller networks run padded in one of them");
  m.def(
      "bottleneck_param_count", [](int width, int hidden) { return ransform::cuda::param_count(width, hidden); },
      py::arg("width"), py::arg("hidden"), "Parameters per channel of the packed network");
  m.def(
      "bottleneck_likelihood_forward",
      [](std::uintptr_t values, std::uintptr_t params, int64_t channels, int64_t n, int width, int hidden,
         float likelihood_bound, std::uintptr_t likelihood, std::uintptr_t bits, std::uintptr_t stream) {
        const BottleneckArgs a = args(values, params, channels, n, width, hidden, likelihood_bound);
        {
          py::gil_scoped_release release;
          ransform::cuda::bottleneck_likelihood_forward(a, ptr<float>(likelihood), ptr<float>(bits),
                                                        reinterpret_cast<cudaStream_t>(stream));
        }
        check(cudaGetLastError(), "bottleneck_likelihood_forward");
      },
      py::arg("values"), py::arg("params"), py::arg("channels"), py::arg("n"), py::arg("width"), py::arg("hidden"),
      py::arg("likelihood_bound"), py::arg("likelihood"), py::arg("bits"), py::arg("stream"));
  m.def(
      "bottleneck_likelihood_backward",
      [](std::uintptr_t values, std::uintptr_t params, int64_t channels, int64_t n, int width, int hidden,
         float likelihood_bound, std::uintptr_t grad_likelihood, std::uintptr_t grad_values, std::uintptr_t grad_params,
         std::uintptr_t stream) {
        const BottleneckArgs a = args(values, params, channels, n, width, hidden, likelihood_bound);
        if (n > 0 && channels > 0 && grad_likelihood == 0) throw py::value_error("grad_likelihood must be set");
        {
          py::gil_scoped_release release;
          ransform::cuda::bottleneck_likelihood_backward(a, ptr<const float>(grad_likelihood), ptr<float>(grad_values),
                                                         ptr<float>(grad_params),
                                                         reinterpret_cast<cudaStream_t>(stream));
        }
        check(cudaGetLastError(), "bottleneck_likelihood_backward");
      },
      py::arg("values"), py::arg("params"), py::arg("channels"), py::arg("n"), py::arg("width"), py::arg("hidden"),
      py::arg("likelihood_bound"), py::arg("grad_likelihood"), py::arg("grad_values"), py::arg("grad_params"),
      py::arg("stream"));
}
