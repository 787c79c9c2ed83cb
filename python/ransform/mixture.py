"""Per-element quantized distributions of mixtures (Gaussian mixtures, and mixtures of the
Laplace and logistic families): one coder row per element, so that a mixture entropy model is
coded without per-element Python work.

The rows come from ``csrc/core/mixture.hpp``: on the CPU through ``ransform._core``, for CUDA
tensors through the same code compiled for the GPU (``ransform._cuda``), bit for bit the same
(the encoder and the decoder may use different devices). Only the finished rows travel to the
host coder.
"""
from __future__ import annotations

import numpy as np
import torch

from ransform import _core, fused
from ransform.fused import FAMILIES


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
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {sorted(FAMILIES)}, got {family!r}")
    if weights.dim() != 2:
        raise ValueError(f"weights must have shape (elements, components), got {tuple(weights.shape)}")
    w = _element_major(weights, "weights", weights.shape)
    m = _element_major(means, "means", weights.shape)
    s = _element_major(scales, "scales", weights.shape)
    if len({t.device for t in (w, m, s)}) != 1:
        raise ValueError("weights, means and scales must be on one device")
    args = (family, float(deviations), int(max_symbols), int(precision))
    if w.is_cuda and fused.backend() == "cuda":
        return _rows_on_gpu(w, m, s, *args)
    return _core.mixture_rows(w.cpu().numpy(), m.cpu().numpy(), s.cpu().numpy(), *args, int(threads))


def _rows_on_gpu(w, m, s, family, deviations, max_symbols, precision):
    n, k = w.shape
    stream = torch.cuda.current_stream(w.device).cuda_stream
    offsets = torch.empty(n, dtype=torch.int32, device=w.device)
    lengths = torch.empty(n, dtype=torch.int32, device=w.device)
    invalid = torch.zeros(1, dtype=torch.int32, device=w.device)
    ptrs = (w.data_ptr(), m.data_ptr(), s.data_ptr(), n, k, family, deviations, max_symbols, precision)
    fused._cuda.mixture_support(*ptrs, offsets.data_ptr(), lengths.data_ptr(), invalid.data_ptr(), stream)
    if invalid.item():
        # The CPU names the element; run it there for the message (an error path only).
        _core.mixture_rows(w.cpu().numpy(), m.cpu().numpy(), s.cpu().numpy(), family, deviations, max_symbols,
                           precision)
    width = int(lengths.max()) if n else 1
    freqs = torch.empty((n, width), dtype=torch.int32, device=w.device)
    fused._cuda.mixture_frequencies(*ptrs, offsets.data_ptr(), lengths.data_ptr(), width, freqs.data_ptr(), stream)
    return freqs.cpu().numpy().view(np.uint32), offsets.cpu().numpy(), lengths.cpu().numpy()
