"""``compressai.models.utils``: convolution helpers and the checkpoint helpers that resize
the dynamically sized coder buffers before ``load_state_dict``."""
from __future__ import annotations

import torch
from torch import nn

from ransform.compat import rename_bottleneck_key
from ransform.layers import conv, deconv

__all__ = ["conv", "deconv", "find_named_buffer", "find_named_module", "remap_old_keys", "update_registered_buffers"]


def find_named_module(module: nn.Module, query: str) -> nn.Module | None:
    return next((m for name, m in module.named_modules() if name == query), None)


def find_named_buffer(module: nn.Module, query: str) -> torch.Tensor | None:
    return next((b for name, b in module.named_buffers() if name == query), None)


def update_registered_buffers(module: nn.Module, module_name: str, buffer_names, state_dict,
                              policy: str = "resize_if_empty", dtype=torch.int) -> None:
    """Gives ``module``'s buffers the shapes they have in ``state_dict`` under
    ``module_name``, so that loading it fits. ``policy``: ``"resize_if_empty"`` (default),
    ``"resize"`` (always) or ``"register"`` (create them, of ``dtype``)."""
    if policy not in ("resize_if_empty", "resize", "register"):
        raise ValueError(f'Invalid policy "{policy}"')
    registered = dict(module.named_buffers())
    if policy != "register":
        for name in buffer_names:
            if name not in registered:
                raise ValueError(f'Invalid buffer name "{name}"')
    for name in buffer_names:
        size = state_dict[f"{module_name}.{name}"].size()
        if policy == "register":
            if name in registered:
                raise RuntimeError(f'buffer "{name}" was already registered')
            module.register_buffer(name, torch.zeros(size, dtype=dtype))
        elif policy == "resize" or registered[name].numel() == 0:
            registered[name].resize_(size)


def remap_old_keys(module_name: str, state_dict) -> dict:
    """Renames the EntropyBottleneck keys of old CompressAI versions (``_matrix0``,
    ``_bias0``, ``_factor0``, ``_matrices.0``, ...) under ``module_name`` to today's."""
    prefix = module_name + "."
    return {(prefix + rename_bottleneck_key(k[len(prefix):]) if k.startswith(prefix) else k): v
            for k, v in state_dict.items()}
