"""Rate-distortion evaluation of a model (through real .rfm files) or of classic codecs
(JPEG, WebP, JPEG 2000, AVIF through Pillow), in CompressAI's results schema:

    {"name": ..., "description": ...,
     "results": {"bpp": [...], "psnr-rgb": [...], "ms-ssim-rgb": [...],
                 "encoding_time": [...], "decoding_time": [...]}}

one entry per quality (means over the images), plus ``"per-image"`` when asked. PSNR and
MS-SSIM are on the 8-bit RGB pixels a decoder writes; bpp counts every byte of the file.
"""
from __future__ import annotations

import io
import math
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ransform import codec
from ransform.losses import ms_ssim, psnr

METRICS = ("bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time")


def quality_metrics(x8: torch.Tensor, y8: torch.Tensor) -> dict:
    """PSNR (dB) and MS-SSIM of two (3, H, W) uint8 images (MS-SSIM NaN below 161 px)."""
    psnr_db = psnr(x8[None].double(), y8[None].double(), data_range=255).item()
    try:
        msssim = ms_ssim(x8[None].float() / 255, y8[None].float() / 255).item()
    except ValueError:
        msssim = math.nan
    return {"psnr-rgb": psnr_db, "ms-ssim-rgb": msssim}


def _record(x: torch.Tensor, decoded8: torch.Tensor, nbytes: int, t_enc: float, t_dec: float, name: str) -> dict:
    h, w = x.shape[-2:]
    return {"image": name, "bpp": 8 * nbytes / (h * w), **quality_metrics(codec.to_uint8(x), decoded8),
            "encoding_time": t_enc, "decoding_time": t_dec}


def round_trip(model: codec.LoadedModel, x: torch.Tensor):
    """(.rfm bytes, decoded image, encode seconds, decode seconds) for x (3, H, W)."""
    t0 = time.perf_counter()
    data = codec.compress(model, x)
    t1 = time.perf_counter()
    x_hat = codec.decompress(model, data)
    return data, x_hat, t1 - t0, time.perf_counter() - t1


def evaluate_model(model: codec.LoadedModel, files, progress: bool = True, on_error=None) -> list[dict]:
    """Compresses each image to a real .rfm file and decodes it; one record per image. With
    ``on_error(file, exception)``, an image that fails is passed there and the rest go on."""
    records = []
    with tqdm(total=len(files), desc=f"{model.name} q{model.quality}", disable=not progress) as bar:
        for f in files:
            try:
                x = codec.read_image(f)
                data, x_hat, t_enc, t_dec = round_trip(model, x)
            except Exception as exc:
                if on_error is None:
                    raise
                on_error(f, exc)
            else:
                records.append(_record(x, codec.to_uint8(x_hat), len(data), t_enc, t_dec, Path(f).name))
                bar.set_postfix(bpp=records[-1]["bpp"], psnr=records[-1]["psnr-rgb"], refresh=False)
            bar.update()
    return records


# --- classic codecs through Pillow ------------------------------------------------------------
def _pillow_options(codec_name: str, quality: int) -> tuple[str, dict]:
    if codec_name == "jpeg":
        return "JPEG", {"quality": quality}
    if codec_name == "webp":
        return "WEBP", {"quality": quality, "method": 6}
    if codec_name == "avif":
        return "AVIF", {"quality": quality}
    if codec_name == "jpeg2000":  # quality = target compression ratio, e.g. 20 -> 20:1
        return "JPEG2000", {"quality_mode": "rates", "quality_layers": [quality], "irreversible": True}
    raise ValueError(f"unknown codec {codec_name!r}; known: jpeg, webp, jpeg2000, avif")


CODEC_QUALITIES = {
    "jpeg": (1, 3, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95),
    "webp": (5, 10, 20, 30, 40, 50, 60, 70, 80, 90),
    "avif": (10, 20, 30, 40, 50, 60, 70, 80, 90),
    "jpeg2000": (200, 150, 100, 75, 50, 40, 30, 20, 12, 8),
}


def available_codecs() -> list[str]:
    from PIL import features
    have = {"jpeg": "jpg", "webp": "webp", "jpeg2000": "jpg_2000", "avif": "avif"}
    return [c for c, feature in have.items() if features.check(feature)]


def evaluate_codec(codec_name: str, quality: int, files, progress: bool = True) -> list[dict]:
    fmt, options = _pillow_options(codec_name, quality)
    records = []
    for f in tqdm(files, desc=f"{codec_name} q{quality}", disable=not progress):
        x = codec.read_image(f)
        pil = Image.fromarray(codec.to_uint8(x).permute(1, 2, 0).numpy())
        t0 = time.perf_counter()
        buffer = io.BytesIO()
        pil.save(buffer, format=fmt, **options)
        t1 = time.perf_counter()
        decoded = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
        decoded.load()
        t2 = time.perf_counter()
        y8 = torch.from_numpy(np.asarray(decoded).copy()).permute(2, 0, 1)
        records.append(_record(x, y8, len(buffer.getvalue()), t1 - t0, t2 - t1, Path(f).name))
    return records


# --- results files --------------------------------------------------------------------------------
def summarize(name: str, description: str, per_quality: dict, per_image: bool = False) -> dict:
    """CompressAI's schema from {quality: [records]}, qualities in increasing order."""
    qualities = sorted(per_quality)
    results = {m: [sum(r[m] for r in per_quality[q]) / len(per_quality[q]) for q in qualities] for m in METRICS}
    out = {"name": name, "description": description, "results": {"quality": qualities, **results}}
    if per_image:
        out["per-image"] = {str(q): per_quality[q] for q in qualities}
    return out

