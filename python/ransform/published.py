"""CompressAI's published zoo weights: downloaded once, checked, converted and cached.

    from ransform import zoo
    net = zoo.load("mbt2018-mean", 3, pretrained="compressai")      # or "compressai/mbt2018-mean"
    ransform compress photo.png --model mbt2018-mean --quality 3 --pretrained compressai

A file is fetched from CompressAI's server (or $RANSFORM_COMPRESSAI_URL, for a mirror) into
the torch hub cache (``torch.hub.get_dir()/checkpoints``, where CompressAI keeps them too) and
checked against the SHA-256 prefix in its name; the model converted from it, with coder
tables and portable entropy parameters (calibrated on the bundled photo, about 1-2 s, so its
files decode on any machine), is kept beside it in ``ransform/``: later loads neither
convert nor calibrate. The
URLs and hashes are CompressAI's published facts (compressai/zoo/image.py, 1.2.8).

Names: ``compressai/ARCH`` is ARCH trained for MSE, ``compressai/ARCH-ms-ssim`` for MS-SSIM;
.rfm files record that name, so they decode with the same weights. The variable-rate models
(``*-vbr``) are one file for all eight qualities. ELIC and the variable-rate models have no
portable form: their files code in float mode.
"""
from __future__ import annotations

import hashlib
import os
import re
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

ROOT_URL = "https://compressai.s3.amazonaws.com/models/v1"
URL_ENV = "RANSFORM_COMPRESSAI_URL"
PREFIX = "compressai/"
METRICS = ("mse", "ms-ssim")

# (architecture, metric) -> (file name stem, SHA-256 prefixes of qualities 1, 2, ...): the file
# of quality q is f"{stem}-{q}-{hash}.pth.tar"
FILES: dict[tuple[str, str], tuple[str, str]] = {
    ("bmshj2018-factorized", "mse"):
        ("bmshj2018-factorized-prior", "446d5c7f 87279a02 5c6f152b 1ed4405a 866ba797 9b02ea3a 6dfd6734 5232faa3"),
    ("bmshj2018-factorized", "ms-ssim"):
        ("bmshj2018-factorized-ms-ssim", "9781d705 4a584386 5352f123 4f91b847 b3a88897 ee028763 8c265a29 8811bd14"),
    ("bmshj2018-hyperprior", "mse"):
        ("bmshj2018-hyperprior", "7eb97409 93677231 6d87be32 de1b779c f8b614e1 1ab9c41e 3804dcbd a583f0cf"),
    ("bmshj2018-hyperprior", "ms-ssim"):
        ("bmshj2018-hyperprior-ms-ssim", "5cf249be 1ff60d1f 92dd7878 4377354e c34afc8d 3a6d8229 8747d3bc cc15b5f3"),
    ("mbt2018-mean", "mse"):
        ("mbt2018-mean", "e522738d e54a039d 723404a8 6dba02a3 d504e8eb a19628ab d5d441d1 8089ae3e"),
    ("mbt2018-mean", "ms-ssim"):
        ("mbt2018-mean-ms-ssim", "5bf9c0b6 e2a1bf3f 640ce819 12626c13 1be7f059 b83bf379 ddf9644c 0cc7b94f"),
    ("mbt2018", "mse"):
        ("mbt2018", "3f36cd77 43b70cdd 22901978 456e2af9 b4a046dd 7052e5ea 8ba2bf82 dd0097aa"),
    ("mbt2018", "ms-ssim"):
        ("mbt2018-ms-ssim", "2878436b c41cb208 d0dd64e8 a120e037 9b30e3b7 f8b3626f 16e6ff50 0cb49d43"),
    ("cheng2020-anchor", "mse"):
        ("cheng2020-anchor", "dad2ebff a29008eb e49be189 98b0b468 23852949 4c052b1a"),
    ("cheng2020-anchor", "ms-ssim"):
        ("cheng2020_anchor-ms-ssim", "20f521db c7ff5812 c23e22d5 0e658304 c0a95e77 f2dc1913"),
    ("cheng2020-attn", "mse"):
        ("cheng2020_attn-mse", "465f2b64 e0805385 2d07bbdf f7b0ccf2 26c8920e 730501f2"),
    ("cheng2020-attn", "ms-ssim"):
        ("cheng2020_attn-ms-ssim", "c5381d91 5dad201d 5c9be841 8b2f647e 5ca1f34c 216423ec"),
}

# Variable-rate models: one file codes every rate (quality 1..8 picks the rate).
VARIABLE_RATE_FILES: dict[tuple[str, str], str] = {
    ("bmshj2018-hyperprior-vbr", "mse"): "bmshj2018-hyperprior-mse-vbr-cddd26be.pth.tar",
    ("mbt2018-mean-vbr", "mse"): "mbt2018-mean-mse-vbr-45d095e9.pth.tar",
}
VARIABLE_RATES = 8


class DownloadError(OSError):
    """The weights could not be fetched (no network, server error) or were not the published file."""


def name(architecture: str, metric: str = "mse") -> str:
    """The zoo name of CompressAI's weights of ``architecture`` trained for ``metric``."""
    _files(architecture, metric)
    return PREFIX + architecture + ("" if metric == "mse" else "-" + metric)


def parse(zoo_name: str) -> tuple[str, str] | None:
    """(architecture, metric) of a ``compressai/...`` name; None for any other name."""
    if not zoo_name.startswith(PREFIX):
        return None
    rest = zoo_name[len(PREFIX):]
    arch, metric = (rest[: -len("-ms-ssim")], "ms-ssim") if rest.endswith("-ms-ssim") else (rest, "mse")
    _files(arch, metric)
    return arch, metric


def available() -> list[tuple[str, str, int]]:
    """Every (architecture, metric, quality) CompressAI publishes weights for."""
    return [(arch, metric, q) for arch, metric in sorted([*FILES, *VARIABLE_RATE_FILES])
            for q in range(1, _qualities(arch, metric) + 1)]


def _files(architecture: str, metric: str) -> tuple[str, list[str]]:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if (architecture, metric) in VARIABLE_RATE_FILES:
        return VARIABLE_RATE_FILES[(architecture, metric)], []
    try:
        stem, hashes = FILES[(architecture, metric)]
        return stem, hashes.split()
    except KeyError:
        have = ", ".join(sorted({a for a, _ in [*FILES, *VARIABLE_RATE_FILES] if _ == metric}))
        raise ValueError(f"CompressAI publishes no {metric} weights for {architecture!r} (it does for: "
                         f"{have})") from None


def _qualities(architecture: str, metric: str) -> int:
    stem, hashes = _files(architecture, metric)
    return len(hashes) or VARIABLE_RATES


def file_name(architecture: str, metric: str, quality: int) -> str:
    stem, hashes = _files(architecture, metric)
    qualities = _qualities(architecture, metric)
    if not 1 <= int(quality) <= qualities:
        raise ValueError(f"CompressAI's {architecture} ({metric}) has qualities 1..{qualities}, got {quality}")
    return stem if not hashes else f"{stem}-{int(quality)}-{hashes[int(quality) - 1]}.pth.tar"


def url(architecture: str, metric: str, quality: int) -> str:
    return os.environ.get(URL_ENV, ROOT_URL).rstrip("/") + "/" + file_name(architecture, metric, quality)


def cache_dir() -> Path:
    import torch.hub
    return Path(torch.hub.get_dir()) / "checkpoints"


def _expected_hash(path: Path) -> str:
    return re.search(r"-([0-9a-f]{8,})\.pth\.tar$", path.name).group(1)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(architecture: str, metric: str, quality: int, progress: bool = True) -> Path:
    """The published checkpoint file, downloaded into the cache if it is not there yet;
    its SHA-256 is checked either way."""
    path = cache_dir() / file_name(architecture, metric, quality)
    if not path.is_file():
        _download(url(architecture, metric, quality), path, progress)
    actual = _sha256(path)
    if not actual.startswith(_expected_hash(path)):
        raise DownloadError(f"{path} is not the published file (SHA-256 {actual[:16]}..., expected "
                            f"{_expected_hash(path)}...): delete it to download it again")
    return path


def _download(address: str, path: Path, progress: bool) -> None:
    from tqdm import tqdm

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(address, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=path.name, disable=not progress,
                      file=sys.stderr) as bar:
                for block in iter(lambda: response.read(1 << 16), b""):
                    out.write(block)
                    bar.update(len(block))
            out.flush()
            os.fsync(out.fileno())
        expected, actual = _expected_hash(path), _sha256(Path(partial))
        if not actual.startswith(expected):
            raise DownloadError(f"{address} sent a file with SHA-256 {actual[:16]}..., not the published "
                                f"{expected}...; nothing was kept")
        os.replace(partial, path)
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DownloadError(f"could not download {address} ({reason}); to work offline, put that file at "
                            f"{path}") from None
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def load(architecture: str, quality: int, metric: str = "mse", progress: bool = True):
    """CompressAI's published ``architecture`` at ``quality``, as a ransform model in eval mode
    with its coder tables (from the converted cache when it is there)."""
    import io

    import torch

    from ransform import models
    from ransform.codec import calibration_images
    from ransform.files import load_checkpoint, write_atomic
    from ransform.portable.parts import has_portable_form

    source = cache_dir() / file_name(architecture, metric, quality)
    converted = source.parent / "ransform" / (source.name[: -len(".pth.tar")] + ".ransform.pth")
    if converted.is_file():
        try:
            net = models.from_state_dict(architecture, load_checkpoint(converted)["state_dict"]).eval()
            net.update()
            net.use_quality(quality)
            return net
        except (ValueError, KeyError, TypeError, RuntimeError):
            pass  # an unreadable cache entry is rebuilt below
    net = models.from_state_dict(architecture, load_checkpoint(fetch(architecture, metric, quality, progress))).eval()
    net.update()
    net.use_quality(quality)
    if has_portable_form(net):
        net.make_portable(calibration_images())  # integer entropy parameters: its files decode on any machine
    buffer = io.BytesIO()
    torch.save({"model": architecture, "quality": int(quality), "state_dict": net.state_dict()}, buffer)
    write_atomic(converted, buffer.getvalue())  # ransform's own cache entry
    return net
