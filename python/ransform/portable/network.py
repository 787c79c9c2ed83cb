"""Integer networks: the layers whose outputs select coder rows and shift coded symbols, in
a form every machine computes bit for bit (docs/FORMAT.md section 11).

An :class:`IntegerNetwork` is a chain of :class:`IntegerConv` layers. Its input is either a
float tensor whose values are exactly defined (a dequantized latent: symbols plus medians or
means, each a correctly rounded float32 operation), turned into int16 by ``round(x * 2^k_c)``
with a power of two per channel (exact), or the int16 output of another integer network. Its
output is either int16 (a hidden activation for another network) or int32 at the fixed point
2^-f, returned as float32 values ``out * 2^-f``: the int -> float conversion is correctly
rounded and the power-of-two product exact, so those floats are the same everywhere too.

Nothing here is learned: :mod:`ransform.portable.convert` fills the buffers from a float
network, and a state dict carries them.
"""
from __future__ import annotations

import torch
from torch import nn

from ransform.kernels import conv_cuda
from ransform.portable.ops import ACTIVATION_LIMIT, conv_native, conv_reference

BACKENDS = ("auto", "native", "reference", "cuda")
KERNELS = ("auto", "scalar", "sse2", "avx2", "avx512")
_backend, _kernel = "auto", "auto"


def set_backend(name: str, kernel: str = "auto") -> None:
    """``"native"`` (C++ on the CPU), ``"reference"`` (PyTorch float64 GEMMs, any device),
    ``"cuda"`` (one CUDA kernel, CUDA tensors) or ``"auto"`` (native for CPU tensors, reference
    for CUDA ones: the kernel has not yet been measured on a GPU); ``kernel`` picks the native
    instruction set (``"auto"``: the best this CPU has). The bits are the same; only the speed
    differs."""
    global _backend, _kernel
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    _backend, _kernel = name, kernel


def get_backend() -> str:
    return _backend


def power_of_two(k: torch.Tensor) -> torch.Tensor:
    """2^k as float32 for integer k in [-126, 127], built from the bit pattern (exact on every
    device; a library pow() need not be)."""
    return ((k.to(torch.int32) + 127) << 23).view(torch.float32)


class IntegerConv(nn.Module):
    """An integer (transposed) convolution, an optional pixel shuffle and the requantization
    that applies the activation (ReLU, leaky ReLU or none) and the next layer's scale."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1, padding: int = 0,
                 output_padding: int = 0, transposed: bool = False, shuffle: int = 1, out_bits: int = 16):
        super().__init__()
        self.stride, self.padding, self.output_padding = int(stride), int(padding), int(output_padding)
        self.transposed, self.shuffle, self.out_bits = bool(transposed), int(shuffle), int(out_bits)
        shape = (in_channels, out_channels) if transposed else (out_channels, in_channels)
        self.register_buffer("weight", torch.zeros(*shape, kernel_size, kernel_size, dtype=torch.int16))
        for name in ("bias", "m_pos", "m_neg", "shift"):
            self.register_buffer(name, torch.zeros(out_channels, dtype=torch.int32))

    @property
    def out_channels(self) -> int:
        return self.bias.numel() // self.shuffle ** 2

    def forward(self, x: torch.Tensor, threads: int = 0) -> torch.Tensor:
        """x (C, H, W) int16 -> (C_out, H_out, W_out) int16 or int32."""
        out = self._conv(x, self.weight, self.stride, self.padding, self.output_padding, self.transposed, threads)
        if self.shuffle > 1:  # (C r^2, H, W) -> (C, H r, W r), a permutation
            r, (c, h, w) = self.shuffle, out.shape
            out = out.view(c // r ** 2, r, r, h, w).permute(0, 3, 1, 4, 2).reshape(c // r ** 2, h * r, w * r)
        return out

    def linear(self, x: torch.Tensor, weight: torch.Tensor, threads: int = 0) -> torch.Tensor:
        """This layer's bias and requantization after a 1x1 convolution with ``weight``
        (C_out, K, 1, 1): the context layer over gathered causal taps, x (K, 1, P)."""
        return self._conv(x, weight, 1, 0, 0, False, threads)

    def _conv(self, x, weight, stride, padding, output_padding, transposed, threads):
        backend = _backend if _backend != "auto" else ("reference" if x.is_cuda else "native")
        if backend == "native" and x.is_cuda:
            raise ValueError("the native integer backend runs on the CPU; use set_backend('auto') for CUDA tensors")
        fn = {"native": conv_native, "reference": conv_reference, "cuda": conv_cuda}[backend]
        kwargs = {"threads": threads, "kernel": _kernel} if backend == "native" else {}
        return fn(x, weight, self.bias, self.m_pos, self.m_neg, self.shift, stride=stride, padding=padding,
                  output_padding=output_padding, transposed=transposed, out_bits=self.out_bits,
                  **kwargs).to(x.device)


class IntegerNetwork(nn.Module):
    """A chain of :class:`IntegerConv` layers with an optional float input (per-channel
    power-of-two ``input_shift``) and an optional float output (``output_shift`` f: the last
    layer's int32 output times 2^-f)."""

    def __init__(self, layers: list[IntegerConv], in_channels: int, float_input: bool = True,
                 float_output: bool = True):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.float_input, self.float_output = bool(float_input), bool(float_output)
        self.register_buffer("input_shift", torch.zeros(in_channels if float_input else 0, dtype=torch.int32))
        self.register_buffer("output_shift", torch.zeros((), dtype=torch.int32))

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        """float (C, H, W) -> int16 round(x * 2^k_c), clamped; exact for any float32 x."""
        q = torch.round(x.to(torch.float32) * power_of_two(self.input_shift.to(x.device)).view(-1, 1, 1))
        return q.clamp_(-ACTIVATION_LIMIT, ACTIVATION_LIMIT).to(torch.int16)

    def dequantize_output(self, out: torch.Tensor) -> torch.Tensor:
        """int32 -> float32 out * 2^-f (correctly rounded conversion, exact power-of-two product)."""
        return out.to(torch.float32) * power_of_two(-self.output_shift.to(out.device))

    def run(self, x: torch.Tensor, threads: int = 0) -> torch.Tensor:
        """One image (C, H, W): float or int16 in, float32 or int16 out (see the class doc)."""
        h = self.quantize_input(x) if self.float_input else x
        for layer in self.layers:
            h = layer(h, threads)
        return self.dequantize_output(h) if self.float_output else h

    def forward(self, x: torch.Tensor, threads: int = 0) -> torch.Tensor:
        """A batch (N, C, H, W), one image at a time (the result cannot depend on the batch)."""
        return torch.stack([self.run(x[i], threads) for i in range(x.shape[0])])
