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

}  // namespace ransform::py_arrays
