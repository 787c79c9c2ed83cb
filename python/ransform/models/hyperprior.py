"""Hyperprior models: Ballé et al. 2018 scale hyperprior ("bmshj2018-hyperprior") and
Minnen et al. 2018 mean-scale hyperprior ("mbt2018-mean")."""
from __future__ import annotations

import torch
from torch import nn

from ransform.entropy_models import EntropyBottleneck, GaussianConditional
from ransform.layers import conv, deconv
from ransform.models.base import CompressionModel, native_threads, per_image, straight_through
from ransform.models.factorized import analysis, gdn, igdn, synthesis


class ScaleHyperprior(CompressionModel):
    """y = g_a(x); z = h_a(|y|) coded with an EntropyBottleneck; scales = h_s(z_hat);
    y coded with a zero-mean GaussianConditional at those scales."""

    downsampling_factor = 64

    def __init__(self, N: int = 128, M: int = 192):
        super().__init__()
        self.N, self.M = int(N), int(M)
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.g_a = analysis(N, M, gdn)
        self.g_s = synthesis(N, M, igdn)
        self.h_a = nn.Sequential(conv(M, N, 3, 1), nn.ReLU(inplace=True), conv(N, N), nn.ReLU(inplace=True),
                                 conv(N, N))
        self.h_s = nn.Sequential(deconv(N, N), nn.ReLU(inplace=True), deconv(N, N), nn.ReLU(inplace=True),
                                 conv(N, M, 3, 1), nn.ReLU(inplace=True))
        self.gaussian_conditional = GaussianConditional(None)

    def hyper_analysis(self, y):
        return self.h_a(torch.abs(y))

    def hyper_synthesis(self, z_hat, coded: bool):
        """h_s(z_hat). ``coded``: as compress and decompress run it (evaluation too, so forward's
        reconstruction and likelihoods are exactly the coded ones): the portable integer
        network when the model has one, else h_s on each image alone (so at least the batch
        size cannot change the scales)."""
        if coded and self.is_portable:
            return self.portable(z_hat, native_threads())
        out = per_image(self.h_s, z_hat) if coded else self.h_s(z_hat)
        if self._finetuning_portable(coded):
            out = straight_through(out, self.portable(z_hat.detach(), native_threads()))
        return out

    def hyper_parameters(self, z_hat, coded: bool | None = None):
        """(scales, means or None) of y from the decoded hyper-latent (coded unless training)."""
        return self.split_parameters(self.hyper_synthesis(z_hat, not self.training if coded is None else coded))

    def split_parameters(self, params):
        return params, None

    def forward(self, x):
        y = self.g_a(x)
        z_hat, z_likelihoods = self.entropy_bottleneck(self.hyper_analysis(y))
        scales, means = self.hyper_parameters(z_hat)
        y_hat, y_likelihoods = self.gaussian_conditional(y, scales, means)
        return {"x_hat": self.g_s(y_hat), "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}

    def compress(self, x):
        self.check_input(x)
        y = self.g_a(x)
        z = self.hyper_analysis(y)
        z_strings = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.dequantized(z)
        scales, means = self.hyper_parameters(z_hat, coded=True)
        y_strings = self.gaussian_conditional.compress(y, scales, means)
        return {"strings": [y_strings, z_strings], "shape": tuple(z.shape[-2:])}

    def decompress(self, strings, shape):
        if len(strings) != 2:
            raise ValueError(f"expected [y_strings, z_strings], got {len(strings)} lists")
        z_hat = self.entropy_bottleneck.decompress(strings[1], shape)
        scales, means = self.hyper_parameters(z_hat, coded=True)
        y_hat = self.gaussian_conditional.decompress(strings[0], scales, means)
        return {"x_hat": self.g_s(y_hat).clamp_(0, 1)}



class MeanScaleHyperprior(ScaleHyperprior):
    """The hyper-synthesis predicts means and scales of y; h_a sees y itself."""

    def __init__(self, N: int = 128, M: int = 192):
        super().__init__(N, M)
        self.h_a = nn.Sequential(conv(M, N, 3, 1), nn.LeakyReLU(inplace=True), conv(N, N),
                                 nn.LeakyReLU(inplace=True), conv(N, N))
        self.h_s = nn.Sequential(deconv(N, M), nn.LeakyReLU(inplace=True), deconv(M, M * 3 // 2),
                                 nn.LeakyReLU(inplace=True), conv(M * 3 // 2, M * 2, 3, 1))

    def hyper_analysis(self, y):
        return self.h_a(y)

    def split_parameters(self, params):
        scales, means = params.chunk(2, 1)
        return scales, means
