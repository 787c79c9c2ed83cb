// stream.hpp: whole streams: choosing the layout, coding chunks on a thread pool, framing.
// The bytes depend only on the symbols, indexes and table, never on the thread count.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/chunk_coder.hpp"
#include "core/escape.hpp"
#include "core/format.hpp"
#include "core/parallel.hpp"
#include "core/symbol_tables.hpp"

namespace ransform {

// Expected size in bytes from the rows' entropies, on a fixed sample of at most 4096 symbols.
inline double expected_bytes(const SymbolTables& t, const int32_t* idx, uint64_t n) {
  if (n == 0) return 0.0;
  const uint64_t stride = std::max<uint64_t>(1, n / 4096);
  double bits = 0.0;
  uint64_t seen = 0;
  for (uint64_t i = 0; i < n; i += stride, ++seen)
    if (static_cast<uint32_t>(idx[i]) < t.rows()) bits += t.entropy(static_cast<uint32_t>(idx[i]));
  return bits * static_cast<double>(n) / static_cast<double>(seen) / 8.0;
}

struct EncodedStream {
  std::vector<uint8_t> header;
  std::vector<ChunkBuffer> chunks;

  size_t size() const {
    size_t s = header.size();
    for (const auto& c : chunks) s += c.size();
    return s;
  }
  void write_to(uint8_t* dst) const {
    std::memcpy(dst, header.data(), header.size());
    dst += header.size();
    for (const auto& c : chunks) {
      std::memcpy(dst, c.begin(), c.size());
      dst += c.size();
    }
  }
};

inline EncodedStream encode_stream(const SymbolTables& t, const int32_t* sym, const int32_t* idx, uint64_t n,
                                   int threads) {
  StreamLayout layout = choose_layout(t.precision(), n, expected_bytes(t, idx, n));
  layout.version = t.version();
  EncodedStream result;
  result.chunks.resize(layout.chunks);
  const ChunkEncoder encoder(t);
  parallel_for(layout.chunks, resolve_threads(threads), [&](size_t c) {
    const uint64_t first = layout.chunk_first_symbol(c);
    result.chunks[c] = encoder.encode(sym + first, idx + first, layout.chunk_size(c), layout.lanes, first);
  });
  std::vector<uint64_t> sizes;
  for (const auto& c : result.chunks) sizes.push_back(c.size());
  result.header = write_header(layout, sizes);
  return result;
}

// The table must be one the stream was coded with: same precision, and a version it decodes.
inline void check_table_matches(const SymbolTables& t, const StreamLayout& layout) {
  if (!t.decodes_version(layout.version))
    throw StreamError("stream is format version " + std::to_string(layout.version) +
                      " but the table's rows are version " + std::to_string(t.version()) +
                      "'s: build it with version=" + std::to_string(layout.version));
  if (layout.precision != t.precision())
    throw StreamError("stream was coded at precision " + std::to_string(layout.precision) +
                      " but the table has precision " + std::to_string(t.precision()));
}

inline void check_stream_matches(const SymbolTables& t, const StreamLayout& layout, uint64_t n) {
  check_table_matches(t, layout);
  if (layout.symbols != n)
    throw StreamError("stream holds " + std::to_string(layout.symbols) + " symbols but " + std::to_string(n) +
                      " indexes were given");
}

inline void decode_stream(const SymbolTables& t, const uint8_t* data, size_t size, const int32_t* idx, int32_t* out,
                          uint64_t n, int threads) {
  const StreamLayout layout = read_header(data, size);
  check_stream_matches(t, layout, n);
  auto open = [&](uint64_t c) {
    return ChunkDecoder(t, data + layout.chunk_begin[c], layout.chunk_begin[c + 1] - layout.chunk_begin[c],
                        layout.version, layout.lanes, layout.chunk_size(c), layout.chunk_first_symbol(c));
  };
  // Two 8-lane chunks a task (ChunkDecoder::decode_pair) where every thread still gets one.
  const int workers = resolve_threads(threads);
  const uint64_t per_task = layout.lanes == kMaxLanes && layout.chunks >= 2 * static_cast<uint64_t>(workers) ? 2 : 1;
  parallel_for((layout.chunks + per_task - 1) / per_task, workers, [&](size_t task) {
    const uint64_t c = task * per_task, first = layout.chunk_first_symbol(c);
    ChunkDecoder a = open(c);
    if (per_task == 1 || c + 1 == layout.chunks) {
      a.decode(idx + first, out + first, layout.chunk_size(c));
      a.finish();
      return;
    }
    try {
      ChunkDecoder b = open(c + 1);
      const uint64_t second = layout.chunk_first_symbol(c + 1);
      ChunkDecoder::decode_pair(a, idx + first, out + first, b, idx + second, out + second);
      a.finish();
      b.finish();
    } catch (...) {  // b's error may have come first: a's, if any, is the one to report
      ChunkDecoder alone = open(c);
      alone.decode(idx + first, out + first, layout.chunk_size(c));
      alone.finish();
      throw;
    }
  });
}

// Incremental decoding across chunks: decode(idx, out, m) continues where the last call ended.
// Each chunk is verified when its last symbol has been decoded.
class StreamDecoder {
 public:
  StreamDecoder(const SymbolTables& t, std::vector<uint8_t> data) : t_(t), data_(std::move(data)) {
    layout_ = read_header(data_.data(), data_.size());
    check_table_matches(t, layout_);
  }

  uint64_t symbols() const { return layout_.symbols; }
  uint64_t position() const { return position_; }

  void decode(const int32_t* idx, int32_t* out, uint64_t m) {
    if (failed_) throw StreamError("this decoder already failed; its state is lost");
    if (m > layout_.symbols - position_)
      throw StreamError("asked for " + std::to_string(m) + " symbols but only " +
                        std::to_string(layout_.symbols - position_) + " remain in the stream");
    failed_ = true;  // until this call completes
    while (m > 0) {
      if (!chunk_ || chunk_->remaining() == 0) open_next_chunk();
      const uint64_t take = std::min<uint64_t>(m, chunk_->remaining());
      chunk_->decode(idx, out, take);
      if (chunk_->remaining() == 0) chunk_->finish();
      idx += take;
      out += take;
      m -= take;
      position_ += take;
    }
    failed_ = false;
  }

 private:
  void open_next_chunk() {
    const uint64_t c = next_chunk_++;
    chunk_.reset(new ChunkDecoder(t_, data_.data() + layout_.chunk_begin[c],
                                  layout_.chunk_begin[c + 1] - layout_.chunk_begin[c], layout_.version, layout_.lanes,
                                  layout_.chunk_size(c), layout_.chunk_first_symbol(c)));
  }

  const SymbolTables& t_;
  std::vector<uint8_t> data_;
  StreamLayout layout_;
  std::unique_ptr<ChunkDecoder> chunk_;
  uint64_t next_chunk_ = 0;
  uint64_t position_ = 0;
  bool failed_ = false;
};

// The bits the symbols cost under the quantized rows (-log2 of each frequency / 2^P, escapes
// with their extra bits): the ideal a coder approaches, to measure its overhead.
inline double ideal_bits(const SymbolTables& t, const int32_t* sym, const int32_t* idx, size_t n) {
  const double total = static_cast<double>(1u << t.precision());
  double bits = 0.0;
  for (size_t i = 0; i < n; ++i) {
    if (static_cast<uint32_t>(idx[i]) >= t.rows()) throw InputError(index_error(i, idx[i], t.rows()));
    const RowInfo& row = t.row(static_cast<uint32_t>(idx[i]));
    const uint32_t* cdf = t.cdf(row);
    const uint32_t v = static_cast<uint32_t>(sym[i]) - static_cast<uint32_t>(row.offset);
    if (v < row.nsym) {
      bits -= std::log2((cdf[v + 1] - cdf[v]) / total);
    } else if (t.has_escape(static_cast<uint32_t>(idx[i]))) {
      bits += escape_extra_bits(row, sym[i], t.version()) - std::log2((cdf[row.nsym + 1] - cdf[row.nsym]) / total);
    } else {
      throw InputError("symbols[" + std::to_string(i) + "] is outside its row's range and the row has no escape");
    }
  }
  return bits;
}

}  // namespace ransform
