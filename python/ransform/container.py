"""The ``.rfm`` file: one image compressed by one model (docs/FORMAT.md, "File container").

    magic      4 bytes   0x8F 'R' 'F' 'M'
    version    1 byte    2 (version 1 files, which have no flags byte, are still read)
    flags      1 byte    bit 0: portable entropy parameters; other bits 0
    model      u8 length + UTF-8 registry name
    quality    u8        (0: not a zoo quality, e.g. a custom checkpoint)
    weights    8 bytes   fingerprint of the model's weights (first 8 bytes of a SHA-256)
    height, width, pad left, right, top, bottom, latent height, latent width   varints
    streams    varint count, then per stream: varint length + bytes
    crc32      4 bytes   little endian, of every byte before it

Every field is checked on reading; a damaged, truncated or foreign file raises
:class:`ContainerError` (a ValueError) naming what is wrong.
"""
from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass

MAGIC = b"\x8fRFM"
VERSION = 2
READABLE_VERSIONS = (1, 2)
MAX_NAME = 255
FLAG_PORTABLE = 0x01


class ContainerError(ValueError):
    """A file that is not a valid ``.rfm`` container (or not one this version reads)."""


@dataclass
class CompressedImage:
    model: str
    quality: int
    weights: bytes          # 8-byte fingerprint, see :func:`weights_fingerprint`
    height: int
    width: int
    padding: tuple          # (left, right, top, bottom)
    latent_shape: tuple     # (h, w) of the smallest latent, as models' compress returns it
    streams: list           # bytes, one per latent (y, z, ...)
    portable: bool = False  # entropy parameters from integer networks (decode anywhere)


def weights_fingerprint(state_dict, portable: bool = True) -> bytes:
    """First 8 bytes of the SHA-256 of the weights (keys in order, then tensor bytes): a file
    decoded with other weights than its encoder's would give garbage, so it is refused.
    A float-mode file does not depend on the portable networks (keys ``portable.*``), so its
    fingerprint leaves them out: converting a model keeps its float files readable."""
    h = hashlib.sha256()
    for key in sorted(k for k in state_dict if portable or not k.startswith("portable.")):
        t = state_dict[key]
        h.update(key.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.digest()[:8]


def _varint(n: int) -> bytes:
    if n < 0:
        raise ValueError(f"varint of a negative number {n}")
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def pack(item: CompressedImage) -> bytes:
    name = item.model.encode()
    if not 0 < len(name) <= MAX_NAME:
        raise ValueError(f"model name must be 1..{MAX_NAME} bytes")
    if not 0 <= item.quality <= 255 or len(item.weights) != 8:
        raise ValueError("quality must be 0..255 and the weights fingerprint 8 bytes")
    flags = FLAG_PORTABLE if item.portable else 0
    parts = [MAGIC, bytes([VERSION, flags, len(name)]), name, bytes([item.quality]), item.weights]
    for n in (item.height, item.width, *item.padding, *item.latent_shape):
        parts.append(_varint(int(n)))
    parts.append(_varint(len(item.streams)))
    for s in item.streams:
        parts += [_varint(len(s)), bytes(s)]
    body = b"".join(parts)
    return body + struct.pack("<I", zlib.crc32(body))


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise ContainerError(f"truncated file: {what} needs {n} bytes at offset {self.pos}, "
                                 f"{len(self.data) - self.pos} left")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def varint(self, what: str) -> int:
        value = 0
        for shift in range(0, 64, 7):
            byte = self.take(1, what)[0]
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
        raise ContainerError(f"corrupted file: {what} is not a valid varint")


def unpack(data: bytes) -> CompressedImage:
    data = bytes(data)
    if len(data) < 4 or data[:4] != MAGIC:
        raise ContainerError("not a ransform .rfm file (wrong magic bytes)")
    if len(data) < 10:
        raise ContainerError(f"truncated file: {len(data)} bytes")
    version = data[4]
    if version not in READABLE_VERSIONS:
        raise ContainerError(f"unsupported .rfm version {version} (this ransform reads versions "
                             f"{', '.join(map(str, READABLE_VERSIONS))})")
    body, crc = data[:-4], struct.unpack("<I", data[-4:])[0]
    if zlib.crc32(body) != crc:
        raise ContainerError("damaged file: checksum mismatch (the file was truncated or altered)")
    r = _Reader(body)
    r.take(5, "header")
    flags = r.take(1, "flags")[0] if version >= 2 else 0
    if flags & ~FLAG_PORTABLE:
        raise ContainerError(f"unsupported .rfm flags {flags:#04x} (written by a newer ransform?)")
    name = r.take(r.take(1, "model name length")[0], "model name")
    try:
        model = name.decode()
    except UnicodeDecodeError:
        raise ContainerError("corrupted file: model name is not UTF-8") from None
    quality = r.take(1, "quality")[0]
    weights = r.take(8, "weights fingerprint")
    height, width = r.varint("height"), r.varint("width")
    padding = tuple(r.varint("padding") for _ in range(4))
    latent_shape = (r.varint("latent height"), r.varint("latent width"))
    count = r.varint("stream count")
    if count > 64:
        raise ContainerError(f"corrupted file: {count} streams")
    streams = [r.take(r.varint("stream length"), "stream") for _ in range(count)]
    if r.pos != len(body):
        raise ContainerError(f"corrupted file: {len(body) - r.pos} unexpected bytes after the streams")
    if not height or not width:
        raise ContainerError("corrupted file: empty image size")
    return CompressedImage(model, quality, weights, height, width, padding, latent_shape, streams,
                           bool(flags & FLAG_PORTABLE))
