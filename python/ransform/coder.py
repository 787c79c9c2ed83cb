"""Encoding and decoding: whole arrays at once, or incrementally for autoregressive models.

Arrays in, arrays out: symbols and indexes are numpy arrays or CPU torch tensors of any
integer dtype and any shape (int32 C-contiguous input is used without a copy); decoded
symbols come back as int32 arrays shaped like the indexes. The GIL is released while coding.
"""
from __future__ import annotations

import numpy as np

from ransform import _core
from ransform._arrays import as_int32, output_for
from ransform.tables import Table


def _native(table) -> _core.Table:
    if not isinstance(table, Table):
        raise TypeError(f"table must be a ransform table (GaussianTable(), CategoricalTable(...)), "
                        f"got {type(table).__name__}")
    return table._native


def _threads(threads) -> int:
    t = 0 if threads is None else int(threads)
    if t < 0:
        raise ValueError("threads must be >= 0 (0 = one per core)")
    return t


def _symbols_and_indexes(symbols, indexes):
    s, i = as_int32(symbols, "symbols"), as_int32(indexes, "indexes")
    if s.shape != i.shape:
        raise ValueError(f"symbols and indexes must have the same shape, got {s.shape} and {i.shape}")
    return s, i


def encode(symbols, indexes, table, *, threads: int = 1) -> bytes:
    """Encodes ``symbols[k]`` with row ``indexes[k]`` of ``table``; returns the stream.

    Values outside a row's range are coded through its escape symbol (exact for any int32).
    ``threads`` codes the stream's chunks in parallel (0 = one thread per core); the bytes
    are the same for every thread count.
    """
    s, i = _symbols_and_indexes(symbols, indexes)
    return _core.encode(s, i, _native(table), _threads(threads))


def decode(data, indexes, table, *, threads: int = 1, out: np.ndarray | None = None) -> np.ndarray:
    """Decodes a stream written by :func:`encode` with the same indexes and table.

    Returns int32 symbols shaped like ``indexes``, or writes them into ``out`` (an int32,
    C-contiguous numpy array of as many elements, which a loop reuses: a fresh array costs
    its page faults on every call) and returns it. Raises :class:`ransform.StreamError` (a
    ValueError) for truncated, corrupted or foreign streams, and (with probability about
    1 - 2^-31 per lane) when the indexes or table differ from the encoder's.
    """
    i = as_int32(indexes, "indexes")
    symbols = _core.decode(_bytes_like(data), i, _native(table), _threads(threads), output_for(out, i))
    return symbols.reshape(i.shape) if out is None else out


class SymbolCountError(_core.StreamError):
    """A stream that announces another number of symbols than its latent has: a damaged or
    forged file (never a symptom of the machine the file was written on)."""


def stream_symbols(data) -> int:
    """The number of symbols a stream's header announces (FORMAT.md §2), read without decoding."""
    return _core.stream_symbols(_bytes_like(data))


def stream_version(data) -> int:
    """The format version a stream's header gives (FORMAT.md §2, §9), read without decoding:
    which version of a scale table decodes it. Raises StreamError for a malformed header."""
    return _core.stream_version(_bytes_like(data))


def check_symbols(data, expected: int, what: str = "the latent") -> None:
    """Refuses a stream whose header does not announce ``expected`` symbols, before a decoder
    allocates indexes for them (a small forged file must not cost gigabytes)."""
    n = stream_symbols(data)
    if n != expected:
        raise SymbolCountError(f"stream is corrupted: it holds {n} symbols, {what} has {expected}")


def ideal_bits(symbols, indexes, table) -> float:
    """Bits the symbols cost under the quantized table: sum of -log2 p, escapes included
    (escape symbol plus its exp-Golomb bits). A stream is this plus a few bytes of framing."""
    s, i = _symbols_and_indexes(symbols, indexes)
    return _core.ideal_bits(s, i, _native(table))


def _bytes_like(data):
    if isinstance(data, (bytes, bytearray, memoryview)):
        return data
    if isinstance(data, np.ndarray) and data.dtype == np.uint8:
        return np.ascontiguousarray(data).ravel()
    raise TypeError(f"data must be bytes, got {type(data).__name__}")


class Encoder:
    """Collects symbols over several ``encode`` calls and writes one stream at ``finish``.

    The stream equals ``encode(concatenation of symbols, concatenation of indexes, table)``.
    """

    def __init__(self, table):
        self._enc = _core.Encoder(_native(table))

    def encode(self, symbols, indexes) -> None:
        s, i = _symbols_and_indexes(symbols, indexes)
        self._enc.encode(s.ravel(), i.ravel())

    def finish(self, *, threads: int = 1) -> bytes:
        return self._enc.finish(_threads(threads))

    def __len__(self) -> int:
        return len(self._enc)


class Decoder:
    """Decodes a stream piece by piece: ``decode(indexes)`` returns the next ``indexes.size``
    symbols. Built for autoregressive models, where the indexes of the next symbols depend on
    the symbols decoded so far; a call costs about a microsecond plus the symbols.

    The stream is verified chunk by chunk: a corrupted stream raises StreamError at the latest
    with the call that decodes its last symbol, so decode the whole stream before trusting it.
    """

    def __init__(self, data, table):
        self._dec = _core.Decoder(_native(table), _bytes_like(data))
        self._decode = self._dec.decode

    def decode(self, indexes) -> np.ndarray:
        if type(indexes) is np.ndarray and indexes.dtype == np.int32 and indexes.flags.c_contiguous:
            return self._decode(indexes).reshape(indexes.shape)  # fast path for the per-step loop
        i = as_int32(indexes, "indexes")
        return self._decode(i).reshape(i.shape)

    @property
    def remaining(self) -> int:
        """Symbols not decoded yet."""
        return self._dec.remaining

    @property
    def position(self) -> int:
        return self._dec.position
