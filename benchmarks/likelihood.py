"""Forward + backward of the likelihoods: PyTorch eager, torch.compile of the same math, and
ransform's fused kernels, with effective memory bandwidth. Two sections: the conditional
(GaussianConditional, ransform.kernels.conditional_likelihood) and the EntropyBottleneck
(ransform.kernels.bottleneck_likelihood, its channels the shape's second dimension).

    python benchmarks/likelihood.py                       # on the GPU when there is one
    python benchmarks/likelihood.py --device cpu --shape 4,192,32,32
    python benchmarks/likelihood.py --section bottleneck

Bytes counted per element: conditional, forward reads value, scale, mean and writes the
likelihood (16 B); backward reads those three and the incoming gradient and writes three
gradients (28 B). Bottleneck, forward reads the value and writes the likelihood (8 B);
backward reads the value and the incoming gradient and writes its gradient (12 B); the
per-channel parameters are negligible. The reference bandwidth is a device-to-device copy of
the conditional's size measured in the same run.
"""
from __future__ import annotations

import argparse
import math
import time

import torch
from ransform import kernels
from ransform.entropy_models import EntropyBottleneck, GaussianConditional
from ransform.kernels import bottleneck_likelihood

BYTES_PER_ELEMENT = 16 + 28
BOTTLENECK_BYTES_PER_ELEMENT = 8 + 12


def eager_fn():
    gc = GaussianConditional()
    return lambda v, s, m: gc.bound_likelihood(gc.likelihood(v, s, m))


def bottleneck_eager_fn(eb):
    """EntropyBottleneck's PyTorch path: likelihood(), then bound_likelihood()."""
    return lambda v: eb.bound_likelihood(eb.likelihood(v)[0])


def timed(fn, args, device, repeat):
    def once():
        a = [t.detach().requires_grad_(True) for t in args]
        lik = fn(*a)
        lik.backward(torch.ones_like(lik))
    for _ in range(3):
        once()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        once()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best


def copy_bandwidth(n, device, repeat):
    a = torch.empty(n * BYTES_PER_ELEMENT // 8, dtype=torch.float32, device=device)
    b = torch.empty_like(a)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    best = float("inf")
    for _ in range(repeat):
        sync()
        t0 = time.perf_counter()
        b.copy_(a)
        sync()
        best = min(best, time.perf_counter() - t0)
    return 2 * a.numel() * 4 / best / 1e9


def run_variants(variants, args, device, repeat, bytes_per_element, ref):
    """Times each variant's forward+backward and prints time, GB/s and speed-up over the first."""
    n = args[0].numel()
    base = None
    for label, fn in variants.items():
        try:
            t = timed(fn, args, device, repeat)
        except Exception as exc:  # e.g. torch.compile without a working compiler
            print(f"{label:16s} unavailable: {type(exc).__name__}: {str(exc)[:120]}")
            continue
        base = base or t
        gbs = bytes_per_element * n / t / 1e9
        print(f"{label:16s} {t * 1e3:8.3f} ms  {gbs:8.0f} GB/s  ({100 * gbs / ref:.0f} % of copy)  "
              f"{base / t:.2f}x eager")


def conditional_section(shape, device, repeat, compile_, ref):
    g = torch.Generator().manual_seed(0)
    scales = torch.exp(torch.empty(shape).uniform_(-2, 3, generator=g)).to(device)
    means = torch.randn(shape, generator=g).to(device)
    values = (means + scales * torch.randn(shape, generator=g).to(device)).round()
    variants = {"pytorch eager": eager_fn()}
    if compile_:
        variants["torch.compile"] = torch.compile(eager_fn())
    variants["ransform fused"] = lambda v, s, m: kernels.conditional_likelihood(v, s, m)
    print("GaussianConditional:")
    run_variants(variants, (values, scales, means), device, repeat, BYTES_PER_ELEMENT, ref)


def bottleneck_section(shape, device, repeat, compile_, ref):
    """The EntropyBottleneck on values laid out as its forward does: (C, 1, N * H * W)."""
    torch.manual_seed(0)
    eb = EntropyBottleneck(shape[1])
    with torch.no_grad():  # a trained-looking density: uneven parameters, not the initial ones
        for p in eb.parameters():
            p.add_(0.3 * torch.randn_like(p))
    eb.to(device)
    values = (4 * torch.randn(shape[1], 1, math.prod(shape) // shape[1])).round().to(device)
    variants = {"pytorch eager": bottleneck_eager_fn(eb)}
    if compile_:
        variants["torch.compile"] = torch.compile(bottleneck_eager_fn(eb))
    variants["ransform fused"] = lambda v: bottleneck_likelihood(v, eb.matrices, eb.biases, eb.factors,
                                                                 eb.likelihood_bound)
    print("EntropyBottleneck (gradients of the values and the density's parameters):")
    run_variants(variants, (values,), device, repeat, BOTTLENECK_BYTES_PER_ELEMENT, ref)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", default="16,192,64,64")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--section", choices=("all", "conditional", "bottleneck"), default="all")
    args = p.parse_args()
    device = torch.device(args.device)
    shape = tuple(int(v) for v in args.shape.split(","))
    n = math.prod(shape)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{name}; shape {shape} ({n / 1e6:.1f} M elements); ransform backend for CUDA tensors: {kernels.backend()}")
    ref = copy_bandwidth(n, device, args.repeat)
    print(f"copy bandwidth (reference): {ref:.0f} GB/s")
    if args.section in ("all", "conditional"):
        conditional_section(shape, device, args.repeat, not args.no_compile, ref)
    if args.section in ("all", "bottleneck"):
        bottleneck_section(shape, device, args.repeat, not args.no_compile, ref)
    note = "" if device.type == "cuda" and kernels.backend() == "cuda" else \
        " (the fused rows ran the PyTorch reference path: no CUDA kernels here)"
    print("forward+backward, best of", args.repeat, note)


if __name__ == "__main__":
    main()
