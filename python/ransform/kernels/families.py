"""The distribution families: their integer codes, read from the C++ core (``csrc/core/families.hpp``,
their one definition, which the CUDA kernels include too), and the unit families' upper tail
and density as PyTorch operations: the reference math of the fused kernels and the CPU path
of the entropy models."""
from __future__ import annotations

import math

import torch

from ransform import _core

#: name -> the integer code the kernels take.
FAMILIES: dict[str, int] = _core.families()

_SQRT1_2 = 1 / math.sqrt(2)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


def _laplace_tail(t):
    e = 0.5 * torch.exp(-torch.abs(t))
    return torch.where(t >= 0, e, 1 - e)


def _logistic_density(t):
    e = torch.exp(-torch.abs(t))  # symmetric: sigmoid(t) (1 - sigmoid(t)), exact in both tails
    return e / ((1 + e) * (1 + e))


# Per family, P(X > t) and the density at t of the unit distribution.
_UPPER_TAIL = {
    "gaussian": lambda t: 0.5 * torch.erfc(t * _SQRT1_2),
    "laplace": _laplace_tail,
    "logistic": lambda t: torch.sigmoid(-t),
}
_DENSITY = {
    "gaussian": lambda t: _INV_SQRT_2PI * torch.exp(-0.5 * t * t),
    "laplace": lambda t: 0.5 * torch.exp(-torch.abs(t)),
    "logistic": _logistic_density,
}


def check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {sorted(FAMILIES)}, got {family!r}")


def upper_tail(family: str, t):
    """P(X > t) for the unit distribution of ``family``."""
    return _UPPER_TAIL[family](t)


def density(family: str, t):
    """The unit distribution's density at t."""
    return _DENSITY[family](t)
