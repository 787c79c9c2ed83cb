"""Research codecs written against CompressAI, run on ransform.compressai with only their
imports changed (python -m ransform.compressai.port): a training step, update(), compress,
decompress, a reloaded checkpoint. Their repositories stay outside this one; pass their paths.

    python benchmarks/research_ports.py --tcm PATH/LIC_TCM --elic PATH/ELiC-ReImplemetation

TCM (jmliu206/LIC_TCM) and ELiC (VincentChandelier/ELiC-ReImplemetation) import two timm
helpers; timm needs a torchvision built for the installed torch, so when timm does not import
they get plain stand-ins (truncated-normal init, stochastic depth). Weights are random (seeded).
"""
from __future__ import annotations

import argparse
import importlib
import os
import pathlib
import sys
import tempfile
import time
import types
import warnings

import torch
from torch import nn

KODAK = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"

# repository option -> (module, class, constructor arguments)
CODECS = {
    "tcm": ("models", "TCM", {"config": [2, 2, 2, 2, 2, 2], "head_dim": [8, 16, 32, 32, 16, 8], "N": 64, "M": 320}),
    "elic": ("Network", "TestModel", {}),
}


class _DropPath(nn.Module):
    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        keep = torch.rand(x.shape[0], *([1] * (x.dim() - 1)), device=x.device) >= self.p
        return x * keep / (1 - self.p)


def _timm_or_stand_ins() -> str:
    try:
        importlib.import_module("timm.models.layers")
        return "timm"
    except Exception:
        layers = types.ModuleType("timm.models.layers")
        layers.trunc_normal_, layers.DropPath = nn.init.trunc_normal_, _DropPath
        for name, module in (("timm", types.ModuleType("timm")), ("timm.models", types.ModuleType("timm.models")),
                             ("timm.models.layers", layers)):
            sys.modules[name] = module
        return "stand-ins"


def run(label: str, repo: pathlib.Path, x: torch.Tensor) -> None:
    from ransform.compressai.port import port_tree

    module_name, class_name, kwargs = CODECS[label]
    with tempfile.TemporaryDirectory() as tmp:
        ported = pathlib.Path(tmp) / "ported"
        changed = port_tree(repo, ported)
        sys.path.insert(0, str(ported))
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        finally:
            sys.path.remove(str(ported))
        torch.manual_seed(0)
        net = cls(**kwargs)
        net.train()
        out = net(x)
        bits = sum((-torch.log2(lik)).sum() for lik in out["likelihoods"].values())
        (bits + out["x_hat"].square().mean() + net.aux_loss()).backward()
        no_grad = sum(p.grad is None for p in net.parameters())
        net.eval()
        net.update(force=True)
        with torch.no_grad():
            out = net(x)
            t0 = time.perf_counter()
            coded = net.compress(x)
            t1 = time.perf_counter()
            x_hat = net.decompress(coded["strings"], coded["shape"])["x_hat"]
            t2 = time.perf_counter()
            again = cls(**kwargs)
            again.load_state_dict(net.state_dict())
            reloaded = again.eval().decompress(coded["strings"], coded["shape"])["x_hat"]
        estimate = sum(float((-torch.log2(lik)).sum()) for lik in out["likelihoods"].values()) / 8
        size = sum(len(s) for group in coded["strings"] for s in (group if isinstance(group, list) else [group]))
        print(f"{label}: {len(changed)} files ported; training step: {no_grad} parameters without gradient; "
              f"{size} bytes vs estimate {estimate:.0f} ({size / estimate - 1:+.2%}); decoded vs forward x_hat "
              f"{float((x_hat - out['x_hat'].clamp(0, 1)).abs().max()):.1e}; reloaded checkpoint decodes the same: "
              f"{torch.equal(reloaded, x_hat)}; encode {t1 - t0:.2f} s, decode {t2 - t1:.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for label in CODECS:
        ap.add_argument(f"--{label}", type=pathlib.Path, help=f"checkout of the {label} repository")
    ap.add_argument("--crop", type=int, default=256)
    args = ap.parse_args()
    warnings.simplefilter("ignore", DeprecationWarning)
    from ransform.imagefile import read
    x = read(KODAK / "kodim23.png").pixels[None, :, : args.crop, : args.crop]
    print(f"timm: {_timm_or_stand_ins()}; torch {torch.__version__}; kodim23 {tuple(x.shape[-2:])}; "
          f"{os.cpu_count()} cores")
    for label in CODECS:
        if getattr(args, label) is not None:
            run(label, getattr(args, label), x)


if __name__ == "__main__":
    main()
