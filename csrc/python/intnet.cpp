// intnet.cpp: binding of the integer convolution (core/intnet.hpp): argument checks, the
// output array, the GIL released while it runs.
#include "core/intnet.hpp"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "python/arrays.hpp"

namespace py = pybind11;
using namespace ransform;
using py_arrays::contiguous;

namespace {

py::array int_conv2d(const py::handle& x_obj, const py::handle& w_obj, const py::handle& bias_obj,
                     const py::handle& m_pos_obj, const py::handle& m_neg_obj, const py::handle& shift_obj,
                     int64_t stride, int64_t padding, int64_t output_padding, bool transposed, int out_bits,
                     int threads, const std::string& kernel) {
  auto x = contiguous<int16_t>(x_obj, "x", "int16");
  auto w = contiguous<int16_t>(w_obj, "weight", "int16");
  if (x.ndim() != 3) throw py::value_error("x must have the shape (channels, height, width)");
  if (w.ndim() != 4) throw py::value_error("weight must have 4 dimensions");
  if (out_bits != 16 && out_bits != 32) throw py::value_error("out_bits must be 16 or 32");
  if (stride < 1 || padding < 0 || output_padding < 0 || (transposed && output_padding >= stride) ||
      (!transposed && output_padding != 0))
    throw py::value_error("invalid stride / padding / output_padding");
  intnet::ConvShape s{x.shape(0),     x.shape(1), x.shape(2), transposed ? w.shape(1) : w.shape(0),
                      w.shape(2),     w.shape(3), stride,     padding,
                      output_padding, transposed};
  if ((transposed ? w.shape(0) : w.shape(1)) != s.cin)
    throw py::value_error("weight expects " + std::to_string(transposed ? w.shape(0) : w.shape(1)) +
                          " input channels, x has " + std::to_string(s.cin));
  if (s.out_h() < 1 || s.out_w() < 1) throw py::value_error("the input is smaller than the kernel");
  const char* names[4] = {"bias", "m_pos", "m_neg", "shift"};
  const py::handle objs[4] = {bias_obj, m_pos_obj, m_neg_obj, shift_obj};
  py::array_t<int32_t> per_channel[4];
  for (int i = 0; i < 4; ++i) {
    per_channel[i] = contiguous<int32_t>(objs[i], names[i], "int32");
    if (per_channel[i].ndim() != 1 || per_channel[i].shape(0) != s.cout)
      throw py::value_error(std::string(names[i]) + " must hold one int32 per output channel (" +
                            std::to_string(s.cout) + ")");
  }
  for (py::ssize_t i = 0; i < s.cout; ++i)
    if (per_channel[3].data()[i] < 0 || per_channel[3].data()[i] > 62) throw py::value_error("shift must be in 0..62");
  const intnet::Kernel best = intnet::best_kernel();
  intnet::Kernel k = best;
  if (kernel == "scalar")
    k = intnet::Kernel::scalar;
  else if (kernel == "sse2")
    k = intnet::Kernel::sse2;
  else if (kernel == "avx2")
    k = intnet::Kernel::avx2;
  else if (kernel == "avx512")
    k = intnet::Kernel::avx512;
  else if (kernel != "auto")
    throw py::value_error("kernel must be 'auto', 'scalar', 'sse2', 'avx2' or 'avx512'");
  if (k > best) throw py::value_error("this CPU cannot run the " + kernel + " kernel");
  const intnet::Requant q{per_channel[0].data(), per_channel[1].data(), per_channel[2].data(), per_channel[3].data(),
                          out_bits == 16 ? int64_t{32767} : int64_t{2147483647}};
  const std::vector<py::ssize_t> shape{s.cout, s.out_h(), s.out_w()};
  const int resolved = resolve_threads(threads);
  if (out_bits == 16) {
    py::array_t<int16_t> out(shape);
    int16_t* o = out.mutable_data();
    py::gil_scoped_release release;
    intnet::conv2d(x.data(), w.data(), s, q, o, resolved, k);
    return std::move(out);
  }
  py::array_t<int32_t> out(shape);
  int32_t* o = out.mutable_data();
  py::gil_scoped_release release;
  intnet::conv2d(x.data(), w.data(), s, q, o, resolved, k);
  return std::move(out);
}

}  // namespace

void bind_intnet(py::module_& m) {
  m.def("int_conv2d", &int_conv2d, py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("m_pos"), py::arg("m_neg"),
        py::arg("shift"), py::arg("stride") = 1, py::arg("padding") = 0, py::arg("output_padding") = 0,
        py::arg("transposed") = false, py::arg("out_bits") = 16, py::arg("threads") = 1, py::arg("kernel") = "auto",
        "Exact integer (transposed) convolution with requantization, docs/FORMAT.md section 11: "
        "x int16 (C, H, W), weight int16 (torch layout), per-channel int32 bias, m_pos, m_neg, shift; "
        "returns int16 or int32 (C_out, H_out, W_out). The bits do not depend on threads or kernel.");
}
