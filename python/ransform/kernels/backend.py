"""The one import of ``ransform._cuda`` and the choice between its kernels and the PyTorch
path. The other modules of :mod:`ransform.kernels` launch kernels through
:data:`cuda_kernels` and ask :func:`on_gpu` first; nothing outside the package imports
``_cuda``."""
from __future__ import annotations

import functools

import torch

try:
    from ransform import _cuda as cuda_kernels
except ImportError:  # built without nvcc
    cuda_kernels = None


@functools.lru_cache(maxsize=1)
def backend() -> str:
    """``"cuda"`` when CUDA tensors use the fused kernels, else ``"pytorch"``. Cached: asking
    the CUDA runtime for devices without a driver takes milliseconds."""
    if cuda_kernels is not None and cuda_kernels.device_count() > 0 and torch.cuda.is_available():
        return "cuda"
    return "pytorch"


def cuda_module_built() -> bool:
    return cuda_kernels is not None


def on_gpu(*tensors) -> bool:
    """Whether a kernel takes these tensors (None: an absent optional input): the CUDA
    backend, and every tensor on a CUDA device."""
    return backend() == "cuda" and all(t is None or t.is_cuda for t in tensors)


def float32(t):
    """``t`` as a contiguous float32 tensor without autograd history (the kernels' input), or None."""
    return None if t is None else t.detach().to(torch.float32).contiguous()


def stream(device=None) -> int:
    """The handle of torch's current CUDA stream on ``device``: kernels run there, ordered with
    torch's own work."""
    return torch.cuda.current_stream(device).cuda_stream
