"""The autoregressive decoding pattern: a 192x32x48 latent decoded position by position,
1536 calls of 192 symbols each (what a joint autoregressive model like mbt2018 does), with
the per-step indexes already at hand (the network that computes them is not timed).

    python benchmarks/autoregressive.py        # CompressAI 1.2.8 joins when installed

CompressAI is driven as its autoregressive decoder drives it: RansDecoder.set_stream once,
then decode_stream(step_indexes.tolist(), cdf_list, cdf_lengths, offsets) per position with
the CDF table converted to a Python list once up front.
"""
from __future__ import annotations

import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from coders import CAI_SCALE_LEVELS, _import_compressai  # noqa: E402

CHANNELS, HEIGHT, WIDTH = 192, 32, 48


def latent(seed: int = 0):
    """Scales log-uniform in [0.11, 20], values from the discretised Gaussian; rows are the
    1536 spatial positions, columns the 192 channels (the decoding order)."""
    rng = np.random.default_rng(seed)
    scales = np.exp(rng.uniform(np.log(0.11), np.log(20.0), (HEIGHT * WIDTH, CHANNELS))).astype(np.float32)
    values = np.rint(scales * rng.standard_normal(scales.shape)).astype(np.int32)
    return scales, values


def best_of(fn, repeat: int = 5):
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def bench_ransform(scales, values):
    import ransform

    table = ransform.GaussianTable()
    steps = [np.ascontiguousarray(row) for row in table.index(scales)]
    data = ransform.encode(values, np.stack(steps), table)

    def run():
        dec = ransform.Decoder(data, table)
        return np.stack([dec.decode(step) for step in steps])

    seconds, out = best_of(run)
    return seconds, np.array_equal(out, values), len(data)


def bench_compressai(scales, values):
    import torch

    ans, em, _ = _import_compressai()
    lo, hi, levels = CAI_SCALE_LEVELS
    gc = em.GaussianConditional(None)
    gc.update_scale_table(torch.exp(torch.linspace(math.log(lo), math.log(hi), levels)))
    indexes = gc.build_indexes(torch.from_numpy(scales)).int().numpy()
    cdf, cdf_lengths, offsets = (gc._quantized_cdf.tolist(), gc._cdf_length.reshape(-1).int().tolist(),
                                 gc._offset.reshape(-1).int().tolist())
    data = ans.RansEncoder().encode_with_indexes(values.reshape(-1).tolist(), indexes.reshape(-1).tolist(),
                                                 cdf, cdf_lengths, offsets)
    steps = [row for row in indexes]

    def run():
        dec = ans.RansDecoder()
        dec.set_stream(data)
        return np.array([dec.decode_stream(step.tolist(), cdf, cdf_lengths, offsets) for step in steps])

    seconds, out = best_of(run, repeat=1)
    return seconds, np.array_equal(out, values), len(data)


def main() -> int:
    scales, values = latent()
    print(f"autoregressive decode: {HEIGHT * WIDTH} calls x {CHANNELS} symbols")
    print(f"{'coder':<12}{'total ms':>10}{'us / call':>11}{'bytes':>9}  check")
    for name, bench in (("ransform", bench_ransform), ("compressai", bench_compressai)):
        try:
            seconds, ok, nbytes = bench(scales, values)
        except ImportError as exc:
            print(f"{name:<12}{'not installed':>10}  ({exc})")
            continue
        print(f"{name:<12}{seconds * 1e3:>10.2f}{seconds / (HEIGHT * WIDTH) * 1e6:>11.2f}{nbytes:>9}  "
              f"{'ok' if ok else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
