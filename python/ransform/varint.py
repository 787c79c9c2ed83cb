"""Unsigned LEB128 varints, as docs/FORMAT.md §2 specifies them for every ransform byte format
(stream headers, the ``.rfm`` container, the mixture framing): 7 bits per byte, low bits first,
bit 7 set on every byte but the last; at most 10 bytes, below 2^64, and minimal (no final 0x00
after a continuation), so that every number has exactly one spelling."""
from __future__ import annotations

MAX_BYTES = 10


class VarintError(ValueError):
    """Bytes that are not a varint of FORMAT.md §2; ``truncated`` when they end inside one."""

    def __init__(self, message: str, truncated: bool = False):
        super().__init__(message)
        self.truncated = truncated


def encode(n: int) -> bytes:
    if not 0 <= n < 1 << 64:
        raise ValueError(f"a varint holds 0 .. 2^64 - 1, got {n}")
    out = bytearray()
    while n >= 0x80:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    out.append(n)
    return bytes(out)


def decode(data: bytes, at: int) -> tuple[int, int]:
    """(value, offset after it) of the varint at ``data[at]``; raises :class:`VarintError`."""
    value = 0
    for i in range(MAX_BYTES):
        if at + i >= len(data):
            raise VarintError("ends inside a varint", truncated=True)
        byte = data[at + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if byte == 0 and i > 0:
                raise VarintError("not a minimal varint")
            if value >> 64:
                raise VarintError("a varint that does not fit in 64 bits")
            return value, at + i + 1
    raise VarintError(f"a varint of more than {MAX_BYTES} bytes")
