"""``compressai.ops``: the straight-through rounding and the lower bound with CompressAI's names
(``LowerBound`` keeps its ``bound`` buffer, so CompressAI state dicts load)."""
from __future__ import annotations

import torch
from torch import nn

from ransform.ops import lower_bound, round_ste

ste_round = round_ste
quantize_ste = round_ste

__all__ = ["LowerBound", "NonNegativeParametrizer", "quantize_ste", "ste_round"]


class LowerBound(nn.Module):
    """``max(x, bound)``; the gradient passes where x >= bound or where it pushes x up."""

    bound: torch.Tensor

    def __init__(self, bound: float):
        super().__init__()
        self.register_buffer("bound", torch.tensor([float(bound)]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lower_bound(x, float(self.bound))


from ransform.compressai.ops.parametrizers import NonNegativeParametrizer  # noqa: E402 (needs LowerBound)
