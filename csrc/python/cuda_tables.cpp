// Bindings of the GPU table builders (csrc/cuda/tables.cu). Scale tables: host arrays in and
// out (a few hundred scales). Mixtures: raw device pointers from ransform/kernels/rows.py, like the
// likelihood kernels.
#include <cuda_runtime.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "core/scale_table.hpp"
#include "cuda/tables.cuh"
#include "python/cuda_util.hpp"
#include "python/scale_rows_py.hpp"

namespace py = pybind11;
using namespace ransform;

using py_cuda::check;
using py_cuda::ptr;

void bind_tables(py::module_& m) {
  m.def(
      "build_scale_rows",
      [](const std::string& family, const py::handle& scales_obj, int precision, double tail_mass, int version,
         std::uintptr_t stream) {
        auto a = py_arrays::contiguous<float>(scales_obj, "scales", "float32");
        const std::vector<float> scales(a.data(), a.data() + a.size());
        ScaleTable::check_arguments(scales, precision, tail_mass, version);  // the GPU gets what the CPU accepts
        const Family f = family_from_name(family);
        ScaleRows rows;
        {
          py::gil_scoped_release release;
          rows =
              cuda::build_scale_rows(f, scales, precision, tail_mass, version, reinterpret_cast<cudaStream_t>(stream));
        }
        return py_arrays::scale_rows_to_python(rows);
      },
      py::arg("family"), py::arg("scales"), py::arg("precision"), py::arg("tail_mass"), py::arg("version"),
      py::arg("stream"),
      "The rows and crossings of a scale table built on the GPU: (radius, flat frequencies, crossings).");
  m.def(
      "mixture_support",
      [](std::uintptr_t w, std::uintptr_t mu, std::uintptr_t s, int64_t n, int components, const std::string& family,
         double deviations, int32_t max_symbols, int precision, std::uintptr_t offsets, std::uintptr_t lengths,
         std::uintptr_t invalid, std::uintptr_t stream) {
        if (n < 0) throw py::value_error("n must be >= 0");
        const MixtureParams q =
            mixture_params(family_from_name(family), components, deviations, max_symbols, precision);
        cuda::mixture_support(q, ptr<const float>(w), ptr<const float>(mu), ptr<const float>(s), n,
                              ptr<int32_t>(offsets), ptr<int32_t>(lengths), ptr<int>(invalid),
                              reinterpret_cast<cudaStream_t>(stream));
        check(cudaGetLastError(), "mixture_support");
      },
      py::arg("weights"), py::arg("means"), py::arg("scales"), py::arg("n"), py::arg("components"), py::arg("family"),
      py::arg("deviations"), py::arg("max_symbols"), py::arg("precision"), py::arg("offsets"), py::arg("lengths"),
      py::arg("invalid"), py::arg("stream"));
  m.def(
      "mixture_frequencies",
      [](std::uintptr_t w, std::uintptr_t mu, std::uintptr_t s, int64_t n, int components, const std::string& family,
         double deviations, int32_t max_symbols, int precision, std::uintptr_t offsets, std::uintptr_t lengths,
         int32_t width, std::uintptr_t freqs, std::uintptr_t stream) {
        if (n < 0 || width < 1) throw py::value_error("n must be >= 0 and width >= 1");
        const MixtureParams q =
            mixture_params(family_from_name(family), components, deviations, max_symbols, precision);
        cuda::mixture_frequencies(q, ptr<const float>(w), ptr<const float>(mu), ptr<const float>(s), n,
                                  ptr<const int32_t>(offsets), ptr<const int32_t>(lengths), width, ptr<uint32_t>(freqs),
                                  reinterpret_cast<cudaStream_t>(stream));
        check(cudaGetLastError(), "mixture_frequencies");
      },
      py::arg("weights"), py::arg("means"), py::arg("scales"), py::arg("n"), py::arg("components"), py::arg("family"),
      py::arg("deviations"), py::arg("max_symbols"), py::arg("precision"), py::arg("offsets"), py::arg("lengths"),
      py::arg("width"), py::arg("freqs"), py::arg("stream"));
}
