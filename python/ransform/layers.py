"""Layers of the published models: GDN / IGDN, masked convolutions, convolution helpers, the
residual and attention blocks of Cheng et al. 2020 and ELIC's residual bottleneck block.

Parameter and module names follow CompressAI's, so its checkpoints load as they are; constant
buffers CompressAI also saves (reparametrization pedestals, bounds, masks) are not parameters
here and are dropped on load (see :mod:`ransform.compat`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ransform.ops import lower_bound


class NonNegative:
    """The reparametrization that keeps GDN's beta and gamma non-negative while training:
    the stored parameter is p = sqrt(max(v + pedestal, pedestal)) and the value used is
    max(p, sqrt(minimum + pedestal))**2 - pedestal. The pedestal keeps the gradient of the
    square root finite near zero."""

    pedestal = 2.0 ** -36  # (2^-18)^2

    def __init__(self, minimum: float = 0.0):
        self.bound = (minimum + self.pedestal) ** 0.5

    def to_stored(self, value: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(torch.clamp_min(value + self.pedestal, self.pedestal))

    def to_value(self, stored: torch.Tensor) -> torch.Tensor:
        return lower_bound(stored, self.bound) ** 2 - self.pedestal


class GDN(nn.Module):
    """Generalized divisive normalization (Ballé et al. 2016):
    y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2); with ``inverse=True`` (IGDN) the
    square root multiplies instead of divides."""

    def __init__(self, channels: int, inverse: bool = False, beta_min: float = 1e-6, gamma_init: float = 0.1):
        super().__init__()
        self.inverse = bool(inverse)
        self._beta = NonNegative(beta_min)
        self._gamma = NonNegative()
        self.beta = nn.Parameter(self._beta.to_stored(torch.ones(channels)))
        self.gamma = nn.Parameter(self._gamma.to_stored(gamma_init * torch.eye(channels)))

    def _load_from_state_dict(self, state_dict, prefix, *args):
        # CompressAI saves its reparametrization constants (pedestal, bound) as buffers; they
        # are the constants above, so they are dropped rather than reported as unexpected.
        for name in ("beta_reparam.pedestal", "beta_reparam.lower_bound.bound", "gamma_reparam.pedestal",
                     "gamma_reparam.lower_bound.bound"):
            state_dict.pop(prefix + name, None)
        super()._load_from_state_dict(state_dict, prefix, *args)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        beta = self._beta.to_value(self.beta)
        gamma = self._gamma.to_value(self.gamma).reshape(channels, channels, 1, 1)
        norm = F.conv2d(x * x, gamma, beta)
        if torch.is_grad_enabled() and (x.requires_grad or self.gamma.requires_grad):
            return x * torch.sqrt(norm) if self.inverse else x * torch.rsqrt(norm)
        # Coding: in place, two fewer image-sized tensors (GDN is memory-bound; 10 % of g_a).
        return (norm.sqrt_() if self.inverse else norm.rsqrt_()).mul_(x)


def IGDN(channels: int, **kwargs) -> GDN:
    return GDN(channels, inverse=True, **kwargs)


class MaskedConv2d(nn.Conv2d):
    """A convolution that sees only already decoded positions.

    ``mask="raster"`` (PixelCNN type A): the rows above and the positions left of the centre;
    ``mask="raster-b"`` also the centre. ``mask="checkerboard"`` (He et al. 2021): only the
    positions of the other checkerboard colour (the anchors when decoding non-anchors).
    """

    def __init__(self, *args, mask: str = "raster", **kwargs):
        super().__init__(*args, **kwargs)
        kh, kw = self.kernel_size
        m = torch.zeros(kh, kw)
        if mask in ("raster", "raster-b"):
            m[: kh // 2] = 1
            m[kh // 2, : kw // 2 + (mask == "raster-b")] = 1
        elif mask == "checkerboard":
            rows, cols = torch.meshgrid(torch.arange(kh), torch.arange(kw), indexing="ij")
            m[(rows + cols) % 2 == 1] = 1  # the centre has (kh//2 + kw//2) even for odd kernels
        else:
            raise ValueError(f"mask must be 'raster', 'raster-b' or 'checkerboard', got {mask!r}")
        self.mask_type = mask
        self.register_buffer("mask", m.expand_as(self.weight).clone(), persistent=False)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        # CompressAI saves the mask; it must be this one (a checkpoint of another mask would
        # give a model that silently sees the wrong context).
        saved = state_dict.pop(prefix + "mask", None)
        if saved is not None and not torch.equal(saved.to(self.mask), self.mask):
            error_msgs.append(f"{prefix}mask: the checkpoint's mask is not this layer's {self.mask_type!r} mask")
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.mask, self.bias)

    def masked_weight(self) -> torch.Tensor:
        return self.weight * self.mask


def conv(in_channels: int, out_channels: int, kernel_size: int = 5, stride: int = 2) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2)


class Deconv(nn.ConvTranspose2d):
    """:func:`deconv`'s layer. Out of training, a 5x5 stride-2 one with few output channels (a
    synthesis transform's last layer, to RGB) runs as the equivalent 3x3 convolution to 4x the
    channels followed by a pixel shuffle: output phase (a, b) of the transposed convolution
    reads kernel taps (a + 4 - 2t, b + 4 - 2u) at input offsets (t - 1, u - 1). Same function,
    outputs within float rounding; 2.2-2.4x faster on CPU for 128/192 -> 3 channels (oneDNN's
    transposed convolution vectorises over the 3 output channels). Weights, state dict and
    training are those of nn.ConvTranspose2d."""

    max_subpixel_channels = 16  # wider layers are faster as they are (192 -> 192: 51 against 90 ms)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.subpixel = (self.kernel_size == (5, 5) and self.stride == (2, 2) and self.padding == (2, 2)
                         and self.output_padding == (1, 1) and self.dilation == (1, 1) and self.groups == 1
                         and self.out_channels <= self.max_subpixel_channels)
        self._cached = None  # (key, weight, bias) for no-grad calls

    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        if self.training or not self.subpixel or output_size is not None:
            return super().forward(x, output_size)
        weight, bias = self._subpixel_parameters()
        return F.pixel_shuffle(F.conv2d(x, weight, bias, padding=1), 2)

    def _subpixel_parameters(self):
        if torch.is_grad_enabled():  # differentiable through the original weight
            return self._rearranged()
        key = (self.weight._version, self.weight.data_ptr(), self.weight.dtype, self.weight.device,
               None if self.bias is None else (self.bias._version, self.bias.data_ptr()))
        if self._cached is None or self._cached[0] != key:
            self._cached = (key, *self._rearranged())
        return self._cached[1], self._cached[2]

    def _rearranged(self):
        taps = torch.tensor([[4, 2, 0], [5, 3, 1]], device=self.weight.device)  # [phase][offset]; 5 = zero
        w = F.pad(self.weight, (0, 1, 0, 1))  # (in, out, 6, 6), tap 5 is zero
        w = w[:, :, taps[:, None, :, None], taps[None, :, None, :]]  # (in, out, a, b, t, u)
        w = w.permute(1, 2, 3, 0, 4, 5).reshape(4 * self.out_channels, self.in_channels, 3, 3)
        w = w.contiguous(memory_format=torch.channels_last)
        return w, None if self.bias is None else self.bias.repeat_interleave(4)


def deconv(in_channels: int, out_channels: int, kernel_size: int = 5, stride: int = 2) -> Deconv:
    """The transposed convolution that exactly undoes :func:`conv`'s downsampling in shape."""
    return Deconv(in_channels, out_channels, kernel_size, stride=stride, output_padding=stride - 1,
                  padding=kernel_size // 2)


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride)


def subpel_conv3x3(in_channels: int, out_channels: int, factor: int = 1) -> nn.Sequential:
    """Upsampling by ``factor`` with a 3x3 convolution and a pixel shuffle."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels * factor ** 2, 3, padding=1), nn.PixelShuffle(factor))


class ResidualBlockWithStride(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int = 2):
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride=stride)
        self.leaky_relu = nn.LeakyReLU(inplace=True)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.gdn = GDN(out_channels)
        needs_skip = stride != 1 or in_channels != out_channels
        self.skip = conv1x1(in_channels, out_channels, stride=stride) if needs_skip else None

    def forward(self, x):
        out = self.gdn(self.conv2(self.leaky_relu(self.conv1(x))))
        return out + (x if self.skip is None else self.skip(x))


class ResidualBlockUpsample(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, upsample: int = 2):
        super().__init__()
        self.subpel_conv = subpel_conv3x3(in_channels, out_channels, upsample)
        self.leaky_relu = nn.LeakyReLU(inplace=True)
        self.conv = conv3x3(out_channels, out_channels)
        self.igdn = GDN(out_channels, inverse=True)
        self.upsample = subpel_conv3x3(in_channels, out_channels, upsample)

    def forward(self, x):
        return self.igdn(self.conv(self.leaky_relu(self.subpel_conv(x)))) + self.upsample(x)


class ResidualBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels)
        self.leaky_relu = nn.LeakyReLU(inplace=True)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.skip = conv1x1(in_channels, out_channels) if in_channels != out_channels else None

    def forward(self, x):
        out = self.leaky_relu(self.conv2(self.leaky_relu(self.conv1(x))))
        return out + (x if self.skip is None else self.skip(x))


class ResidualBottleneckBlock(nn.Module):
    """ELIC's residual block: 1x1 down to half the channels, 3x3, 1x1 up, ReLU between, plus
    the input (through a 1x1 when the widths differ). Module names are CompressAI's."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        mid = min(in_channels, out_channels) // 2
        self.conv1 = conv1x1(in_channels, mid)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(mid, mid)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = conv1x1(mid, out_channels)
        self.skip = conv1x1(in_channels, out_channels) if in_channels != out_channels else nn.Identity()

    def forward(self, x):
        return self.conv3(self.relu2(self.conv2(self.relu1(self.conv1(x))))) + self.skip(x)


class _AttentionUnit(nn.Module):
    """Bottleneck residual unit of the attention block: 1x1 down to half the channels, 3x3,
    1x1 back up, added to the input, then ReLU."""

    def __init__(self, channels: int):
        super().__init__()
        half = channels // 2
        self.conv = nn.Sequential(conv1x1(channels, half), nn.ReLU(inplace=True), conv3x3(half, half),
                                  nn.ReLU(inplace=True), conv1x1(half, channels))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.conv(x) + x)


class AttentionBlock(nn.Module):
    """The simplified attention module of Cheng et al. 2020: a trunk of three residual units
    gated by sigmoid(mask branch), plus the input. Module names are CompressAI's."""

    def __init__(self, N: int):
        super().__init__()
        self.conv_a = nn.Sequential(_AttentionUnit(N), _AttentionUnit(N), _AttentionUnit(N))
        self.conv_b = nn.Sequential(_AttentionUnit(N), _AttentionUnit(N), _AttentionUnit(N), conv1x1(N, N))

    def forward(self, x):
        return x + self.conv_a(x) * torch.sigmoid(self.conv_b(x))
