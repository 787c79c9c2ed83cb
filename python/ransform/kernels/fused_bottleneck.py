"""Fused likelihood of :class:`ransform.entropy_models.EntropyBottleneck`: the per-channel CDF
network at x - 1/2 and x + 1/2, the likelihood between them and its lower bound, one pass
forward and one pass backward (which recomputes the network instead of saving activations).

The effective parameters (softplus(matrix), bias, tanh(factor)) are packed into one (C, P)
tensor by ordinary PyTorch operations, so autograd chains softplus and tanh itself; the
fused function sees only values (C, K) and that tensor. The layout (``csrc/cuda/bottleneck.cuh``)
is a network of ``hidden`` gated layers of one ``width``; a narrower or shallower network is
packed exactly into a bigger shape (zero padding, identity layers), which is how every
``filters`` up to the kernels' shapes runs on the GPU.

On CUDA tensors (with ``ransform._cuda`` built and a GPU present) the kernels run on
``torch.cuda.current_stream()``; elsewhere, or for filters wider or deeper than the kernels',
the same forward and the same explicit backward run as PyTorch operations (the reference the
kernels are tested against, and what ``gradcheck`` checks). Semantics are those of
``EntropyBottleneck.likelihood`` followed by ``bound_likelihood``. Inputs may be float16 /
bfloat16; the computation is float32 (float64 stays float64 on the PyTorch path).
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ransform.kernels.backend import backend, cuda_kernels, float32, on_gpu, stream
from ransform.kernels.families import density


# --- packing -----------------------------------------------------------------------------------
def param_count(width: int, hidden: int) -> int:
    """Parameters per channel of the packed network (``param_count`` in bottleneck.cuh)."""
    return 3 * width + (hidden - 1) * (width * width + 2 * width) + width + 1


def natural_shape(matrices: Sequence[torch.Tensor]) -> tuple[int, int]:
    """(width, hidden) that holds the network without padding but for uneven widths."""
    widths = [int(m.shape[1]) for m in matrices[:-1]]
    return max(widths, default=1), max(len(widths), 1)


@functools.lru_cache(maxsize=None)
def _kernel_shape(width: int, hidden: int) -> tuple[int, int] | None:
    """The cheapest compiled kernel shape that holds (width, hidden), or None."""
    fits = [(w, h) for w, h in cuda_kernels.bottleneck_shapes() if w >= width and h >= hidden]
    return min(fits, key=lambda s: s[0] * s[0] * s[1]) if fits else None


def pack_parameters(matrices: Sequence[torch.Tensor], biases: Sequence[torch.Tensor],
                    factors: Sequence[torch.Tensor], width: int, hidden: int) -> torch.Tensor:
    """The (C, P) effective parameters of the network in the shape (width, hidden), layer by
    layer as M (out x in, row-major), b, a; differentiable in the raw parameters.

    Original gated layers come first, then identity layers (M = I, b = 0, a = 0: h passes
    unchanged), then the original output layer; units beyond a layer's width get zero
    weights, bias and gate, so they stay 0 and add nothing."""
    depth = len(factors)
    channels = matrices[0].shape[0]
    like = matrices[0]
    pieces = []
    for layer in range(hidden):
        fan_in = 1 if layer == 0 else width
        if layer < depth:
            m = F.softplus(matrices[layer])
            pad = width - m.shape[1]
            m = F.pad(m, (0, fan_in - m.shape[2], 0, pad))
            b = F.pad(biases[layer][..., 0], (0, pad))
            a = F.pad(torch.tanh(factors[layer][..., 0]), (0, pad))
        else:
            m = torch.eye(width, fan_in, dtype=like.dtype, device=like.device).expand(channels, width, fan_in)
            b = a = like.new_zeros(channels, width)
        pieces += [m.reshape(channels, -1), b, a]
    m = F.softplus(matrices[depth])
    pieces += [F.pad(m, (0, width - m.shape[2])).reshape(channels, -1), biases[depth].reshape(channels, 1)]
    return torch.cat(pieces, 1)


def _layers(params: torch.Tensor, width: int, hidden: int):
    """Views (M (C, out, in), b (C, out, 1), a (C, out, 1) or None) of packed parameters."""
    channels, at, layers = params.shape[0], 0, []

    def take(*shape):
        nonlocal at
        n = math.prod(shape)
        at += n
        return params[:, at - n:at].reshape(channels, *shape)

    for layer in range(hidden):
        layers.append((take(width, 1 if layer == 0 else width), take(width, 1), take(width, 1)))
    layers.append((take(1, width), take(1, 1), None))
    return layers


# --- the reference math (PyTorch ops), also the path without kernels --------------------------
def _network(layers, x):
    """f(x) for x (C, 1, N), with the inputs of every layer and the tanh of every gate."""
    inputs, tanhs, h = [], [], x
    for m, b, a in layers:
        inputs.append(h)
        h = torch.matmul(m, h) + b
        if a is not None:
            t = torch.tanh(h)
            tanhs.append(t)
            h = h + a * t
    return h, inputs, tanhs


def _interval(lower, upper):
    """Likelihood between the two logits and its derivatives wrt each (sign held constant)."""
    sign = -torch.sign(lower + upper)
    d = torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)
    slope = torch.sign(d) * sign  # |.| has no slope at 0
    # sigmoid' from the logistic density: exact in both tails, unlike p (1 - p).
    return torch.abs(d), -slope * density("logistic", lower), slope * density("logistic", upper)


def _evaluate(values, layers):
    """The network at values -/+ 1/2 side by side: (C, 1, 2K) logits, inputs, tanhs."""
    x = values[:, None, :]
    return _network(layers, torch.cat([x - 0.5, x + 0.5], -1))


def _reference_forward(values, params, width, hidden, likelihood_bound):
    logits = _evaluate(values, _layers(params, width, hidden))[0][:, 0, :]
    lik = _interval(*logits.chunk(2, -1))[0]
    return torch.clamp_min(lik, likelihood_bound) if likelihood_bound > 0 else lik


def _reference_backward(values, params, width, hidden, likelihood_bound, grad):
    """(dL/dvalues (C, K), dL/dparams (C, P)) for dL/dlikelihood = grad."""
    layers = _layers(params, width, hidden)
    logits, inputs, tanhs = _evaluate(values, layers)
    lik, d_lower, d_upper = _interval(*logits[:, 0, :].chunk(2, -1))
    if likelihood_bound > 0:  # the gradient passes above the bound, or where it raises the value
        grad = torch.where((lik >= likelihood_bound) | (grad < 0), grad, torch.zeros_like(grad))
    dh = torch.cat([grad * d_lower, grad * d_upper], -1)[:, None, :]
    grads = []
    for (m, _, a), h, t in zip(reversed(layers), reversed(inputs), [None] + tanhs[::-1]):
        dz = dh
        if a is not None:  # d(z + a tanh z)/dz = 1 + a (1 - tanh^2 z)
            da = (dh * t).sum(-1, keepdim=True)
            dz = dh * (1 + a * (1 - t * t))
        layer = [torch.matmul(dz, h.transpose(1, 2)), dz.sum(-1, keepdim=True)] + ([] if a is None else [da])
        grads = [g.reshape(len(g), -1) for g in layer] + grads
        dh = torch.matmul(m.transpose(1, 2), dz)
    g_lower, g_upper = dh[:, 0, :].chunk(2, -1)
    return g_lower + g_upper, torch.cat(grads, 1)


# --- the autograd function -----------------------------------------------------------------------
def _kernel_ready(values, params, width, hidden) -> bool:
    return on_gpu(values, params) and _kernel_shape(width, hidden) == (width, hidden)


def _launch_args(v, p, width, hidden, likelihood_bound):
    return (v.data_ptr(), p.data_ptr(), v.shape[0], v.shape[1], width, hidden, likelihood_bound)


def _compute_dtype(*tensors):
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


class BottleneckLikelihood(torch.autograd.Function):
    """Bounded likelihood of ``values`` (C, K) under the packed network ``params`` (C, P) of
    shape (``width``, ``hidden``); ``likelihood_bound`` <= 0 disables the bound."""

    @staticmethod
    def forward(ctx, values, params, width: int, hidden: int, likelihood_bound: float):
        expected = (values.shape[0], param_count(width, hidden)) if values.dim() == 2 else None
        if expected is None or tuple(params.shape) != expected:
            raise ValueError(f"expected values (C, K) and params (C, {param_count(width, hidden)}) for width "
                             f"{width} and {hidden} hidden layers, got {tuple(values.shape)} and {tuple(params.shape)}")
        ctx.shape, ctx.likelihood_bound = (width, hidden), likelihood_bound
        ctx.save_for_backward(values, params)
        if _kernel_ready(values, params, width, hidden):
            v, p = float32(values), float32(params)
            out = torch.empty_like(v)
            cuda_kernels.bottleneck_likelihood_forward(*_launch_args(v, p, width, hidden, likelihood_bound),
                                                       out.data_ptr(), 0, stream())
            return out.to(values.dtype) if values.dtype == torch.float64 else out
        dtype = _compute_dtype(values, params)
        return _reference_forward(values.to(dtype), params.to(dtype), width, hidden, likelihood_bound)

    @staticmethod
    def backward(ctx, grad):
        values, params = ctx.saved_tensors
        width, hidden = ctx.shape
        if _kernel_ready(values, params, width, hidden):
            v, p, g = float32(values), float32(params), float32(grad)
            g_v = torch.empty_like(v) if ctx.needs_input_grad[0] else None
            g_p = torch.empty_like(p) if ctx.needs_input_grad[1] else None
            cuda_kernels.bottleneck_likelihood_backward(*_launch_args(v, p, width, hidden, ctx.likelihood_bound),
                                                        g.data_ptr(), 0 if g_v is None else g_v.data_ptr(),
                                                        0 if g_p is None else g_p.data_ptr(), stream())
        else:
            dtype = _compute_dtype(values, params)
            g_v, g_p = _reference_backward(values.to(dtype), params.to(dtype), width, hidden, ctx.likelihood_bound,
                                           grad.to(dtype))
        return (None if g_v is None else g_v.to(values.dtype), None if g_p is None else g_p.to(params.dtype),
                None, None, None)


def _check(values_ck, matrices, biases, factors):
    if values_ck.dim() != 3 or values_ck.shape[1] != 1:
        raise ValueError(f"values must be shaped (C, 1, K), got {tuple(values_ck.shape)}")
    if len(matrices) < 1 or len(biases) != len(matrices) or len(factors) != len(matrices) - 1:
        raise ValueError("expected L matrices, L biases and L - 1 factors (L >= 1)")
    channels, fan_in = values_ck.shape[0], 1
    for i, m in enumerate(matrices):
        last = i == len(matrices) - 1
        out = 1 if last or m.dim() != 3 else m.shape[1]
        expected = [(m, (channels, out, fan_in)), (biases[i], (channels, out, 1))]
        if not last:
            expected.append((factors[i], (channels, out, 1)))
        for t, shape in expected:
            if tuple(t.shape) != shape:
                raise ValueError(f"layer {i}: expected a parameter of shape {shape}, got {tuple(t.shape)}")
        fan_in = out
    devices = {t.device for t in (values_ck, *matrices, *biases, *factors)}
    if len(devices) != 1:
        raise ValueError(f"values and parameters must be on one device, got {sorted(map(str, devices))}")


def _shape_for(values_ck, matrices):
    natural = natural_shape(matrices)
    if values_ck.is_cuda and backend() == "cuda":
        return _kernel_shape(*natural) or natural
    return natural


def bottleneck_likelihood(values_ck: torch.Tensor, matrices: Sequence[torch.Tensor], biases: Sequence[torch.Tensor],
                          factors: Sequence[torch.Tensor], likelihood_bound: float = 1e-9) -> torch.Tensor:
    """``EntropyBottleneck``'s bounded likelihood of ``values_ck`` (C, 1, K), for its raw
    ``matrices``, ``biases`` and ``factors`` (differentiable in all of them and the values);
    ``likelihood_bound`` <= 0 disables the bound. Returns (C, 1, K)."""
    _check(values_ck, matrices, biases, factors)
    width, hidden = _shape_for(values_ck, matrices)
    params = pack_parameters(matrices, biases, factors, width, hidden)
    lik = BottleneckLikelihood.apply(values_ck[:, 0, :], params, width, hidden, float(likelihood_bound))
    return lik[:, None, :]


@torch.no_grad()
def bottleneck_bits(values_ck: torch.Tensor, matrices: Sequence[torch.Tensor], biases: Sequence[torch.Tensor],
                    factors: Sequence[torch.Tensor], likelihood_bound: float = 1e-9) -> torch.Tensor:
    """-log2 of :func:`bottleneck_likelihood`, (C, 1, K), without gradients; on the GPU one
    kernel writes the bits directly."""
    _check(values_ck, matrices, biases, factors)
    width, hidden = _shape_for(values_ck, matrices)
    params = pack_parameters(matrices, biases, factors, width, hidden)
    values = values_ck[:, 0, :]
    if not _kernel_ready(values, params, width, hidden):
        return -torch.log2(BottleneckLikelihood.apply(values, params, width, hidden, float(likelihood_bound)))[:, None]
    v, p = float32(values), float32(params)
    bits = torch.empty_like(v)
    cuda_kernels.bottleneck_likelihood_forward(*_launch_args(v, p, width, hidden, float(likelihood_bound)), 0,
                                               bits.data_ptr(), stream())
    return bits[:, None, :]
