"""Images to ``.rfm`` files and back with a model: pad to the model's stride, compress, pack
into the container (:mod:`ransform.container`); and the reverse, checking that the model is
the one that wrote the file."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ransform import models, zoo
from ransform.container import CompressedImage, ContainerError, pack, unpack, weights_fingerprint
from ransform.image import crop, pad, padding_for


@dataclass
class LoadedModel:
    net: models.CompressionModel
    name: str           # registry name written into files
    quality: int        # 0 when unknown
    fingerprint: bytes


def load_model(name: str | None = None, quality: int | None = None, checkpoint: str | None = None) -> LoadedModel:
    """A model ready to code: shipped weights by name and quality, or a checkpoint file
    (a ransform training checkpoint knows its model; a CompressAI one needs ``name``)."""
    if checkpoint is not None:
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        if isinstance(state, dict) and "model" in state and isinstance(state["model"], str):
            name, quality = name or state["model"], quality or state.get("quality", 0)
        if name is None:
            raise ValueError(f"{checkpoint} does not say which model it holds: pass --model NAME")
        net = models.from_state_dict(name, state).eval()
        net.update()
    else:
        if name is None or quality is None:
            raise ValueError("give --model and --quality (shipped weights) or --checkpoint PATH")
        net = zoo.load(name, quality)
    return LoadedModel(net, name, int(quality or 0), weights_fingerprint(net.state_dict()))


def read_image(path) -> torch.Tensor:
    """(3, H, W) float32 in [0, 1] from any image file Pillow reads."""
    try:
        with Image.open(path) as im:
            a = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read image {path}: {exc}") from None
    return torch.from_numpy(a.copy()).permute(2, 0, 1).float().div_(255)


def write_image(x: torch.Tensor, path) -> None:
    a = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    Image.fromarray(a).save(path)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """The 8-bit pixels an image file holds."""
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


@torch.no_grad()
def compress(model: LoadedModel, x: torch.Tensor) -> bytes:
    """x (3, H, W) in [0, 1] -> the bytes of an .rfm file."""
    if x.dim() != 3 or x.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) image, got shape {tuple(x.shape)}")
    padded, padding = pad(x[None], model.net.downsampling_factor)
    c = model.net.compress(padded)
    return pack(CompressedImage(model.name, model.quality, model.fingerprint, x.shape[1], x.shape[2], padding,
                                tuple(c["shape"]), [strings[0] for strings in c["strings"]]))


def model_for(data: bytes, checkpoint: str | None = None) -> LoadedModel:
    """The model that can decode a file: the given checkpoint, or the shipped model it names."""
    item = unpack(data)
    if checkpoint is not None:
        return load_model(item.model, item.quality or None, checkpoint)
    return load_model(item.model, item.quality)


@torch.no_grad()
def decompress(model: LoadedModel, data: bytes) -> torch.Tensor:
    """The bytes of an .rfm file -> x_hat (3, H, W) in [0, 1]."""
    item = unpack(data)
    if item.model != model.name:
        raise ContainerError(f"the file was written by model {item.model!r}, not {model.name!r}")
    if item.weights != model.fingerprint:
        raise ContainerError(f"the file was written with other weights of {item.model} (fingerprint "
                             f"{item.weights.hex()}, this model's is {model.fingerprint.hex()})")
    if item.padding != padding_for(item.height, item.width, model.net.downsampling_factor):
        raise ContainerError("corrupted file: padding does not match the image size")
    x_hat = model.net.decompress([[s] for s in item.streams], item.latent_shape)["x_hat"]
    expected = tuple(n + a + b for n, a, b in ((item.height, item.padding[2], item.padding[3]),
                                              (item.width, item.padding[0], item.padding[1])))
    if tuple(x_hat.shape[-2:]) != expected:
        raise ContainerError("corrupted file: latent shape does not match the image size")
    return crop(x_hat, item.padding)[0]

