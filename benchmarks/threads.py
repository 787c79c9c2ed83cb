"""Two threads against one on one Kodak-sized latent (192x32x48, ~100 KB: two chunks) and on
W1 (16 of them, 1.6 MB): the coder's speed-up from a second core (issue 14's bars: 1.6x and 1.8x).

    python benchmarks/threads.py [--repeat 15]

Scales log-uniform in [0.11, 20] (W1's), Gaussian symbols; indexes computed once (the coder
alone); decode writes into an array made once (out=). The bytes are the same for every
thread count (checked).
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import ransform
from ransform import varint


def best_seconds(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    table = ransform.GaussianTable()
    rng = np.random.default_rng(1)
    print(f"ransform {ransform.__version__}, {os.cpu_count()} CPUs; Msym/s, best of {args.repeat}")
    print(f"{'latents':>8}{'bytes':>11}{'chunks':>8}{'enc 1T':>9}{'enc 2T':>9}{'ratio':>7}{'dec 1T':>9}{'dec 2T':>9}"
          f"{'ratio':>7}")
    for latents in (1, 16):
        shape = (latents, 192, 32, 48)
        scales = np.exp(rng.uniform(np.log(0.11), np.log(20.0), shape)).astype(np.float32)
        values = np.round(rng.standard_normal(shape) * scales).astype(np.int32)
        idx = table.index(scales)
        out = np.empty(shape, np.int32)
        speeds, data = {}, None
        for threads in (1, 2):
            coded = ransform.encode(values, idx, table, threads=threads)
            assert data is None or coded == data, "the bytes depend on the thread count"
            data = coded
            speeds["enc", threads] = values.size / best_seconds(
                lambda: ransform.encode(values, idx, table, threads=threads), args.repeat) / 1e6
            speeds["dec", threads] = values.size / best_seconds(
                lambda: ransform.decode(data, idx, table, threads=threads, out=out), args.repeat) / 1e6
            assert np.array_equal(out, values)
        _, at = varint.decode(data, 1)  # FORMAT.md: version byte, symbol count, chunks - 1
        chunks = varint.decode(data, at)[0] + 1
        print(f"{latents:>8}{len(data):>11,}{chunks:>8}" + "".join(
            f"{speeds[d, 1]:>9.0f}{speeds[d, 2]:>9.0f}{speeds[d, 2] / speeds[d, 1]:>7.2f}" for d in ("enc", "dec")))


if __name__ == "__main__":
    main()
