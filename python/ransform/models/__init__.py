"""The published models, by CompressAI's registry names, with its zoo's sizes per quality.

    from ransform import models
    net = models.get_model("bmshj2018-hyperprior", quality=3)   # random weights
    net = models.from_state_dict("bmshj2018-hyperprior", torch.load("ckpt.pth.tar", weights_only=True))
"""
from __future__ import annotations

from ransform.compat import convert_state_dict
from ransform.models.autoregressive import (
    CheckerboardContext,
    Cheng2020Anchor,
    Cheng2020AnchorCheckerboard,
    Cheng2020Attention,
    JointAutoregressiveHierarchicalPriors,
)
from ransform.models.base import CompressionModel
from ransform.models.elic import Elic2022Chandelier, Elic2022Official
from ransform.models.factorized import FactorizedPrior, FactorizedPriorReLU
from ransform.models.hyperprior import MeanScaleHyperprior, ScaleHyperprior
from ransform.models.vbr import MeanScaleHyperpriorVbr, ScaleHyperpriorVbr

MODELS: dict[str, type[CompressionModel]] = {
    "bmshj2018-factorized": FactorizedPrior,
    "bmshj2018-factorized-relu": FactorizedPriorReLU,
    "bmshj2018-hyperprior": ScaleHyperprior,
    "mbt2018-mean": MeanScaleHyperprior,
    "mbt2018": JointAutoregressiveHierarchicalPriors,
    "cheng2020-anchor": Cheng2020Anchor,
    "cheng2020-attn": Cheng2020Attention,
    "cheng2020-anchor-checkerboard": Cheng2020AnchorCheckerboard,
    "elic2022-official": Elic2022Official,
    "elic2022-chandelier": Elic2022Chandelier,
    "bmshj2018-hyperprior-vbr": ScaleHyperpriorVbr,
    "mbt2018-mean-vbr": MeanScaleHyperpriorVbr,
    "checkerboard": CheckerboardContext,
}

# (N, M) per quality, CompressAI's zoo configuration.
_SMALL, _LARGE, _AR, _AR_LARGE = (128, 192), (192, 320), (192, 192), (192, 320)
QUALITIES: dict[str, dict[int, tuple[int, ...]]] = {
    "bmshj2018-factorized": {q: _SMALL if q <= 5 else _LARGE for q in range(1, 9)},
    "bmshj2018-factorized-relu": {q: _SMALL if q <= 5 else _LARGE for q in range(1, 9)},
    "bmshj2018-hyperprior": {q: _SMALL if q <= 5 else _LARGE for q in range(1, 9)},
    "mbt2018-mean": {q: _SMALL if q <= 4 else _LARGE for q in range(1, 9)},
    "mbt2018": {q: _AR if q <= 4 else _AR_LARGE for q in range(1, 9)},
    "cheng2020-anchor": {q: (128,) if q <= 3 else (192,) for q in range(1, 7)},
    "cheng2020-attn": {q: (128,) if q <= 3 else (192,) for q in range(1, 7)},
    "cheng2020-anchor-checkerboard": {q: (128,) if q <= 3 else (192,) for q in range(1, 7)},
    "elic2022-official": {q: (192, 320) for q in range(1, 9)},  # one size (CompressAI's default) for every rate
    "elic2022-chandelier": {q: (192, 320) for q in range(1, 9)},
    "bmshj2018-hyperprior-vbr": {q: (192, 320) for q in range(1, 9)},  # one model, eight rates
    "mbt2018-mean-vbr": {q: (192, 320) for q in range(1, 9)},
    "checkerboard": {q: _AR if q <= 4 else _AR_LARGE for q in range(1, 9)},
}


def model_names() -> list[str]:
    return sorted(MODELS)


def _model_class(name: str) -> type[CompressionModel]:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(model_names())}") from None


def sizes(name: str, quality: int) -> dict:
    """The zoo's constructor sizes for a quality, e.g. {"N": 128, "M": 192}."""
    _model_class(name)  # an unknown name is a ValueError that lists the known ones
    table = QUALITIES[name]
    if quality not in table:
        raise ValueError(f"{name} has qualities {min(table)}..{max(table)}, got {quality}")
    return dict(zip(("N", "M"), table[quality]))


def sizes_from_name(name: str, sizes_: dict) -> dict:
    """The subset of ``{"N": .., "M": ..}`` that the model ``name`` takes."""
    keys = ("N", "M")[: len(next(iter(QUALITIES[name].values())))]
    return {k: sizes_[k] for k in keys}


def get_model(name: str, quality: int, **kwargs) -> CompressionModel:
    """A freshly initialised model (random weights) with the zoo's sizes for ``quality``."""
    net = _model_class(name)(**sizes(name, quality), **kwargs)
    net.use_quality(quality)
    return net


def from_state_dict(name: str, checkpoint, **kwargs) -> CompressionModel:
    """A model of kind ``name`` sized from a (CompressAI or ransform) checkpoint and loaded; a
    checkpoint of another architecture is refused naming the one it holds."""
    cls = _model_class(name)
    try:
        state = convert_state_dict(checkpoint)
    except TypeError as exc:  # a file of tensors, but a list, a tensor, ... rather than a state dict
        raise ValueError(f"the checkpoint is not a state dict ({exc})") from None
    try:
        return cls.from_state_dict(state, **kwargs)
    except (KeyError, RuntimeError, IndexError, TypeError):
        holds = [n for n in model_names() if n != name and _loads(n, state)]
        hint = f"; it holds a {' or '.join(holds)}" if holds else "; it matches no known model"
        raise ValueError(f"the checkpoint is not a {name}{hint}") from None


def _loads(name: str, state) -> bool:
    try:
        MODELS[name].from_state_dict(state)
        return True
    except Exception:
        return False


__all__ = ["CheckerboardContext", "Cheng2020Anchor", "Cheng2020AnchorCheckerboard", "Cheng2020Attention",
           "CompressionModel", "Elic2022Chandelier", "Elic2022Official", "FactorizedPrior", "FactorizedPriorReLU",
           "JointAutoregressiveHierarchicalPriors", "MODELS", "MeanScaleHyperprior", "MeanScaleHyperpriorVbr", "QUALITIES",
           "ScaleHyperprior", "ScaleHyperpriorVbr", "from_state_dict", "get_model", "model_names", "sizes",
           "sizes_from_name"]
