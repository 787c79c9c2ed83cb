"""Model-level numbers on Kodak: actual compressed size against forward's estimate, encode
and decode times, and the share of the entropy coder in them.

    python benchmarks/models.py                                  # every model, quality 1, kodim01
    python benchmarks/models.py --models mbt2018 --images 3 --repeat 3
    .venv-bench/bin/python benchmarks/models.py --peer compressai   # CompressAI 1.2.8's models
    .venv-bench/bin/python benchmarks/models.py --peer compressai --same-weights --models mbt2018-mean,mbt2018

Weights are random (seeded), as no trained checkpoint ships yet: sizes and rates are not
those of trained models, times are (the networks do the same work). Images are padded to
the model's downsampling factor.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

KODAK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "kodak")


class CoderClock:
    """Accumulates the time spent inside the coder (tables' index(), encode, decode)."""

    def __init__(self):
        self.seconds = 0.0

    def wrap(self, fn):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t0
        return timed

    @contextlib.contextmanager
    def installed(self):
        import ransform.entropy_models.bottleneck as eb
        import ransform.entropy_models.conditional as gc
        from ransform import coder
        from ransform.tables import ScaleTable
        patches = [(eb, "encode"), (eb, "decode"), (gc, "encode"), (gc, "decode"),
                   (ScaleTable, "index"), (coder.Decoder, "decode")]
        saved = [(obj, name, getattr(obj, name)) for obj, name in patches]
        try:
            for obj, name, fn in saved:
                setattr(obj, name, self.wrap(fn))
            yield self
        finally:
            for obj, name, fn in saved:
                setattr(obj, name, fn)


def spread_latents(net, gain: float) -> None:
    """Scales the last analysis layer with weights (an attention block passes the scale on):
    random analysis transforms give |y| < 1, a trained model's latents spread wider."""
    last = next(m for m in reversed(net.g_a) if hasattr(m, "weight") or isinstance(m, torch.nn.Sequential))
    (last.weight if hasattr(last, "weight") else last[0].weight).mul_(gain)


def load_image(path: str) -> torch.Tensor:
    return torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)[None].float() / 255


def measure(name: str, quality: int, x: torch.Tensor, repeat: int, latent_gain: float, state=None) -> dict:
    """ransform's model, as ``codec.load_model`` sets it up (channels-last transforms); with
    ``state``, on those weights (a CompressAI model's state_dict) instead of its own random ones."""
    from ransform import models
    from ransform.image import pad

    torch.manual_seed(0)
    if state is None:
        net = models.get_model(name, quality).eval()
        with torch.no_grad():  # random analysis transforms give |y| < 1: a gain spreads the symbols
            spread_latents(net, latent_gain)
    else:
        net = models.from_state_dict(name, state).eval()
    net.channels_last().update()
    x, _ = pad(x, net.downsampling_factor)
    with torch.no_grad():
        out = net(x)
        estimate = sum((-torch.log2(lik.double())).sum().item() for lik in out["likelihoods"].values()) / 8
        best = None
        for _ in range(repeat):
            clock = CoderClock()
            with clock.installed():
                t0 = time.perf_counter()
                c = net.compress(x)
                t1 = time.perf_counter()
                coded_encode = clock.seconds
                d = net.decompress(c["strings"], c["shape"])
                t2 = time.perf_counter()
            run = {"encode_s": t1 - t0, "decode_s": t2 - t1, "coder_encode_s": coded_encode,
                   "coder_decode_s": clock.seconds - coded_encode}
            best = run if best is None or run["encode_s"] + run["decode_s"] < best["encode_s"] + best["decode_s"] else best
    actual = sum(len(s) for strings in c["strings"] for s in strings)
    exact = torch.equal(d["x_hat"], out["x_hat"].clamp(0, 1))
    return {"estimate_B": estimate, "actual_B": actual, "exact": exact, **best}


def measure_compressai(name: str, quality: int, x: torch.Tensor, repeat: int, latent_gain: float) -> dict:
    """The same for CompressAI 1.2.8's model (random weights, its own coder and tables)."""
    from peers import import_compressai

    cai = import_compressai(models=True)
    classes = {"bmshj2018-factorized": "FactorizedPrior", "bmshj2018-factorized-relu": "FactorizedPriorReLU",
             "bmshj2018-hyperprior": "ScaleHyperprior", "mbt2018-mean": "MeanScaleHyperprior",
             "mbt2018": "JointAutoregressiveHierarchicalPriors", "cheng2020-anchor": "Cheng2020Anchor",
             "cheng2020-attn": "Cheng2020Attention"}
    if name not in classes:
        raise SystemExit(f"CompressAI 1.2.8 has no {name}")
    from ransform.models import sizes as zoo_sizes  # the same (N, M) as CompressAI's zoo

    module = cai.waseda if name.startswith("cheng") else cai.google
    torch.manual_seed(0)
    net = getattr(module, classes[name])(**zoo_sizes(name, quality)).eval()
    with torch.no_grad():
        spread_latents(net, latent_gain)
    net.update(force=True)
    f = 64
    h, w = x.shape[-2:]
    x = torch.nn.functional.pad(x, (0, (-w) % f, 0, (-h) % f))
    with torch.no_grad():
        out = net(x)
        estimate = sum((-torch.log2(lik.double())).sum().item() for lik in out["likelihoods"].values()) / 8
        best = None
        for _ in range(repeat):
            t0 = time.perf_counter()
            c = net.compress(x)
            t1 = time.perf_counter()
            d = net.decompress(c["strings"], c["shape"])
            t2 = time.perf_counter()
            run = {"encode_s": t1 - t0, "decode_s": t2 - t1}
            best = run if best is None or sum(run.values()) < sum(best.values()) else best
    actual = sum(len(s) for strings in c["strings"] for s in strings)
    exact = torch.equal(d["x_hat"], out["x_hat"].clamp(0, 1))
    return {"estimate_B": estimate, "actual_B": actual, "exact": exact, "coder_encode_s": float("nan"),
            "coder_decode_s": float("nan"), "state": net.state_dict(), **best}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="bmshj2018-factorized,bmshj2018-factorized-relu,bmshj2018-hyperprior,"
                                        "mbt2018-mean,mbt2018,cheng2020-anchor,checkerboard")
    p.add_argument("--peer", choices=["compressai"], help="time the peer's models instead (in .venv-bench)")
    p.add_argument("--same-weights", action="store_true", help="with --peer: after each of its rows, ransform's "
                   "model on the peer model's weights, and the speed-up")
    p.add_argument("--quality", type=int, default=1)
    p.add_argument("--images", type=int, default=1, help="first N Kodak images")
    p.add_argument("--repeat", type=int, default=2, help="best of N compress+decompress runs")
    p.add_argument("--kodak", default=KODAK)
    p.add_argument("--latent-gain", type=float, default=1.0,
                   help="scale the last analysis layer's weights (e.g. 30: latents spread like a trained model's)")
    args = p.parse_args()
    files = sorted(f for f in os.listdir(args.kodak) if f.endswith(".png"))[: args.images]
    print(f"{args.peer or 'ransform'}; torch {torch.__version__}, {torch.get_num_threads()} threads; quality {args.quality}; "
          f"random weights, latent gain {args.latent_gain:g}; best of {args.repeat}")
    print(f"{'model':27s} {'image':10s} {'estimate B':>11s} {'actual B':>9s} {'vs est':>8s} {'bar':>4s} "
          f"{'encode s':>9s} {'decode s':>9s} {'coder %':>8s} exact")
    for name in args.models.split(","):
        for f in files:
            fn = measure_compressai if args.peer else measure
            x = load_image(os.path.join(args.kodak, f))
            r = fn(name, args.quality, x, args.repeat, args.latent_gain)
            rows = [(name, r)]
            if args.peer and args.same_weights:
                rows.append(("  ransform, same weights", measure(name, args.quality, x, args.repeat, 1.0, r["state"])))
            for label, row in rows:
                diff = row["actual_B"] - row["estimate_B"]
                ok = abs(diff) <= 0.001 * row["estimate_B"] + 64
                share = 100 * (row["coder_encode_s"] + row["coder_decode_s"]) / (row["encode_s"] + row["decode_s"])
                print(f"{label:27s} {f[:-4]:10s} {row['estimate_B']:11.0f} {row['actual_B']:9d} "
                      f"{100 * diff / row['estimate_B']:+7.3f}% {'ok' if ok else 'MISS':>4s} {row['encode_s']:9.3f} "
                      f"{row['decode_s']:9.3f} {share:7.2f}% {row['exact']}")
            if len(rows) == 2:
                print(f"  ransform faster: compress {r['encode_s'] / rows[1][1]['encode_s']:.2f}x, decompress "
                      f"{r['decode_s'] / rows[1][1]['decode_s']:.2f}x")


if __name__ == "__main__":
    main()
