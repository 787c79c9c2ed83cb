// arrays.hpp: checks for the buffers that cross into the core. The Python layer converts
// user input (any integer dtype, torch tensors) before it gets here; these checks make the
// module safe to call directly too.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

namespace ransform::py_arrays {

namespace py = pybind11;

// A C-contiguous array of T (any shape), viewed as flat. Raises TypeError naming the argument.
template <class T>
py::array_t<T> contiguous(const py::handle& obj, const char* name, const char* dtype_name) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + " must be a numpy array, got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  py::array a = py::reinterpret_borrow<py::array>(obj);
  if (!a.dtype().is(py::dtype::of<T>()))
    throw py::type_error(std::string(name) + " must have dtype " + dtype_name + ", got " +
                         std::string(py::str(a.dtype())));
  if (!(a.flags() & py::array::c_style)) throw py::type_error(std::string(name) + " must be C-contiguous");
  return py::reinterpret_borrow<py::array_t<T>>(a);
}

// Where a call writes its int32 results: a new array of n elements, or the caller's ``out``
// (C-contiguous, writeable, int32, n elements), so that a loop reuses one buffer instead of
// page-faulting a fresh one on every call.
inline py::array_t<int32_t> output_array(const py::object& out, py::ssize_t n) {
  if (out.is_none()) return py::array_t<int32_t>(n);
  auto a = contiguous<int32_t>(out, "out", "int32");
  if (!a.writeable()) throw py::value_error("out must be writeable");
  if (a.size() != n)
    throw py::value_error("out must have " + std::to_string(n) + " elements, got " + std::to_string(a.size()));
  return a;
}

}  // namespace ransform::py_arrays
