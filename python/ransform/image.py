"""Image tensors in and out of models: padding to the model's stride, cropping back, and
loading / saving 8-bit RGB files as (1, 3, H, W) float tensors in [0, 1]."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def padding_for(height: int, width: int, multiple: int) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) zero padding that makes both sides a multiple of
    ``multiple``, split evenly with the odd pixel on the right/bottom (as CompressAI pads)."""
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    new_h = -(-height // multiple) * multiple
    new_w = -(-width // multiple) * multiple
    left, top = (new_w - width) // 2, (new_h - height) // 2
    return left, new_w - width - left, top, new_h - height - top


def pad(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """x (N, C, H, W) zero-padded to multiples of ``multiple``; returns it and the padding."""
    if x.dim() != 4:
        raise ValueError(f"expected an (N, C, H, W) tensor, got shape {tuple(x.shape)}")
    padding = padding_for(x.shape[-2], x.shape[-1], multiple)
    if not any(padding):
        return x, padding
    return F.pad(x, padding, mode="constant", value=0.0), padding


def crop(x: torch.Tensor, padding: tuple[int, int, int, int]) -> torch.Tensor:
    """Undoes :func:`pad`."""
    left, right, top, bottom = padding
    return x[..., top:x.shape[-2] - bottom, left:x.shape[-1] - right]
