"""ELIC (He et al. 2022, "Efficient Learned Image Compression with Unevenly Grouped
Space-Channel Contextual Adaptive Coding"), as CompressAI 1.2 has it: ``elic2022-official``
and ``elic2022-chandelier`` (the simplified context of Chandelier's re-implementation).

What is coded. The latent's channels are split into uneven groups (16, 16, 32, 64, M - 128).
Group k is coded in two checkerboard passes, anchors (r + c even) then the others, each
element as s = round(y - mean); the parameters of a pass come from the hyperprior, a channel
context of already decoded groups and, for the second pass, a spatial context of the group's
anchors. Encoder and decoder run the same pass (10 steps for 5 groups), and the evaluation
``forward`` runs it too, so its x_hat is exactly ``decompress``'s.

The entropy parameters are float networks with no integer form yet: files code in float mode
and decode reliably on the machine kind that wrote them (``ransform compress`` says so).
CompressAI's checkpoints (modules nested in latent codecs) are mapped on load.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ransform.compat import rename_keys
from ransform.entropy_models import EntropyBottleneck, GaussianConditional
from ransform.layers import AttentionBlock, MaskedConv2d, ResidualBottleneckBlock, conv, conv1x1, deconv
from ransform.models.base import CompressionModel
from ransform.ops import round_ste


def _analysis(N: int, M: int) -> nn.Sequential:
    blocks = [ResidualBottleneckBlock(N, N) for _ in range(9)]
    return nn.Sequential(conv(3, N), *blocks[0:3], conv(N, N), *blocks[3:6], AttentionBlock(N), conv(N, N),
                         *blocks[6:9], conv(N, M), AttentionBlock(M))


def _synthesis(N: int, M: int) -> nn.Sequential:
    blocks = [ResidualBottleneckBlock(N, N) for _ in range(9)]
    return nn.Sequential(AttentionBlock(M), deconv(M, N), *blocks[0:3], deconv(N, N), AttentionBlock(N),
                         *blocks[3:6], deconv(N, N), *blocks[6:9], deconv(N, 3))


def _ramp(in_channels: int, out_channels: int, min_channels: int) -> nn.Sequential:
    """Three 1x1 layers whose widths step linearly from in to out (the inner ones at least
    ``min_channels``), ReLU between them: elic2022-official's parameter aggregation."""
    widths = torch.linspace(in_channels, out_channels, 4).floor().int().tolist()
    widths[1:3] = [max(w, min_channels) for w in widths[1:3]]
    return nn.Sequential(nn.Conv2d(widths[0], widths[1], 1), nn.ReLU(inplace=True),
                         nn.Conv2d(widths[1], widths[2], 1), nn.ReLU(inplace=True), nn.Conv2d(widths[2], widths[3], 1))


def default_groups(M: int) -> list[int]:
    """ELIC's uneven channel groups: 16, 16, 32, 64 and the rest (M > 128, as in the paper
    and CompressAI); smaller latents (tests, experiments) split in the same proportions."""
    if M > 128:
        return [16, 16, 32, 64, M - 128]
    head = [max(1, M * g // 320) for g in (16, 16, 32, 64)]
    if sum(head) >= M:
        raise ValueError(f"M = {M} is too small for ELIC's five channel groups")
    return head + [M - sum(head)]


class Elic2022Official(CompressionModel):
    """ELIC with every decoded group as channel context (CompressAI's ``Elic2022Official``)."""

    downsampling_factor = 64
    #: ("scales", "means") or ("means", "scales"): how a pass's parameters are split
    chunks = ("scales", "means")

    def __init__(self, N: int = 192, M: int = 320, groups=None):
        super().__init__()
        self.groups = list(groups) if groups is not None else default_groups(M)
        if sum(self.groups) != M or min(self.groups) < 1:
            raise ValueError(f"groups must be positive and sum to M = {M}, got {self.groups}")
        self.N, self.M = N, M
        self.g_a = _analysis(N, M)
        self.g_s = _synthesis(N, M)
        self.h_a = nn.Sequential(conv(M, N, 3, 1), nn.ReLU(inplace=True), conv(N, N), nn.ReLU(inplace=True),
                                 conv(N, N))
        side = self._side_channels()
        self.h_s = nn.Sequential(deconv(N, N), nn.ReLU(inplace=True), deconv(N, N * 3 // 2), nn.ReLU(inplace=True),
                                 self._last_hyper_synthesis(N * 3 // 2, side))
        self.channel_context = nn.ModuleDict({
            f"y{k}": nn.Sequential(conv(self._channel_inputs(k), 224, 5, 1), nn.ReLU(inplace=True),
                                   conv(224, 128, 5, 1), nn.ReLU(inplace=True), conv(128, g * 2, 5, 1))
            for k, g in enumerate(self.groups) if k > 0})
        self.spatial_context = nn.ModuleList(
            MaskedConv2d(g, 2 * g, kernel_size=5, padding=2, mask="checkerboard") for g in self.groups)
        self.param_aggregation = nn.ModuleList(
            self._aggregation(g * 2 + (k > 0) * g * 2 + side, g * 2) for k, g in enumerate(self.groups))
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian_conditional = GaussianConditional()

    # --- what differs between the variants --------------------------------------------------------
    def _side_channels(self) -> int:
        return self.N * 2

    def _last_hyper_synthesis(self, in_channels: int, out_channels: int) -> nn.Module:
        return deconv(in_channels, out_channels, 3, 1)

    def _channel_inputs(self, k: int) -> int:
        return sum(self.groups[:k])

    def _channel_context_input(self, k: int, y_hats: list) -> torch.Tensor:
        return torch.cat(y_hats[:k], 1)

    def _aggregation(self, in_channels: int, out_channels: int) -> nn.Module:
        return _ramp(in_channels, out_channels, self.N * 2)

    # --- the coded pass ---------------------------------------------------------------------------
    @staticmethod
    def anchors(H: int, W: int, device) -> torch.Tensor:
        """(H, W) bool: the checkerboard's first pass, r + c even."""
        rows, cols = torch.meshgrid(torch.arange(H, device=device), torch.arange(W, device=device), indexing="ij")
        return (rows + cols) % 2 == 0

    def _pass_parameters(self, k: int, spatial: torch.Tensor, side: torch.Tensor):
        first, second = self.param_aggregation[k](torch.cat([spatial, side], 1)).chunk(2, 1)
        return (first, second) if self.chunks == ("scales", "means") else (second, first)

    def _values(self, y, scales, means, where, readers):
        """y_hat of the positions ``where`` (zeros elsewhere): read from each image's stream, or
        y rounded around the means (straight-through when training)."""
        if readers is None:
            return torch.where(where, round_ste(y - means) + means, torch.zeros_like(means))
        out = torch.zeros_like(means)
        for i, reader in enumerate(readers):
            out[i][:, where] = reader.read(scales[i][:, where], means[i][:, where])
        return out

    def _group_pass(self, k: int, y, side, readers):
        N, _, H, W = side.shape
        anchors = self.anchors(H, W, side.device)
        s_a, m_a = self._pass_parameters(k, side.new_zeros(N, 2 * self.groups[k], H, W), side)
        y_hat_a = self._values(y, s_a, m_a, anchors, readers)
        s_n, m_n = self._pass_parameters(k, self.spatial_context[k](y_hat_a), side)
        y_hat_n = self._values(y, s_n, m_n, ~anchors, readers)
        return y_hat_a + y_hat_n, torch.where(anchors, s_a, s_n), torch.where(anchors, m_a, m_n)

    def coded_pass(self, y, side, readers=None):
        """(y_hat, scales, means) group by group; the values come from ``readers`` (one
        :meth:`GaussianConditional.reader` per image) when given, else from y."""
        y_groups = y.split(self.groups, 1) if y is not None else [None] * len(self.groups)
        y_hats, scales, means = [], [], []
        for k in range(len(self.groups)):
            side_k = side if k == 0 else torch.cat(
                [self.channel_context[f"y{k}"](self._channel_context_input(k, y_hats)), side], 1)
            y_hat, s, m = self._group_pass(k, y_groups[k], side_k, readers)
            y_hats.append(y_hat)
            scales.append(s)
            means.append(m)
        return torch.cat(y_hats, 1), torch.cat(scales, 1), torch.cat(means, 1)

    def coding_order(self, H: int, W: int) -> np.ndarray:
        """Flat (M, H, W) indexes in stream order: each group's anchors, then its others,
        channel by channel, positions row by row (the order :meth:`_values` reads)."""
        anchors = self.anchors(H, W, "cpu").flatten().numpy()
        passes = (np.flatnonzero(anchors), np.flatnonzero(~anchors))
        starts = np.cumsum([0] + self.groups)
        return np.concatenate([(np.arange(starts[k], starts[k + 1])[:, None] * H * W + positions).ravel()
                               for k in range(len(self.groups)) for positions in passes])

    # --- forward, compress, decompress ------------------------------------------------------------
    def _hyper(self, y):
        z = self.h_a(y)
        _, z_likelihoods = self.entropy_bottleneck(z)
        z_hat = self.entropy_bottleneck.quantize(z, "ste", self.entropy_bottleneck.medians())
        return self.h_s(z_hat), z_likelihoods

    def forward(self, x):
        y = self.g_a(x)
        side, z_likelihoods = self._hyper(y)
        y_hat, scales, means = self.coded_pass(y, side)
        _, y_likelihoods = self.gaussian_conditional(y, scales, means)
        return {"x_hat": self.g_s(y_hat), "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}

    @torch.no_grad()
    def compress(self, x):
        self.check_input(x)
        y = self.g_a(x)
        z = self.h_a(y)
        z_strings = self.entropy_bottleneck.compress(z)
        y_hat, scales, means = self.coded_pass(y, self.h_s(self.entropy_bottleneck.dequantized(z)))
        order = torch.from_numpy(self.coding_order(*y.shape[-2:])).to(y.device)
        y_strings = self.gaussian_conditional.compress(*(t.flatten(1)[:, order] for t in (y_hat, scales, means)))
        return {"strings": [y_strings, z_strings], "shape": tuple(z.shape[-2:])}

    @torch.no_grad()
    def decompress(self, strings, shape):
        if len(strings) != 2:
            raise ValueError(f"expected [y_strings, z_strings], got {len(strings)} lists")
        side = self.h_s(self.entropy_bottleneck.decompress(strings[1], shape))
        readers = self.gaussian_conditional.readers(strings[0], self.M * side.shape[2] * side.shape[3], side.shape[0])
        y_hat, _, _ = self.coded_pass(None, side, readers)
        return {"x_hat": self.g_s(y_hat).clamp_(0, 1)}

    # --- CompressAI's checkpoints -----------------------------------------------------------------
    # CompressAI nests ELIC's modules in latent codecs: its keys -> the flat names here
    _COMPRESSAI_KEYS = ((r"latent_codec\.hyper\.", ""), (r"latent_codec\.y\.channel_context\.", "channel_context."),
                        (r"latent_codec\.y\.latent_codec\.y(\d+)\.context_prediction\.", r"spatial_context.\1."),
                        (r"latent_codec\.y\.latent_codec\.y(\d+)\.entropy_parameters\.", r"param_aggregation.\1."),
                        (r"latent_codec\.y\.latent_codec\.y\d+\.latent_codec\.y\.", ""))

    @classmethod
    def flat_state(cls, state) -> dict:
        return rename_keys(state, cls._COMPRESSAI_KEYS)

    @staticmethod
    def sizes_from_state_dict(state) -> dict:
        groups, k = [], 0
        while f"spatial_context.{k}.weight" in state:
            groups.append(state[f"spatial_context.{k}.weight"].size(1))
            k += 1
        return {"N": state["g_a.0.weight"].size(0), "M": state["g_a.13.weight"].size(0), "groups": groups}


class Elic2022Chandelier(Elic2022Official):
    """ELIC as Chandelier re-implemented it (CompressAI's ``Elic2022Chandelier``): the channel
    context of group k is the first and the latest decoded group, the hyperprior gives 2M
    channels, and each pass's parameters come means first."""

    chunks = ("means", "scales")

    def _side_channels(self) -> int:
        return self.M * 2

    def _last_hyper_synthesis(self, in_channels: int, out_channels: int) -> nn.Module:
        return conv(in_channels, out_channels, 3, 1)

    def _channel_inputs(self, k: int) -> int:
        return self.groups[0] + (k > 1) * self.groups[k - 1]

    def _channel_context_input(self, k: int, y_hats: list) -> torch.Tensor:
        return y_hats[0] if k == 1 else torch.cat([y_hats[0], y_hats[k - 1]], 1)

    def _aggregation(self, in_channels: int, out_channels: int) -> nn.Module:
        return nn.Sequential(conv1x1(in_channels, self.M * 2), nn.ReLU(inplace=True), conv1x1(self.M * 2, 512),
                             nn.ReLU(inplace=True), conv1x1(512, out_channels))
