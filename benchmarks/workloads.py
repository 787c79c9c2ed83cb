"""Public benchmark workloads for entropy coders (pure numpy/scipy, fixed seeds, no files).

The workloads are described in DESIGN.md, "Public benchmark workloads":

* ``W1``  hyperprior latent: 16 latents of 192x32x48, per-symbol scale log-uniform in
  [0.11, 20], mean 0, values drawn from the discretised Gaussian.
* ``W1m`` as W1, with per-symbol means uniform in [-2, 2]. The value is
  ``v = rint(mean + scale * z)``; the symbol handed to a mean-removing coder is
  ``rint(v - mean)``; the ideal is ``-log2 P(v)`` under the exact discretised Gaussian with
  that mean.
* ``W2``  factorized: 4 latents of 192x32x48; channel c has a fixed discretised logistic
  (mean 0, scale log-uniform in [0.2, 8]); coders get a per-channel categorical table over
  [-R_c, R_c], R_c = ceil(point beyond which the two-sided tail mass is < 1e-9).
* ``W3``  W1 with ~0.01 % of the symbols replaced by values from {+-1000, +-100000}.
* ``S2k``, ``S10k``, ``S30k`` small streams: a single 192x32x48 latent at low rate (scales
  log-uniform in [0.11, 0.24], [0.11, 0.4] and [0.11, 1.0], about 2, 10 and 30 KB ideal).

Everything the ideal rate needs is computed in float64 with log-domain CDF differences, so
extreme tails (W3 outliers) give finite, accurate values.

Usage::

    from benchmarks.workloads import make_workload          # or: import workloads
    w = make_workload("W1", quick=True)
    w.symbols, w.scales, w.ideal_bits
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, Optional

import numpy as np
from scipy.special import log_expit, log_ndtr

LATENT_SHAPE = (192, 32, 48)
LN2 = math.log(2.0)

# Fixed seeds, one per workload (W3 reuses W1's data and adds its own outlier seed).
SEEDS = {"W1": 1, "W1m": 2, "W2": 3, "W3": 4, "S2k": 5, "S30k": 6, "S10k": 7}

W1_SCALE_RANGE = (0.11, 20.0)
W1M_MEAN_RANGE = (-2.0, 2.0)
W2_SCALE_RANGE = (0.2, 8.0)
W2_TAIL_MASS = 1e-9
W3_OUTLIER_FRACTION = 1e-4
W3_OUTLIER_VALUES = (1000, -1000, 100000, -100000)
# Upper scale bounds chosen so that one 192x32x48 latent codes to ~2 KB and ~30 KB ideal.
S_SCALE_RANGES = {"S2k": (0.11, 0.24), "S10k": (0.11, 0.4), "S30k": (0.11, 1.0)}

ALL_WORKLOADS = ("W1", "W1m", "W2", "W3", "S2k", "S10k", "S30k")


# ----------------------------------------------------------------------------------------
# exact discretised log-probabilities
# ----------------------------------------------------------------------------------------

def _log_diff_exp(log_hi: np.ndarray, log_lo: np.ndarray) -> np.ndarray:
    """log(exp(log_hi) - exp(log_lo)) for log_hi >= log_lo, accurate in both regimes."""
    d = log_lo - log_hi  # <= 0
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(
            d > -LN2,
            np.log(-np.expm1(np.minimum(d, -1e-300))),
            np.log1p(-np.exp(d)),
        )
    return log_hi + out


def _log_interval_mass(a: np.ndarray, b: np.ndarray, log_cdf) -> np.ndarray:
    """ln(F(b) - F(a)) for a symmetric CDF F given as log_cdf, a < b elementwise.

    The interval is reflected to the left half-line (where F is small and accurate in
    log form) whenever its centre is positive, so neither tail loses precision.
    """
    flip = (a + b) > 0
    lo = np.where(flip, -b, a)
    hi = np.where(flip, -a, b)
    return _log_diff_exp(log_cdf(hi), log_cdf(lo))


def gaussian_log2_pmf(k, scale, mean=0.0) -> np.ndarray:
    """log2 P(k) for the Gaussian N(mean, scale^2) discretised on unit bins centred at
    integers: P(k) = Phi((k + .5 - mean)/scale) - Phi((k - .5 - mean)/scale)."""
    k = np.asarray(k, dtype=np.float64)
    s = np.asarray(scale, dtype=np.float64)
    m = np.asarray(mean, dtype=np.float64)
    a = (k - 0.5 - m) / s
    b = (k + 0.5 - m) / s
    return _log_interval_mass(a, b, log_ndtr) / LN2


def logistic_log2_pmf(k, scale, mean=0.0) -> np.ndarray:
    """log2 P(k) for the logistic (mean, scale) discretised on unit bins centred at
    integers: P(k) = sigmoid((k + .5 - mean)/scale) - sigmoid((k - .5 - mean)/scale)."""
    k = np.asarray(k, dtype=np.float64)
    s = np.asarray(scale, dtype=np.float64)
    m = np.asarray(mean, dtype=np.float64)
    a = (k - 0.5 - m) / s
    b = (k + 0.5 - m) / s
    return _log_interval_mass(a, b, log_expit) / LN2


def _chunked_sum(fn, *arrays, chunk: int = 1 << 20) -> float:
    """sum(fn(*arrays)) over flattened arrays in chunks (bounded temporary memory)."""
    flat = [np.asarray(x).reshape(-1) for x in arrays]
    n = flat[0].size
    total = 0.0
    for i in range(0, n, chunk):
        total += float(np.sum(fn(*(x[i:i + chunk] for x in flat)), dtype=np.float64))
    return total


def gaussian_ideal_bits(values, scales, means=None) -> float:
    """Sum of -log2 P(v) under the exact (unsnapped) discretised Gaussians."""
    if means is None:
        return -_chunked_sum(lambda v, s: gaussian_log2_pmf(v, s), values, scales)
    return -_chunked_sum(lambda v, s, m: gaussian_log2_pmf(v, s, m), values, scales, means)


def logistic_support_radius(scale: float, tail_mass: float = W2_TAIL_MASS) -> int:
    """R = ceil(x) with x the point where the two-sided logistic tail mass
    2 * sigmoid(-x / scale) equals tail_mass."""
    x = scale * math.log(2.0 / tail_mass - 1.0)
    return int(math.ceil(x))


# ----------------------------------------------------------------------------------------
# workload container
# ----------------------------------------------------------------------------------------

@dataclass
class Workload:
    name: str
    kind: str                    # "gaussian" or "categorical"
    symbols: np.ndarray          # int32: what a (mean-removing) coder encodes and must decode
    ideal_bits: float            # -log2 P under the exact model (see module doc)
    description: str = ""
    scales: Optional[np.ndarray] = None   # float32, same shape as symbols (gaussian)
    # W1m: exact per-symbol means and the un-shifted integer values v
    means: Optional[np.ndarray] = None    # float32
    values: Optional[np.ndarray] = None   # int32, v (exact-mean coders code these)
    mean_removed_ideal_bits: Optional[float] = None  # sum -log2 P0(symbols | scale)
    # categorical (W2)
    channel: Optional[np.ndarray] = None  # int32 per-symbol row index into pmfs
    pmfs: Optional[np.ndarray] = None     # float64 (rows, width), zero-padded on the right
    offsets: Optional[np.ndarray] = None  # int32 (rows,): value of column 0 of each row
    lengths: Optional[np.ndarray] = None  # int32 (rows,): used width (2R+1) of each row
    channel_scales: Optional[np.ndarray] = None
    # W3
    n_outliers: int = 0
    outlier_positions: Optional[np.ndarray] = None
    base: Optional[str] = None            # name of the workload this one perturbs
    extra: Dict[str, object] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.symbols.size)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float, shape) -> np.ndarray:
    return np.exp(rng.uniform(math.log(lo), math.log(hi), size=shape)).astype(np.float32)


def _gaussian(name: str, n_latents: int, scale_range, seed: int, with_means: bool) -> Workload:
    shape = (n_latents,) + LATENT_SHAPE
    rng = np.random.default_rng(seed)
    scales = _log_uniform(rng, scale_range[0], scale_range[1], shape)
    z = rng.standard_normal(size=shape)
    s64 = scales.astype(np.float64)
    desc = (f"{n_latents}x{'x'.join(map(str, LATENT_SHAPE))} Gaussian, scale log-U"
            f"[{scale_range[0]:g},{scale_range[1]:g}]")
    if not with_means:
        values = np.rint(s64 * z).astype(np.int32)
        del z
        ideal = gaussian_ideal_bits(values, scales)
        return Workload(name=name, kind="gaussian", symbols=values, scales=scales,
                        ideal_bits=ideal, description=desc + ", mean 0")
    means = rng.uniform(W1M_MEAN_RANGE[0], W1M_MEAN_RANGE[1], size=shape).astype(np.float32)
    m64 = means.astype(np.float64)
    values = np.rint(m64 + s64 * z).astype(np.int32)
    del z
    symbols = np.rint(values - m64).astype(np.int32)
    ideal = gaussian_ideal_bits(values, scales, means)
    ideal_mr = gaussian_ideal_bits(symbols, scales)
    return Workload(name=name, kind="gaussian", symbols=symbols, scales=scales,
                    means=means, values=values, ideal_bits=ideal,
                    mean_removed_ideal_bits=ideal_mr,
                    description=desc + f", mean U[{W1M_MEAN_RANGE[0]:g},{W1M_MEAN_RANGE[1]:g}]")


def make_w1(quick: bool = False) -> Workload:
    return _gaussian("W1", 2 if quick else 16, W1_SCALE_RANGE, SEEDS["W1"], False)


def make_w1m(quick: bool = False) -> Workload:
    return _gaussian("W1m", 2 if quick else 16, W1_SCALE_RANGE, SEEDS["W1m"], True)


def make_w3(quick: bool = False, w1: Optional[Workload] = None) -> Workload:
    """W1 with ~0.01 % of symbols replaced by outliers (seeded positions and values)."""
    if w1 is None:
        w1 = make_w1(quick)
    rng = np.random.default_rng(SEEDS["W3"])
    n = w1.symbols.size
    n_out = max(1, int(round(W3_OUTLIER_FRACTION * n)))
    pos = np.sort(rng.choice(n, size=n_out, replace=False))
    vals = rng.choice(np.array(W3_OUTLIER_VALUES, dtype=np.int32), size=n_out)
    symbols = w1.symbols.copy()
    symbols.reshape(-1)[pos] = vals
    # Ideal: W1's ideal with the outliers' terms swapped (finite thanks to log-domain tails).
    s = w1.scales.reshape(-1)[pos]
    old = w1.symbols.reshape(-1)[pos]
    ideal = (w1.ideal_bits + float(np.sum(gaussian_log2_pmf(old, s)))
             - float(np.sum(gaussian_log2_pmf(vals, s))))
    return Workload(name="W3", kind="gaussian", symbols=symbols, scales=w1.scales,
                    ideal_bits=ideal, n_outliers=n_out, outlier_positions=pos, base="W1",
                    description=f"W1 + {n_out} outliers from {{+-1000, +-100000}}")


def make_w2(quick: bool = False) -> Workload:
    n_latents = 1 if quick else 4
    C = LATENT_SHAPE[0]
    shape = (n_latents,) + LATENT_SHAPE
    rng = np.random.default_rng(SEEDS["W2"])
    ch_scales = np.exp(rng.uniform(math.log(W2_SCALE_RANGE[0]), math.log(W2_SCALE_RANGE[1]),
                                   size=C))
    radii = np.array([logistic_support_radius(s) for s in ch_scales], dtype=np.int64)
    width = int(2 * radii.max() + 1)
    pmfs = np.zeros((C, width), dtype=np.float64)
    for c in range(C):
        k = np.arange(-radii[c], radii[c] + 1)
        pmfs[c, : k.size] = np.exp2(logistic_log2_pmf(k, ch_scales[c]))
    offsets = (-radii).astype(np.int32)
    lengths = (2 * radii + 1).astype(np.int32)
    bshape = (1, C) + (1,) * (len(LATENT_SHAPE) - 1)
    samples = rng.logistic(loc=0.0, scale=1.0, size=shape) * ch_scales.reshape(bshape)
    symbols = np.rint(samples).astype(np.int32)
    del samples
    channel = np.broadcast_to(np.arange(C, dtype=np.int32).reshape(bshape), shape).copy()
    ch_s = np.broadcast_to(ch_scales.reshape(bshape), shape)
    ideal = -_chunked_sum(lambda v, s: logistic_log2_pmf(v, s), symbols, ch_s)
    out_of_support = int(np.sum(np.abs(symbols) > radii.reshape(bshape)))
    return Workload(name="W2", kind="categorical", symbols=symbols, ideal_bits=ideal,
                    channel=channel, pmfs=pmfs, offsets=offsets, lengths=lengths,
                    channel_scales=ch_scales,
                    extra={"out_of_support": out_of_support, "tail_mass": W2_TAIL_MASS},
                    description=(f"{n_latents}x{'x'.join(map(str, LATENT_SHAPE))} factorized "
                                 f"logistic, per-channel scale log-U[{W2_SCALE_RANGE[0]:g},"
                                 f"{W2_SCALE_RANGE[1]:g}], table width {width}"))


def make_small(name: str) -> Workload:
    rng_range = S_SCALE_RANGES[name]
    return _gaussian(name, 1, rng_range, SEEDS[name], False)


def make_workload(name: str, quick: bool = False, cache: Optional[dict] = None) -> Workload:
    """Build one workload by name. `cache` (a dict) lets W3 reuse an already built W1."""
    if cache is not None and name in cache:
        return cache[name]
    if name == "W1":
        w = make_w1(quick)
    elif name == "W1m":
        w = make_w1m(quick)
    elif name == "W2":
        w = make_w2(quick)
    elif name == "W3":
        w1 = make_workload("W1", quick, cache) if cache is not None else None
        w = make_w3(quick, w1)
    elif name in S_SCALE_RANGES:
        w = make_small(name)
    else:
        raise ValueError(f"unknown workload {name!r}; choose from {', '.join(ALL_WORKLOADS)}")
    if cache is not None:
        cache[name] = w
    return w


def expand_names(spec: str):
    """'W1,S' -> ['W1', 'S2k', 'S10k', 'S30k'] ('S' is shorthand for the small-stream variants)."""
    out = []
    for tok in (t.strip() for t in spec.split(",")):
        if not tok:
            continue
        names = list(S_SCALE_RANGES) if tok == "S" else [tok]
        for n in names:
            if n not in ALL_WORKLOADS:
                raise ValueError(f"unknown workload {n!r}; choose from "
                                 f"{', '.join(ALL_WORKLOADS)} or S")
            if n not in out:
                out.append(n)
    return out
