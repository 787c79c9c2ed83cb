"""Ballé et al. 2018 factorized prior ("bmshj2018-factorized"), with GDN or ReLU."""
from __future__ import annotations

from torch import nn

from ransform.entropy_models import EntropyBottleneck
from ransform.layers import GDN, conv, deconv
from ransform.models.base import CompressionModel


def analysis(N: int, M: int, act) -> nn.Sequential:
    """Four stride-2 5x5 convolutions (x16 downsampling) with activations between."""
    return nn.Sequential(conv(3, N), act(N), conv(N, N), act(N), conv(N, N), act(N), conv(N, M))


def synthesis(N: int, M: int, act) -> nn.Sequential:
    return nn.Sequential(deconv(M, N), act(N), deconv(N, N), act(N), deconv(N, N), act(N), deconv(N, 3))


def gdn(channels: int) -> GDN:
    return GDN(channels)


def igdn(channels: int) -> GDN:
    return GDN(channels, inverse=True)


def relu(_channels: int) -> nn.ReLU:
    return nn.ReLU(inplace=True)


class FactorizedPrior(CompressionModel):
    """y = g_a(x) coded with a per-channel EntropyBottleneck; x_hat = g_s(y_hat)."""

    downsampling_factor = 16

    def __init__(self, N: int = 128, M: int = 192, *, activation: str = "gdn"):
        super().__init__()
        if activation not in ("gdn", "relu"):
            raise ValueError(f"activation must be 'gdn' or 'relu', got {activation!r}")
        self.N, self.M = int(N), int(M)
        self.entropy_bottleneck = EntropyBottleneck(M)
        self.g_a = analysis(N, M, gdn if activation == "gdn" else relu)
        self.g_s = synthesis(N, M, igdn if activation == "gdn" else relu)

    def forward(self, x):
        y = self.g_a(x)
        y_hat, y_likelihoods = self.entropy_bottleneck(y)
        return {"x_hat": self.g_s(y_hat), "likelihoods": {"y": y_likelihoods}}

    def compress(self, x):
        self.check_input(x)
        y = self.g_a(x)
        return {"strings": [self.entropy_bottleneck.compress(y)], "shape": tuple(y.shape[-2:])}

    def decompress(self, strings, shape):
        y_hat = self.entropy_bottleneck.decompress(strings[0], shape)
        return {"x_hat": self.g_s(y_hat).clamp_(0, 1)}


class FactorizedPriorReLU(FactorizedPrior):
    """:class:`FactorizedPrior` with ReLU instead of GDN ("bmshj2018-factorized-relu")."""

    def __init__(self, N: int = 128, M: int = 192):
        super().__init__(N, M, activation="relu")
