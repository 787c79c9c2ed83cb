"""CompressAI's own mbt2018 code on CompressAI's coder and, with its imports ported, on
ransform.compressai (the same weights, image and machine, in one run).

    .venv-bench/bin/python benchmarks/compressai_port.py                 # kodim01, N = M = 192
    .venv-bench/bin/python benchmarks/compressai_port.py --image kodim23.png --crop 256

Its serial decoder loop calls the coder once per latent position with the whole CDF table
as Python lists; ransform's ``ans`` keeps the table it made from those lists. Weights are
random (seeded), with the latents spread as a trained model's (the coder's share depends on
them, the networks' work does not). Needs CompressAI 1.2.8 and ransform in one environment
(benchmarks/setup_peers.sh).
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from models import KODAK, load_image, spread_latents  # noqa: E402
from peers import import_compressai  # noqa: E402


def ported_google(cai_models: pathlib.Path, folder: pathlib.Path):
    """CompressAI's models/google.py (with base.py, utils.py), imports pointed at ransform.compressai."""
    from ransform.compressai.port import port_source
    package = folder / "ported_models"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("google.py", "base.py", "utils.py"):
        (package / name).write_text(port_source((cai_models / name).read_text()))
    sys.path.insert(0, str(folder))
    import ported_models.google
    return ported_models.google


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--image", default="kodim01.png", help="a Kodak file name, or a path")
    ap.add_argument("--crop", type=int, default=0, help="code the top-left CROP x CROP pixels (0: the whole image)")
    ap.add_argument("--size", type=int, default=192, help="N = M (CompressAI's zoo: 192 for qualities 1-4)")
    ap.add_argument("--latent-gain", type=float, default=30.0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    path = args.image if os.path.exists(args.image) else os.path.join(KODAK, args.image)
    x = load_image(path)
    if args.crop:
        x = x[..., : args.crop, : args.crop]
    x = x[..., : x.shape[-2] // 64 * 64, : x.shape[-1] // 64 * 64]

    cai = import_compressai(models=True)
    torch.manual_seed(0)
    theirs = cai.google.JointAutoregressiveHierarchicalPriors(N=args.size, M=args.size).eval()
    with torch.no_grad():
        spread_latents(theirs, args.latent_gain)
    with tempfile.TemporaryDirectory() as folder:
        google = ported_google(pathlib.Path(cai.google.__file__).parent, pathlib.Path(folder))
        ours = google.JointAutoregressiveHierarchicalPriors(N=args.size, M=args.size).eval()
        theirs.update(force=True)
        ours.load_state_dict(theirs.state_dict())  # CompressAI's own loader, strict
        ours.update(force=True)  # ransform's CDFs in place of CompressAI's
        print(f"mbt2018 N=M={args.size}, {os.path.basename(path)} {tuple(x.shape[-2:])}, latent "
              f"{x.shape[-2] // 16}x{x.shape[-1] // 16}, 1 thread, torch {torch.__version__}")
        rows = {}
        with torch.no_grad():
            for label, net in (("CompressAI 1.2.8 coder", theirs), ("ransform.compressai", ours)):
                coded, t_enc = timed(net.compress, x)
                out, t_dec = timed(net.decompress, coded["strings"], coded["shape"])
                size = sum(len(s) for group in coded["strings"] for s in group)
                rows[label] = (t_enc, t_dec, size, out["x_hat"])
                print(f"  {label:24s} compress {t_enc:7.2f} s   decompress {t_dec:7.2f} s   {size:8d} bytes")
    (te0, td0, _, x0), (te1, td1, _, x1) = rows.values()
    print(f"  speed-up: compress {te0 / te1:.2f}x, decompress {td0 / td1:.2f}x; "
          f"max |x_hat difference| {float((x0 - x1).abs().max()):.2e}")


if __name__ == "__main__":
    main()
