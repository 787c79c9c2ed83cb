// tables.cpp: bindings of the table objects.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "core/categorical.hpp"
#include "core/quantize.hpp"
#include "core/scale_table.hpp"
#include "core/stream.hpp"
#include "python/arrays.hpp"
#include "python/scale_rows_py.hpp"
#include "python/table_handle.hpp"

namespace py = pybind11;
using namespace ransform;
using py_arrays::contiguous;
using py_arrays::output_array;
using py_tables::CategoricalTableHandle;
using py_tables::ScaleTableHandle;
using py_tables::Table;

namespace {

void check_row(const SymbolTables& t, int64_t row) {
  if (row < 0 || static_cast<uint64_t>(row) >= t.rows())
    throw py::index_error("row " + std::to_string(row) + " out of range for " + std::to_string(t.rows()) + " rows");
}

std::shared_ptr<CategoricalTableHandle> pmfs_handle(const py::handle& pmfs_obj, const py::handle& lengths_obj,
                                                    const py::handle& offsets_obj, const py::handle& tail_obj,
                                                    int precision) {
  auto pmfs = contiguous<double>(pmfs_obj, "pmfs", "float64");
  auto lengths = contiguous<int32_t>(lengths_obj, "lengths", "int32");
  auto offsets = contiguous<int32_t>(offsets_obj, "offsets", "int32");
  auto tails = contiguous<double>(tail_obj, "tail_mass", "float64");
  if (pmfs.ndim() != 2) throw py::value_error("pmfs must be 2-D (rows, width)");
  const int64_t rows = pmfs.shape(0), width = pmfs.shape(1);
  if (rows < 1 || width < 1) throw py::value_error("pmfs must have at least one row and one column");
  if (lengths.size() != rows || offsets.size() != rows || tails.size() != rows)
    throw py::value_error("lengths, offsets and tail_mass need one entry per pmf row");
  SymbolTables t = [&] {
    py::gil_scoped_release release;  // quantizing many rows takes a while
    return ransform::categorical_from_pmfs(pmfs.data(), rows, width, lengths.data(), offsets.data(), tails.data(),
                                           precision);
  }();
  return std::make_shared<CategoricalTableHandle>(std::move(t));
}

std::shared_ptr<CategoricalTableHandle> frequencies_handle(const py::handle& freqs_obj, const py::handle& lengths_obj,
                                                           const py::handle& offsets_obj, bool has_escape,
                                                           int precision) {
  auto freqs = contiguous<uint32_t>(freqs_obj, "frequencies", "uint32");
  auto lengths = contiguous<int32_t>(lengths_obj, "lengths", "int32");
  auto offsets = contiguous<int32_t>(offsets_obj, "offsets", "int32");
  if (freqs.ndim() != 2) throw py::value_error("frequencies must be 2-D (rows, width)");
  const int64_t rows = freqs.shape(0), width = freqs.shape(1);
  if (rows < 1 || width < 1) throw py::value_error("frequencies must have at least one row and one column");
  if (lengths.size() != rows || offsets.size() != rows)
    throw py::value_error("lengths and offsets need one entry per row");
  SymbolTables t =
      categorical_from_frequencies(freqs.data(), rows, width, lengths.data(), offsets.data(), has_escape, precision);
  return std::make_shared<CategoricalTableHandle>(std::move(t));
}

py::array_t<uint32_t> frequencies(const SymbolTables& t, int64_t row) {
  check_row(t, row);
  const std::vector<uint32_t> f = t.frequencies(static_cast<size_t>(row));
  py::array_t<uint32_t> out(static_cast<py::ssize_t>(f.size()));
  std::copy(f.begin(), f.end(), out.mutable_data());
  return out;
}

std::vector<float> scales_or_default(const py::object& scales) {
  if (scales.is_none()) return default_scales();
  auto a = contiguous<float>(scales, "scales", "float32");
  return std::vector<float>(a.data(), a.data() + a.size());
}

}  // namespace

void bind_tables(py::module_& m) {
  py::class_<Table, std::shared_ptr<Table>>(m, "Table", "A set of quantized distributions, one per row.")
      .def_property_readonly("precision", [](const Table& t) { return t.symbols().precision(); })
      .def_property_readonly("version", [](const Table& t) { return t.symbols().version(); })
      .def_property_readonly("rows", [](const Table& t) { return t.symbols().rows(); })
      // For tests: the decoder lookup's buckets per row, 2**_bucket_bits (symbol_tables.hpp).
      .def_property_readonly("_bucket_bits", [](const Table& t) { return t.symbols().bucket_bits(); })
      .def(
          "offset",
          [](const Table& t, int64_t r) {
            check_row(t.symbols(), r);
            return t.symbols().row(r).offset;
          },
          py::arg("row"), "Value of the row's first in-range symbol.")
      .def(
          "size",
          [](const Table& t, int64_t r) {
            check_row(t.symbols(), r);
            return t.symbols().row(r).nsym;
          },
          py::arg("row"), "Number of in-range symbols of the row (escape not counted).")
      .def(
          "has_escape",
          [](const Table& t, int64_t r) {
            check_row(t.symbols(), r);
            return t.symbols().has_escape(r);
          },
          py::arg("row"))
      .def(
          "frequencies", [](const Table& t, int64_t r) { return frequencies(t.symbols(), r); }, py::arg("row"),
          "Quantized frequencies of the row (in-range symbols, then the escape symbol if any); they sum to "
          "2**precision.")
      .def(
          "entropy",
          [](const Table& t, int64_t r) {
            check_row(t.symbols(), r);
            return t.symbols().entropy(r);
          },
          py::arg("row"), "Entropy in bits of the row's quantized distribution.");

  py::class_<ScaleTableHandle, Table, std::shared_ptr<ScaleTableHandle>>(m, "ScaleTable")
      .def(py::init(
               [](const std::string& family, const py::object& scales, int precision, double tail_mass, int version) {
                 std::vector<float> s = scales_or_default(scales);
                 const Family f = family_from_name(family);
                 py::gil_scoped_release release;
                 return std::make_shared<ScaleTableHandle>(ScaleTable(f, std::move(s), precision, tail_mass, version));
               }),
           py::arg("family"), py::arg("scales"), py::arg("precision"), py::arg("tail_mass"),
           py::arg("version") = kFormatVersion)
      .def_static(
          "from_rows",
          [](const std::string& family, const py::object& scales, int precision, double tail_mass,
             const py::handle& radius, const py::handle& freqs, const py::handle& crossings, int version) {
            std::vector<float> s = scales_or_default(scales);
            const Family f = family_from_name(family);
            const ScaleRows rows = py_arrays::scale_rows_from_python(radius, freqs, crossings);
            py::gil_scoped_release release;
            return std::make_shared<ScaleTableHandle>(
                ScaleTable(f, std::move(s), precision, tail_mass, version, &rows));
          },
          py::arg("family"), py::arg("scales"), py::arg("precision"), py::arg("tail_mass"), py::arg("radius"),
          py::arg("frequencies"), py::arg("crossings"), py::arg("version") = kFormatVersion,
          "A scale table from rows built elsewhere (the GPU builder), see build_scale_rows.")
      .def_property_readonly("family", [](const ScaleTableHandle& t) { return family_name(t.table.family()); })
      .def_property_readonly("tail_mass", [](const ScaleTableHandle& t) { return t.table.tail_mass(); })
      .def_property_readonly("scales",
                             [](const ScaleTableHandle& t) {
                               const auto& s = t.table.scales();
                               return py::array_t<float>(static_cast<py::ssize_t>(s.size()), s.data());
                             })
      .def_property_readonly("thresholds",
                             [](const ScaleTableHandle& t) {
                               const auto s = t.table.thresholds();
                               return py::array_t<float>(static_cast<py::ssize_t>(s.size()), s.data());
                             })
      .def(
          "index",
          [](const ScaleTableHandle& t, const py::handle& scales_obj, int threads, const py::object& out_obj) {
            auto scales = contiguous<float>(scales_obj, "scales", "float32");
            const size_t n = static_cast<size_t>(scales.size());
            py::array_t<int32_t> out = output_array(out_obj, static_cast<py::ssize_t>(n));
            size_t bad;
            {
              py::gil_scoped_release release;
              bad = index_scales(t.table, scales.data(), out.mutable_data(), n, threads);
            }
            if (bad != static_cast<size_t>(scales.size()))
              throw py::value_error("scales must be finite and non-negative; flat position " + std::to_string(bad) +
                                    " holds " + std::string(py::str(py::float_(scales.data()[bad]))));
            return out;
          },
          py::arg("scales"), py::arg("threads") = 1, py::arg("out") = py::none(),
          "Row index of every float32 scale (flat int32 array, or written into out).");

  m.def(
      "build_scale_rows",
      [](const std::string& family, const py::object& scales, int precision, double tail_mass, int version) {
        const std::vector<float> s = scales_or_default(scales);
        const Family f = family_from_name(family);
        ScaleTable::check_arguments(s, precision, tail_mass, version);
        ScaleRows rows;
        {
          py::gil_scoped_release release;
          rows = build_scale_rows(f, s, precision, tail_mass, version);
        }
        return py_arrays::scale_rows_to_python(rows);
      },
      py::arg("family"), py::arg("scales"), py::arg("precision"), py::arg("tail_mass"),
      py::arg("version") = kFormatVersion,
      "The CPU's rows and crossings of a scale table: (radius, flat frequencies, crossings).");

  m.attr("FORMAT_VERSION") = kFormatVersion;

  m.def("default_scales", []() {
    const auto s = default_scales();
    return py::array_t<float>(static_cast<py::ssize_t>(s.size()), s.data());
  });

  py::class_<CategoricalTableHandle, Table, std::shared_ptr<CategoricalTableHandle>>(m, "CategoricalTable")
      .def(py::init(&pmfs_handle), py::arg("pmfs"), py::arg("lengths"), py::arg("offsets"), py::arg("tail_mass"),
           py::arg("precision"))
      .def(
          "_set_version",
          [](CategoricalTableHandle& t, int version) { t.table.set_version(version, /*rows_of_version=*/false); },
          py::arg("version"), "The stream format version it writes (it decodes every version).")
      .def_static("from_frequencies", &frequencies_handle, py::arg("frequencies"), py::arg("lengths"),
                  py::arg("offsets"), py::arg("has_escape"), py::arg("precision"));
}
