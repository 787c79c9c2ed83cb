"""What every compression model shares: aux loss, update(), checkpoint loading, input checks."""
from __future__ import annotations

import torch
from torch import nn

from ransform.compat import convert_state_dict
from ransform.entropy_models import EntropyBottleneck, EntropyModel
from ransform.portable import portable_class, portable_part


class CompressionModel(nn.Module):
    """Base class: ``forward(x) -> {"x_hat", "likelihoods"}``, ``compress(x) -> {"strings",
    "shape"}``, ``decompress(strings, shape) -> {"x_hat"}``, ``update()``, ``aux_loss()``.

    Inputs are (N, 3, H, W) in [0, 1] with H and W multiples of ``downsampling_factor``
    (pad with :func:`ransform.image.pad`).
    """

    downsampling_factor: int = 16
    CODING_MODES = ("portable", "float")

    def __init__(self):
        super().__init__()
        #: integer networks for the entropy parameters (``make_portable``), or None
        self.portable: nn.Module | None = None
        self._coding_mode = "float"
        #: training: the loss sees the portable networks' parameters, the gradient flows
        #: through the float ones (straight-through; ``ransform train --portable``)
        self.portable_finetune = False

    def _finetuning_portable(self, coded: bool) -> bool:
        return not coded and self.portable_finetune and self.portable is not None

    # --- portable entropy parameters (docs/guide/portable.md) -------------------------------------
    @property
    def coding_mode(self) -> str:
        """``"portable"``: the coded rows and means come from integer networks, identical on
        every machine (the default once converted); ``"float"``: from the float networks, as
        CompressAI codes (files may not decode on another machine or thread count)."""
        return "portable" if portable_class(self) is None else self._coding_mode

    @coding_mode.setter
    def coding_mode(self, mode: str) -> None:
        if mode not in self.CODING_MODES:
            raise ValueError(f"coding_mode must be one of {self.CODING_MODES}, got {mode!r}")
        if mode == "portable" and self.portable is None and portable_class(self) is not None:
            raise ValueError(f"{type(self).__name__} has no portable entropy parameters yet: call "
                             "make_portable(images) (or `ransform convert --portable`) first")
        self._coding_mode = mode

    @property
    def is_portable(self) -> bool:
        """Whether coding now uses portable entropy parameters."""
        return self.coding_mode == "portable"

    @torch.no_grad()
    def make_portable(self, images) -> "CompressionModel":
        """Converts the entropy-parameter networks to integer networks calibrated on
        ``images`` (a few (3, H, W) or (1, 3, H, W) tensors in [0, 1]; sizes may differ) and
        switches to portable coding. Models without such networks just switch."""
        part = portable_part(self)
        if part is not None:
            from ransform.image import pad
            training = self.training
            self.eval()
            z_hats, y_hats = [], []
            for x in images:
                x = pad(x[None] if x.dim() == 3 else x, self.downsampling_factor)[0]
                y = self.g_a(x.to(next(self.parameters())))
                z_hats.append(self.entropy_bottleneck.dequantized(self.hyper_analysis(y)))
                y_hats.append(torch.round(y))
            if not z_hats:
                raise ValueError("make_portable needs at least one calibration image")
            part.calibrate(self, z_hats, y_hats)
            self.portable = part.to(next(self.parameters()).device)
            self.train(training)
        self._coding_mode = "portable"
        return self

    def channels_last(self) -> CompressionModel:
        """The analysis and synthesis transforms (``g_a``, ``g_s``) with channels-last weights, so
        their convolutions run in oneDNN's native layout: on a 2-core CPU, Kodak compress 1.15x and
        decompress 1.3x faster (``benchmarks/many_files.py``). Their outputs move within float
        rounding (y by ~1e-5); the entropy parameters, and so what a portable file decodes to, do
        not change. Weights fingerprints do not depend on the layout."""
        for name in ("g_a", "g_s"):
            part = getattr(self, name, None)
            if isinstance(part, nn.Module):
                part.to(memory_format=torch.channels_last)
        return self

    def use_quality(self, quality: int) -> None:
        """Variable-rate models code at the rate of ``quality`` (see models/vbr.py); the
        others have one rate, set by their weights."""

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
        """Loads ransform or CompressAI checkpoints (see :mod:`ransform.compat`); a checkpoint
        with portable entropy parameters switches to portable coding, one without to float."""
        state = self.flat_state(convert_state_dict(state_dict))
        has_portable = any(k.startswith("portable.") for k in state)
        self.portable = portable_part(self) if has_portable else None
        self._coding_mode = "portable" if has_portable else "float"
        return super().load_state_dict(state, strict=strict, assign=assign)

    @classmethod
    def from_state_dict(cls, state_dict, **kwargs) -> "CompressionModel":
        """A model sized from the checkpoint's weights, with them loaded."""
        state = cls.flat_state(convert_state_dict(state_dict))
        model = cls(**cls.sizes_from_state_dict(state), **kwargs)
        model.load_state_dict(state)
        return model

    @classmethod
    def flat_state(cls, state) -> dict:
        """A state dict in this class's own module layout (models whose CompressAI version
        nests modules differently map its keys here)."""
        return state

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


def straight_through(value: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    """``exact`` in the forward pass, ``value``'s gradient in the backward pass."""
    return value + (exact.to(value.dtype) - value).detach()


def native_threads() -> int:
    """Threads for the native integer networks: torch's own setting (OMP_NUM_THREADS)."""
    return torch.get_num_threads()


def per_image(fn, t: torch.Tensor) -> torch.Tensor:
    """fn applied to each batch element alone. The hyper-synthesis runs this way on both
    the encoder and the decoder side, so the scales (and the table rows chosen from them)
    cannot depend on how many images were batched together."""
    return torch.cat([fn(t[i:i + 1]) for i in range(t.shape[0])]) if t.shape[0] != 1 else fn(t)
