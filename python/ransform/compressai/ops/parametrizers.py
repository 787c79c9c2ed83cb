"""``compressai.ops.parametrizers``: the non-negative reparametrization GDN layers use, with
CompressAI's buffers (``pedestal``, ``lower_bound.bound``)."""
from __future__ import annotations

import torch
from torch import nn

from ransform.compressai.ops import LowerBound

__all__ = ["NonNegativeParametrizer"]


class NonNegativeParametrizer(nn.Module):
    """Stores p = sqrt(max(v + pedestal, pedestal)) for a value v >= minimum and gives back
    max(p, sqrt(minimum + pedestal))**2 - pedestal; pedestal = reparam_offset**2 keeps the
    square root's gradient finite near zero."""

    pedestal: torch.Tensor

    def __init__(self, minimum: float = 0, reparam_offset: float = 2 ** -18):
        super().__init__()
        self.minimum = float(minimum)
        self.reparam_offset = float(reparam_offset)
        self.register_buffer("pedestal", torch.tensor([self.reparam_offset ** 2]))
        self.lower_bound = LowerBound((self.minimum + self.reparam_offset ** 2) ** 0.5)

    def init(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(torch.clamp_min(x + self.pedestal, float(self.pedestal)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lower_bound(x) ** 2 - self.pedestal
