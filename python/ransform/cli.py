"""The ``ransform`` command line. ``ransform demo`` codes generated hyperprior latents and
prints sizes, rate overhead and speed; later commands (compress, eval, train...) join it."""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import ransform


def _latent(shape, scale_range, seed):
    """A latent like a hyperprior model's: scales log-uniform in scale_range, values drawn from
    the discretized Gaussian of that scale."""
    rng = np.random.default_rng(seed)
    lo, hi = np.log(scale_range[0]), np.log(scale_range[1])
    scales = np.exp(rng.uniform(lo, hi, shape)).astype(np.float32)
    values = np.rint(scales * rng.standard_normal(shape)).astype(np.int32)
    return scales, values


def _best_time(fn, repeat):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def demo(args) -> int:
    table = ransform.GaussianTable()
    print(f"table: {table}")
    cases = [
        ("one latent, low rate", (192, 32, 48), (0.11, 1.0)),
        ("one latent, high rate", (192, 32, 48), (0.11, 8.0)),
        ("16 latents (W1)", (16, 192, 32, 48), (0.11, 20.0)),
    ]
    print(f"{'case':<24}{'symbols':>10}{'bytes':>10}{'ideal':>10}{'overhead':>10}{'enc Msym/s':>12}{'dec Msym/s':>12}")
    for name, shape, scale_range in cases:
        scales, values = _latent(shape, scale_range, seed=1)
        t_enc, data = _best_time(lambda: ransform.encode(values, table.index(scales), table, threads=args.threads), 3)
        t_dec, out = _best_time(lambda: ransform.decode(data, table.index(scales), table, threads=args.threads), 3)
        if not np.array_equal(out, values):
            print(f"{name}: ROUND TRIP FAILED", file=sys.stderr)
            return 1
        ideal = ransform.ideal_bits(values, table.index(scales), table) / 8
        print(f"{name:<24}{values.size:>10}{len(data):>10}{ideal:>10.0f}{(len(data) / ideal - 1) * 100:>9.3f}%"
              f"{values.size / t_enc / 1e6:>12.1f}{values.size / t_dec / 1e6:>12.1f}")
    outliers = np.array([0, 1000, -1000, 100000, 2**31 - 1, -2**31], dtype=np.int64)
    idx = np.zeros(outliers.shape, np.int32)
    data = ransform.encode(outliers, idx, table)
    assert np.array_equal(ransform.decode(data, idx, table), outliers)
    print(f"outliers {outliers.tolist()} with the smallest scale: {len(data)} bytes, round trip exact")
    print("ideal = -log2 p under the quantized table; speeds are end to end from Python, index included")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ransform", description=ransform.__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"ransform {ransform.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="code generated hyperprior latents and print size, overhead and speed")
    p.add_argument("--threads", type=int, default=1, help="coding threads (0 = one per core; default 1)")
    p.set_defaults(run=demo)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
