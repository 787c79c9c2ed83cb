"""Many images in one command against the same work done warm in one process (issue 14's bar:
per image within 1.5x of the warm in-process time).

    python benchmarks/many_files.py                        # 8 Kodak images, shipped mbt2018-mean-small q2
    python benchmarks/many_files.py --images 24 --quality 3

"warm": the model loaded and one image coded before the clock starts; each image then read,
compressed (``codec.compress``) and written, or read, decompressed and written as PNG, in this
process. "command": ``ransform compress IMG... -o DIR/ --no-psnr`` (and ``decompress DIR -o
DIR2/``) as a fresh process, wall clock, Python start and ``import torch`` included; "after
start" is the command's own time for its files (its summary line), model load excluded.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KODAK = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "kodak"


def warm(model_name: str, quality: int, images: list[Path], folder: Path) -> tuple[float, float]:
    """Seconds per image, warm in this process: (compress and write, read and decompress and write)."""
    from ransform import codec, imagefile
    from ransform.files import write_atomic

    model = codec.load_model(model_name, quality)
    codec.decompress_picture(model, codec.compress(model, imagefile.read(images[0])))  # warm up
    t0 = time.perf_counter()
    for i, image in enumerate(images):
        write_atomic(folder / f"{i}.rfm", codec.compress(model, imagefile.read(image)))
    t1 = time.perf_counter()
    for i in range(len(images)):
        imagefile.write(codec.decompress_picture(model, (folder / f"{i}.rfm").read_bytes()), folder / f"{i}.png")
    t2 = time.perf_counter()
    return (t1 - t0) / len(images), (t2 - t1) / len(images)


def command(argv: list[str]) -> tuple[float, float]:
    """(wall seconds of a fresh ``ransform`` process, the seconds its summary line reports)."""
    t0 = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "ransform.cli", *argv, "--quiet"], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if run.returncode != 0:
        sys.exit(f"ransform {' '.join(argv)} failed: {run.stderr.strip()}")
    inside = float(re.search(r" in ([0-9.]+) s \(", run.stdout.strip().splitlines()[-1]).group(1))
    return wall, inside


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mbt2018-mean-small")
    parser.add_argument("--quality", type=int, default=2)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--kodak", type=Path, default=KODAK)
    args = parser.parse_args()
    images = sorted(args.kodak.glob("kodim*.png"))[: args.images]
    if not images:
        sys.exit(f"no Kodak images in {args.kodak}")
    n = len(images)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "warm").mkdir()
        enc_warm, dec_warm = warm(args.model, args.quality, images, tmp / "warm")
        model = ["--model", args.model, "--quality", str(args.quality)]
        enc_wall, enc_inside = command(["compress", *map(str, images), "-o", f"{tmp}/rfm/", "--no-psnr", *model])
        dec_wall, dec_inside = command(["decompress", f"{tmp}/rfm", "-o", f"{tmp}/png/"])
    print(f"{args.model} q{args.quality}, {n} Kodak images, {os.cpu_count()} CPUs")
    print(f"{'':<12}{'warm s/img':>12}{'command s/img':>15}{'ratio':>8}{'after start s/img':>19}{'ratio':>8}")
    for name, w, wall, inside in (("compress", enc_warm, enc_wall, enc_inside),
                                  ("decompress", dec_warm, dec_wall, dec_inside)):
        print(f"{name:<12}{w:>12.3f}{wall / n:>15.3f}{wall / n / w:>8.2f}{inside / n:>19.3f}{inside / n / w:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
