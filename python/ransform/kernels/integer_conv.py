"""The integer convolution of the portable networks (docs/FORMAT.md section 11) as one CUDA
kernel (``csrc/cuda/intnet.cu``); its CPU reference and native twin are in
:mod:`ransform.portable.ops`, which it matches bit for bit."""
from __future__ import annotations

import torch

from ransform.kernels.backend import cuda_kernels, on_gpu, stream


def conv_cuda(x: torch.Tensor, weight: torch.Tensor, bias, m_pos, m_neg, shift, *, stride: int = 1,
              padding: int = 0, output_padding: int = 0, transposed: bool = False,
              out_bits: int = 16) -> torch.Tensor:
    """Same as :func:`ransform.portable.ops.conv_reference`, as one CUDA kernel (CUDA tensors)."""
    if not on_gpu(x):
        raise ValueError("the cuda integer backend needs ransform._cuda, a GPU and CUDA tensors")
    dev = x.device
    x = x.to(torch.int16).contiguous()
    w = weight.to(dev, torch.int16).contiguous()
    per_channel = [t.to(dev, torch.int32).contiguous() for t in (bias, m_pos, m_neg, shift)]
    k = w.shape[-1]
    cin, h, wd = x.shape
    cout = w.shape[1] if transposed else w.shape[0]
    if transposed:
        size = ((h - 1) * stride - 2 * padding + k + output_padding,
                (wd - 1) * stride - 2 * padding + k + output_padding)
    else:
        size = ((h + 2 * padding - k) // stride + 1, (wd + 2 * padding - k) // stride + 1)
    out = torch.empty(cout, *size, dtype=torch.int16 if out_bits == 16 else torch.int32, device=dev)
    cuda_kernels.int_conv2d(x.data_ptr(), w.data_ptr(), *(t.data_ptr() for t in per_channel), cin, h, wd, cout, k,
                            stride, padding, output_padding, transposed, out_bits, out.data_ptr(), stream(dev))
    return out
