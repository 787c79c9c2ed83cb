"""Where do the bits go? Per-element and per-pixel bit maps of a compression model, and a
PNG heat map of them (matplotlib).

    bm = ransform.bitmap(model, x)       # x: (3, H, W) or (N, 3, H, W) in [0, 1]
    bm.latents["y"]                             # -log2(likelihood), float64, per element
    bm.image                                    # (N, H, W) bits per pixel, sums to bm.total_bits
    ransform.plot_bitmap(bm, "bits.png", image=x)

The bits are the ideal code lengths ``-log2(likelihood)`` of the model's forward pass (what
an exact entropy coder spends up to a few bytes of framing), not the size of a real stream.

How latent bits become pixel bits: a latent with stride ``s`` (padded size / latent size,
per axis) has cells that each cover an ``s x s`` block of the padded input. Every cell's
bits, summed over channels, are divided uniformly among the pixels of the *original*
(unpadded) image that its block covers, so border cells that are partly padding give their
bits to fewer pixels and no bits are lost to the padding. Padding to a multiple of the
model's downsampling factor can leave cells that cover no original pixel at all (a stride-16
latent of a model padded to multiples of 64: up to 63 rows of padding, i.e. up to three
whole rows of cells); such a cell gives its bits to the nearest cell that does cover pixels.
The covered cells form a rectangle, so "nearest" is the cell with both indices clamped into
it (nearest in both Euclidean and chessboard distance). Hence ``image.sum()`` equals
``total_bits`` up to float64 rounding, for every image size.
"""
from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from torch import Tensor, nn

from ransform.files import write_atomic

from .image import pad

__all__ = ["BitMap", "bitmap", "plot_bitmap"]


@dataclass
class BitMap:
    """Bits spent by a model on a batch of images (all tensors float64, on the CPU).

    latents: name -> ``-log2(likelihood)`` per element, the likelihood's shape.
    image: (N, H, W) bits of each pixel of the original image (all latents added up).
    per_latent_image: name -> (N, H, W) the same, for one latent alone.
    total_bits: all bits of all latents of all N images; ``image.sum()`` up to rounding.
    bits_by_latent: name -> bits of that latent (all N images).
    bpp: ``total_bits / (N * height * width)``.
    height, width: the original (unpadded) image size.
    padding: (left, right, top, bottom) zero padding the model saw.
    strides: name -> (row stride, column stride) of the latent in input pixels.
    """

    latents: dict[str, Tensor]
    image: Tensor
    per_latent_image: dict[str, Tensor]
    total_bits: float
    bits_by_latent: dict[str, float]
    bpp: float
    height: int
    width: int
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    strides: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return int(self.image.shape[0])

    def __repr__(self) -> str:
        parts = ", ".join(
            f"{k}: {tuple(v.shape)} {self.bits_by_latent[k]:.1f} bits"
            for k, v in self.latents.items())
        return (f"BitMap(N={self.batch_size}, {self.height}x{self.width}, "
                f"total_bits={self.total_bits:.1f}, bpp={self.bpp:.4f}, latents={{{parts}}})")


# --------------------------------------------------------------------------- computing


def _as_batch(x: Any) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating point tensor with values in [0, 1], got {x.dtype}")
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4:
        raise ValueError(f"x must have shape (3, H, W) or (N, 3, H, W), got {tuple(x.shape)}")
    n, c, h, w = x.shape
    if c != 3:
        raise ValueError(f"x must have 3 channels (RGB), got shape {tuple(x.shape)}")
    if n < 1 or h < 1 or w < 1:
        raise ValueError(f"x must not be empty, got shape {tuple(x.shape)}")
    x = x.detach()
    lo, hi = float(x.min()), float(x.max())   # NaN propagates into both
    if not (lo >= 0.0 and hi <= 1.0):
        raise ValueError(f"x must hold finite values in [0, 1], got range [{lo}, {hi}]")
    return x


def _factor(model: Any) -> int:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    factor = getattr(model, "downsampling_factor", None)
    if factor is None:
        raise TypeError(f"{type(model).__name__} has no `downsampling_factor` attribute")
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)):
        raise TypeError(f"model.downsampling_factor must be an int, got {factor!r}")
    if factor < 1:
        raise ValueError(f"model.downsampling_factor must be >= 1, got {factor}")
    return int(factor)


def _run(model: nn.Module, x: Tensor) -> Any:
    """model(x) in eval mode without autograd; every module's training flag is restored."""
    flags = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with torch.no_grad():
            return model(x)
    finally:
        model.train(flags[0][1])             # lets a custom train() override run
        for m, was in flags:                 # submodules that were in another mode
            if m.training != was:
                m.training = was


def _likelihoods(out: Any, n: int, padded_hw: tuple[int, int]) -> dict[str, Tensor]:
    if not isinstance(out, Mapping) or "likelihoods" not in out:
        raise TypeError("model(x) must return a mapping with a 'likelihoods' entry, got "
                        f"{type(out).__name__}")
    liks = out["likelihoods"]
    if not isinstance(liks, Mapping) or not liks:
        raise TypeError("model(x)['likelihoods'] must be a non-empty mapping name -> Tensor")
    hp, wp = padded_hw
    result: dict[str, Tensor] = {}
    for name, lik in liks.items():
        if not isinstance(lik, Tensor):
            raise TypeError(f"likelihoods[{name!r}] must be a Tensor, got {type(lik).__name__}")
        if lik.dim() != 4 or lik.shape[0] != n:
            raise ValueError(f"likelihoods[{name!r}] must have shape ({n}, C, h, w), got "
                             f"{tuple(lik.shape)}")
        h, w = lik.shape[-2:]
        if h < 1 or w < 1 or hp % h or wp % w:
            raise ValueError(f"likelihoods[{name!r}] spatial size {h}x{w} does not divide the "
                             f"padded input size {hp}x{wp}")
        result[str(name)] = lik
    return result


def _axis(size: int, before: int, stride: int, cells: int) -> tuple[Tensor, Tensor, Tensor]:
    """For one axis: the cell of each original pixel, the number of original pixels in each
    cell, and for each cell the cell that receives its bits (itself, or the nearest cell
    that covers pixels)."""
    cell_of = torch.div(torch.arange(size) + before, stride, rounding_mode="floor")
    counts = torch.bincount(cell_of, minlength=cells)
    target = torch.arange(cells).clamp(int(cell_of[0]), int(cell_of[-1]))
    return cell_of, counts, target


def _spread(bits: Tensor, padding: tuple[int, int, int, int], padded_hw: tuple[int, int],
            size: tuple[int, int]) -> Tensor:
    """(N, h, w) bits per latent cell -> (N, H, W) bits per original pixel, same total."""
    left, _, top, _ = padding
    (hp, wp), (height, width) = padded_hw, size
    n, h, w = bits.shape
    rows, row_counts, row_target = _axis(height, top, hp // h, h)
    cols, col_counts, col_target = _axis(width, left, wp // w, w)
    folded = torch.zeros_like(bits).index_add_(1, row_target, bits)
    folded = torch.zeros_like(bits).index_add_(2, col_target, folded)
    pixels = (row_counts[:, None] * col_counts[None, :]).clamp(min=1).to(bits.dtype)
    density = folded / pixels            # cells without pixels hold 0 bits after folding
    return density[:, rows][:, :, cols]


def bitmap(model: nn.Module, x: Tensor) -> BitMap:
    """Bits a model spends on ``x``, per latent element and per image pixel.

    ``x`` is a (3, H, W) or (N, 3, H, W) float tensor in [0, 1]. It is zero-padded to a
    multiple of ``model.downsampling_factor`` (as :func:`ransform.image.pad` does) and fed to
    the model in eval mode under ``torch.no_grad()``; the training flags of the model and of
    all its submodules are restored afterwards, also when the model raises. The model must
    return ``{"likelihoods": {name: (N, C, h, w) tensor, ...}, ...}`` with ``h``, ``w``
    dividing the padded size. Bits are ``-log2`` of the likelihoods computed in float64 (a
    likelihood of 0 gives ``inf``). See the module docstring for how bits are assigned to
    pixels. Raises TypeError / ValueError for malformed models, inputs or outputs.
    """
    factor = _factor(model)
    xb = _as_batch(x)
    n, _, height, width = xb.shape
    ref = next(iter(model.parameters()), None)
    if ref is None:
        ref = next(iter(model.buffers()), None)
    if ref is not None:
        dtype = ref.dtype if ref.is_floating_point() else xb.dtype
        xb = xb.to(device=ref.device, dtype=dtype)
    padded, padding = pad(xb, factor)
    padded_hw = (int(padded.shape[-2]), int(padded.shape[-1]))

    liks = _likelihoods(_run(model, padded), n, padded_hw)

    latents: dict[str, Tensor] = {}
    per_latent_image: dict[str, Tensor] = {}
    bits_by_latent: dict[str, float] = {}
    strides: dict[str, tuple[int, int]] = {}
    for name, lik in liks.items():
        bits = -torch.log2(lik.detach().to(device="cpu", dtype=torch.float64))
        latents[name] = bits
        bits_by_latent[name] = float(bits.sum())
        strides[name] = (padded_hw[0] // bits.shape[-2], padded_hw[1] // bits.shape[-1])
        per_latent_image[name] = _spread(bits.sum(dim=1), padding, padded_hw, (height, width))

    image = torch.zeros(n, height, width, dtype=torch.float64)
    for m in per_latent_image.values():
        image += m
    total = math.fsum(bits_by_latent.values())
    return BitMap(latents=latents, image=image, per_latent_image=per_latent_image,
                  total_bits=total, bits_by_latent=bits_by_latent,
                  bpp=total / (n * height * width), height=height, width=width,
                  padding=tuple(int(p) for p in padding), strides=strides)


# --------------------------------------------------------------------------- plotting

_MIN_SHORT_SIDE = 160     # small images are enlarged (integer factor) to about this
_MAX_LONG_SIDE = 1024     # large images are reduced to this
_MARGIN, _GAP, _BAR_WIDTH, _TITLE_HEIGHT, _DPI = 12, 12, 18, 28, 100


def colormap(t: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (clipped; NaN counts as 0) -> uint8 RGB in matplotlib's viridis,
    shape ``t.shape + (3,)``."""
    import matplotlib
    t = np.nan_to_num(np.asarray(t, dtype=np.float64), nan=0.0, posinf=1.0, neginf=0.0)
    rgb = np.asarray(matplotlib.colormaps["viridis"](np.clip(t, 0.0, 1.0).ravel()))[:, :3]
    return np.rint(rgb * 255).astype(np.uint8).reshape(t.shape + (3,))  # rounded: bytes=True truncates


def _norm(values: np.ndarray, log: bool):
    """The colour scale: linear from min(0, lowest) to the highest value, or log10 over at most
    four decades below the highest positive value (lower values take the lowest colour)."""
    from matplotlib.colors import LogNorm, Normalize
    finite = values[np.isfinite(values)]
    positive = finite[finite > 0]
    if log and positive.size:
        hi = float(positive.max())
        lo = max(float(positive.min()), hi * 1e-4)
        return LogNorm(lo if lo < hi else hi / 10, hi, clip=True)
    hi = float(finite.max()) if finite.size else 1.0
    lo = min(0.0, float(finite.min())) if finite.size else 0.0
    return Normalize(lo, hi if hi > lo else lo + 1.0, clip=True)


def _rgb_array(image: Any, index: int, height: int, width: int) -> np.ndarray:
    """The original image as (H, W, 3) uint8 from a PIL image or a [0, 1] / uint8 tensor."""
    from PIL import Image
    if isinstance(image, Image.Image):
        arr = np.asarray(image.convert("RGB"))
    elif isinstance(image, Tensor):
        t = image.detach().cpu()
        if t.dim() == 4:
            if not -t.shape[0] <= index < t.shape[0]:
                raise ValueError(f"image has batch size {t.shape[0]}, no index {index}")
            t = t[index]
        if t.dim() != 3 or t.shape[0] != 3:
            raise ValueError(f"image must have shape (3, H, W), got {tuple(image.shape)}")
        if t.is_floating_point():
            t = (t.to(torch.float64).clamp(0, 1) * 255.0).round()
        elif t.dtype != torch.uint8:
            raise TypeError(f"image tensor must be float in [0, 1] or uint8, got {t.dtype}")
        arr = t.to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    else:
        raise TypeError(f"image must be a PIL image or a tensor, got {type(image).__name__}")
    if arr.shape[:2] != (height, width):
        raise ValueError(f"image is {arr.shape[0]}x{arr.shape[1]}, the bit map "
                         f"{height}x{width}")
    return arr


def _display_size(height: int, width: int) -> tuple[int, int]:
    long_side, short_side = max(height, width), min(height, width)
    if long_side > _MAX_LONG_SIDE:
        s = _MAX_LONG_SIDE / long_side
        return max(1, round(height * s)), max(1, round(width * s))
    k = max(1, min(math.ceil(_MIN_SHORT_SIDE / short_side), _MAX_LONG_SIDE // long_side))
    return height * k, width * k


def _fmt_bits(b: float) -> str:
    return f"{b:,.1f}" if math.isfinite(b) else str(b)


def plot_bitmap(bm: BitMap, path: Union[str, os.PathLike], image: Any = None, *,
                index: int = 0, title: str | None = None, log: bool = False) -> Path:
    """Writes a PNG heat map of ``bm.image[index]`` (bits per pixel, viridis colours) with a
    colour bar labelled in bits per pixel and a title line with the image's total bits and
    bpp. ``image`` (the original: a (3, H, W) or (N, 3, H, W) tensor, float in [0, 1] or
    uint8, or a PIL image) is shown to the left of the heat map when given. ``log=True``
    uses a log10 colour scale (spanning at most four decades below the maximum). Small
    images are enlarged by an integer factor (nearest neighbour, so cells stay sharp) and
    images larger than 1024 pixels are reduced. Returns ``Path(path)``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colorbar import ColorbarBase
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter, StrMethodFormatter
    from PIL import Image

    if not isinstance(bm, BitMap):
        raise TypeError(f"bm must be a BitMap, got {type(bm).__name__}")
    n = bm.batch_size
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise TypeError(f"index must be an int, got {index!r}")
    if not -n <= index < n:
        raise IndexError(f"index {index} out of range for a bit map of {n} image(s)")
    index = int(index) % n
    height, width = bm.height, bm.width
    values = bm.image[index].detach().cpu().to(torch.float64).numpy()
    original = _rgb_array(image, index, height, width) if image is not None else None

    # The panels are drawn pixel for pixel (figimage), so cells and the original stay exact.
    norm = _norm(values, log)
    disp_h, disp_w = _display_size(height, width)
    enlarge = disp_h >= height
    heat = Image.fromarray(colormap(norm(values).filled(0.0))).resize(
        (disp_w, disp_h), Image.NEAREST if enlarge else Image.BOX)
    panels = [heat]
    if original is not None:
        panels.insert(0, Image.fromarray(original).resize((disp_w, disp_h), Image.NEAREST if enlarge else Image.LANCZOS))

    bar_h = max(disp_h, _MIN_SHORT_SIDE)
    bar_x = _MARGIN + len(panels) * (disp_w + _GAP) + 2
    title_text = _title(bm, index, title, log)
    fig_w = max(bar_x + _BAR_WIDTH + 90, 2 * _MARGIN + 7 * len(title_text))  # ~7 px per character at 10 pt
    fig_h = _TITLE_HEIGHT + bar_h + _MARGIN + 6
    fig = Figure(figsize=(fig_w / _DPI, fig_h / _DPI), dpi=_DPI, facecolor="white")
    FigureCanvasAgg(fig)
    top = fig_h - _TITLE_HEIGHT  # figure pixels count from the bottom
    for i, panel in enumerate(panels):
        fig.figimage(np.asarray(panel), xo=_MARGIN + i * (disp_w + _GAP), yo=top - disp_h, origin="upper")
    fig.text(_MARGIN / fig_w, 1 - _MARGIN / fig_h, title_text, va="top", fontsize=10)
    cax = fig.add_axes([bar_x / fig_w, (top - bar_h) / fig_h, _BAR_WIDTH / fig_w, bar_h / fig_h])
    bar = ColorbarBase(cax, cmap="viridis", norm=norm)
    bar.set_label("bits per pixel")
    bar.ax.yaxis.set_major_formatter(StrMethodFormatter("{x:g}"))  # 0.2, not 2x10^-1, on a log scale
    bar.ax.yaxis.set_minor_formatter(NullFormatter())

    out = Path(path)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI)
    write_atomic(out, buffer.getvalue())
    return out


def _title(bm: BitMap, index: int, title: str | None, log: bool) -> str:
    """This image's bits and bpp (per latent when there are several), its size, the scale."""
    n, height, width = bm.batch_size, bm.height, bm.width
    if n == 1:
        bits, bpp, by = bm.total_bits, bm.bpp, bm.bits_by_latent
    else:
        by = {k: float(v[index].sum()) for k, v in bm.per_latent_image.items()}
        bits = math.fsum(by.values())
        bpp = bits / (height * width)
    parts = [title] if title else []
    parts.append(f"{_fmt_bits(bits)} bits, {bpp:.4f} bpp")
    if len(by) > 1:
        parts.append(", ".join(f"{k} {_fmt_bits(v)}" for k, v in by.items()))
    parts.append(f"{width}x{height}" + (f", image {index + 1} of {n}" if n > 1 else ""))
    if log:
        parts.append("log scale")
    return "  |  ".join(parts)
