"""What every entropy model shares: quantization modes, the likelihood lower bound, and
coder tables that live in (dynamically sized) buffers so a state dict carries them."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ransform.ops import lower_bound, round_ste

QUANTIZATION_MODES = ("noise", "ste", "dequantize", "symbols")


def quantize(x: torch.Tensor, mode: str, offset: torch.Tensor | None = None) -> torch.Tensor:
    """Quantizes around ``offset`` (the mean or median; 0 when None).

    - ``"noise"``: x + U(-1/2, 1/2), the differentiable training proxy;
    - ``"ste"``: round(x - offset) + offset, with the identity as gradient;
    - ``"dequantize"``: round(x - offset) + offset (inference);
    - ``"symbols"``: round(x - offset) as int32, what the coder codes.
    """
    if mode == "noise":
        return x + torch.empty_like(x).uniform_(-0.5, 0.5)
    centred = x if offset is None else x - offset
    if mode == "symbols":
        return torch.round(centred).to(torch.int32)
    if mode == "ste":
        q = round_ste(centred)
    elif mode == "dequantize":
        q = torch.round(centred)
    else:
        raise ValueError(f"quantization mode must be one of {QUANTIZATION_MODES}, got {mode!r}")
    return q if offset is None else q + offset


class EntropyModel(nn.Module):
    """Base class.

    Args:
        likelihood_bound: likelihoods are lower-bounded by it (0 disables), so -log2 p stays
            finite; the gradient still flows where it pushes the likelihood up.
        precision: coder probability precision in bits (12..16).
        train_quantization: what ``forward`` does in training mode: ``"noise"`` (default)
            or ``"ste"``.
        threads: coder threads per stream (0 = one per core).
    """

    #: buffers whose shape is only known after ``update()``; loading resizes them.
    dynamic_buffers: tuple[str, ...] = ()

    def __init__(self, likelihood_bound: float = 1e-9, precision: int = 16, train_quantization: str = "noise",
                 threads: int = 1):
        super().__init__()
        if train_quantization not in ("noise", "ste"):
            raise ValueError(f"train_quantization must be 'noise' or 'ste', got {train_quantization!r}")
        if not 12 <= int(precision) <= 16:
            raise ValueError(f"precision must be in 12..16, got {precision}")
        self.likelihood_bound = float(likelihood_bound)
        self.precision = int(precision)
        self.train_quantization = train_quantization
        self.threads = int(threads)

    quantize = staticmethod(quantize)

    def bound_likelihood(self, likelihood: torch.Tensor) -> torch.Tensor:
        return lower_bound(likelihood, self.likelihood_bound) if self.likelihood_bound > 0 else likelihood

    def _mode(self, training: bool | None) -> str:
        return self.train_quantization if (self.training if training is None else training) else "dequantize"

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        # Coder tables are optional in a checkpoint (CompressAI's are dropped on conversion):
        # absent ones load as "not built yet", and update() builds them from the weights.
        absent = []
        for name in self.dynamic_buffers:
            incoming = state_dict.get(prefix + name)
            template = incoming if incoming is not None else getattr(self, name)[:0]
            setattr(self, name, torch.empty_like(template, device=getattr(self, name).device))
            if incoming is None:
                absent.append(prefix + name)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        for key in absent:
            if key in missing_keys:
                missing_keys.remove(key)
        self._tables_changed()

    def _tables_changed(self) -> None:
        """Drops the cached native table after the buffers changed."""
        self._table = None

    def _require_tables(self, ready: bool) -> None:
        if not ready:
            raise RuntimeError(f"{type(self).__name__} has no coder tables yet: call update() "
                               "(or model.update()) after training or loading weights")


def as_host_array(t: torch.Tensor, dtype) -> np.ndarray:
    """A tensor as a C-contiguous numpy array on the host, for the coder."""
    return t.detach().to("cpu", dtype).contiguous().numpy()
