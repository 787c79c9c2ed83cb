"""Variable-rate hyperprior models (Kamisli, Racapé and Choi, "Variable-Rate Learned Image
Compression with Multi-Objective Optimization and Quantization-Reconstruction Offsets",
DCC 2024), as CompressAI 1.2.8 has them: ``bmshj2018-hyperprior-vbr`` and ``mbt2018-mean-vbr``.

One set of weights codes at eight rates. At rate r the latent is scaled by ``Gain[r]`` before
rounding (a quantization step of 1 / Gain[r]), and a small network (``QuantABCD``) pulls each
nonzero reconstruction towards zero by an offset it predicts from the scaled standard
deviation and the gain. With ``vr_entbttlnck`` (CompressAI's published weights) the
hyper-latent is quantized with a step another small network (``gayn2zqstep``) derives from
the gain, and the bottleneck's table is built for that step.

The quality of a ransform model is the rate plus one (1..8); ``.rfm`` files record it. The
entropy parameters are float networks scaled by a learned gain, with no integer form yet: the
files code in float mode. Only CompressAI's "stage 2" (the variable-rate path) codes; stage 1
(its pre-training path) is the plain model's ``forward``.
"""
from __future__ import annotations

import torch
from torch import nn

from ransform.models.hyperprior import MeanScaleHyperprior, ScaleHyperprior
from ransform.ops import lower_bound, round_ste

#: CompressAI's training lambdas and initial gains, one per rate
LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.025, 0.0483, 0.0932, 0.18)
INITIAL_GAINS = (0.10000, 0.13944, 0.19293, 0.26874, 0.37268, 0.51801, 0.71957, 1.00000)
MIN_Z_STEP = 0.5


class ScaleHyperpriorVbr(ScaleHyperprior):
    """bmshj2018-hyperprior at eight rates (CompressAI's ``ScaleHyperpriorVbr``)."""

    def __init__(self, N: int = 192, M: int = 320, vr_entbttlnck: bool = False):
        super().__init__(N, M)
        self.lmbda = list(LAMBDAS)
        self.levels = len(LAMBDAS)
        self.Gain = nn.Parameter(torch.tensor(INITIAL_GAINS))
        self.QuantABCD = nn.Sequential(nn.Linear(2, 12), nn.ReLU(), nn.Linear(12, 12), nn.ReLU(), nn.Linear(12, 1))
        self.vr_entbttlnck = bool(vr_entbttlnck)
        if self.vr_entbttlnck:
            self.gayn2zqstep = nn.Sequential(nn.Linear(1, 10), nn.ReLU(), nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 1),
                                             nn.Softplus())
        #: the rate (0..7) forward, compress and decompress use unless given one
        self.rate = 1

    # --- the rate ---------------------------------------------------------------------------------
    def use_quality(self, quality: int) -> None:
        """Codes at rate ``quality - 1`` from now on (qualities 1..8)."""
        if not 1 <= int(quality) <= self.levels:
            raise ValueError(f"{type(self).__name__} has qualities 1..{self.levels}, got {quality}")
        self.rate = int(quality) - 1

    def gain(self, rate: int | None = None) -> torch.Tensor:
        rate = self.rate if rate is None else rate
        if not 0 <= rate < self.levels:
            raise ValueError(f"rate must be in 0..{self.levels - 1} (quality 1..{self.levels}), got {rate}")
        return self.Gain[rate].detach().abs()

    def z_step(self, gain: torch.Tensor) -> float | torch.Tensor:
        """The hyper-latent's quantization step at ``gain`` (1 without ``vr_entbttlnck``)."""
        if not self.vr_entbttlnck:
            return 1.0
        return torch.clamp_min(self.gayn2zqstep(1.0 / gain.view(1)), MIN_Z_STEP)[0]

    def _offsets(self, q_abs, scaled_scales, gain):
        stdev = lower_bound(scaled_scales, self.gaussian_conditional.scale_bound)
        features = torch.stack([stdev, gain.expand_as(stdev)], -1)
        offsets = -self.QuantABCD(features).squeeze(-1)
        return torch.where(q_abs < 1e-4, torch.zeros_like(offsets), offsets)  # zero stays zero

    def _reconstruct(self, q_abs, signs, scaled_scales, gain, means):
        """y_hat from the coded magnitudes and signs: (|q| + offset) / gain, with its sign, + mean."""
        y_hat = signs * (q_abs + self._offsets(q_abs, scaled_scales, gain))
        return y_hat * (1.0 / gain) + (0 if means is None else means)

    # --- forward, compress, decompress ------------------------------------------------------------
    def _gain_for(self, s, inputscale):
        return torch.as_tensor(inputscale, dtype=self.Gain.dtype) if inputscale else self.gain(s)

    def forward(self, x, stage: int = 2, s: int | None = None, inputscale=0):
        """``stage=2`` (default): the variable-rate path at rate ``s`` (or ``inputscale`` as the
        gain); ``stage=1``: the plain model, CompressAI's pre-training path."""
        if stage == 1:
            return super().forward(x)
        self._check_stage(stage)
        gain = self._gain_for(s, inputscale)
        y = self.g_a(x)
        z = self.hyper_analysis(y)
        step = self.z_step(gain)
        z_hat, z_likelihoods = self.entropy_bottleneck(z, step=step)
        if self.training and not self.vr_entbttlnck:  # CompressAI: the straight-through z_hat
            z_hat = self.entropy_bottleneck.quantize(z, "ste", self.entropy_bottleneck.medians())
        scales, means = self.hyper_parameters(z_hat)
        centred = (y if means is None else y - means) * gain
        y_hat = self._reconstruct(round_ste(centred.abs()), torch.sign(centred).detach(), scales * gain, gain, means)
        _, y_likelihoods = self.gaussian_conditional(y * gain, scales * gain, None if means is None else means * gain)
        return {"x_hat": self.g_s(y_hat), "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}

    @staticmethod
    def _check_stage(stage: int) -> None:
        if stage != 2:
            raise ValueError(f"stage must be 2 (the variable-rate path codes; 1 is CompressAI's pre-training "
                             f"path), got {stage}")

    @torch.no_grad()
    def compress(self, x, stage: int = 2, s: int | None = None, inputscale=0):
        self.check_input(x)
        self._check_stage(stage)
        gain = self._gain_for(s, inputscale)
        step = float(self.z_step(gain))
        y = self.g_a(x)
        z = self.hyper_analysis(y)
        z_strings = self.entropy_bottleneck.compress(z, step)
        scales, means = self.hyper_parameters(self.entropy_bottleneck.dequantized(z, step), coded=True)
        y_strings = self.gaussian_conditional.compress((y if means is None else y - means) * gain, scales * gain)
        return {"strings": [y_strings, z_strings], "shape": tuple(z.shape[-2:])}

    @torch.no_grad()
    def decompress(self, strings, shape, stage: int = 2, s: int | None = None, inputscale=0):
        if len(strings) != 2:
            raise ValueError(f"expected [y_strings, z_strings], got {len(strings)} lists")
        self._check_stage(stage)
        gain = self._gain_for(s, inputscale)
        z_hat = self.entropy_bottleneck.decompress(strings[1], shape, float(self.z_step(gain)))
        scales, means = self.hyper_parameters(z_hat, coded=True)
        q = self.gaussian_conditional.decompress(strings[0], scales * gain)
        y_hat = self._reconstruct(q.abs(), torch.sign(q), scales * gain, gain, means)
        return {"x_hat": self.g_s(y_hat).clamp_(0, 1)}

    # --- checkpoints ------------------------------------------------------------------------------
    @classmethod
    def flat_state(cls, state) -> dict:
        return {k: v for k, v in state.items() if k != "QuantOffset"}  # an unused entry of old checkpoints

    @staticmethod
    def sizes_from_state_dict(state) -> dict:
        return {"N": state["g_a.0.weight"].size(0), "M": state["g_a.6.weight"].size(0),
                "vr_entbttlnck": "gayn2zqstep.0.weight" in state}


class MeanScaleHyperpriorVbr(ScaleHyperpriorVbr, MeanScaleHyperprior):
    """mbt2018-mean at eight rates (CompressAI's ``MeanScaleHyperpriorVbr``)."""

    def __init__(self, N: int = 192, M: int = 320, vr_entbttlnck: bool = False):
        super().__init__(N, M, vr_entbttlnck)
