"""The integer convolution of the portable networks (docs/FORMAT.md section 11), twice: the
native one (``ransform._core.int_conv2d``, C++, threaded) and a PyTorch reference that runs on
any device (the CUDA kernel is :func:`ransform.kernels.conv_cuda`). Both give the same bits by
construction:

- int16 activations and weights in [-32767, 32767]; the reference multiplies and sums them
  as float64, where every product (< 2^30) and every partial sum (< 2^53 for fewer than 2^23
  terms) is an exact integer, so the summation order of whatever GEMM runs cannot matter;
- the accumulator is then taken modulo 2^32, which is what the native uint32 sums give;
- requantization is integer arithmetic in int64, identical on every device.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

ACTIVATION_LIMIT = 32767
OUTPUT_LIMIT = 2 ** 31 - 1


def wrap_int32(acc: torch.Tensor) -> torch.Tensor:
    """int64 values modulo 2^32, as two's-complement int32 values (still int64)."""
    return ((acc + 2 ** 31) & (2 ** 32 - 1)) - 2 ** 31


def requantize(acc: torch.Tensor, bias, m_pos, m_neg, shift, limit: int, channel_dim: int = 0) -> torch.Tensor:
    """int64 accumulators -> clamp((a * m + (2^s >> 1)) >> s), a = int32(acc + bias)."""
    shape = [1] * acc.dim()
    shape[channel_dim] = -1

    def per_channel(t):
        return t.to(acc.device, torch.int64).view(shape)

    a = wrap_int32(acc + per_channel(bias))
    s = per_channel(shift)
    m = torch.where(a >= 0, per_channel(m_pos), per_channel(m_neg))
    return ((a * m + ((1 << s) >> 1)) >> s).clamp_(-limit, limit)


def conv_reference(x: torch.Tensor, weight: torch.Tensor, bias, m_pos, m_neg, shift, *, stride: int = 1,
                   padding: int = 0, output_padding: int = 0, transposed: bool = False,
                   out_bits: int = 16) -> torch.Tensor:
    """x (C, H, W) integer tensor -> (C_out, H_out, W_out) int16 / int32, on x's device."""
    xd, wd = x.to(torch.float64)[None], weight.to(x.device, torch.float64)
    kh, kw = wd.shape[-2:]
    if transposed:
        cin, cout = wd.shape[:2]
        h, w = x.shape[-2:]
        size = ((h - 1) * stride - 2 * padding + kh + output_padding,
                (w - 1) * stride - 2 * padding + kw + output_padding)
        cols = wd.reshape(cin, cout * kh * kw).t() @ xd.reshape(cin, h * w)       # exact: see module doc
        acc = F.fold(cols[None], size, (kh, kw), padding=padding, stride=stride)[0]  # sums of exact ints
    else:
        cout = wd.shape[0]
        h = (x.shape[-2] + 2 * padding - kh) // stride + 1
        w = (x.shape[-1] + 2 * padding - kw) // stride + 1
        cols = F.unfold(xd, (kh, kw), padding=padding, stride=stride)[0]
        acc = (wd.reshape(cout, -1) @ cols).reshape(cout, h, w)
    limit = ACTIVATION_LIMIT if out_bits == 16 else OUTPUT_LIMIT
    out = requantize(acc.to(torch.int64), bias, m_pos, m_neg, shift, limit)
    return out.to(torch.int16 if out_bits == 16 else torch.int32)


def native_kernels() -> list[str]:
    """The instruction sets of the native integer kernels this CPU runs (``set_backend``)."""
    from ransform import _core

    def runs(kernel):
        try:
            _core.int_conv2d(np.zeros((1, 1, 1), np.int16), np.zeros((1, 1, 1, 1), np.int16),
                             *(np.zeros(1, np.int32),) * 4, kernel=kernel)
            return True
        except ValueError:
            return False

    return [k for k in ("scalar", "sse2", "avx2", "avx512") if runs(k)]


def conv_native(x: torch.Tensor, weight: torch.Tensor, bias, m_pos, m_neg, shift, *, stride: int = 1,
                padding: int = 0, output_padding: int = 0, transposed: bool = False, out_bits: int = 16,
                threads: int = 0, kernel: str = "auto") -> torch.Tensor:
    """Same as :func:`conv_reference`, in ransform's C++ (CPU tensors)."""
    from ransform import _core

    def host(t, dtype):
        return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=dtype)

    out = _core.int_conv2d(host(x, np.int16), host(weight, np.int16), host(bias, np.int32), host(m_pos, np.int32),
                           host(m_neg, np.int32), host(shift, np.int32), stride=stride, padding=padding,
                           output_padding=output_padding, transposed=transposed, out_bits=out_bits,
                           threads=threads, kernel=kernel)
    return torch.from_numpy(out)

