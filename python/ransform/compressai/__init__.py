"""CompressAI's API on ransform: change ``compressai.`` to ``ransform.compressai.`` in a
research repository's imports and its models train, evaluate and code on ransform's coder.

Modules: ``ans`` (the rANS coder interface), ``entropy_models``, ``layers``, ``models`` (and
``models.utils``), ``ops``, ``registry``, ``latent_codecs``, ``losses``, ``datasets``, ``zoo``. See
docs/guide/compressai.md for what is the same and what differs.
"""
from ransform.compressai import ans, datasets, entropy_models, latent_codecs, layers, losses, models, ops, registry, zoo

__all__ = ["ans", "available_entropy_coders", "datasets", "entropy_models", "get_entropy_coder", "latent_codecs",
           "layers", "losses", "models", "ops", "registry", "set_entropy_coder", "zoo"]


def available_entropy_coders() -> list[str]:
    return ["ans"]


def get_entropy_coder() -> str:
    return "ans"


def set_entropy_coder(name: str) -> None:
    if name != "ans":
        raise ValueError(f'Invalid entropy coder "{name}", choose from ["ans"]')
