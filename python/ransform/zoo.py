"""Weights by name: ``zoo.load("mbt2018-mean-small", quality=3)`` (shipped with ransform) or
``zoo.load("mbt2018-mean", 3, pretrained="compressai")`` (CompressAI's published weights,
downloaded once; see :mod:`ransform.published`).

Each entry is a gzip-compressed checkpoint file in ``ransform/weights/`` (coder tables and
portable entropy parameters filled), named with the SHA-256 prefix of the uncompressed
checkpoint; docs/MODELS.md records how each was trained, converted and on what.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ransform import published
from ransform.files import existing_checkpoint, load_checkpoint

if TYPE_CHECKING:
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


def architecture(name: str) -> str:
    """The registry architecture of a shipped name (``mbt2018-mean-small`` -> ``mbt2018-mean``);
    any other name is its own. Files name either: the shipped name when written with
    ``--model``, the architecture when written with the same weights as a ``--checkpoint``.
    ``compressai/ARCH[-ms-ssim]`` (CompressAI's published weights) is ARCH."""
    parsed = published.parse(name) if name.startswith(published.PREFIX) else None
    if parsed is not None:
        return parsed[0]
    return next((arch for (shipped_name, _), (arch, _) in SHIPPED.items() if shipped_name == name), name)


def shipped_as(name: str, quality: int) -> str | None:
    """The shipped name whose weights a file of ``name`` (shipped name or architecture) at
    ``quality`` may have been written with, or None."""
    for shipped_name, q in shipped():
        if q == quality and name in (shipped_name, SHIPPED[(shipped_name, q)][0]):
            return shipped_name
    return None


def load(name: str, quality: int, pretrained: str | None = None, metric: str = "mse",
         progress: bool = True) -> models.CompressionModel:
    """The model ``name`` at ``quality``, in eval mode with its coder tables.

    ``pretrained=None`` takes the shipped weights of ``name`` (see :func:`shipped`), or
    CompressAI's published ones for a ``compressai/...`` name; ``pretrained="compressai"``
    takes CompressAI's published weights of the architecture ``name`` trained for ``metric``
    (``"mse"`` or ``"ms-ssim"``), downloaded once into the torch hub cache with a progress bar.
    """
    if pretrained not in (None, "ransform", "compressai"):
        raise ValueError(f"pretrained must be 'ransform' or 'compressai', got {pretrained!r}")
    if pretrained == "compressai":
        return published.load(name, quality, metric, progress)
    if name.startswith(published.PREFIX):
        arch, metric = published.parse(name)
        return published.load(arch, quality, metric, progress)
    from ransform import models  # torch: not needed by the checks above

    arch, filename = _shipped_entry(name, quality)
    net = models.from_state_dict(arch, load_checkpoint(WEIGHTS_DIR / filename)).eval()
    net.update()
    return net


def _shipped_entry(name: str, quality: int) -> tuple[str, str]:
    try:
        return SHIPPED[(name, int(quality))]
    except KeyError:
        have = ", ".join(f"{n} q{q}" for n, q in shipped()) or "none yet"
        raise ValueError(f"no shipped weights for {name} quality {quality} (shipped: {have}; CompressAI's "
                         "published ones: --pretrained compressai); or pass a checkpoint (--checkpoint PATH)") from None


def check_choice(name: str | None, quality: int | None, checkpoint=None) -> None:
    """Raises the ValueError that loading this choice of weights would give for a missing
    checkpoint, a name or quality without weights, or neither given; without torch (about a
    second to import), so the CLI answers those mistakes at once."""
    if checkpoint is not None:
        existing_checkpoint(checkpoint)
    elif name is None or quality is None:
        raise ValueError("give --model and --quality (shipped weights) or --checkpoint PATH")
    elif name.startswith(published.PREFIX):
        arch, metric = published.parse(name)
        published.file_name(arch, metric, int(quality))
    else:
        _shipped_entry(name, quality)
