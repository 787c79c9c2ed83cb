// format.hpp: the stream header and how a stream is cut into chunks and lanes.
// docs/FORMAT.md is the specification; this file implements it.
//
//   byte 0        version (3 bits, 1 or 2) << 5 | (precision - 12) (3 bits) << 2 | log2(lanes) (2 bits)
//   varint        n, the number of symbols (LEB128: 7 bits per byte, low group first)
//   if n > 0:
//     varint      chunks - 1
//     varint x (chunks - 1)   byte length of every chunk but the last
//     chunk bodies, back to back; the last one runs to the end of the stream
// Chunk c holds symbols [c S, min(n, (c + 1) S)) with S = ceil(n / chunks); symbol j of a chunk
// belongs to lane j mod lanes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace ransform {

// The newest stream version, the one written by default; a reader takes 1 .. kFormatVersion.
// Version 2 changed the bits after an escape symbol (escape.hpp) and the scale tables' escape
// frequency (scale_rows.hpp); everything else is version 1's.
inline constexpr int kFormatVersion = 2;

inline void check_format_version(int version) {
  if (version < 1 || version > kFormatVersion)
    throw InputError("version must be 1 or " + std::to_string(kFormatVersion) + " (a stream format version), got " +
                     std::to_string(version));
}
inline constexpr int kMaxLanes = 8;
inline constexpr uint64_t kMaxChunkSymbols = uint64_t{1} << 21;  // encoder's chunking target

inline void put_varint(std::vector<uint8_t>& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<uint8_t>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<uint8_t>(v));
}

// Reads a varint of at most 10 bytes; throws StreamError past the end or on overlong input.
inline uint64_t get_varint(const uint8_t*& p, const uint8_t* end) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (p == end) throw StreamError("stream is truncated (inside the header)");
    const uint8_t b = *p++;
    if (shift == 63 && b > 1) break;
    v |= static_cast<uint64_t>(b & 0x7F) << shift;
    if (!(b & 0x80)) {
      if (b == 0 && shift > 0) break;  // non-minimal encoding
      return v;
    }
  }
  throw StreamError("stream is corrupted (malformed varint in the header)");
}

struct StreamLayout {
  int version = kFormatVersion;
  int precision = 16;
  int lanes = 1;
  uint64_t symbols = 0;
  uint64_t chunks = 0;
  uint64_t chunk_symbols = 0;         // S
  std::vector<uint64_t> chunk_begin;  // byte offsets of the chunk bodies, plus the end

  uint64_t chunk_first_symbol(uint64_t c) const { return c * chunk_symbols; }
  uint64_t chunk_size(uint64_t c) const {
    const uint64_t b = c * chunk_symbols;
    return std::min(symbols, b + chunk_symbols) - b;
  }
};

// Encoder's choice (the decoder reads it from the header, so it may change between versions):
// chunks so that each holds at most 2^21 symbols, a power of two so that 2 or 4 threads get
// equal shares, and at least two when each half is expected to hold 32 KB and 2^16 symbols (so
// one Kodak latent, ~100 KB, is two chunks that two cores code at once, for ~40 bytes); lanes
// by the expected size of a chunk: a lane costs about 4.6 bytes (chunk_coder.hpp), so 2 lanes
// from 8 KB, 4 from 16 KB and 8 from 32 KB keep the lanes' cost near 0.1 % at most.
inline constexpr uint64_t kThreadedChunks = 2;
inline constexpr double kMinThreadedChunkBytes = 32768.0;
inline constexpr uint64_t kMinThreadedChunkSymbols = 65536;
inline constexpr double kTwoLaneBytes = 1536.0;
inline constexpr uint64_t kTwoLaneSymbols = 65536;

inline StreamLayout choose_layout(int precision, uint64_t n, double expected_bytes) {
  StreamLayout layout;
  layout.precision = precision;
  layout.symbols = n;
  if (n == 0) return layout;
  layout.chunks = 1;
  while (n > layout.chunks * kMaxChunkSymbols && layout.chunks < (uint64_t{1} << 16)) layout.chunks *= 2;
  while (layout.chunks < kThreadedChunks && expected_bytes >= 2.0 * kMinThreadedChunkBytes * layout.chunks &&
         n >= 2 * kMinThreadedChunkSymbols * layout.chunks)
    layout.chunks *= 2;
  layout.chunk_symbols = (n + layout.chunks - 1) / layout.chunks;
  while ((layout.chunks - 1) * layout.chunk_symbols >= n) {  // no empty chunk
    --layout.chunks;
    layout.chunk_symbols = (n + layout.chunks - 1) / layout.chunks;
  }
  const double per_chunk = expected_bytes / static_cast<double>(layout.chunks);
  while (layout.lanes < kMaxLanes && per_chunk >= 4096.0 * 2 * layout.lanes) layout.lanes *= 2;
  // Many cheap symbols (a low-rate latent: 2 KB for 295k symbols) decode at the latency of one
  // state's updates; a second lane doubles the speed for 4.6 bytes (at most 0.3 % from 1.5 KB).
  if (layout.lanes == 1 && per_chunk >= kTwoLaneBytes && layout.chunk_symbols >= kTwoLaneSymbols) layout.lanes = 2;
  return layout;
}

inline std::vector<uint8_t> write_header(const StreamLayout& layout, const std::vector<uint64_t>& chunk_bytes) {
  std::vector<uint8_t> h;
  int log2_lanes = 0;
  while ((1 << log2_lanes) < layout.lanes) ++log2_lanes;
  h.push_back(static_cast<uint8_t>(layout.version << 5 | (layout.precision - 12) << 2 | log2_lanes));
  put_varint(h, layout.symbols);
  if (layout.symbols == 0) return h;
  put_varint(h, layout.chunks - 1);
  for (uint64_t c = 0; c + 1 < layout.chunks; ++c) put_varint(h, chunk_bytes[c]);
  return h;
}

// Parses and validates the header; chunk_begin offsets are relative to data.
inline StreamLayout read_header(const uint8_t* data, size_t size) {
  if (size == 0) throw StreamError("stream is empty");
  const uint8_t* p = data;
  const uint8_t* end = data + size;
  const uint8_t b0 = *p++;
  if ((b0 >> 5) < 1 || (b0 >> 5) > kFormatVersion)
    throw StreamError("not a ransform stream, or one of an unsupported format version (" + std::to_string(b0 >> 5) +
                      "; this build reads versions 1 and 2)");
  StreamLayout layout;
  layout.version = b0 >> 5;
  layout.precision = 12 + ((b0 >> 2) & 7);
  if (layout.precision > 16) throw StreamError("stream is corrupted (precision field out of range)");
  layout.lanes = 1 << (b0 & 3);
  layout.symbols = get_varint(p, end);
  if (layout.symbols > (uint64_t{1} << 48)) throw StreamError("stream is corrupted (symbol count too large)");
  if (layout.symbols == 0) {
    if (p != end) throw StreamError("stream is corrupted (bytes after an empty stream)");
    return layout;
  }
  const uint64_t chunks_m1 = get_varint(p, end);
  if (chunks_m1 >= layout.symbols || chunks_m1 >= size) throw StreamError("stream is corrupted (chunk count)");
  layout.chunks = chunks_m1 + 1;
  layout.chunk_symbols = (layout.symbols + layout.chunks - 1) / layout.chunks;
  if ((layout.chunks - 1) * layout.chunk_symbols >= layout.symbols)
    throw StreamError("stream is corrupted (chunk count)");
  std::vector<uint64_t> lengths(layout.chunks - 1);
  for (auto& len : lengths) len = get_varint(p, end);
  uint64_t offset = static_cast<uint64_t>(p - data);
  layout.chunk_begin.push_back(offset);
  for (uint64_t len : lengths) {
    if (len > size - offset) throw StreamError("stream is truncated (chunk runs past the end)");
    offset += len;
    layout.chunk_begin.push_back(offset);
  }
  layout.chunk_begin.push_back(size);
  return layout;
}

}  // namespace ransform
