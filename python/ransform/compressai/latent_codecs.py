"""``compressai.latent_codecs``: the ``LatentCodec`` base class model code refers to.

A latent codec turns a latent into streams and back: ``forward(y) -> {"likelihoods",
"y_hat"}``, ``compress(y) -> {"strings", "shape"}``, ``decompress(strings, shape)``.
"""
from __future__ import annotations

from torch import nn

__all__ = ["LatentCodec"]


class LatentCodec(nn.Module):
    """Base class of latent codecs; subclasses implement the three methods."""

    def forward(self, y, *args, **kwargs):
        raise NotImplementedError

    def compress(self, y, *args, **kwargs):
        raise NotImplementedError

    def decompress(self, strings, shape, *args, **kwargs):
        raise NotImplementedError

    def __getitem__(self, key: str) -> nn.Module:
        return self._modules[key]
