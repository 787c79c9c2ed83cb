// module.cpp: ransform._core. The bindings only check arguments, move buffers and release
// the GIL; all coding lives in csrc/core.
#include <pybind11/pybind11.h>

#include "core/error.hpp"
#include "core/families.hpp"

namespace py = pybind11;

void bind_tables(py::module_& m);
void bind_coder(py::module_& m);
void bind_mixtures(py::module_& m);
void bind_intnet(py::module_& m);

PYBIND11_MODULE(_core, m) {
  m.doc() = "ransform native coder: rANS streams, quantized tables, scale -> index maps";
  // InputError derives from std::invalid_argument, which pybind11 raises as ValueError.
  py::register_exception<ransform::StreamError>(m, "StreamError", PyExc_ValueError);
  bind_tables(m);
  bind_coder(m);
  bind_mixtures(m);
  bind_intnet(m);
  // Python reads the family codes from here instead of writing them a second time.
  m.def(
      "families",
      [] {
        py::dict out;
        for (const ransform::FamilyName& f : ransform::kFamilies) out[f.name] = static_cast<int>(f.family);
        return out;
      },
      "The distribution families, name -> the integer code the kernels take (csrc/core/families.hpp).");
}
