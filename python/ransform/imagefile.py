"""Image files in and out, without losing what a photo holds.

A model codes three channels in [0, 1]. A file may hold more or less: one gray channel, 16 bits
per sample, transparency, a colour profile, an EXIF rotation. :func:`read` turns any file
Pillow opens into a :class:`Picture`: the model's input plus what the ``.rfm`` container
carries beside it (gray, bit depth, alpha plane, ICC profile), upright, 16-bit samples scaled
(never clipped). What neither can keep is listed in ``Picture.notes``, one line each, for the
caller to show. :func:`write` puts a decoded picture back into a file in its original form."""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ransform import losses
from ransform.files import write_atomic

# Pillow modes that hold 16-bit gray samples (PNG and TIFF open as one of these).
GRAY16_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


@dataclass
class Picture:
    pixels: torch.Tensor              # (3, H, W) float32 in [0, 1]: what the model codes
    gray: bool = False                # one channel in the file (the model sees it three times)
    bits: int = 8                     # bits per sample in the file: 8 or 16
    alpha: np.ndarray | None = None   # (H, W) uint8 transparency, None when fully opaque
    icc: bytes | None = None          # the colour profile the samples are in
    notes: tuple = ()                 # what reading could not keep, one line each

    @property
    def samples(self) -> np.ndarray:
        """The integer samples the file holds: (H, W) when gray, else (H, W, 3)."""
        top = (1 << self.bits) - 1
        x = self.pixels.mean(0, keepdim=True) if self.gray else self.pixels
        return (x.clamp(0, 1) * top).round().to(torch.int32).permute(1, 2, 0).numpy().squeeze(-1 if self.gray else ())


def read(path) -> Picture:
    """The picture in an image file (any format Pillow reads). Raises ValueError naming the file
    when it is not an image Pillow can decode."""
    try:
        with Image.open(path) as im:
            return _picture(im)
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.filename and exc.strerror else exc
        raise ValueError(f"cannot read image {path}: {reason}") from None


def _picture(im: Image.Image) -> Picture:
    notes = []
    if im.format == "PNG" and im.mode in ("LA", "RGB", "RGBA") and _png_bit_depth(im) == 16:
        notes.append("16-bit colour (or gray with alpha) is read at 8 bits per sample (Pillow's limit; 16-bit gray is kept)")
    exif = im.getexif()
    if any(tag != 0x0112 for tag in exif):  # 0x0112: orientation, which is applied below
        notes.append("EXIF metadata is not kept (the image is stored upright)")
    im = ImageOps.exif_transpose(im)
    icc = im.info.get("icc_profile") or None
    if im.mode in ("P", "PA"):  # a palette: its colours, with its transparency when it has one
        im = im.convert("RGBA" if im.mode == "PA" or "transparency" in im.info else "RGB")
    elif im.mode == "1":
        im = im.convert("L")
    elif im.mode in ("L", "LA", "RGB", "RGBA") or im.mode in GRAY16_MODES:
        pass
    elif im.mode in ("F", "I;32", "I;32B"):
        raise ValueError(f"{im.mode} (32-bit) samples are not supported: save the image with 8 or 16 bits")
    else:  # CMYK, YCbCr, LAB, ...: Pillow's conversion, whose profile is no longer the file's
        if icc:
            notes.append(f"the {im.mode} colour profile is not kept (the image was converted to RGB)")
            icc = None
        im = im.convert("RGBA" if "A" in im.getbands() else "RGB")
    if im.info.get("transparency") is not None and im.mode in ("L", "RGB"):  # a transparent colour key
        im = im.convert("LA" if im.mode == "L" else "RGBA")
    if im.mode in GRAY16_MODES:
        samples = np.asarray(im).astype(np.float32)
        if samples.max(initial=0) > 65535 or samples.min(initial=0) < 0:
            raise ValueError("32-bit integer samples are not supported: save the image with 8 or 16 bits")
        gray = torch.from_numpy(samples / 65535)
        return Picture(gray.expand(3, *gray.shape).contiguous(), gray=True, bits=16, icc=icc, notes=tuple(notes))
    alpha = None
    if "A" in im.getbands():
        a = np.asarray(im.getchannel("A"), dtype=np.uint8)
        alpha = None if a.min(initial=255) == 255 else a.copy()  # opaque: nothing to keep
        im = im.convert("L" if im.mode == "LA" else "RGB")
    gray = im.mode == "L"
    a = np.asarray(im.convert("RGB"), dtype=np.uint8)
    pixels = torch.from_numpy(a.copy()).permute(2, 0, 1).float().div_(255)
    return Picture(pixels, gray=gray, alpha=alpha, icc=icc, notes=tuple(notes))


def _png_bit_depth(im: Image.Image) -> int:
    """The bit depth in a PNG's header (Pillow opens 16-bit colour at 8 bits without saying)."""
    try:
        im.fp.seek(24)  # IHDR's bit depth: 8 signature + 4 length + 4 type + 4 width + 4 height
        return im.fp.read(1)[0]
    except (AttributeError, OSError, IndexError, ValueError):
        return 8


def write(picture: Picture, path) -> list[str]:
    """Writes the picture in its original form (gray, 16-bit, alpha, profile) as far as the
    format of ``path``'s suffix allows, atomically; returns what the format could not hold."""
    fmt = Image.registered_extensions().get(Path(path).suffix.lower(), "PNG")
    notes = []
    samples = picture.samples
    if picture.bits == 16 and fmt in ("PNG", "TIFF"):
        im = Image.fromarray(samples.astype(np.uint16))
    else:
        if picture.bits == 16:
            notes.append(f"{fmt} holds 8 bits per sample: the 16-bit image is written at 8 bits")
            samples = (samples.astype(np.float64) * (255 / 65535)).round()
        im = Image.fromarray(samples.astype(np.uint8))
    if picture.alpha is not None:
        if fmt in ("PNG", "WEBP", "TIFF") and im.mode in ("L", "RGB"):
            im.putalpha(Image.fromarray(picture.alpha))
        else:
            notes.append(f"{fmt} {'holds no transparency' if im.mode in ('L', 'RGB') else 'keeps no alpha at 16 bits'}: "
                         "the alpha channel is not written (write a .png)")
    options = {"icc_profile": picture.icc} if picture.icc else {}
    if fmt in ("JPEG", "WEBP"):
        options["quality"] = 95
    elif fmt == "PNG":  # a third of level 6's time (0.05 s for a Kodak image), files 2-10 % larger
        options["compress_level"] = 3
    buffer = io.BytesIO()
    im.save(buffer, format=fmt, **options)
    write_atomic(path, buffer.getvalue())
    return notes


def psnr(a: Picture, b: Picture) -> float:
    """PSNR in dB between two pictures of the same form, on the samples their files hold."""
    peak = (1 << max(a.bits, b.bits)) - 1  # compared on the finer of the two scales
    x, y = (torch.from_numpy(p.samples).double() * (peak / ((1 << p.bits) - 1)) for p in (a, b))
    if x.shape != y.shape:
        raise ValueError(f"the images differ in size or channels: {tuple(x.shape)[1::-1]} and {tuple(y.shape)[1::-1]}")
    return losses.psnr(x[None], y[None], data_range=peak).item()
