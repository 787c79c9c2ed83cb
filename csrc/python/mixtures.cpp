// mixtures.cpp: binding of the CPU mixture-row builder (core/mixture_rows.hpp); the GPU's is in
// cuda_tables.cpp and gives the same bits.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <string>
#include <vector>

#include "core/mixture_rows.hpp"
#include "python/arrays.hpp"

namespace py = pybind11;
using namespace ransform;
using py_arrays::contiguous;

namespace {

py::tuple mixture_rows(const py::handle& w_obj, const py::handle& m_obj, const py::handle& s_obj,
                       const std::string& family, double deviations, int32_t max_symbols, int precision, int threads) {
  auto w = contiguous<float>(w_obj, "weights", "float32");
  auto mu = contiguous<float>(m_obj, "means", "float32");
  auto s = contiguous<float>(s_obj, "scales", "float32");
  if (w.ndim() != 2 || mu.ndim() != 2 || s.ndim() != 2 || w.shape(0) != mu.shape(0) || w.shape(0) != s.shape(0) ||
      w.shape(1) != mu.shape(1) || w.shape(1) != s.shape(1))
    throw py::value_error("weights, means and scales must all have the shape (elements, components)");
  const int64_t n = w.shape(0);
  const MixtureParams q =
      mixture_params(family_from_name(family), static_cast<int>(w.shape(1)), deviations, max_symbols, precision);
  py::array_t<int32_t> offsets(n), lengths(n);
  int64_t bad;
  {
    py::gil_scoped_release release;
    bad =
        mixture_supports(q, w.data(), mu.data(), s.data(), n, offsets.mutable_data(), lengths.mutable_data(), threads);
  }
  if (bad != n)
    throw py::value_error("mixture parameters of element " + std::to_string(bad) +
                          " are invalid (weights must be finite, >= 0 and not all 0; means finite; scales finite "
                          "and > 0)");
  const int32_t* len = lengths.data();
  const int32_t width = n ? std::max<int32_t>(1, *std::max_element(len, len + n)) : 1;
  py::array_t<uint32_t> freqs({n, static_cast<int64_t>(width)});
  {
    py::gil_scoped_release release;
    mixture_table(q, w.data(), mu.data(), s.data(), n, offsets.data(), len, width, freqs.mutable_data(), threads);
  }
  return py::make_tuple(freqs, offsets, lengths);
}

}  // namespace

void bind_mixtures(py::module_& m) {
  m.def("mixture_rows", &mixture_rows, py::arg("weights"), py::arg("means"), py::arg("scales"), py::arg("family"),
        py::arg("deviations"), py::arg("max_symbols"), py::arg("precision"), py::arg("threads") = 1,
        "One quantized row per mixture element: (frequencies (n, width), offsets, lengths incl. the escape).");
}
