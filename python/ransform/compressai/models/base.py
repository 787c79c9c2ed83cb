"""``compressai.models.base``: the ``CompressionModel`` base class research models derive from,
and the 64-level scale table CompressAI's conditional models code with."""
from __future__ import annotations

import math
import warnings

import torch
from torch import nn

from ransform.compressai.entropy_models import EntropyBottleneck, GaussianConditional
from ransform.compressai.models.utils import remap_old_keys, update_registered_buffers

__all__ = ["SCALES_LEVELS", "SCALES_MAX", "SCALES_MIN", "CompressionModel", "get_scale_table"]

SCALES_MIN = 0.11
SCALES_MAX = 256
SCALES_LEVELS = 64


def get_scale_table(min: float = SCALES_MIN, max: float = SCALES_MAX, levels: int = SCALES_LEVELS) -> torch.Tensor:
    """``levels`` scales spaced evenly in log from ``min`` to ``max``."""
    return torch.exp(torch.linspace(math.log(min), math.log(max), levels))


class CompressionModel(nn.Module):
    """Base class of models built from :mod:`ransform.compressai.entropy_models`:
    ``update()`` builds their CDFs, ``aux_loss()`` sums the bottlenecks' quantile losses, and
    ``load_state_dict`` first gives the CDF buffers the checkpoint's sizes."""

    def __init__(self, entropy_bottleneck_channels: int | None = None, init_weights=None):
        super().__init__()
        if entropy_bottleneck_channels is not None:
            warnings.warn("entropy_bottleneck_channels is deprecated (as in CompressAI): create "
                          "self.entropy_bottleneck = EntropyBottleneck(channels) in the model",
                          DeprecationWarning, stacklevel=2)
            self.entropy_bottleneck = EntropyBottleneck(entropy_bottleneck_channels)
        if init_weights is not None:
            warnings.warn("init_weights has no effect (as in CompressAI)", DeprecationWarning, stacklevel=2)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        for name, module in self.named_modules():
            if not any(key.startswith(name) for key in state_dict):
                continue
            if isinstance(module, EntropyBottleneck):
                update_registered_buffers(module, name, ["_quantized_cdf", "_offset", "_cdf_length"], state_dict)
                state_dict = remap_old_keys(name, state_dict)
            if isinstance(module, GaussianConditional):
                update_registered_buffers(module, name, ["_quantized_cdf", "_offset", "_cdf_length", "scale_table"],
                                          state_dict)
        return nn.Module.load_state_dict(self, state_dict, strict=strict, assign=assign)

    def update(self, scale_table=None, force: bool = False, update_quantiles: bool = False) -> bool:
        """Builds every entropy model's CDFs (Gaussian ones at ``scale_table``, default
        :func:`get_scale_table`); True if any changed. Call after training or loading."""
        if scale_table is None:
            scale_table = get_scale_table()
        updated = False
        for module in self.modules():
            if isinstance(module, EntropyBottleneck):
                updated |= module.update(force=force, update_quantiles=update_quantiles)
            if isinstance(module, GaussianConditional):
                updated |= module.update_scale_table(scale_table, force=force)
        return updated

    def aux_loss(self) -> torch.Tensor:
        """The bottlenecks' quantile loss, for the auxiliary optimizer."""
        return sum(m.loss() for m in self.modules() if isinstance(m, EntropyBottleneck))
