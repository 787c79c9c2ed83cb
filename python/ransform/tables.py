"""Tables: quantized distributions the coder codes with, one per row.

Which should I use?
- Conditional models (hyperprior, mean-scale): a :class:`ScaleTable` (``GaussianTable()``,
  ``LaplaceTable()``, ``LogisticTable()``): one row per tabulated scale; ``table.index(scales)``
  picks each symbol's row.
- Factorized models (EntropyBottleneck): a :class:`CategoricalTable` from per-channel pmfs;
  the row index of a symbol is its channel.
Tables are built once and reused across calls; building the default Gaussian table takes
about 0.3 s on one CPU core, so it is cached in the process and its rows on disk
(:mod:`ransform.table_cache`). ``device="cuda"`` builds it on the GPU, bit for bit
the same.
"""
from __future__ import annotations

import functools

import numpy as np

from ransform import _core, table_cache
from ransform._arrays import as_float32, as_int32, output_for, to_numpy

DEFAULT_PRECISION = 16
DEFAULT_TAIL_MASS = 1e-9
#: The stream format version written by default (docs/FORMAT.md section 9); streams of every
#: earlier version still decode.
FORMAT_VERSION = _core.FORMAT_VERSION


class Table:
    """Base of all tables: ``rows``, ``precision`` and per-row inspection."""

    _native: _core.Table

    @property
    def precision(self) -> int:
        """Probability precision in bits (12..16): frequencies sum to 2**precision."""
        return self._native.precision

    @property
    def rows(self) -> int:
        return self._native.rows

    @property
    def version(self) -> int:
        """The stream format version this table writes. A scale table's rows are that version's
        alone (version 2 changed its escape frequency), so it decodes that version's streams
        only; other tables decode every version."""
        return self._native.version

    def __len__(self) -> int:
        return self._native.rows

    def offset(self, row: int) -> int:
        """Value of the row's first in-range symbol."""
        return self._native.offset(row)

    def size(self, row: int) -> int:
        """Number of in-range symbols of the row (the escape symbol is not counted)."""
        return self._native.size(row)

    def has_escape(self, row: int) -> bool:
        return self._native.has_escape(row)

    def frequencies(self, row: int) -> np.ndarray:
        """Quantized frequencies (in-range symbols, then the escape symbol if any)."""
        return self._native.frequencies(row)

    def entropy(self, row: int) -> float:
        """Entropy in bits of the row's quantized distribution."""
        return self._native.entropy(row)


class ScaleTable(Table):
    """A location-scale family quantized at a list of scales, plus the scale -> row map.

    Args:
        scales: increasing positive scales, one row each (default: 160 scales spaced evenly in
            log from 0.11 to 256, see :func:`default_scales`).
        family: ``"gaussian"`` (default), ``"laplace"`` or ``"logistic"``.
        precision: probability precision in bits, 12..16 (default 16).
        device: where the rows are computed: ``"cpu"`` (default) or ``"cuda"`` (one GPU thread
            per row, same code, bit-identical result; needs ``ransform._cuda`` and a GPU).
        tail_mass: bounds each row's support -R..R from above: R is at most the radius outside
            which the family leaves tail_mass (default 1e-9). Within that bound each row takes
            the R with the least expected code length, so wide rows drop tail symbols rarer
            than about 2**-precision rather than give each a count. Values outside a row are
            coded as its escape symbol plus their distance (Elias delta in version 2,
            exp-Golomb in version 1); every int32 round-trips.
        version: the stream format version (default :data:`FORMAT_VERSION`, 2). Version 2
            rows give the escape symbol a probability of at least 2**-12; ``version=1`` builds
            the rows that streams written before version 2 need, and writes such streams.

    ``index(scales)`` maps each float32 scale to the row with the least expected code length
    for data of that scale: ``index = #{thresholds <= scale}``, with the thresholds in
    ``table.thresholds`` (exact float32 comparisons, identical on every machine).
    """

    def __init__(self, scales=None, *, family: str = "gaussian", precision: int = DEFAULT_PRECISION,
                 tail_mass: float = DEFAULT_TAIL_MASS, device: str = "cpu", version: int = FORMAT_VERSION):
        if scales is not None:
            scales = as_float32(scales, "scales").ravel()
        self._native = _cached_native(family, None if scales is None else scales.tobytes(),
                                      int(precision), float(tail_mass), _builder_device(device), int(version))

    @property
    def family(self) -> str:
        return self._native.family

    @property
    def tail_mass(self) -> float:
        return self._native.tail_mass

    @property
    def scales(self) -> np.ndarray:
        return self._native.scales

    @property
    def thresholds(self) -> np.ndarray:
        return self._native.thresholds

    def index(self, scales, *, threads: int = 1, out: np.ndarray | None = None) -> np.ndarray:
        """Row of every scale, as int32 with the shape of ``scales`` (or written into ``out``, an
        int32 C-contiguous numpy array of as many elements, and returned).

        Raises ValueError for NaN, infinite or negative scales; 0 and scales below the table
        map to row 0, scales above it to the last row. ``threads`` splits large arrays over
        threads (0 = one per core).
        """
        a = as_float32(scales, "scales")
        rows = self._native.index(a, int(threads), output_for(out, a))
        return rows.reshape(a.shape) if out is None else out

    def __repr__(self) -> str:
        s = self.scales
        return (f"ScaleTable(family={self.family!r}, rows={self.rows}, scales={s[0]:.4g}..{s[-1]:.4g}, "
                f"precision={self.precision}, tail_mass={self.tail_mass:g}, version={self.version})")


@functools.lru_cache(maxsize=32)
def _cached_native(family, scales_bytes, precision, tail_mass, device, version):
    scales = None if scales_bytes is None else np.frombuffer(scales_bytes, dtype=np.float32)
    if device == "cpu":  # rows from the disk cache when an earlier process built them (table_cache.py)
        rows = table_cache.scale_rows(family, scales, precision, tail_mass, version)
    else:
        rows = build_scale_rows(scales, family=family, precision=precision, tail_mass=tail_mass, device=device,
                                version=version)
    return _core.ScaleTable.from_rows(family, scales, precision, tail_mass, *rows, version)


def _builder_device(device) -> str:
    name = str(device)
    if name == "cpu" or name.startswith("cuda"):
        return name
    raise ValueError(f"device must be 'cpu' or 'cuda[:n]', got {device!r}")


def build_scale_rows(scales=None, *, family: str = "gaussian", precision: int = DEFAULT_PRECISION,
                     tail_mass: float = DEFAULT_TAIL_MASS, device: str = "cpu", version: int = FORMAT_VERSION):
    """What a :class:`ScaleTable` is built from, before its index lookup: ``(radius, frequencies,
    crossings)``, the int32 radius R_j of each row, the rows' frequencies concatenated (2 R_j + 2
    each: -R_j..R_j, then escape) and the float64 scale where each pair of adjacent rows cross.

    ``device="cuda"`` computes them on the GPU with the CPU's own code (bit-identical)."""
    device = _builder_device(device)
    if scales is not None:
        scales = as_float32(scales, "scales").ravel()
    if device == "cpu":
        return _core.build_scale_rows(family, scales, int(precision), float(tail_mass), int(version))
    from ransform.kernels import build_scale_rows_on_gpu  # torch loads on this path only

    return build_scale_rows_on_gpu(family, _core.default_scales() if scales is None else scales, int(precision),
                                   float(tail_mass), int(version), device)


def GaussianTable(scales=None, *, precision: int = DEFAULT_PRECISION, tail_mass: float = DEFAULT_TAIL_MASS,
                  family: str = "gaussian", version: int = FORMAT_VERSION) -> ScaleTable:
    """The default table for mean-scale models: discretized Gaussians (see :class:`ScaleTable`)."""
    return ScaleTable(scales, family=family, precision=precision, tail_mass=tail_mass, version=version)


def LaplaceTable(scales=None, *, precision: int = DEFAULT_PRECISION, tail_mass: float = DEFAULT_TAIL_MASS,
                 version: int = FORMAT_VERSION) -> ScaleTable:
    return ScaleTable(scales, family="laplace", precision=precision, tail_mass=tail_mass, version=version)


def LogisticTable(scales=None, *, precision: int = DEFAULT_PRECISION, tail_mass: float = DEFAULT_TAIL_MASS,
                  version: int = FORMAT_VERSION) -> ScaleTable:
    return ScaleTable(scales, family="logistic", precision=precision, tail_mass=tail_mass, version=version)


def default_scales() -> np.ndarray:
    """The default scale list: 160 float32 scales spaced evenly in log from 0.11 to 256."""
    return _core.default_scales()


def _per_row(value, rows: int, name: str, dtype) -> np.ndarray:
    """A scalar or one value per row, as a flat array of dtype (integers range-checked)."""
    a = as_int32(value, name) if dtype == np.int32 else to_numpy(value, name)
    if a.ndim == 0:
        a = np.full(rows, a, dtype=dtype)
    a = np.ascontiguousarray(a.ravel(), dtype=dtype)
    if a.shape != (rows,):
        raise ValueError(f"{name} must be a scalar or have one entry per row ({rows}), got shape {a.shape}")
    return a


class CategoricalTable(Table):
    """One arbitrary distribution per row, from probabilities.

    Args:
        pmfs: (rows, width) probabilities (need not be normalized; zeros allowed: every
            in-range symbol still gets a frequency of at least 1).
        offsets: value of column 0 of each row (scalar or one per row).
        tail_mass: weight of the escape symbol (values outside the row), next to the pmf's
            weights; each row is normalised together with it, as CompressAI does (so a pmf
            summing to 1 with tail_mass t gives the escape t / (1 + t)). Scalar or one per row.
            A row with tail mass 0 has no escape symbol and cannot code values outside its range.
        precision: probability precision in bits, 12..16.
        lengths: number of valid columns of each row (default: all).
        version: the stream format version it writes (default :data:`FORMAT_VERSION`; 1 for
            readers older than version 2). It decodes streams of every version.
    """

    def __init__(self, pmfs, offsets=0, tail_mass: float = DEFAULT_TAIL_MASS, precision: int = DEFAULT_PRECISION,
                 lengths=None, *, version: int = FORMAT_VERSION):
        p = to_numpy(pmfs, "pmfs")
        if p.ndim == 1:
            p = p[None, :]
        if p.ndim != 2:
            raise ValueError(f"pmfs must be 2-D (rows, width), got shape {p.shape}")
        if p.dtype.kind not in "fiu":
            raise TypeError(f"pmfs must be real numbers, got dtype {p.dtype}")
        p = np.ascontiguousarray(p, dtype=np.float64)
        rows = p.shape[0]
        lengths = np.full(rows, p.shape[1], np.int32) if lengths is None else _per_row(lengths, rows, "lengths", np.int32)
        self._native = _core.CategoricalTable(p, lengths, _per_row(offsets, rows, "offsets", np.int32),
                                              _per_row(tail_mass, rows, "tail_mass", np.float64), int(precision))
        self._native._set_version(int(version))

    @classmethod
    def from_frequencies(cls, frequencies, offsets=0, *, has_escape: bool = True, precision: int = DEFAULT_PRECISION,
                         lengths=None, version: int = FORMAT_VERSION) -> "CategoricalTable":
        """A table from already quantized frequencies (each >= 1, each row summing to
        2**precision; with ``has_escape`` the last valid column of each row is the escape).
        ``version`` as for the constructor."""
        f = to_numpy(frequencies, "frequencies")
        if f.ndim == 1:
            f = f[None, :]
        if f.ndim != 2:
            raise ValueError(f"frequencies must be 2-D (rows, width), got shape {f.shape}")
        if f.dtype.kind not in "iu":
            raise TypeError(f"frequencies must be integers, got dtype {f.dtype}")
        if f.size and (f.min() < 0 or f.max() > 2**precision):
            raise ValueError("frequencies must be in [0, 2**precision]")
        f = np.ascontiguousarray(f, dtype=np.uint32)
        rows = f.shape[0]
        lengths = np.full(rows, f.shape[1], np.int32) if lengths is None else _per_row(lengths, rows, "lengths", np.int32)
        table = cls.__new__(cls)
        table._native = _core.CategoricalTable.from_frequencies(f, lengths, _per_row(offsets, rows, "offsets", np.int32),
                                                                bool(has_escape), int(precision))
        table._native._set_version(int(version))
        return table

    def __repr__(self) -> str:
        return f"CategoricalTable(rows={self.rows}, precision={self.precision})"
