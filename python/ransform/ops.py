"""Differentiable helpers shared by layers and entropy models."""
from __future__ import annotations

import torch


class _LowerBound(torch.autograd.Function):
    """max(x, bound) whose gradient passes where x >= bound, and also below the bound where
    the gradient would push x up: a clamped value still learns to leave the bound, instead
    of being stuck with a zero gradient forever."""

    @staticmethod
    def forward(ctx, x, bound):
        ctx.save_for_backward(x)
        ctx.bound = bound
        return torch.clamp_min(x, bound)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        passes = (x >= ctx.bound) | (grad < 0)
        return grad * passes.to(grad.dtype), None


def lower_bound(x: torch.Tensor, bound: float) -> torch.Tensor:
    """``max(x, bound)`` with the gradient rule of :class:`_LowerBound`."""
    return _LowerBound.apply(x, float(bound))


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Rounding with the identity as gradient (straight-through estimator)."""
    return x + (torch.round(x) - x).detach()
