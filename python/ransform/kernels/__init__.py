"""Every GPU kernel of ransform, each with its CPU reference, and the choice between them.

``ransform._cuda`` is imported once, in :mod:`~ransform.kernels.backend`; CUDA tensors take
its kernels when :func:`backend` is ``"cuda"``, and the same math runs as PyTorch operations
otherwise (the reference the kernels are tested against).

- :mod:`~ransform.kernels.backend`: the ``_cuda`` import, :func:`backend`.
- :mod:`~ransform.kernels.families`: the distribution families (:data:`FAMILIES`, read from
  the C++ core) and their unit tail and density as PyTorch ops.
- :mod:`~ransform.kernels.fused_conditional`: the conditional models' likelihood, forward and
  backward in one kernel each.
- :mod:`~ransform.kernels.fused_bottleneck`: the EntropyBottleneck's likelihood, likewise.
- :mod:`~ransform.kernels.rows`: coder rows on the GPU, the CPU's bits: scale-table rows, the
  scale -> row map, per-element mixture rows.
- :mod:`~ransform.kernels.integer_conv`: the portable networks' integer convolution.
"""
from ransform.kernels.backend import backend, cuda_module_built
from ransform.kernels.families import FAMILIES, density, upper_tail
from ransform.kernels.fused_bottleneck import bottleneck_bits, bottleneck_likelihood
from ransform.kernels.fused_conditional import conditional_bits, conditional_likelihood
from ransform.kernels.integer_conv import conv_cuda
from ransform.kernels.rows import build_scale_rows_on_gpu, mixture_rows, scale_index

__all__ = [
    "FAMILIES", "backend", "bottleneck_bits", "bottleneck_likelihood", "build_scale_rows_on_gpu", "conditional_bits",
    "conditional_likelihood", "conv_cuda", "cuda_module_built", "density", "mixture_rows", "scale_index",
    "upper_tail",
]
