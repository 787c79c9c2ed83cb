"""Two threads against one on one Kodak-sized latent (192x32x48, ~100 KB: two chunks) and on
W1 (16 of them, 1.6 MB): the coder's speed-up from a second core (issue 14's bars: 1.6x and 1.8x).

    python benchmarks/threads.py [--repeat 15]

Scales log-uniform in [0.11, 20] (W1's), Gaussian symbols; indexes computed once (the coder
alone); decode writes into an array made once (out=). The bytes are the same for every
thread count (checked).

Two timings: the best of back-to-back calls, and the median of calls that each follow 3 ms
of idling, as a coder call follows a network's work in a pipeline. The second shows how long
a worker thread takes to start on a CPU that has gone idle: on this project's VMs, before the
workers were started off their creator's CPU (parallel.hpp), two threads coded one Kodak latent
no faster than one (median 0.95-1.0 ms against 0.94-0.95 ms).
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import ransform
from ransform import varint


def call_seconds(fn, repeat: int, idle: float) -> list[float]:
    seconds = []
    for _ in range(repeat):
        time.sleep(idle)
        t0 = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - t0)
    return seconds


def best_seconds(fn, repeat: int) -> float:
    return min(call_seconds(fn, repeat, 0.0))


def median_after_idle(fn, repeat: int) -> float:
    return float(np.median(call_seconds(fn, repeat, 0.003)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    table = ransform.GaussianTable()
    rng = np.random.default_rng(1)
    print(f"ransform {ransform.__version__}, {os.cpu_count()} CPUs; Msym/s: best of {args.repeat} back-to-back calls, "
          f"and the median of {args.repeat} calls after 3 ms idle")
    print(f"{'latents':>8}{'bytes':>11}{'chunks':>8}  {'timing':<11}{'enc 1T':>8}{'enc 2T':>8}{'ratio':>7}"
          f"{'dec 1T':>8}{'dec 2T':>8}{'ratio':>7}")
    for latents in (1, 16):
        shape = (latents, 192, 32, 48)
        scales = np.exp(rng.uniform(np.log(0.11), np.log(20.0), shape)).astype(np.float32)
        values = np.round(rng.standard_normal(shape) * scales).astype(np.int32)
        idx = table.index(scales)
        out = np.empty(shape, np.int32)
        data = ransform.encode(values, idx, table, threads=1)
        assert ransform.encode(values, idx, table, threads=2) == data, "the bytes depend on the thread count"
        calls = {("enc", t): lambda t=t: ransform.encode(values, idx, table, threads=t) for t in (1, 2)}
        calls.update({("dec", t): lambda t=t: ransform.decode(data, idx, table, threads=t, out=out) for t in (1, 2)})
        _, at = varint.decode(data, 1)  # FORMAT.md: version byte, symbol count, chunks - 1
        chunks = varint.decode(data, at)[0] + 1
        for timing, seconds in (("best", best_seconds), ("after idle", median_after_idle)):
            speed = {key: values.size / seconds(call, args.repeat) / 1e6 for key, call in calls.items()}
            assert np.array_equal(out, values)
            print(f"{latents:>8}{len(data):>11,}{chunks:>8}  {timing:<11}" + "".join(
                f"{speed[d, 1]:>8.0f}{speed[d, 2]:>8.0f}{speed[d, 2] / speed[d, 1]:>7.2f}" for d in ("enc", "dec")))


if __name__ == "__main__":
    main()
