// mixtures.cpp: binding of the CPU mixture-row builder (core/mixture.hpp); the GPU's is in
// cuda_tables.cpp and gives the same bits.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <string>
#include <vector>

#include "core/mixture.hpp"
#include "core/stream.hpp"
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
  int32_t* off = offsets.mutable_data();
  int32_t* len = lengths.mutable_data();
  const int64_t k = q.components;
  const size_t block = 4096, blocks = (static_cast<size_t>(n) + block - 1) / block;
  int64_t bad = n;
  int32_t width = 1;
  {
    py::gil_scoped_release release;
    std::vector<int64_t> first_bad(blocks, n);
    parallel_for(blocks, resolve_threads(threads), [&](size_t b) {
      for (int64_t i = b * block; i < std::min<int64_t>(n, (b + 1) * block); ++i)
        if (!mixture_support(q, w.data() + i * k, mu.data() + i * k, s.data() + i * k, off + i, len + i)) {
          first_bad[b] = i;
          break;
        }
    });
    for (int64_t i : first_bad) bad = std::min(bad, i);
    if (bad == n)
      for (int64_t i = 0; i < n; ++i) width = std::max(width, len[i]);
  }
  if (bad != n)
    throw py::value_error("mixture parameters of element " + std::to_string(bad) +
                          " are invalid (weights must be finite, >= 0 and not all 0; means finite; scales finite "
                          "and > 0)");
  py::array_t<uint32_t> freqs({n, static_cast<int64_t>(width)});
  uint32_t* f = freqs.mutable_data();
  {
    py::gil_scoped_release release;
    parallel_for(blocks, resolve_threads(threads), [&](size_t b) {
      for (int64_t i = b * block; i < std::min<int64_t>(n, (b + 1) * block); ++i) {
        uint32_t* row = f + i * width;
        mixture_frequencies(q, w.data() + i * k, mu.data() + i * k, s.data() + i * k, off[i], len[i], row);
        std::fill(row + len[i], row + width, 0u);
      }
    });
  }
  return py::make_tuple(freqs, offsets, lengths);
}

}  // namespace

void bind_mixtures(py::module_& m) {
  m.def("mixture_rows", &mixture_rows, py::arg("weights"), py::arg("means"), py::arg("scales"), py::arg("family"),
        py::arg("deviations"), py::arg("max_symbols"), py::arg("precision"), py::arg("threads") = 1,
        "One quantized row per mixture element: (frequencies (n, width), offsets, lengths incl. the escape).");
}
