"""Float networks -> integer networks (:mod:`ransform.portable.network`), calibrated on a few
images. Done once, after training; the result is stored in the checkpoint.

Per layer, with the input's per-channel scale s_in (an int16 activation v stands for v / s_in):

- weights W / s_in get a per-output-channel scale s_w, as large as allows both |W_int| <=
  32767 and the calibrated pre-activation times s_w <= 2^30 (so accumulators of data like the
  calibration data stay inside int32 with a factor 2 to spare); bias_int = round(b s_w);
- hidden outputs get a per-channel scale s_out = 2^14 / (calibrated max |activation|), so
  twice the calibrated range still fits int16; the last layer's output a common 2^f;
- the requantization multiplier s_out / s_w is m / 2^s with m in [2^30, 2^31); the leaky
  ReLU's negative side uses round(m * slope), ReLU 0.
Float inputs get a power of two per channel: 2^k with 2^14 / (calibrated max) in [2^k, 2^(k+1)).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ransform.layers import MaskedConv2d
from ransform.portable.network import IntegerConv, IntegerNetwork

HIDDEN_RANGE = 2.0 ** 14     # calibrated max of a hidden activation -> this int16 value
ACCUMULATOR_RANGE = 2.0 ** 30
TINY = 2.0 ** -20


class Unit:
    """A float convolution with what follows it: pixel shuffle factor and activation."""

    def __init__(self, conv: nn.Module):
        self.conv, self.shuffle, self.activation, self.slope = conv, 1, "none", 1.0

    def weight(self) -> torch.Tensor:
        w = self.conv.masked_weight() if isinstance(self.conv, MaskedConv2d) else self.conv.weight
        return w.detach().to(torch.float64)

    def bias(self) -> torch.Tensor:
        b = self.conv.bias
        out_dim = 1 if self.transposed else 0
        return torch.zeros(self.conv.weight.shape[out_dim], dtype=torch.float64) if b is None else \
            b.detach().to(torch.float64).cpu()

    @property
    def transposed(self) -> bool:
        return isinstance(self.conv, nn.ConvTranspose2d)

    def run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(pre-activation, output) in float64 for a (1, C, H, W) input."""
        w, b, c = self.weight().to(x.device), self.bias().to(x.device), self.conv
        if self.transposed:
            pre = F.conv_transpose2d(x, w, b, c.stride, c.padding, c.output_padding)
        else:
            pre = F.conv2d(x, w, b, c.stride, c.padding)
        out = F.pixel_shuffle(pre, self.shuffle) if self.shuffle > 1 else pre
        if self.activation == "relu":
            out = F.relu(out)
        elif self.activation == "leaky":
            out = F.leaky_relu(out, self.slope)
        return pre, out

    def structure(self, out_bits: int) -> IntegerConv:
        c = self.conv
        return IntegerConv(c.in_channels, c.out_channels, c.kernel_size[0], stride=c.stride[0], padding=c.padding[0],
                           output_padding=c.output_padding[0] if self.transposed else 0,
                           transposed=self.transposed, shuffle=self.shuffle, out_bits=out_bits)


def _flatten(module: nn.Module) -> list[nn.Module]:
    if isinstance(module, nn.Sequential):
        return [m for child in module for m in _flatten(child)]
    return [module]


def units_of(module: nn.Module) -> list[Unit]:
    """The float network as units; refuses what an integer network cannot express."""
    units: list[Unit] = []
    for m in _flatten(module):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            square = len(set(m.kernel_size)) == 1 and len(set(m.stride)) == 1 and len(set(m.padding)) == 1
            if not square or m.groups != 1 or tuple(m.dilation) != (1, 1) or m.padding_mode != "zeros":
                raise ValueError(f"cannot make {m} portable: only square, ungrouped, undilated, zero-padded "
                                 "convolutions are supported")
            units.append(Unit(m))
        elif units and isinstance(m, nn.PixelShuffle) and units[-1].shuffle == 1 and units[-1].activation == "none":
            units[-1].shuffle = m.upscale_factor
        elif units and isinstance(m, (nn.ReLU, nn.LeakyReLU)) and units[-1].activation == "none":
            units[-1].activation = "relu" if isinstance(m, nn.ReLU) else "leaky"
            units[-1].slope = 0.0 if isinstance(m, nn.ReLU) else float(m.negative_slope)
        else:
            raise ValueError(f"cannot make {type(m).__name__} portable (supported: convolutions, transposed "
                             "convolutions, pixel shuffles, ReLU and leaky ReLU)")
    if not units:
        raise ValueError("no convolution to make portable")
    return units


def structure(module: nn.Module, in_channels: int, float_input: bool, float_output: bool) -> IntegerNetwork:
    """The empty integer network for a float one (a state dict fills it)."""
    units = units_of(module)
    layers = [u.structure(32 if float_output and i == len(units) - 1 else 16) for i, u in enumerate(units)]
    return IntegerNetwork(layers, in_channels, float_input, float_output)


def input_shifts(maxima: torch.Tensor) -> torch.Tensor:
    """Per-channel k with x * 2^k within 2^14 for |x| up to the calibrated maxima."""
    k = torch.floor(torch.log2(HIDDEN_RANGE / maxima.clamp_min(TINY)))
    return k.clamp(-20, 20).to(torch.int32)


def _multiplier(ratio: float) -> tuple[int, int]:
    """ratio ~ m / 2^s with m in [2^30, 2^31), s in 0..62."""
    s = max(0, min(62, 30 - math.floor(math.log2(ratio)))) if ratio > 0 else 0
    return min(2 ** 31 - 1, max(0, round(ratio * 2.0 ** s))), s


@torch.no_grad()
def fill_layer(layer: IntegerConv, unit: Unit, s_in: torch.Tensor, pre_max: torch.Tensor,
               s_out: torch.Tensor) -> None:
    """Integer weights and requantization of one layer (see the module doc)."""
    w = unit.weight().cpu()
    in_dim, out_dim = (0, 1) if unit.transposed else (1, 0)
    view = [1] * 4
    view[in_dim] = -1
    w = w / s_in.view(view)
    w_max = w.abs().transpose(0, out_dim).flatten(1).amax(1)
    b = unit.bias()
    s_w = torch.minimum(32767.0 / w_max.clamp_min(TINY), ACCUMULATOR_RANGE / pre_max.clamp_min(TINY))
    s_w = torch.minimum(s_w, ACCUMULATOR_RANGE / b.abs().clamp_min(TINY))
    view = [1] * 4
    view[out_dim] = -1
    layer.weight.copy_(torch.round(w * s_w.view(view)).clamp(-32767, 32767).to(torch.int16))
    layer.bias.copy_(torch.round(b * s_w).clamp(-2 ** 31 + 1, 2 ** 31 - 1).to(torch.int32))
    for c in range(s_w.numel()):
        m, s = _multiplier(float(s_out[c] / s_w[c]))
        layer.m_pos[c], layer.shift[c] = m, s
        layer.m_neg[c] = {"none": m, "relu": 0}.get(unit.activation, round(m * unit.slope))


@torch.no_grad()
def convert(module: nn.Module, network: IntegerNetwork, inputs: list[torch.Tensor],
            s_in: torch.Tensor | None = None) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Fills ``network`` (from :func:`structure`) for the float ``module``, calibrated on
    ``inputs`` (a list of (1, C, H, W) float tensors). ``s_in``: the input's per-channel scale
    when the network takes int16 input. Returns the float outputs on the inputs and the
    output scale (per channel for int16 outputs, 2^f for float outputs)."""
    units = units_of(module)
    if network.float_input:
        maxima = torch.stack([x.detach().abs().amax((0, 2, 3)).double().cpu() for x in inputs]).amax(0)
        network.input_shift.copy_(input_shifts(maxima))
        s_in = torch.pow(2.0, network.input_shift.double())
    xs = [x.detach().double() for x in inputs]
    for i, (unit, layer) in enumerate(zip(units, network.layers)):
        outs = [unit.run(x) for x in xs]
        pre_max = torch.stack([p.abs().amax((0, 2, 3)).cpu() for p, _ in outs]).amax(0)
        post_max = torch.stack([o.abs().amax((0, 2, 3)).cpu() for _, o in outs]).amax(0)
        if network.float_output and i == len(units) - 1:
            f = math.floor(math.log2((2.0 ** 29) / max(float(post_max.max()), TINY)))
            network.output_shift.fill_(max(0, min(24, f)))
            s_out = torch.full_like(post_max, 2.0 ** int(network.output_shift))
        else:
            s_out = HIDDEN_RANGE / post_max.clamp_min(2.0 ** -10)
        per_conv_channel = s_out.repeat_interleave(unit.shuffle ** 2)
        fill_layer(layer, unit, s_in, pre_max, per_conv_channel)
        s_in = s_out
        xs = [o for _, o in outs]
    return xs, s_in
