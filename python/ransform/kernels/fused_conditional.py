"""Fused likelihood of the conditional entropy models (Gaussian, Laplace, logistic): one pass
forward and one pass backward over the elements, instead of a chain of small elementwise
kernels.

On CUDA tensors (with ``ransform._cuda`` built and a GPU present) the kernels in
``csrc/cuda/likelihood.cu`` run on ``torch.cuda.current_stream()``; elsewhere the same forward
and the same explicit backward run as PyTorch operations (the reference the CUDA path is
tested against, and what ``gradcheck`` checks).

Semantics are those of :class:`ransform.entropy_models.GaussianConditional`: likelihood from
the upper tails of |v - mean|, scales lower-bounded, likelihood lower-bounded, both bounds
with the "gradient passes where it pushes the value up" rule of :func:`ransform.ops.lower_bound`.
Inputs may be float16 / bfloat16; the computation is float32 (float64 stays float64 on the
PyTorch path).
"""
from __future__ import annotations

import torch

from ransform.kernels.backend import cuda_kernels, float32, on_gpu, stream
from ransform.kernels.families import FAMILIES, check_family, density, upper_tail


# --- the reference math (PyTorch ops), also the CPU path -----------------------------------------
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
def _launch_forward(values, scales, means, family, scale_bound, likelihood_bound, bits: bool):
    """The forward kernel: the bounded likelihood, and with ``bits`` its -log2 (same pass)."""
    v, s, m = float32(values), float32(scales), float32(means)
    lik = torch.empty_like(v)
    out_bits = torch.empty_like(v) if bits else None
    cuda_kernels.conditional_likelihood_forward(v.data_ptr(), s.data_ptr(), 0 if m is None else m.data_ptr(),
                                                v.numel(), FAMILIES[family], scale_bound, likelihood_bound,
                                                lik.data_ptr(), 0 if out_bits is None else out_bits.data_ptr(),
                                                stream())
    return out_bits if bits else lik


class ConditionalLikelihood(torch.autograd.Function):
    """Bounded likelihood of ``values`` under ``family`` (a name of :data:`FAMILIES`) at
    ``scales`` (and ``means``)."""

    @staticmethod
    def forward(ctx, values, scales, means, family: str, scale_bound: float, likelihood_bound: float):
        ctx.family, ctx.scale_bound, ctx.likelihood_bound = family, scale_bound, likelihood_bound
        ctx.has_means = means is not None
        ctx.save_for_backward(values, scales, *(() if means is None else (means,)))
        if on_gpu(values, scales, means):
            out = _launch_forward(values, scales, means, family, scale_bound, likelihood_bound, bits=False)
            return out.to(values.dtype) if values.dtype == torch.float64 else out
        lik = _raw(values, scales, means, family, scale_bound)[-1]
        return torch.clamp_min(lik, likelihood_bound) if likelihood_bound > 0 else lik

    @staticmethod
    def backward(ctx, grad):
        values, scales, *rest = ctx.saved_tensors
        means = rest[0] if ctx.has_means else None
        if on_gpu(values, scales, means):
            v, s, m, g = float32(values), float32(scales), float32(means), float32(grad)
            g_v, g_s = torch.empty_like(v), torch.empty_like(v)
            g_m = torch.empty_like(v) if m is not None else None
            cuda_kernels.conditional_likelihood_backward(
                v.data_ptr(), s.data_ptr(), 0 if m is None else m.data_ptr(), v.numel(), FAMILIES[ctx.family],
                ctx.scale_bound, ctx.likelihood_bound, g.data_ptr(), g_v.data_ptr(), g_s.data_ptr(),
                0 if g_m is None else g_m.data_ptr(), stream())
        else:
            g_v, g_s, g_m = _reference_backward(values, scales, means, ctx.family, ctx.scale_bound,
                                                ctx.likelihood_bound, grad)
        return (g_v.to(values.dtype), g_s.to(scales.dtype), None if means is None else g_m.to(means.dtype),
                None, None, None)


def _check_conditional(values, scales, means, family):
    check_family(family)
    if values.shape != scales.shape or (means is not None and means.shape != values.shape):
        raise ValueError("values, scales and means must have the same shape")
    devices = {t.device for t in (values, scales, means) if t is not None}
    if len(devices) != 1:
        raise ValueError(f"values, scales and means must be on one device, got {sorted(map(str, devices))}")


def conditional_likelihood(values, scales, means=None, family: str = "gaussian", scale_bound: float = 0.11,
                           likelihood_bound: float = 1e-9):
    """Bounded likelihood (see module docs); shapes must match (no broadcasting)."""
    _check_conditional(values, scales, means, family)
    return ConditionalLikelihood.apply(values, scales, means, family, float(scale_bound), float(likelihood_bound))


@torch.no_grad()
def conditional_bits(values, scales, means=None, family: str = "gaussian", scale_bound: float = 0.11,
                     likelihood_bound: float = 1e-9):
    """-log2 of :func:`conditional_likelihood`, per element, for bit maps (no gradient). On CUDA
    tensors the forward kernel writes the bits itself (float32)."""
    if not on_gpu(values, scales, means):
        return -torch.log2(conditional_likelihood(values, scales, means, family, scale_bound, likelihood_bound))
    _check_conditional(values, scales, means, family)
    return _launch_forward(values, scales, means, family, float(scale_bound), float(likelihood_bound), bits=True)
