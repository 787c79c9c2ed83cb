"""Forward + backward of the conditional likelihood: PyTorch eager, torch.compile of the same
math, and ransform's fused kernel (ransform.fused), with effective memory bandwidth.

    python benchmarks/likelihood.py                       # on the GPU when there is one
    python benchmarks/likelihood.py --device cpu --shape 4,192,32,32

Bytes counted per element: forward reads value, scale, mean and writes the likelihood (16 B);
backward reads those three and the incoming gradient and writes three gradients (28 B). The
reference bandwidth is a device-to-device copy of the same size measured in the same run.
"""
from __future__ import annotations

import argparse
import time

import torch

from ransform import fused
from ransform.entropy_models import GaussianConditional

BYTES_PER_ELEMENT = 16 + 28


def eager_fn():
    gc = GaussianConditional()
    return lambda v, s, m: gc.bound_likelihood(gc.likelihood(v, s, m))


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


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", default="16,192,64,64")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--no-compile", action="store_true")
    args = p.parse_args()
    device = torch.device(args.device)
    shape = tuple(int(v) for v in args.shape.split(","))
    g = torch.Generator().manual_seed(0)
    scales = torch.exp(torch.empty(shape).uniform_(-2, 3, generator=g)).to(device)
    means = torch.randn(shape, generator=g).to(device)
    values = (means + scales * torch.randn(shape, generator=g).to(device)).round()
    n = values.numel()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{name}; shape {shape} ({n / 1e6:.1f} M elements); ransform backend for CUDA tensors: {fused.backend()}")
    ref = copy_bandwidth(n, device, args.repeat)
    print(f"copy bandwidth (reference): {ref:.0f} GB/s")
    variants = {"pytorch eager": eager_fn()}
    if not args.no_compile:
        variants["torch.compile"] = torch.compile(eager_fn())
    variants["ransform fused"] = lambda v, s, m: fused.conditional_likelihood(v, s, m)
    base = None
    for label, fn in variants.items():
        try:
            t = timed(fn, (values, scales, means), device, args.repeat)
        except Exception as exc:  # e.g. torch.compile without a working compiler
            print(f"{label:16s} unavailable: {type(exc).__name__}: {str(exc)[:120]}")
            continue
        base = base or t
        gbs = BYTES_PER_ELEMENT * n / t / 1e9
        print(f"{label:16s} {t * 1e3:8.3f} ms  {gbs:8.0f} GB/s  ({100 * gbs / ref:.0f} % of copy)  "
              f"{base / t:.2f}x eager")
    note = "" if device.type == "cuda" and fused.backend() == "cuda" else \
        " (the fused row ran the PyTorch reference path: no CUDA kernels here)"
    print("forward+backward, best of", args.repeat, note)


if __name__ == "__main__":
    main()
