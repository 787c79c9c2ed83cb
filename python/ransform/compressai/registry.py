"""``compressai.registry``: ``register_model(name)`` puts a model class in ``MODELS``."""
from __future__ import annotations

from typing import Callable, TypeVar

__all__ = ["MODELS", "register_model"]

MODELS: dict[str, type] = {}

T = TypeVar("T", bound=type)


def register_model(name: str) -> Callable[[T], T]:
    """Class decorator: ``@register_model("my-model")`` makes ``MODELS["my-model"]`` the class."""

    def decorator(cls: T) -> T:
        MODELS[name] = cls
        return cls

    return decorator
