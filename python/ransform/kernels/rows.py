"""Coder rows computed where the parameters live, bit for bit the CPU's: a scale table's rows
(:func:`build_scale_rows_on_gpu`), the scale -> row map (:func:`scale_index`) and per-element
rows of mixtures (:func:`mixture_rows`: Gaussian mixtures, and mixtures of the Laplace and
logistic families, coded without per-element Python work).

The row code is ``csrc/core`` (``scale_rows.hpp``, ``mixture.hpp``): on the CPU through
``ransform._core``, for CUDA tensors the same code compiled for the GPU (``ransform._cuda``),
so the encoder and the decoder may use different devices. Only the finished rows travel to
the host coder.
"""
from __future__ import annotations

import weakref

import numpy as np
import torch

from ransform import _core
from ransform.kernels.backend import backend, cuda_kernels, stream
from ransform.kernels.families import check_family


# --- scale tables ------------------------------------------------------------------------------
def build_scale_rows_on_gpu(family: str, scales: np.ndarray, precision: int, tail_mass: float, version: int, device):
    """:func:`ransform.tables.build_scale_rows` on the GPU ``device``: one thread per row, the
    CPU's code; host arrays in and out."""
    if backend() != "cuda":
        raise RuntimeError("building tables on the GPU needs ransform._cuda and a CUDA GPU "
                           f"(ransform.backend() is {backend()!r})")
    with torch.cuda.device(torch.device(device)):
        return cuda_kernels.build_scale_rows(family, scales, precision, tail_mass, version, stream())


# Thresholds uploaded once per table and device. The key is the table object itself, held
# weakly: an entry dies with its table. (An id() key outlives its object, and a new table
# allocated at the freed address was served the old table's thresholds: wrong rows.)
_THRESHOLDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def device_thresholds(table, device) -> torch.Tensor:
    """``table.thresholds`` as a tensor on ``device``, uploaded on the first call only."""
    per_device = _THRESHOLDS.setdefault(table, {})
    key = str(device)
    if key not in per_device:
        per_device[key] = torch.from_numpy(table.thresholds).to(device)
    return per_device[key]


def scale_index(table, scales: torch.Tensor) -> torch.Tensor:
    """Rows of ``table`` (a :class:`ransform.ScaleTable`) for ``scales``, as int32 on the scales'
    device: ``#{thresholds <= scale}``, the CPU's exact float32 comparisons, so GPU and CPU
    rows are identical. Raises ValueError for NaN, infinite or negative scales."""
    s = scales.detach().to(torch.float32).contiguous()
    if s.is_cuda and backend() == "cuda":
        thresholds = device_thresholds(table, s.device)
        rows = torch.empty(s.shape, dtype=torch.int32, device=s.device)
        invalid = torch.zeros(1, dtype=torch.int32, device=s.device)
        cuda_kernels.scale_index(s.data_ptr(), s.numel(), thresholds.data_ptr(), thresholds.numel(),
                                 rows.data_ptr(), invalid.data_ptr(), stream())
        if invalid.item():
            raise ValueError("scales must be finite and >= 0 (got NaN, infinite or negative values)")
        return rows
    return torch.from_numpy(table.index(s.cpu().numpy())).to(s.device)


# --- mixtures ------------------------------------------------------------------------------------
def _element_major(t: torch.Tensor, name: str, shape) -> torch.Tensor:
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)} (elements, components), got {tuple(t.shape)}")
    return t.detach().to(torch.float32).contiguous()


def mixture_rows(weights: torch.Tensor, means: torch.Tensor, scales: torch.Tensor, *, family: str = "gaussian",
                 deviations: float = 6.0, max_symbols: int = 256, precision: int = 16, threads: int = 1):
    """Rows for n mixtures of K components, given as (n, K) tensors.

    Each row covers the integers from min_k(mean - deviations * scale) to
    max_k(mean + deviations * scale) (at most ``max_symbols``), plus an escape symbol.

    Returns numpy ``(frequencies (n, width) uint32, offsets (n,) int32, lengths (n,) int32)``;
    ``lengths`` count the escape symbol. Raises ValueError naming an element with invalid
    parameters (NaN or infinite values, negative weights or all-zero ones, non-positive scales).
    """
    check_family(family)
    if weights.dim() != 2:
        raise ValueError(f"weights must have shape (elements, components), got {tuple(weights.shape)}")
    w = _element_major(weights, "weights", weights.shape)
    m = _element_major(means, "means", weights.shape)
    s = _element_major(scales, "scales", weights.shape)
    if len({t.device for t in (w, m, s)}) != 1:
        raise ValueError("weights, means and scales must be on one device")
    args = (family, float(deviations), int(max_symbols), int(precision))
    if w.is_cuda and backend() == "cuda":
        return _mixture_rows_on_gpu(w, m, s, *args)
    return _core.mixture_rows(w.cpu().numpy(), m.cpu().numpy(), s.cpu().numpy(), *args, int(threads))


def _mixture_rows_on_gpu(w, m, s, family, deviations, max_symbols, precision):
    n, k = w.shape
    on = stream(w.device)
    offsets = torch.empty(n, dtype=torch.int32, device=w.device)
    lengths = torch.empty(n, dtype=torch.int32, device=w.device)
    invalid = torch.zeros(1, dtype=torch.int32, device=w.device)
    ptrs = (w.data_ptr(), m.data_ptr(), s.data_ptr(), n, k, family, deviations, max_symbols, precision)
    cuda_kernels.mixture_support(*ptrs, offsets.data_ptr(), lengths.data_ptr(), invalid.data_ptr(), on)
    if invalid.item():
        # The CPU names the element; run it there for the message (an error path only).
        _core.mixture_rows(w.cpu().numpy(), m.cpu().numpy(), s.cpu().numpy(), family, deviations, max_symbols,
                           precision)
    width = int(lengths.max()) if n else 1
    freqs = torch.empty((n, width), dtype=torch.int32, device=w.device)
    cuda_kernels.mixture_frequencies(*ptrs, offsets.data_ptr(), lengths.data_ptr(), width, freqs.data_ptr(), on)
    return freqs.cpu().numpy().view(np.uint32), offsets.cpu().numpy(), lengths.cpu().numpy()
