"""Shipped weights, loadable by name: ``zoo.load("mbt2018-mean-small", quality=3)``.

Each entry is a gzip-compressed checkpoint file in ``ransform/weights/`` (coder tables and
portable entropy parameters filled), named with the SHA-256 prefix of the uncompressed
checkpoint; docs/MODELS.md records how each was trained, converted and on what.
"""
from __future__ import annotations

import gzip
import io
from pathlib import Path

import torch

from ransform import models

WEIGHTS_DIR = Path(__file__).parent / "weights"

# (name, quality) -> (registry architecture, checkpoint file name)
SHIPPED: dict[tuple[str, int], tuple[str, str]] = {
    ("mbt2018-mean-small", 1): ("mbt2018-mean", "mbt2018-mean-small-q1-25cfda84.pth.gz"),  # CPU-trained preview
    ("mbt2018-mean-small", 2): ("mbt2018-mean", "mbt2018-mean-small-q2-adac8852.pth.gz"),
    ("mbt2018-mean-small", 3): ("mbt2018-mean", "mbt2018-mean-small-q3-0b4f65bf.pth.gz"),
}


def shipped() -> list[tuple[str, int]]:
    return sorted(SHIPPED)


def load(name: str, quality: int) -> models.CompressionModel:
    """The shipped model ``name`` at ``quality``, in eval mode with its coder tables."""
    try:
        arch, filename = SHIPPED[(name, int(quality))]
    except KeyError:
        have = ", ".join(f"{n} q{q}" for n, q in shipped()) or "none yet"
        raise ValueError(f"no shipped weights for {name} quality {quality} (shipped: {have}); "
                         "pass a checkpoint instead (--checkpoint PATH)") from None
    with gzip.open(WEIGHTS_DIR / filename, "rb") as f:
        state = torch.load(io.BytesIO(f.read()), map_location="cpu", weights_only=True)
    net = models.from_state_dict(arch, state).eval()
    net.update()
    return net
