"""What every compression model shares: aux loss, update(), checkpoint loading, input checks."""
from __future__ import annotations

import torch
from torch import nn

from ransform.compat import convert_state_dict
from ransform.entropy_models import EntropyBottleneck, EntropyModel


class CompressionModel(nn.Module):
    """Base class: ``forward(x) -> {"x_hat", "likelihoods"}``, ``compress(x) -> {"strings",
    "shape"}``, ``decompress(strings, shape) -> {"x_hat"}``, ``update()``, ``aux_loss()``.

    Inputs are (N, 3, H, W) in [0, 1] with H and W multiples of ``downsampling_factor``
    (pad with :func:`ransform.image.pad`).
    """

    downsampling_factor: int = 16

    def aux_loss(self) -> torch.Tensor:
        """Sum of the EntropyBottlenecks' quantile losses (optimise with its own optimizer)."""
        losses = [m.loss() for m in self.modules() if isinstance(m, EntropyBottleneck)]
        return torch.stack(losses).sum() if losses else torch.zeros(())

    def update(self, force: bool = False, update_quantiles: bool = False) -> bool:
        """Builds every entropy model's coder tables; True if any changed."""
        changed = False
        for m in self.modules():
            if isinstance(m, EntropyBottleneck):
                changed |= m.update(force=force, update_quantiles=update_quantiles)
            elif isinstance(m, EntropyModel):
                changed |= m.update(force=force)
        return changed

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Loads ransform or CompressAI checkpoints (see :mod:`ransform.compat`)."""
        return super().load_state_dict(convert_state_dict(state_dict), strict=strict, assign=assign)

    @classmethod
    def from_state_dict(cls, state_dict, **kwargs) -> "CompressionModel":
        """A model sized from the checkpoint's weights, with them loaded."""
        state = convert_state_dict(state_dict)
        model = cls(**cls.sizes_from_state_dict(state), **kwargs)
        model.load_state_dict(state)
        return model

    @staticmethod
    def sizes_from_state_dict(state) -> dict:
        return {"N": state["g_a.0.weight"].size(0), "M": state["g_a.6.weight"].size(0)}

    def check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"expected an image batch of shape (N, 3, H, W), got {shape}")
        f = self.downsampling_factor
        if x.shape[-2] % f or x.shape[-1] % f:
            raise ValueError(f"height and width must be multiples of {f}, got {tuple(x.shape[-2:])}; "
                             "pad with ransform.image.pad(x, model.downsampling_factor)")
        if not x.is_floating_point():
            raise TypeError(f"expected a floating-point image in [0, 1], got dtype {x.dtype}")


def per_image(fn, t: torch.Tensor) -> torch.Tensor:
    """fn applied to each batch element alone. The hyper-synthesis runs this way on both
    the encoder and the decoder side, so the scales (and the table rows chosen from them)
    cannot depend on how many images were batched together."""
    return torch.cat([fn(t[i:i + 1]) for i in range(t.shape[0])]) if t.shape[0] != 1 else fn(t)
