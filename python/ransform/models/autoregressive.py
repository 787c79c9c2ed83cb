"""Context models: Minnen et al. 2018 joint autoregressive + hyperprior ("mbt2018"), Cheng et
al. 2020 ("cheng2020-anchor", "cheng2020-attn") and the checkerboard context of He et al. 2021 ("checkerboard").

What is coded. Each latent element is coded as s = round(y - mean), and the decoder rebuilds
y_hat = s + mean; the context of later elements is computed from these y_hat. The means depend
on earlier y_hat, so the encoder cannot know y_hat before it has the means: encoder and
decoder run the same ordered pass. For the raster context that pass is a *wavefront*: a 5x5
causal mask makes position (r, c) depend on (r, c-1), (r, c-2) and rows r-1, r-2 up to
column c+2, so every position with the same c + 3r is independent of the others. A 32x48
latent takes 141 batched steps instead of 1536 single positions, on both sides.

The evaluation ``forward`` runs the same pass (``eval_context="coded"``, the default), so its
x_hat is exactly what ``decompress`` returns and its likelihoods are exactly what is coded.
CompressAI's evaluation forward instead takes the context from round(y) in one parallel
convolution, which is neither what it codes nor what it reconstructs; ``eval_context=
"compressai"`` reproduces it (for comparing with CompressAI). Training is identical either way.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ransform.compat import rename_keys
from ransform.layers import (
    GDN,
    AttentionBlock,
    MaskedConv2d,
    ResidualBlock,
    ResidualBlockUpsample,
    ResidualBlockWithStride,
    conv,
    conv3x3,
    deconv,
    subpel_conv3x3,
)
from ransform.models.base import native_threads, per_image, straight_through
from ransform.models.hyperprior import MeanScaleHyperprior

EVAL_CONTEXTS = ("coded", "compressai")


class JointAutoregressiveHierarchicalPriors(MeanScaleHyperprior):
    """mbt2018: a mean-scale hyperprior plus a 5x5 masked-convolution context model."""

    def __init__(self, N: int = 192, M: int = 192, *, eval_context: str = "coded"):
        super().__init__(N, M)
        if eval_context not in EVAL_CONTEXTS:
            raise ValueError(f"eval_context must be one of {EVAL_CONTEXTS}, got {eval_context!r}")
        self.eval_context = eval_context
        self.g_a = nn.Sequential(conv(3, N), GDN(N), conv(N, N), GDN(N), conv(N, N), GDN(N), conv(N, M))
        self.g_s = nn.Sequential(deconv(M, N), GDN(N, inverse=True), deconv(N, N), GDN(N, inverse=True),
                                 deconv(N, N), GDN(N, inverse=True), deconv(N, 3))
        self.h_a = nn.Sequential(conv(M, N, 3, 1), nn.LeakyReLU(inplace=True), conv(N, N),
                                 nn.LeakyReLU(inplace=True), conv(N, N))
        self.h_s = nn.Sequential(deconv(N, M), nn.LeakyReLU(inplace=True), deconv(M, M * 3 // 2),
                                 nn.LeakyReLU(inplace=True), conv(M * 3 // 2, M * 2, 3, 1))
        self.entropy_parameters = nn.Sequential(
            nn.Conv2d(M * 12 // 3, M * 10 // 3, 1), nn.LeakyReLU(inplace=True),
            nn.Conv2d(M * 10 // 3, M * 8 // 3, 1), nn.LeakyReLU(inplace=True),
            nn.Conv2d(M * 8 // 3, M * 6 // 3, 1))
        self.context_prediction = MaskedConv2d(M, 2 * M, kernel_size=5, padding=2, stride=1, mask="raster")

    # --- training and CompressAI-style evaluation -------------------------------------------------
    def _parallel_forward(self, y, hyper_params, training, z_hat=None):
        y_hat = self.gaussian_conditional.quantize(y, self.gaussian_conditional._mode(training))
        params = self.entropy_parameters(torch.cat([hyper_params, self.context(y_hat)], 1))
        if training and self._finetuning_portable(coded=False):
            params = straight_through(params, self._portable_parameters(z_hat.detach(), y_hat.detach()))
        scales, means = params.chunk(2, 1)
        _, y_likelihoods = self.gaussian_conditional(y, scales, means, training=training)
        return y_hat, y_likelihoods

    def forward(self, x):
        y = self.g_a(x)
        z_hat, z_likelihoods = self.entropy_bottleneck(self.h_a(y))
        if self.training or self.eval_context == "compressai":
            hyper_params = self.hyper_synthesis(z_hat, coded=not self.training)
            y_hat, y_likelihoods = self._parallel_forward(y, hyper_params, self.training, z_hat)
        else:
            y_hat, scales, means = self.coded_pass(y, self.coded_hyper(z_hat))
            y_likelihoods = self.gaussian_conditional.bound_likelihood(
                self.gaussian_conditional.likelihood(y_hat, scales, means))
        return {"x_hat": self.g_s(y_hat), "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}

    def hyper_synthesis(self, z_hat, coded: bool):
        """Float h_s(z_hat) (each image alone when ``coded``); see :meth:`coded_hyper`."""
        return per_image(self.h_s, z_hat) if coded else self.h_s(z_hat)

    def coded_hyper(self, z_hat):
        """What the coded pass starts from: the portable h_s's int16 output, or the float one."""
        if self.is_portable:
            return self.portable.h_s(z_hat, native_threads())
        return self.hyper_synthesis(z_hat, coded=True)

    def context(self, y_hat):
        """Context parameters of every position from y_hat (training and parallel evaluation)."""
        return self.context_prediction(y_hat)

    def _portable_context(self, y_hat):
        """The portable context layer over a whole (M, H, W) latent (int16 out)."""
        return self.portable.context.run(y_hat, native_threads())

    def _portable_parameters(self, z_hat, y_hat):
        """(N, 2M, H, W) parameters of the portable networks with every position's context
        taken from y_hat at once (the training-time view of :meth:`_parallel_forward`)."""
        part, threads = self.portable, native_threads()
        return torch.stack([part.entropy_parameters.run(torch.cat([part.h_s.run(z_hat[i], threads),
                                                                   self._portable_context(y_hat[i])]), threads)
                            for i in range(z_hat.shape[0])])

    # --- the coded pass -------------------------------------------------------------------------
    def coded_pass(self, y, hyper_params, readers=None):
        """y_hat, scales and means of the coded latent, one image at a time.

        With ``readers`` (one :meth:`GaussianConditional.reader` per image) the values come
        from the streams; otherwise from y. Returns tensors shaped like hyper_params' halves."""
        one = self._portable_pass_one if self.is_portable else self._coded_pass_one
        outs = [one(None if y is None else y[i], hyper_params[i], None if readers is None else readers[i])
                for i in range(hyper_params.shape[0])]
        return tuple(torch.stack(t) for t in zip(*outs))

    def _causal_taps(self):
        """(taps, pad): the flat indexes of the mask's causal taps in the k x k kernel."""
        k = self.context_prediction.kernel_size[0]
        return torch.nonzero(self.context_prediction.mask[0, 0].flatten()).flatten(), k // 2

    def _values(self, y, rows, cols, scales, means, reader):
        """The step's y_hat (P, M): read from the stream, or y quantized around the means."""
        if reader is not None:
            return reader.read(scales, means)
        return self.gaussian_conditional.quantize(y[:, rows, cols].t(), "dequantize", means)

    def _wavefront_pass(self, y, hyper, reader, context, parameters, context_values, dtype):
        """The ordered pass shared by both coding modes. ``context`` is the zero-padded
        (M, H + 2 pad, W + 2 pad) buffer the context reads; each step gathers it at the causal
        taps, ``parameters(patches (M, P, taps), hyper columns (2M, P))`` gives (scales,
        means), each (P, M), and ``context_values`` turns the step's y_hat (M, P) into what the
        buffer holds."""
        M, H, W = hyper.shape[0] // 2, hyper.shape[1], hyper.shape[2]
        k = self.context_prediction.kernel_size[0]
        taps, pad = self._causal_taps()
        flat = context.view(M, -1)
        y_hat = hyper.new_zeros(M, H, W, dtype=dtype)
        scales_out, means_out = torch.empty_like(y_hat), torch.empty_like(y_hat)
        hp = hyper.reshape(2 * M, H * W)
        tap_offsets = ((taps // k) * (W + 2 * pad) + taps % k).to(hyper.device)  # from a patch's corner
        for rows, cols in self.wavefront(H, W):
            corner = torch.from_numpy(rows * (W + 2 * pad) + cols).to(hyper.device)
            patches = flat[:, corner[:, None] + tap_offsets[None, :]]                     # (M, P, taps)
            scales, means = parameters(patches, hp[:, torch.from_numpy(rows * W + cols).to(hyper.device)])
            values = self._values(y, rows, cols, scales, means, reader).t()                # (M, P)
            y_hat[:, rows, cols] = values
            context[:, rows + pad, cols + pad] = context_values(values)
            scales_out[:, rows, cols] = scales.t()
            means_out[:, rows, cols] = means.t()
        return y_hat, scales_out, means_out

    def _portable_pass_one(self, y, hyper, reader):
        """The coded pass with the portable integer networks: hyper (2M, H, W) int16; the
        context buffer holds the quantized y_hat, the context layer runs as a 1x1 layer over
        the gathered taps, then the entropy-parameter network, all in exact integers."""
        part, threads = self.portable, native_threads()
        M = hyper.shape[0] // 2
        taps, pad = self._causal_taps()
        ctx_weight, ctx_layer = part.context_taps(taps.to(hyper.device))

        def parameters(patches, hyper_columns):
            P = patches.shape[1]
            ctx = ctx_layer.linear(patches.permute(0, 2, 1).reshape(-1, 1, P), ctx_weight, threads)
            params = part.entropy_parameters.run(torch.cat([hyper_columns.view(2 * M, 1, P), ctx]), threads)
            params = params.view(2 * M, P).t()
            return params[:, :M], params[:, M:]

        context = hyper.new_zeros(M, hyper.shape[1] + 2 * pad, hyper.shape[2] + 2 * pad)   # int16
        return self._wavefront_pass(y, hyper, reader, context, parameters,
                                    lambda v: part.context.quantize_input(v[:, None, :])[:, 0, :], torch.float32)

    def _coded_pass_one(self, y, hyper_params, reader):
        M = hyper_params.shape[0] // 2
        taps, pad = self._causal_taps()
        weight = self.context_prediction.weight.flatten(2)[:, :, taps].flatten(1)     # (2M, M*taps)
        bias = self.context_prediction.bias
        layers = [m for m in self.entropy_parameters if isinstance(m, nn.Conv2d)]
        slope = next(m.negative_slope for m in self.entropy_parameters if isinstance(m, nn.LeakyReLU))

        def parameters(patches, hyper_columns):
            ctx = torch.addmm(bias, patches.permute(1, 0, 2).reshape(patches.shape[1], -1), weight.t())
            h = torch.cat([hyper_columns.t(), ctx], 1)
            for i, layer in enumerate(layers):
                h = torch.addmm(layer.bias, h, layer.weight.flatten(1).t())
                if i < len(layers) - 1:
                    h = F.leaky_relu(h, slope)
            return h[:, :M], h[:, M:]

        context = hyper_params.new_zeros(M, hyper_params.shape[1] + 2 * pad, hyper_params.shape[2] + 2 * pad)
        return self._wavefront_pass(y, hyper_params, reader, context, parameters, lambda v: v, hyper_params.dtype)

    @staticmethod
    def wavefront(H: int, W: int):
        """Groups of positions (rows, cols) that can be coded together, in coding order: all
        positions with the same c + 3r (valid for the 5x5 raster mask)."""
        for t in range(W + 3 * (H - 1)):
            rows = np.arange(max(0, (t - W + 3) // 3), min(H - 1, t // 3) + 1)
            yield rows, t - 3 * rows

    def _coding_order(self, H: int, W: int) -> np.ndarray:
        return np.concatenate([r * W + c for r, c in self.wavefront(H, W)])

    # --- compress / decompress ------------------------------------------------------------------
    def compress(self, x):
        self.check_input(x)
        y = self.g_a(x)
        z = self.h_a(y)
        z_strings = self.entropy_bottleneck.compress(z)
        y_hat, scales, means = self.coded_pass(y, self.coded_hyper(self.entropy_bottleneck.dequantized(z)))
        order = torch.from_numpy(self._coding_order(*y.shape[-2:])).to(y.device)

        def in_coding_order(t):  # (N, M, H, W) -> (N, H*W, M): the stream's order, position by position
            return t.flatten(2)[:, :, order].transpose(1, 2)

        y_strings = self.gaussian_conditional.compress(in_coding_order(y_hat), in_coding_order(scales),
                                                       in_coding_order(means))
        return {"strings": [y_strings, z_strings], "shape": tuple(z.shape[-2:])}

    def decompress(self, strings, shape):
        if len(strings) != 2:
            raise ValueError(f"expected [y_strings, z_strings], got {len(strings)} lists")
        z_hat = self.entropy_bottleneck.decompress(strings[1], shape)
        hyper = self.coded_hyper(z_hat)
        readers = self.gaussian_conditional.readers(strings[0], hyper[0].numel() // 2, hyper.shape[0])
        y_hat, _, _ = self.coded_pass(None, hyper, readers)
        return {"x_hat": self.g_s(y_hat).clamp_(0, 1)}


def use_cheng2020_transforms(model: nn.Module, N: int) -> None:
    """Gives ``model`` the transforms of Cheng et al. 2020's anchor: residual blocks with 3x3
    and 1x1 convolutions, sub-pixel convolutions for upsampling (CompressAI's module names)."""
    model.g_a = nn.Sequential(
        ResidualBlockWithStride(3, N, stride=2), ResidualBlock(N, N),
        ResidualBlockWithStride(N, N, stride=2), ResidualBlock(N, N),
        ResidualBlockWithStride(N, N, stride=2), ResidualBlock(N, N),
        conv3x3(N, N, stride=2))
    model.h_a = nn.Sequential(
        conv3x3(N, N), nn.LeakyReLU(inplace=True), conv3x3(N, N), nn.LeakyReLU(inplace=True),
        conv3x3(N, N, stride=2), nn.LeakyReLU(inplace=True), conv3x3(N, N), nn.LeakyReLU(inplace=True),
        conv3x3(N, N, stride=2))
    model.h_s = nn.Sequential(
        conv3x3(N, N), nn.LeakyReLU(inplace=True), subpel_conv3x3(N, N, 2), nn.LeakyReLU(inplace=True),
        conv3x3(N, N * 3 // 2), nn.LeakyReLU(inplace=True), subpel_conv3x3(N * 3 // 2, N * 3 // 2, 2),
        nn.LeakyReLU(inplace=True), conv3x3(N * 3 // 2, N * 2))
    model.g_s = nn.Sequential(
        ResidualBlock(N, N), ResidualBlockUpsample(N, N, 2),
        ResidualBlock(N, N), ResidualBlockUpsample(N, N, 2),
        ResidualBlock(N, N), ResidualBlockUpsample(N, N, 2),
        ResidualBlock(N, N), subpel_conv3x3(N, 3, 2))


class Cheng2020Anchor(JointAutoregressiveHierarchicalPriors):
    """cheng2020-anchor: residual blocks and sub-pixel convolutions, mbt2018's context model."""

    def __init__(self, N: int = 192, **kwargs):
        super().__init__(N=N, M=N, **kwargs)
        use_cheng2020_transforms(self, N)

    @staticmethod
    def sizes_from_state_dict(state) -> dict:
        return {"N": state["g_a.0.conv1.weight"].size(0)}


class Cheng2020Attention(Cheng2020Anchor):
    """cheng2020-attn: cheng2020-anchor with the simplified attention blocks of Cheng et al.
    2020, two in the analysis and two in the synthesis transform (CompressAI's layout)."""

    def __init__(self, N: int = 192, **kwargs):
        super().__init__(N=N, **kwargs)
        self.g_a = nn.Sequential(
            ResidualBlockWithStride(3, N, stride=2), ResidualBlock(N, N),
            ResidualBlockWithStride(N, N, stride=2), AttentionBlock(N), ResidualBlock(N, N),
            ResidualBlockWithStride(N, N, stride=2), ResidualBlock(N, N),
            conv3x3(N, N, stride=2), AttentionBlock(N))
        self.g_s = nn.Sequential(
            AttentionBlock(N), ResidualBlock(N, N), ResidualBlockUpsample(N, N, 2),
            ResidualBlock(N, N), ResidualBlockUpsample(N, N, 2),
            AttentionBlock(N), ResidualBlock(N, N), ResidualBlockUpsample(N, N, 2),
            ResidualBlock(N, N), subpel_conv3x3(N, 3, 2))


class CheckerboardContext(JointAutoregressiveHierarchicalPriors):
    """He et al. 2021: mbt2018's transforms with a checkerboard context. The anchors (positions
    with r + c even) are coded from the hyperprior alone, then the other half from the
    hyperprior and the anchors: two parallel passes instead of a serial scan."""

    def __init__(self, N: int = 192, M: int = 192, **kwargs):
        super().__init__(N, M, **kwargs)
        self.context_prediction = MaskedConv2d(M, 2 * M, kernel_size=5, padding=2, stride=1, mask="checkerboard")

    @staticmethod
    def anchor_mask(H: int, W: int, like: torch.Tensor) -> torch.Tensor:
        rows, cols = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
        return ((rows + cols) % 2 == 0).to(like.dtype).to(like.device)

    def context(self, y_hat):
        anchors = self.anchor_mask(*y_hat.shape[-2:], y_hat)
        return self.context_prediction(y_hat * anchors) * (1 - anchors)

    def _portable_context(self, y_hat):
        anchors = self.anchor_mask(*y_hat.shape[-2:], y_hat)
        return self.portable.context.run(y_hat * anchors, native_threads()) * (1 - anchors).to(torch.int16)

    def _pass_parameters(self, hyper, y_hat, first: bool):
        """(N, 2M, H, W) float parameters of one pass: the anchors' from the hyperprior alone,
        the others' with the context of the decoded anchors."""
        if not self.is_portable:
            ctx = torch.zeros_like(hyper) if first else self.context(y_hat)
            return self.entropy_parameters(torch.cat([hyper, ctx], 1))
        part, threads = self.portable, native_threads()
        out = []
        for i in range(hyper.shape[0]):
            ctx = torch.zeros_like(hyper[i]) if first else self._portable_context(y_hat[i])
            out.append(part.entropy_parameters.run(torch.cat([hyper[i], ctx]), threads))
        return torch.stack(out)

    def _positions(self, H: int, W: int):
        anchors = self.anchor_mask(H, W, torch.zeros(())).flatten().numpy().astype(bool)
        every = np.arange(H * W)
        return every[anchors], every[~anchors]

    def _coding_order(self, H: int, W: int) -> np.ndarray:
        return np.concatenate(self._positions(H, W))

    def coded_pass(self, y, hyper_params, readers=None):
        N, M, H, W = hyper_params.shape[0], hyper_params.shape[1] // 2, *hyper_params.shape[-2:]
        dtype = torch.float32 if self.is_portable else hyper_params.dtype
        y_hat = hyper_params.new_zeros(N, M, H, W, dtype=dtype)
        scales = hyper_params.new_empty(N, M, H * W, dtype=dtype)
        means = hyper_params.new_empty(N, M, H * W, dtype=dtype)
        for positions, first in zip(self._positions(H, W), (True, False)):
            params = self._pass_parameters(hyper_params, y_hat, first).flatten(2)
            s, m = params[:, :M, positions], params[:, M:, positions]
            flat = y_hat.view(N, M, H * W)
            for i in range(N):  # the stream holds each pass position by position, (P, M)
                if readers is not None:
                    flat[i, :, positions] = readers[i].read(s[i].t(), m[i].t()).t()
                else:
                    flat[i, :, positions] = self.gaussian_conditional.quantize(y[i].flatten(1)[:, positions],
                                                                               "dequantize", m[i])
            scales[:, :, positions], means[:, :, positions] = s, m
        return y_hat, scales.view(N, M, H, W), means.view(N, M, H, W)


class Cheng2020AnchorCheckerboard(CheckerboardContext):
    """cheng2020-anchor-checkerboard: Cheng et al. 2020's transforms with the checkerboard
    context of He et al. 2021 (CompressAI's ``Cheng2020AnchorCheckerboard``).

    CompressAI nests its modules in latent codecs and feeds the entropy-parameter network
    [context, hyperprior]; its checkpoints are mapped to this flat layout, which feeds
    [hyperprior, context], when they load."""

    def __init__(self, N: int = 192, **kwargs):
        super().__init__(N=N, M=N, **kwargs)
        use_cheng2020_transforms(self, N)

    _COMPRESSAI_KEYS = ((r"latent_codec\.hyper\.", ""), (r"latent_codec\.y\.latent_codec\.y\.", ""),
                        (r"latent_codec\.y\.", ""))

    @classmethod
    def flat_state(cls, state) -> dict:
        if not any(key.startswith("latent_codec.") for key in state):
            return dict(state)
        out = rename_keys(state, cls._COMPRESSAI_KEYS)
        first = out["entropy_parameters.0.weight"]
        context, hyper = first.chunk(2, 1)
        out["entropy_parameters.0.weight"] = torch.cat([hyper, context], 1)
        return out

    @staticmethod
    def sizes_from_state_dict(state) -> dict:
        return {"N": state["g_a.0.conv1.weight"].size(0)}
