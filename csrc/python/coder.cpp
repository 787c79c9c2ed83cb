// coder.cpp: bindings of encode / decode, the incremental Encoder / Decoder, the header's
// symbol count and ideal_bits.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <mutex>
#include <vector>

#include "core/escape.hpp"
#include "core/stream.hpp"
#include "python/arrays.hpp"
#include "python/table_handle.hpp"

namespace py = pybind11;
using namespace ransform;
using py_arrays::contiguous;
using py_arrays::output_array;
using py_tables::Table;

namespace {

void check_same_size(const py::array& a, const py::array& b) {
  if (a.size() != b.size())
    throw py::value_error("symbols and indexes must have the same number of elements, got " + std::to_string(a.size()) +
                          " and " + std::to_string(b.size()));
}

py::bytes to_bytes(const EncodedStream& s) {
  py::bytes out(nullptr, s.size());  // uninitialised bytes object, filled in place
  s.write_to(reinterpret_cast<uint8_t*>(PyBytes_AS_STRING(out.ptr())));
  return out;
}

py::buffer_info stream_buffer(const py::buffer& data) {
  py::buffer_info info = data.request();
  if (info.itemsize != 1 || info.ndim != 1 || (info.ndim == 1 && info.strides[0] != 1))
    throw py::type_error("data must be a contiguous bytes-like object");
  return info;
}

// One lock per Encoder / Decoder object, so that threads sharing one take turns. It is taken
// with the GIL released: a thread that holds it may need the GIL again, and a thread waiting
// for it must not keep the GIL meanwhile.
std::unique_lock<std::mutex> lock_released(std::mutex& m) {
  std::unique_lock<std::mutex> lock(m, std::defer_lock);
  py::gil_scoped_release release;
  lock.lock();
  return lock;
}

// Encoder that collects symbols over several calls and codes them all at finish().
class IncrementalEncoder {
 public:
  explicit IncrementalEncoder(std::shared_ptr<Table> table) : table_(std::move(table)) {}

  void encode(const py::handle& sym_obj, const py::handle& idx_obj) {
    const auto lock = lock_released(mutex_);
    auto sym = contiguous<int32_t>(sym_obj, "symbols", "int32");
    auto idx = contiguous<int32_t>(idx_obj, "indexes", "int32");
    check_same_size(sym, idx);
    const size_t rows = table_->symbols().rows();
    const int32_t* ip = idx.data();
    for (py::ssize_t i = 0; i < idx.size(); ++i)  // fail here, at the call that brought the bad index
      if (static_cast<uint32_t>(ip[i]) >= rows) throw py::value_error(index_error(symbols_.size() + i, ip[i], rows));
    symbols_.insert(symbols_.end(), sym.data(), sym.data() + sym.size());
    indexes_.insert(indexes_.end(), ip, ip + idx.size());
  }

  py::bytes finish(int threads) {
    const auto lock = lock_released(mutex_);
    EncodedStream s;
    {
      py::gil_scoped_release release;
      s = encode_stream(table_->symbols(), symbols_.data(), indexes_.data(), symbols_.size(), threads);
    }
    symbols_.clear();
    indexes_.clear();
    return to_bytes(s);
  }

  size_t size() {
    const auto lock = lock_released(mutex_);
    return symbols_.size();
  }

 private:
  std::shared_ptr<Table> table_;
  std::vector<int32_t> symbols_, indexes_;
  std::mutex mutex_;
};

class IncrementalDecoder {
 public:
  IncrementalDecoder(std::shared_ptr<Table> table, const py::buffer& data) : table_(std::move(table)) {
    py::buffer_info info = stream_buffer(data);
    const auto* p = static_cast<const uint8_t*>(info.ptr);
    decoder_.reset(new StreamDecoder(table_->symbols(), std::vector<uint8_t>(p, p + info.size)));
  }

  py::array_t<int32_t> decode(const py::handle& idx_obj) {
    const auto lock = lock_released(mutex_);
    auto idx = contiguous<int32_t>(idx_obj, "indexes", "int32");
    py::array_t<int32_t> out(idx.size());
    {
      py::gil_scoped_release release;
      decoder_->decode(idx.data(), out.mutable_data(), static_cast<uint64_t>(idx.size()));
    }
    return out;
  }

  uint64_t remaining() {
    const auto lock = lock_released(mutex_);
    return decoder_->symbols() - decoder_->position();
  }
  uint64_t position() {
    const auto lock = lock_released(mutex_);
    return decoder_->position();
  }

 private:
  std::shared_ptr<Table> table_;  // keeps the tables alive for decoder_
  std::unique_ptr<StreamDecoder> decoder_;
  std::mutex mutex_;
};

}  // namespace

void bind_coder(py::module_& m) {
  m.def(
      "encode",
      [](const py::handle& sym_obj, const py::handle& idx_obj, std::shared_ptr<Table> table, int threads) {
        auto sym = contiguous<int32_t>(sym_obj, "symbols", "int32");
        auto idx = contiguous<int32_t>(idx_obj, "indexes", "int32");
        check_same_size(sym, idx);
        EncodedStream s;
        {
          py::gil_scoped_release release;
          s = encode_stream(table->symbols(), sym.data(), idx.data(), static_cast<uint64_t>(sym.size()), threads);
        }
        return to_bytes(s);
      },
      py::arg("symbols"), py::arg("indexes"), py::arg("table"), py::arg("threads") = 1);

  m.def(
      "decode",
      [](const py::buffer& data, const py::handle& idx_obj, std::shared_ptr<Table> table, int threads,
         const py::object& out_obj) {
        auto idx = contiguous<int32_t>(idx_obj, "indexes", "int32");
        py::buffer_info info = stream_buffer(data);
        py::array_t<int32_t> out = output_array(out_obj, idx.size());
        {
          py::gil_scoped_release release;
          decode_stream(table->symbols(), static_cast<const uint8_t*>(info.ptr), static_cast<size_t>(info.size),
                        idx.data(), out.mutable_data(), static_cast<uint64_t>(idx.size()), threads);
        }
        return out;
      },
      py::arg("data"), py::arg("indexes"), py::arg("table"), py::arg("threads") = 1, py::arg("out") = py::none());

  // For tests and benchmarks: the AVX-512 kernels and the portable code give the same bytes,
  // symbols and table rows, so only they need the switch.
  m.def(
      "_avx512",
      [](const py::object& allow) {
        const bool was = avx512_allowed().load();
        if (!allow.is_none()) avx512_allowed().store(allow.cast<bool>());
        return py::make_tuple(cpu_has_avx512(), was);
      },
      py::arg("allow") = py::none(),
      "(whether this CPU runs the AVX-512 kernels, whether they were allowed); allow=True/False "
      "turns them on or off for later calls.");

  m.def(
      "stream_symbols",
      [](const py::buffer& data) {
        py::buffer_info info = stream_buffer(data);
        return read_header(static_cast<const uint8_t*>(info.ptr), static_cast<size_t>(info.size)).symbols;
      },
      py::arg("data"));
  m.def(
      "stream_version",
      [](const py::buffer& data) {
        py::buffer_info info = stream_buffer(data);
        return read_header(static_cast<const uint8_t*>(info.ptr), static_cast<size_t>(info.size)).version;
      },
      py::arg("data"));

  m.def(
      "ideal_bits",
      [](const py::handle& sym_obj, const py::handle& idx_obj, std::shared_ptr<Table> table) {
        auto sym = contiguous<int32_t>(sym_obj, "symbols", "int32");
        auto idx = contiguous<int32_t>(idx_obj, "indexes", "int32");
        check_same_size(sym, idx);
        py::gil_scoped_release release;
        return ideal_bits(table->symbols(), sym.data(), idx.data(), static_cast<size_t>(sym.size()));
      },
      py::arg("symbols"), py::arg("indexes"), py::arg("table"));

  py::class_<IncrementalEncoder>(m, "Encoder")
      .def(py::init<std::shared_ptr<Table>>(), py::arg("table"))
      .def("encode", &IncrementalEncoder::encode, py::arg("symbols"), py::arg("indexes"))
      .def("finish", &IncrementalEncoder::finish, py::arg("threads") = 1)
      .def("__len__", &IncrementalEncoder::size);

  py::class_<IncrementalDecoder>(m, "Decoder")
      .def(py::init<std::shared_ptr<Table>, const py::buffer&>(), py::arg("table"), py::arg("data"))
      .def("decode", &IncrementalDecoder::decode, py::arg("indexes"))
      .def_property_readonly("remaining", &IncrementalDecoder::remaining)
      .def_property_readonly("position", &IncrementalDecoder::position);
}
