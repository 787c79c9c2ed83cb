"""Table building: scale tables (CPU vs GPU, bit-identity checked), per-element mixture rows
(CPU threads vs GPU), and a Gaussian mixture entropy model's bytes against its estimate.

    python benchmarks/tables.py                 # GPU columns appear when there is one
    python benchmarks/tables.py --elements 294912 --components 3
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from ransform import kernels
from ransform.entropy_models import GaussianMixtureConditional
from ransform.kernels import mixture_rows
from ransform.tables import build_scale_rows


def best_of(fn, repeat):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best, out


def scale_tables(repeat, gpu):
    print("scale tables (160 default scales, precision 16): build time")
    for family in kernels.FAMILIES:
        t_cpu, cpu = best_of(lambda: build_scale_rows(family=family), repeat)
        line = f"  {family:9s} cpu {t_cpu * 1e3:8.1f} ms"
        if gpu:
            t_gpu, rows = best_of(lambda: build_scale_rows(family=family, device="cuda"), repeat)
            same = all(np.array_equal(a, b) for a, b in zip(cpu, rows))
            line += f"   gpu {t_gpu * 1e3:8.1f} ms   bit-identical: {same}"
        print(line)


def mixtures(n, k, repeat, gpu):
    g = torch.Generator().manual_seed(0)
    w = torch.softmax(torch.randn(n, k, generator=g), 1)
    m = torch.randn(n, k, generator=g) * 3
    s = torch.exp(torch.empty(n, k).uniform_(-2, 1.5, generator=g))
    print(f"mixture rows: {n} elements x {k} components")
    for threads in (1, 0):
        t, (f, _, lengths) = best_of(lambda: mixture_rows(w, m, s, threads=threads), repeat)
        print(f"  cpu threads={threads or 'all'}: {t * 1e3:8.1f} ms  ({n / t / 1e6:.2f} M elements/s, "
              f"mean row {lengths.mean():.1f} symbols)")
    if gpu:
        wc, mc, sc = w.cuda(), m.cuda(), s.cuda()
        t, rows = best_of(lambda: mixture_rows(wc, mc, sc), repeat)
        same = all(np.array_equal(a, b) for a, b in zip(rows, mixture_rows(w, m, s, threads=0)))
        print(f"  gpu (incl. copy to host): {t * 1e3:8.1f} ms  ({n / t / 1e6:.2f} M elements/s)  "
              f"bit-identical: {same}")


def mixture_model(k, shape, repeat):
    g = torch.Generator().manual_seed(1)
    means = torch.randn((1, k) + shape, generator=g) * 3
    scales = torch.exp(torch.randn((1, k) + shape, generator=g) * 0.7)
    weights = torch.softmax(torch.randn((1, k) + shape, generator=g), dim=1)
    pick = torch.multinomial(weights.movedim(1, -1).reshape(-1, k), 1, generator=g).reshape((1, 1) + shape)
    x = torch.gather(means, 1, pick)[:, 0] + torch.gather(scales, 1, pick)[:, 0] * torch.randn((1,) + shape,
                                                                                              generator=g)
    gmc = GaussianMixtureConditional(components=k).eval()
    estimate = float(-torch.log2(gmc(x, scales, means, weights)[1]).sum()) / 8
    t_enc, strings = best_of(lambda: gmc.compress(x, scales, means, weights), repeat)
    t_dec, y = best_of(lambda: gmc.decompress(strings, scales, means, weights), repeat)
    assert torch.equal(y, torch.round(x))
    size = len(strings[0])
    print(f"GaussianMixtureConditional, latent {shape}, K={k}, CPU: {size} B vs estimate {estimate:.0f} B "
          f"({(size / estimate - 1) * 100:+.2f} %), compress {t_enc:.2f} s, decompress {t_dec:.2f} s")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--elements", type=int, default=192 * 32 * 48)
    parser.add_argument("--components", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    gpu = kernels.backend() == "cuda"
    print(f"backend: {kernels.backend()}" + (f" ({torch.cuda.get_device_name()})" if gpu else ""))
    scale_tables(args.repeat, gpu)
    mixtures(args.elements, args.components, args.repeat, gpu)
    mixture_model(args.components, (192, 32, 48), 1)


if __name__ == "__main__":
    main()
