"""The ``.rfm`` file: one image compressed by one model (docs/FORMAT.md, "File container").

    magic      4 bytes   0x8F 'R' 'F' 'M'
    version    1 byte    3 (versions 1 and 2 are still read)
    flags      1 byte    bit 0 portable entropy parameters, 1 gray, 2 16-bit samples,
                         3 alpha plane present, 4 ICC profile present; other bits 0
    model      u8 length (1..255) + UTF-8 registry name
    quality    u8        (0: not a zoo quality, e.g. a custom checkpoint)
    weights    8 bytes   fingerprint of the model's weights (first 8 bytes of a SHA-256)
    height, width, pad left, right, top, bottom, latent height, latent width   varints
    streams    varint count, then per stream: varint length + bytes
    alpha      (flag 3) varint length + zlib stream of height * width bytes
    icc        (flag 4) varint length + the profile's bytes
    crc32      4 bytes   little endian, of every byte before it

Varints are minimal LEB128 of at most 10 bytes, below 2^64 (FORMAT.md §2). Every field is checked on reading; a damaged,
truncated or foreign file raises :class:`ContainerError` (a ValueError) naming what is wrong.
The alpha plane is inflated only on request (:func:`inflate_alpha`), after the caller checked
the image size, so a small file cannot make the reader allocate gigabytes.
"""
from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass

from ransform import varint

MAGIC = b"\x8fRFM"
VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
MAX_NAME = 255
FLAG_PORTABLE, FLAG_GRAY, FLAG_16BIT, FLAG_ALPHA, FLAG_ICC = 0x01, 0x02, 0x04, 0x08, 0x10
KNOWN_FLAGS = {1: 0, 2: FLAG_PORTABLE, 3: FLAG_PORTABLE | FLAG_GRAY | FLAG_16BIT | FLAG_ALPHA | FLAG_ICC}


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
    gray: bool = False      # the image file had one channel: decode to gray
    bits: int = 8           # bits per sample of the image file: 8 or 16
    alpha: bytes | None = None  # zlib-compressed (height, width) uint8 plane, see inflate_alpha
    icc: bytes | None = None    # the image's colour profile


def deflate_alpha(alpha) -> bytes:
    """The container's form of a (height, width) uint8 alpha plane (exact)."""
    import numpy as np
    return zlib.compress(np.ascontiguousarray(alpha, dtype=np.uint8).tobytes(), 9)


def inflate_alpha(item: CompressedImage):
    """The (height, width) uint8 alpha plane of a file, or None. Inflates at most the plane's
    size, so a hostile stream cannot expand further; call it after checking the image size."""
    import numpy as np
    if item.alpha is None:
        return None
    size = item.height * item.width
    inflater = zlib.decompressobj()
    try:
        plane = inflater.decompress(item.alpha, size)
    except zlib.error as exc:
        raise ContainerError(f"corrupted file: alpha plane ({exc})") from None
    if len(plane) != size or inflater.unconsumed_tail or not inflater.eof or inflater.unused_data:
        raise ContainerError(f"corrupted file: the alpha plane does not hold {item.width}x{item.height} samples")
    return np.frombuffer(plane, np.uint8).reshape(item.height, item.width).copy()


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


def pack(item: CompressedImage) -> bytes:
    name = item.model.encode()
    if not 0 < len(name) <= MAX_NAME:
        raise ValueError(f"model name must be 1..{MAX_NAME} bytes")
    if not 0 <= item.quality <= 255 or len(item.weights) != 8:
        raise ValueError("quality must be 0..255 and the weights fingerprint 8 bytes")
    if item.bits not in (8, 16):
        raise ValueError(f"bits per sample must be 8 or 16, got {item.bits}")
    flags = ((FLAG_PORTABLE if item.portable else 0) | (FLAG_GRAY if item.gray else 0)
             | (FLAG_16BIT if item.bits == 16 else 0) | (FLAG_ALPHA if item.alpha is not None else 0)
             | (FLAG_ICC if item.icc else 0))
    parts = [MAGIC, bytes([VERSION, flags, len(name)]), name, bytes([item.quality]), item.weights]
    for n in (item.height, item.width, *item.padding, *item.latent_shape):
        parts.append(varint.encode(int(n)))
    parts.append(varint.encode(len(item.streams)))
    for s in item.streams:
        parts += [varint.encode(len(s)), bytes(s)]
    for extra in (item.alpha, item.icc or None):
        if extra is not None:
            parts += [varint.encode(len(extra)), bytes(extra)]
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
        """A FORMAT.md §2 varint: one spelling per number, so a file cannot hide bytes in padded ones."""
        try:
            value, self.pos = varint.decode(self.data, self.pos)
        except varint.VarintError as exc:
            state = "truncated file" if exc.truncated else "corrupted file"
            raise ContainerError(f"{state}: {what}: {exc}") from None
        return value


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
    if flags & ~KNOWN_FLAGS[version]:
        raise ContainerError(f"unsupported .rfm flags {flags:#04x} for version {version} (written by a newer ransform?)")
    name_length = r.take(1, "model name length")[0]
    if not name_length:
        raise ContainerError("corrupted file: empty model name")
    name = r.take(name_length, "model name")
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
    alpha = r.take(r.varint("alpha length"), "alpha plane") if flags & FLAG_ALPHA else None
    icc = r.take(r.varint("ICC profile length"), "ICC profile") if flags & FLAG_ICC else None
    if icc is not None and not icc:
        raise ContainerError("corrupted file: empty ICC profile")
    if r.pos != len(body):
        raise ContainerError(f"corrupted file: {len(body) - r.pos} unexpected bytes before the checksum")
    if not height or not width:
        raise ContainerError("corrupted file: empty image size")
    return CompressedImage(model, quality, weights, height, width, padding, latent_shape, streams,
                           bool(flags & FLAG_PORTABLE), bool(flags & FLAG_GRAY), 16 if flags & FLAG_16BIT else 8,
                           alpha, icc)
