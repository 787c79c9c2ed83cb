"""Shipped weights, loadable by name: ``zoo.load("mbt2018-mean-small", quality=3)``.

Each entry is a gzip-compressed checkpoint file in ``ransform/weights/`` (coder tables and
portable entropy parameters filled), named with the SHA-256 prefix of the uncompressed
checkpoint; docs/MODELS.md records how each was trained, converted and on what.
"""
from __future__ import annotations

from pathlib import Path

from ransform import models
from ransform.files import load_checkpoint

WEIGHTS_DIR = Path(__file__).parent / "weights"

# (name, quality) -> (registry architecture, checkpoint file name)
SHIPPED: dict[tuple[str, int], tuple[str, str]] = {
    ("mbt2018-mean-small", 1): ("mbt2018-mean", "mbt2018-mean-small-q1-25cfda84.pth.gz"),  # CPU-trained preview
    ("mbt2018-mean-small", 2): ("mbt2018-mean", "mbt2018-mean-small-q2-adac8852.pth.gz"),
    ("mbt2018-mean-small", 3): ("mbt2018-mean", "mbt2018-mean-small-q3-0b4f65bf.pth.gz"),
}


def shipped() -> list[tuple[str, int]]:
    return sorted(SHIPPED)


def architecture(name: str) -> str:
    """The registry architecture of a shipped name (``mbt2018-mean-small`` -> ``mbt2018-mean``);
    any other name is its own. Files name either: the shipped name when written with
    ``--model``, the architecture when written with the same weights as a ``--checkpoint``."""
    return next((arch for (shipped_name, _), (arch, _) in SHIPPED.items() if shipped_name == name), name)


def shipped_as(name: str, quality: int) -> str | None:
    """The shipped name whose weights a file of ``name`` (shipped name or architecture) at
    ``quality`` may have been written with, or None."""
    for shipped_name, q in shipped():
        if q == quality and name in (shipped_name, SHIPPED[(shipped_name, q)][0]):
            return shipped_name
    return None


def load(name: str, quality: int) -> models.CompressionModel:
    """The shipped model ``name`` at ``quality``, in eval mode with its coder tables."""
    try:
        arch, filename = SHIPPED[(name, int(quality))]
    except KeyError:
        have = ", ".join(f"{n} q{q}" for n, q in shipped()) or "none yet"
        raise ValueError(f"no shipped weights for {name} quality {quality} (shipped: {have}); "
                         "pass a checkpoint instead (--checkpoint PATH)") from None
    net = models.from_state_dict(arch, load_checkpoint(WEIGHTS_DIR / filename)).eval()
    net.update()
    return net
