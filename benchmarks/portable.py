"""Decode anywhere, measured: float vs portable entropy parameters with the shipped models.

For every Kodak image and shipped quality, a file is written with 2 threads in each coding
mode and decoded under settings that differ the way other machines do. A decode *fails* when
it raises or when the symbols it reads differ from the encoder's. Also: the rate and PSNR cost of the
portable path, and compress / decompress times of both paths measured in one run.

    python benchmarks/portable.py [--kodak ../shared/data/kodak] [--repeat 41] [--out results/portable-kodak.txt]
"""
from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import time
from pathlib import Path

import torch
from ransform import codec, zoo
from ransform.entropy_models import conditional
from ransform.evaluation import quality_metrics
from ransform.portable import set_backend


@contextlib.contextmanager
def setting(name):
    """A decoder that differs from the encoder (2 threads, oneDNN, best integer kernel)."""
    handles = []
    try:
        torch.set_num_threads(1 if name == "1 thread" else 2)
        if name == "PyTorch reference":
            set_backend("reference")
        if name == "SSE2 kernels":
            set_backend("native", "sse2")
        if name == "h_s output x (1 + 1e-6)":  # what another CPU or a GPU's TF32 convolutions do
            handles.append(("h_s", 1e-6))
        with torch.backends.mkldnn.flags(enabled=name != "oneDNN off"):
            yield handles
    finally:
        set_backend("auto")
        torch.set_num_threads(2)


SETTINGS = ["1 thread", "oneDNN off", "h_s output x (1 + 1e-6)", "PyTorch reference", "SSE2 kernels"]


def decode_symbols(model, data, drift):
    """The y symbols a decode reads (the means may drift in float mode like g_s does; the
    symbols must not)."""
    seen = []
    decode = conditional.decode

    def capture(*args, **kwargs):
        seen.append(decode(*args, **kwargs))
        return seen[-1]

    conditional.decode = capture
    hooks = []
    for _, eps in drift:
        g = torch.Generator().manual_seed(0)
        hooks.append(model.net.h_s.register_forward_hook(
            lambda m, a, out: out * (1 + eps * torch.randn(out.shape, generator=g))))
    try:
        codec.decompress(model, data)
        return torch.from_numpy(seen[-1])
    finally:
        conditional.decode = decode
        for h in hooks:
            h.remove()


def failures(model, data, reference):
    """Per setting: "raised", "wrong" (decoded without an error to other symbols) or ""."""
    out = {}
    for name in SETTINGS:
        with setting(name) as drift:
            try:
                out[name] = "" if torch.equal(decode_symbols(model, data, drift), reference) else "wrong"
            except ValueError:
                out[name] = "raised"
    return out


def cell(count, n):
    total = count["raised"] + count["wrong"]
    return f"{total}/{n}" + (f" ({count['wrong']} silently wrong)" if count["wrong"] else "")


def timed(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kodak", default="../shared/data/kodak")
    p.add_argument("--repeat", type=int, default=41)
    p.add_argument("--out", help="also write the report here")
    p.add_argument("--speed-only", action="store_true", help="only the speed table")
    args = p.parse_args()
    files = sorted(Path(args.kodak).glob("kodim*.png"))
    torch.set_num_threads(2)
    lines = [f"# decode anywhere: {len(files)} Kodak images, {platform.processor() or platform.machine()}, "
             f"{torch.get_num_threads()} threads, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}", ""]
    fail_table = ["| quality | mode | " + " | ".join(SETTINGS) + " |", "|---|---|" + "---|" * len(SETTINGS)]
    rate_table = ["| quality | float bpp | portable bpp | rate cost | float PSNR | portable PSNR | delta dB |",
                  "|---|---|---|---|---|---|---|"]
    for name, q in [] if args.speed_only else zoo.shipped():
        model = codec.load_model(name, q)
        counts = {mode: {s: {"raised": 0, "wrong": 0} for s in SETTINGS} for mode in ("float", "portable")}
        size = {"float": 0, "portable": 0}
        psnr = {"float": 0.0, "portable": 0.0}
        for f in files:
            x = codec.read_image(f)
            for mode in ("float", "portable"):
                data = codec.compress(model, x, portable=mode == "portable")
                size[mode] += len(data)
                reference = decode_symbols(model, data, [])
                psnr[mode] += quality_metrics(codec.to_uint8(x), codec.to_uint8(codec.decompress(model, data)))["psnr-rgb"]
                for s, failure in failures(model, data, reference).items():
                    if failure:
                        counts[mode][s][failure] += 1
        pixels = sum(codec.read_image(f).shape[1] * codec.read_image(f).shape[2] for f in files)
        bpp = {m: 8 * size[m] / pixels for m in size}
        for mode in ("float", "portable"):
            fail_table.append(f"| {q} | {mode} | " + " | ".join(cell(counts[mode][s], len(files)) for s in SETTINGS) + " |")
        n = len(files)
        rate_table.append(f"| {q} | {bpp['float']:.4f} | {bpp['portable']:.4f} | "
                          f"{100 * (bpp['portable'] / bpp['float'] - 1):+.3f} % | {psnr['float'] / n:.3f} | "
                          f"{psnr['portable'] / n:.3f} | {(psnr['portable'] - psnr['float']) / n:+.4f} |")
        print(fail_table[-2], fail_table[-1], rate_table[-1], sep="\n", flush=True)
    if not args.speed_only:
        lines += ["## Decode failures (written with 2 threads; decoded under each setting)", "",
                  "A failure is an error, or a decode to other symbols than the encoder's (silently wrong).",
                  "The last two settings change only the integer networks, which float mode does not use.", ""]
        lines += fail_table
        lines += ["", "## Rate and PSNR of the portable path", ""] + rate_table
    # speed, one image: the two paths alternate call by call, so that the machine's drift
    # (frequency, neighbours) hits both alike
    model = codec.load_model("mbt2018-mean-small", 2)
    x = codec.read_image(files[4] if len(files) > 4 else files[0])
    data = {m: codec.compress(model, x, portable=m == "portable") for m in ("float", "portable")}
    steps = {"compress": lambda m: codec.compress(model, x, portable=m == "portable"),
             "decompress": lambda m: codec.decompress(model, data[m])}
    lines += ["", f"## Speed (kodim05, mbt2018-mean-small q2, median of {args.repeat} alternating calls, 2 threads)",
              "", "| step | float | portable | ratio |", "|---|---|---|---|"]
    for step, fn in steps.items():
        times = {"float": [], "portable": []}
        for _ in range(args.repeat):
            for m in ("float", "portable"):
                times[m].append(timed(lambda: fn(m), 1))
        f, p_ = statistics.median(times["float"]), statistics.median(times["portable"])
        lines.append(f"| {step} | {1e3 * f:.1f} ms | {1e3 * p_:.1f} ms | {p_ / f:.3f} |")
    report = "\n".join(lines)
    print(report)
    if args.out:
        Path(args.out).write_text(report + "\n")


if __name__ == "__main__":
    main()
