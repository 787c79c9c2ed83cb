"""Fused likelihoods: one pass forward and one pass backward over the elements, instead of a
chain of small elementwise kernels.

On CUDA tensors (with ``ransform._cuda`` built and a GPU present) the kernels in
``csrc/cuda`` run on ``torch.cuda.current_stream()``; elsewhere the same forward and the
same explicit backward run as PyTorch operations (the reference the CUDA path is tested
against, and what ``gradcheck`` checks). :func:`backend` says which path CUDA tensors take.

Semantics are those of :class:`ransform.entropy_models.GaussianConditional`: likelihood from
the upper tails of |v - mean|, scales lower-bounded, likelihood lower-bounded, both bounds
with the "gradient passes where it pushes the value up" rule of :func:`ransform.ops.lower_bound`.
Inputs may be float16 / bfloat16; the computation is float32 (float64 stays float64 on the
PyTorch path).
"""
from __future__ import annotations

import functools
import math

import torch

FAMILIES = {"gaussian": 0, "laplace": 1, "logistic": 2}

try:
    from ransform import _cuda
except ImportError:  # built without nvcc
    _cuda = None


@functools.lru_cache(maxsize=1)
def backend() -> str:
    """``"cuda"`` when CUDA tensors use the fused kernels, else ``"pytorch"``. Cached: asking
    the CUDA runtime for devices without a driver takes milliseconds."""
    if _cuda is not None and _cuda.device_count() > 0 and torch.cuda.is_available():
        return "cuda"
    return "pytorch"


def cuda_module_built() -> bool:
    return _cuda is not None


# --- the reference math (PyTorch ops), also the CPU path -----------------------------------------
_SQRT1_2 = 1 / math.sqrt(2)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


def upper_tail(family: int, t):
    """P(X > t) for the unit family (0 gaussian, 1 laplace, 2 logistic)."""
    if family == 0:
        return 0.5 * torch.erfc(t * _SQRT1_2)
    if family == 1:
        e = 0.5 * torch.exp(-torch.abs(t))
        return torch.where(t >= 0, e, 1 - e)
    return torch.sigmoid(-t)


def density(family: int, t):
    """The unit family's density at t."""
    if family == 0:
        return _INV_SQRT_2PI * torch.exp(-0.5 * t * t)
    if family == 1:
        return 0.5 * torch.exp(-torch.abs(t))
    e = torch.exp(-torch.abs(t))
    return e / ((1 + e) * (1 + e))


def _raw(values, scales, means, family, scale_bound):
    centred = values if means is None else values - means
    d = torch.abs(centred)
    s = torch.clamp_min(scales, scale_bound)
    u, l = (d - 0.5) / s, (d + 0.5) / s
    return centred, s, u, l, upper_tail(family, u) - upper_tail(family, l)


def _reference_backward(values, scales, means, family, scale_bound, likelihood_bound, grad):
    centred, s, u, l, lik = _raw(values, scales, means, family, scale_bound)
    if likelihood_bound > 0:
        grad = torch.where((lik >= likelihood_bound) | (grad < 0), grad, torch.zeros_like(grad))
    pu, pl = density(family, u), density(family, l)
    g_d = grad * (pl - pu) / s
    g_s = grad * (pu * u - pl * l) / s
    g_s = torch.where((scales >= scale_bound) | (g_s < 0), g_s, torch.zeros_like(g_s))
    g_v = g_d * torch.sign(centred)
    return g_v, g_s, -g_v


# --- the autograd function -----------------------------------------------------------------------
def _cuda_ready(*tensors) -> bool:
    return backend() == "cuda" and all(t is None or t.is_cuda for t in tensors)


def _flat32(t):
    return None if t is None else t.detach().to(torch.float32).contiguous()


class ConditionalLikelihood(torch.autograd.Function):
    """Bounded likelihood of ``values`` under the family at ``scales`` (and ``means``)."""

    @staticmethod
    def forward(ctx, values, scales, means, family: int, scale_bound: float, likelihood_bound: float):
        ctx.family, ctx.scale_bound, ctx.likelihood_bound = family, scale_bound, likelihood_bound
        ctx.has_means = means is not None
        ctx.save_for_backward(values, scales, *(() if means is None else (means,)))
        if _cuda_ready(values, scales, means):
            v, s, m = _flat32(values), _flat32(scales), _flat32(means)
            out = torch.empty_like(v)
            _cuda.conditional_likelihood_forward(v.data_ptr(), s.data_ptr(), 0 if m is None else m.data_ptr(),
                                                 v.numel(), family, scale_bound, likelihood_bound, out.data_ptr(), 0,
                                                 torch.cuda.current_stream().cuda_stream)
            return out.to(values.dtype) if values.dtype == torch.float64 else out
        lik = _raw(values, scales, means, family, scale_bound)[-1]
        return torch.clamp_min(lik, likelihood_bound) if likelihood_bound > 0 else lik

    @staticmethod
    def backward(ctx, grad):
        values, scales, *rest = ctx.saved_tensors
        means = rest[0] if ctx.has_means else None
        if _cuda_ready(values, scales, means):
            v, s, m, g = _flat32(values), _flat32(scales), _flat32(means), _flat32(grad)
            g_v, g_s = torch.empty_like(v), torch.empty_like(v)
            g_m = torch.empty_like(v) if m is not None else None
            _cuda.conditional_likelihood_backward(
                v.data_ptr(), s.data_ptr(), 0 if m is None else m.data_ptr(), v.numel(), ctx.family,
                ctx.scale_bound, ctx.likelihood_bound, g.data_ptr(), g_v.data_ptr(), g_s.data_ptr(),
                0 if g_m is None else g_m.data_ptr(), torch.cuda.current_stream().cuda_stream)
        else:
            g_v, g_s, g_m = _reference_backward(values, scales, means, ctx.family, ctx.scale_bound,
                                                ctx.likelihood_bound, grad)
        return (g_v.to(values.dtype), g_s.to(scales.dtype), None if means is None else g_m.to(means.dtype),
                None, None, None)


def _check_conditional(values, scales, means, family):
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {sorted(FAMILIES)}, got {family!r}")
    if values.shape != scales.shape or (means is not None and means.shape != values.shape):
        raise ValueError("values, scales and means must have the same shape")
    devices = {t.device for t in (values, scales, means) if t is not None}
    if len(devices) != 1:
        raise ValueError(f"values, scales and means must be on one device, got {sorted(map(str, devices))}")


def conditional_likelihood(values, scales, means=None, family: str = "gaussian", scale_bound: float = 0.11,
                           likelihood_bound: float = 1e-9):
    """Bounded likelihood (see module docs); shapes must match (no broadcasting)."""
    _check_conditional(values, scales, means, family)
    return ConditionalLikelihood.apply(values, scales, means, FAMILIES[family], float(scale_bound),
                                       float(likelihood_bound))


@torch.no_grad()
def conditional_bits(values, scales, means=None, family: str = "gaussian", scale_bound: float = 0.11,
                     likelihood_bound: float = 1e-9):
    """-log2 of :func:`conditional_likelihood`, per element, for bit maps (no gradient). On CUDA
    tensors the forward kernel writes the bits itself (float32)."""
    if not _cuda_ready(values, scales, means):
        return -torch.log2(conditional_likelihood(values, scales, means, family, scale_bound, likelihood_bound))
    _check_conditional(values, scales, means, family)
    v, s, m = _flat32(values), _flat32(scales), _flat32(means)
    lik, bits = torch.empty_like(v), torch.empty_like(v)
    _cuda.conditional_likelihood_forward(v.data_ptr(), s.data_ptr(), 0 if m is None else m.data_ptr(), v.numel(),
                                         FAMILIES[family], float(scale_bound), float(likelihood_bound),
                                         lik.data_ptr(), bits.data_ptr(), torch.cuda.current_stream().cuda_stream)
    return bits


# --- scale -> table row on the GPU -------------------------------------------------------------
_THRESHOLDS: dict = {}


def _thresholds_on(table, device) -> torch.Tensor:
    key = (id(table._native), str(device))
    if key not in _THRESHOLDS:  # uploaded once per table and device
        _THRESHOLDS[key] = torch.from_numpy(table.thresholds).to(device)
    return _THRESHOLDS[key]


def scale_index(table, scales: torch.Tensor) -> torch.Tensor:
    """Rows of ``table`` (a :class:`ransform.ScaleTable`) for ``scales``, as int32 on the scales'
    device: ``#{thresholds <= scale}``, the CPU's exact float32 comparisons, so GPU and CPU
    rows are identical. Raises ValueError for NaN, infinite or negative scales."""
    s = scales.detach().to(torch.float32).contiguous()
    if s.is_cuda and backend() == "cuda":
        thresholds = _thresholds_on(table, s.device)
        rows = torch.empty(s.shape, dtype=torch.int32, device=s.device)
        invalid = torch.zeros(1, dtype=torch.int32, device=s.device)
        _cuda.scale_index(s.data_ptr(), s.numel(), thresholds.data_ptr(), thresholds.numel(), rows.data_ptr(),
                          invalid.data_ptr(), torch.cuda.current_stream().cuda_stream)
        if invalid.item():
            raise ValueError("scales must be finite and >= 0 (got NaN, infinite or negative values)")
        return rows
    return torch.from_numpy(table.index(s.cpu().numpy())).to(s.device)
