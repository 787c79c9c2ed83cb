"""Images to ``.rfm`` files and back with a model: pad to the model's stride, compress, pack
into the container (:mod:`ransform.container`); and the reverse, checking that the model is
the one that wrote the file."""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from ransform import imagefile, models, published, zoo
from ransform._core import StreamError
from ransform.coder import SymbolCountError
from ransform.container import (
    CompressedImage,
    ContainerError,
    deflate_alpha,
    inflate_alpha,
    pack,
    unpack,
    weights_fingerprint,
)
from ransform.files import load_checkpoint
from ransform.image import crop, pad, padding_for
from ransform.imagefile import Picture


class FloatModeError(StreamError):
    """A float-mode file that does not decode here (most likely written on another machine)."""


@dataclass
class LoadedModel:
    net: models.CompressionModel
    name: str           # registry name written into files
    quality: int        # 0 when unknown
    _fingerprints: dict = field(default_factory=dict, repr=False)

    def fingerprint_for(self, portable: bool) -> bytes:
        """The weights fingerprint a file written in that mode carries (container.py)."""
        if portable not in self._fingerprints:
            self._fingerprints[portable] = weights_fingerprint(self.net.state_dict(), portable)
        return self._fingerprints[portable]

    @property
    def device(self) -> torch.device:
        """Where the networks run (``model.net.to(device)`` moves them; images follow)."""
        return next(self.net.parameters()).device

    @property
    def fingerprint(self) -> bytes:
        """The fingerprint of files written in the model's current coding mode."""
        return self.fingerprint_for(self.net.is_portable)


@contextmanager
def coding_mode(net: models.CompressionModel, portable: bool):
    """The model in portable or float coding mode for the duration of a block."""
    before = net.coding_mode
    net.coding_mode = "portable" if portable else "float"
    try:
        yield net
    finally:
        net.coding_mode = before


def load_model(name: str | None = None, quality: int | None = None, checkpoint: str | None = None) -> LoadedModel:
    """A model ready to code: shipped weights by name and quality, or a checkpoint file
    (a ransform training checkpoint knows its model; a CompressAI one needs ``name``)."""
    zoo.check_choice(name, quality, checkpoint)
    if checkpoint is not None:
        state = load_checkpoint(checkpoint)
        if isinstance(state, dict) and "model" in state and isinstance(state["model"], str):
            name, quality = name or state["model"], quality or state.get("quality", 0)
        if name is None:
            raise ValueError(f"{checkpoint} does not say which model it holds: pass --model NAME")
        net = models.from_state_dict(zoo.architecture(name), state).eval()
        net.update()
    else:
        net = zoo.load(name, quality)
    if quality:
        net.use_quality(int(quality))  # a variable-rate model codes at the file's quality
    return LoadedModel(net.channels_last(), name, int(quality or 0))


def calibration_images(directory=None, count: int = 8, side: int = 512) -> list[torch.Tensor]:
    """A few images to calibrate portable entropy parameters on: the first ``count`` images
    of ``directory`` (sorted, searched recursively), or the bundled photograph; each
    centre-cropped to at most ``side`` x ``side`` pixels."""
    from importlib import resources

    from ransform.batch import image_files
    if directory is None:
        files = [resources.files("ransform") / "data" / "coffee.png"]
    else:
        files = image_files(directory)[:count]
        if not files:
            raise ValueError(f"no images in {directory}")
    out = []
    for f in files:
        x = read_image(f)
        h, w = min(side, x.shape[1]), min(side, x.shape[2])
        top, left = (x.shape[1] - h) // 2, (x.shape[2] - w) // 2
        out.append(x[:, top:top + h, left:left + w])
    return out


def read_image(path) -> torch.Tensor:
    """(3, H, W) float32 in [0, 1] from any image file Pillow reads (gray repeated three
    times, 16-bit samples scaled; :func:`ransform.imagefile.read` keeps the rest)."""
    return imagefile.read(path).pixels


def write_image(x: torch.Tensor, path) -> None:
    """x (3, H, W) in [0, 1] as an 8-bit RGB image file (format from the suffix), written atomically."""
    imagefile.write(Picture(x), path)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """The 8-bit pixels an image file holds."""
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


@torch.no_grad()
def compress(model: LoadedModel, x: torch.Tensor | Picture, portable: bool | None = None) -> bytes:
    """x (3, H, W) in [0, 1], or a :class:`~ransform.imagefile.Picture` (whose gray, bit depth,
    alpha and colour profile the file then carries) -> the bytes of an .rfm file.

    ``portable``: code with portable entropy parameters (files decode on every machine; the
    default whenever the model has them) or, with False, with the float networks (files
    decode reliably only where they were written). The file records which."""
    picture = x if isinstance(x, Picture) else Picture(x)
    x = picture.pixels
    if x.dim() != 3 or x.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) image, got shape {tuple(x.shape)}")
    portable = model.net.is_portable if portable is None else bool(portable)
    padded, padding = pad(x[None].to(model.device), model.net.downsampling_factor)
    with coding_mode(model.net, portable):
        c = model.net.compress(padded)
    return pack(CompressedImage(model.name, model.quality, model.fingerprint_for(portable), x.shape[1], x.shape[2],
                                padding, tuple(c["shape"]), [strings[0] for strings in c["strings"]], portable,
                                picture.gray, picture.bits,
                                None if picture.alpha is None else deflate_alpha(picture.alpha), picture.icc))


def model_for(data: bytes, checkpoint: str | None = None) -> LoadedModel:
    """The model that can decode a file: the given checkpoint, or the shipped weights it was
    written with (named as shipped, or by architecture when a checkpoint of them wrote it)."""
    item = unpack(data)
    if checkpoint is not None:
        return load_model(item.model, item.quality or None, checkpoint)
    if item.model.startswith(published.PREFIX):  # CompressAI's published weights, fetched once
        return load_model(item.model, item.quality)
    name = zoo.shipped_as(item.model, item.quality)
    if name is None:
        raise ValueError(f"the file was written by a {item.model} checkpoint (quality {item.quality}) that is not "
                         "a shipped model: pass --checkpoint FILE")
    model = load_model(name, item.quality)
    if item.model != name and item.weights != model.fingerprint_for(item.portable):
        raise ContainerError(f"the file was written by a {item.model} checkpoint that is not the shipped "
                             f"{name} q{item.quality} (weights fingerprint {item.weights.hex()}): pass --checkpoint FILE")
    return model


MAX_PIXELS = 2 ** 28  # 268 M pixels (16384 x 16384): about 3 GB of float32 reconstruction


def check_size(item: CompressedImage, factor: int, max_pixels: int | None = None) -> None:
    """Refuses a header whose sizes disagree or exceed the pixel limit, before decoding: a small
    hostile file must not make the decoder allocate gigabytes."""
    limit = int(max_pixels or os.environ.get("RANSFORM_MAX_PIXELS", MAX_PIXELS))
    height = item.height + item.padding[2] + item.padding[3]
    width = item.width + item.padding[0] + item.padding[1]
    if height * width > limit:
        raise ContainerError(f"the file holds a {item.width}x{item.height} image, more than the limit of {limit} "
                             "pixels (set RANSFORM_MAX_PIXELS to decode larger images)")
    if tuple(item.latent_shape) != (height // factor, width // factor):
        raise ContainerError(f"corrupted file: latent shape {tuple(item.latent_shape)} does not match the "
                             f"{item.width}x{item.height} image")


@torch.no_grad()
def decompress(model: LoadedModel, data: bytes, max_pixels: int | None = None) -> torch.Tensor:
    """The bytes of an .rfm file -> x_hat (3, H, W) in [0, 1]. Images of more than
    ``max_pixels`` pixels (default :data:`MAX_PIXELS`, or ``RANSFORM_MAX_PIXELS``) are refused
    before anything is decoded."""
    return decompress_picture(model, data, max_pixels).pixels


@torch.no_grad()
def decompress_picture(model: LoadedModel, data: bytes, max_pixels: int | None = None) -> Picture:
    """The bytes of an .rfm file -> the decoded :class:`~ransform.imagefile.Picture`, with the
    gray, bit depth, alpha and colour profile of the image it was compressed from."""
    item = unpack(data)
    if zoo.architecture(item.model) != zoo.architecture(model.name):  # same weights may go by either name
        raise ContainerError(f"the file was written by model {item.model!r}, not {model.name!r}")
    if item.portable and not model.net.is_portable and model.net.portable is None:
        raise ContainerError(f"the file was written with portable entropy parameters, and this {item.model} "
                             "has none: decode with the model that wrote it (convert a float checkpoint with "
                             "`ransform convert --portable`, calibrated as the encoder's was)")
    fingerprint = model.fingerprint_for(item.portable)
    if item.weights != fingerprint:
        raise ContainerError(f"the file was written with other weights of {item.model} (fingerprint "
                             f"{item.weights.hex()}, this model's is {fingerprint.hex()})")
    if item.padding != padding_for(item.height, item.width, model.net.downsampling_factor):
        raise ContainerError("corrupted file: padding does not match the image size")
    check_size(item, model.net.downsampling_factor, max_pixels)  # before anything is allocated
    with coding_mode(model.net, item.portable):
        try:
            x_hat = model.net.decompress([[s] for s in item.streams], item.latent_shape)["x_hat"]
        except ValueError as exc:
            if item.portable or isinstance(exc, SymbolCountError):
                raise
            raise FloatModeError(
                f"decoding failed ({exc}). This file was written with floating-point entropy parameters "
                "(coding mode 'float'): the coder rows it needs come from float networks whose results "
                "change with the machine, the thread count and the math libraries, so it was most likely "
                "written on another machine or with another thread count (OMP_NUM_THREADS) than this "
                "decoder's. Decode it with the settings it was written with; files written in portable "
                "mode (the default) decode anywhere.") from exc
    return Picture(crop(x_hat, item.padding)[0].cpu(), item.gray, item.bits, inflate_alpha(item), item.icc)

