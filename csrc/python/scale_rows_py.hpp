// scale_rows_py.hpp: ScaleRows <-> (radius int32, flat frequencies uint32, crossings float64),
// how both modules (_core's CPU builder, _cuda's GPU builder) hand scale-table rows to Python.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>

#include "core/scale_rows.hpp"
#include "python/arrays.hpp"

namespace ransform::py_arrays {

inline py::tuple scale_rows_to_python(const ScaleRows& rows) {
  size_t total = 0;
  for (const auto& f : rows.freqs) total += f.size();
  py::array_t<uint32_t> freqs(static_cast<py::ssize_t>(total));
  uint32_t* out = freqs.mutable_data();
  for (const auto& f : rows.freqs) out = std::copy(f.begin(), f.end(), out);
  return py::make_tuple(py::array_t<int32_t>(static_cast<py::ssize_t>(rows.radius.size()), rows.radius.data()), freqs,
                        py::array_t<double>(static_cast<py::ssize_t>(rows.crossings.size()), rows.crossings.data()));
}

// Raises ValueError when the frequencies do not add up to the radii.
inline ScaleRows scale_rows_from_python(const py::handle& radius_obj, const py::handle& freqs_obj,
                                        const py::handle& crossings_obj) {
  auto radius = contiguous<int32_t>(radius_obj, "radius", "int32");
  auto freqs = contiguous<uint32_t>(freqs_obj, "frequencies", "uint32");
  auto crossings = contiguous<double>(crossings_obj, "crossings", "float64");
  ScaleRows rows;
  rows.radius.assign(radius.data(), radius.data() + radius.size());
  rows.crossings.assign(crossings.data(), crossings.data() + crossings.size());
  size_t at = 0;
  for (int32_t r : rows.radius) {
    const size_t n = 2 * static_cast<size_t>(r < 0 ? 0 : r) + 2;
    if (r < 0 || at + n > static_cast<size_t>(freqs.size()))
      throw py::value_error("frequencies are shorter than the radii need");
    rows.freqs.emplace_back(freqs.data() + at, freqs.data() + at + n);
    at += n;
  }
  if (at != static_cast<size_t>(freqs.size())) throw py::value_error("frequencies are longer than the radii need");
  return rows;
}

}  // namespace ransform::py_arrays
