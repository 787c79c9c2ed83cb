"""CompressAI's ``compressai.ans`` interface on ransform's coder.

``RansEncoder``, ``BufferedRansEncoder`` and ``RansDecoder`` take what CompressAI's take:
symbols and indexes (Python lists, numpy arrays or CPU tensors), and each row's quantized
CDF as CompressAI builds them (``cdfs[r][0] = 0``, ``cdfs[r][cdf_lengths[r] - 1] =
2**16``, the last symbol of a row being the escape for values outside it), its length and
its offset (the value of the row's first symbol). The streams are ransform's (docs/FORMAT.md):
checked and exact for every int32, not CompressAI's bytes.

The coder table made from the CDFs is kept while the caller passes the same ``cdfs`` object
again, so CompressAI's autoregressive loops, which pass one list per latent position, pay for
the conversion once per image instead of once per position. A list or array changed in place
between calls is not noticed by the encoder; the decoder then refuses the stream (its
checksum covers the table), so such a mistake is loud, never silent. Tensors are re-read
whenever they change.
"""
from __future__ import annotations

import numpy as np

from ransform._arrays import as_int32, to_numpy
from ransform.coder import Decoder, Encoder, decode, encode
from ransform.tables import CategoricalTable

PRECISION = 16  # CompressAI's coder works at 16 bits


def cdf_table(cdfs, cdf_lengths, offsets, precision: int = PRECISION) -> CategoricalTable:
    """The coder table of CompressAI-style quantized CDFs (see the module docstring)."""
    cdfs, cdf_lengths, offsets = (_on_host(x) for x in (cdfs, cdf_lengths, offsets))
    lengths = as_int32(cdf_lengths, "cdf_lengths").ravel()
    offsets = as_int32(offsets, "offsets").ravel()
    rows = len(lengths)
    if len(offsets) != rows:
        raise ValueError(f"got {rows} cdf lengths and {len(offsets)} offsets")
    if rows == 0:
        raise ValueError("cdfs has no rows")
    if lengths.min() < 3:
        raise ValueError("every cdf needs at least 3 entries (0, one symbol, the escape)")
    width = int(lengths.max())
    if isinstance(cdfs, (list, tuple)):
        if len(cdfs) != rows:
            raise ValueError(f"got {len(cdfs)} cdfs and {rows} cdf lengths")
        table = np.zeros((rows, width), np.int64)
        for r, row in enumerate(cdfs):
            if len(row) < lengths[r]:
                raise ValueError(f"cdfs[{r}] has {len(row)} entries, cdf_lengths[{r}] says {lengths[r]}")
            table[r, : lengths[r]] = row[: lengths[r]]
    else:
        table = to_numpy(cdfs, "cdfs")
        if table.ndim != 2 or table.shape[0] != rows or table.shape[1] < width:
            raise ValueError(f"cdfs must be ({rows}, >= {width}) for these cdf lengths, got shape {table.shape}")
        if table.dtype.kind not in "iu":
            raise TypeError(f"cdfs must be integers, got dtype {table.dtype}")
        table = table[:, :width].astype(np.int64)
    frequencies = np.diff(table, axis=1)
    valid = np.arange(width - 1)[None, :] < (lengths - 1)[:, None]
    last = table[np.arange(rows), lengths - 1]
    if np.any(table[:, 0] != 0) or np.any(last != 1 << precision):
        raise ValueError(f"every cdf must start at 0 and end at 2**{precision} (at cdf_lengths - 1)")
    if np.any(valid & (frequencies < 1)):
        r = int(np.argwhere(valid & (frequencies < 1))[0, 0])
        raise ValueError(f"cdfs[{r}] is not strictly increasing: every symbol needs a frequency of at least 1")
    frequencies = np.where(valid, frequencies, 0)
    return CategoricalTable.from_frequencies(frequencies, offsets, has_escape=True, precision=precision,
                                             lengths=lengths - 1)


def _on_host(x):
    """Tensors (the models' CDF buffers, on any device) are read from the host."""
    return x.detach().cpu() if hasattr(x, "detach") and hasattr(x, "cpu") else x


class _TableCache:
    """The table of the last (cdfs, cdf_lengths, offsets) seen, reused while they are the same
    objects (tensors: the same storage and version) with the same lengths and offsets."""

    def __init__(self):
        self._key = None
        self._table = None

    @staticmethod
    def _identity(obj):
        version = getattr(obj, "_version", None)  # torch bumps it on every in-place change
        return obj, None if version is None else (obj.data_ptr(), version)

    def get(self, cdfs, cdf_lengths, offsets) -> CategoricalTable:
        key = (self._identity(cdfs), self._identity(cdf_lengths), self._identity(offsets))
        if self._key is not None and all(a[0] is b[0] and a[1] == b[1] for a, b in zip(key, self._key)):
            return self._table
        self._table = cdf_table(cdfs, cdf_lengths, offsets)
        self._key = key  # holds the objects, so their ids cannot be reused while cached
        return self._table


def _as_returned(values: np.ndarray, like):
    """CompressAI returns Python lists; arrays and tensors get an int32 array back."""
    return values.tolist() if isinstance(like, (list, tuple)) else values


def _symbol_array(values, name: str) -> np.ndarray:
    if isinstance(values, (list, tuple)):
        values = np.asarray(values) if len(values) else np.zeros(0, np.int32)
    return as_int32(values, name).ravel()


class RansEncoder:
    """``encode_with_indexes(symbols, indexes, cdfs, cdf_lengths, offsets) -> bytes``."""

    def __init__(self):
        self._tables = _TableCache()

    def encode_with_indexes(self, symbols, indexes, cdfs, cdf_lengths, offsets) -> bytes:
        table = self._tables.get(cdfs, cdf_lengths, offsets)
        return encode(_symbol_array(symbols, "symbols"), _symbol_array(indexes, "indexes"), table)


class BufferedRansEncoder:
    """Collects ``encode_with_indexes`` calls; ``flush()`` returns the stream of all of them
    (equal to one :class:`RansEncoder` call over the concatenation) and starts a new one.
    Every call before a flush must pass the same CDFs: the stream has one table."""

    def __init__(self):
        self._tables = _TableCache()
        self._encoder = None
        self._table = None

    def encode_with_indexes(self, symbols, indexes, cdfs, cdf_lengths, offsets) -> None:
        table = self._tables.get(cdfs, cdf_lengths, offsets)
        if self._encoder is None:
            self._encoder, self._table = Encoder(table), table
        elif table is not self._table:
            raise ValueError("BufferedRansEncoder: every call before flush() must pass the same cdfs, "
                             "cdf_lengths and offsets objects (one stream codes with one table)")
        self._encoder.encode(_symbol_array(symbols, "symbols"), _symbol_array(indexes, "indexes"))

    def flush(self) -> bytes:
        if self._encoder is None:
            return encode(np.zeros(0, np.int32), np.zeros(0, np.int32), CategoricalTable([[1.0]]))
        data = self._encoder.finish()
        self._encoder = self._table = None
        return data


class RansDecoder:
    """``decode_with_indexes(stream, indexes, cdfs, cdf_lengths, offsets)`` decodes a whole
    stream; ``set_stream(stream)`` then ``decode_stream(indexes, cdfs, cdf_lengths, offsets)``
    decodes it piece by piece, as autoregressive models do."""

    def __init__(self):
        self._tables = _TableCache()
        self._stream = None
        self._decoder = None
        self._table = None

    def decode_with_indexes(self, encoded, indexes, cdfs, cdf_lengths, offsets):
        table = self._tables.get(cdfs, cdf_lengths, offsets)
        return _as_returned(decode(encoded, _symbol_array(indexes, "indexes"), table), indexes)

    def set_stream(self, encoded) -> None:
        self._stream, self._decoder, self._table = encoded, None, None

    def decode_stream(self, indexes, cdfs, cdf_lengths, offsets):
        if self._stream is None:
            raise ValueError("RansDecoder.decode_stream: call set_stream(stream) first")
        table = self._tables.get(cdfs, cdf_lengths, offsets)
        if self._decoder is None:
            self._decoder, self._table = Decoder(self._stream, table), table
        elif table is not self._table:
            raise ValueError("RansDecoder.decode_stream: every call on one stream must pass the same cdfs, "
                             "cdf_lengths and offsets objects (one stream codes with one table)")
        return _as_returned(self._decoder.decode(_symbol_array(indexes, "indexes")), indexes)
