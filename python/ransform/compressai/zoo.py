"""``compressai.zoo``: the published architectures by CompressAI's constructor names.

``mbt2018_mean(quality, metric="mse", pretrained=False, progress=True)`` returns ransform's
model of CompressAI's zoo size for that quality; ``pretrained=True`` loads CompressAI's
published weights (downloaded once, checked and converted; see :mod:`ransform.published`).
"""
from __future__ import annotations

from ransform import models as _models
from ransform import zoo as _zoo
from ransform.published import METRICS

__all__ = ["bmshj2018_factorized", "bmshj2018_factorized_relu", "bmshj2018_hyperprior", "bmshj2018_hyperprior_vbr",
           "cheng2020_anchor", "cheng2020_attn", "image_models", "mbt2018", "mbt2018_mean", "mbt2018_mean_vbr", "models"]


def _constructor(architecture: str, variable_rate: bool = False):
    """CompressAI's constructor for ``architecture``; a variable-rate model is one model for
    qualities 1..8 (the rate; 0 is CompressAI's default) and has MSE weights only."""
    metrics = ("mse",) if variable_rate else METRICS

    def build(quality: int = 0, metric: str = "mse", pretrained: bool = False, progress: bool = True, **kwargs):
        if metric not in metrics:
            raise ValueError(f'Invalid metric "{metric}"')
        quality = quality or (2 if variable_rate else 0)  # CompressAI's default rate is s = 1
        if quality not in _models.QUALITIES[architecture]:
            raise ValueError(f'Invalid quality value "{quality}"')
        if pretrained:
            return _zoo.load(architecture, quality, pretrained="compressai", metric=metric, progress=progress)
        return _models.get_model(architecture, quality, **kwargs)

    build.__name__ = build.__qualname__ = architecture.replace("-", "_")
    build.__doc__ = (f"{architecture} of CompressAI's zoo size for ``quality``; ``pretrained=True``: CompressAI's "
                     f"published weights for ``metric`` ({', '.join(metrics)}).")
    return build


bmshj2018_factorized = _constructor("bmshj2018-factorized")
bmshj2018_factorized_relu = _constructor("bmshj2018-factorized-relu")
bmshj2018_hyperprior = _constructor("bmshj2018-hyperprior")
mbt2018_mean = _constructor("mbt2018-mean")
mbt2018 = _constructor("mbt2018")
cheng2020_anchor = _constructor("cheng2020-anchor")
cheng2020_attn = _constructor("cheng2020-attn")

bmshj2018_hyperprior_vbr = _constructor("bmshj2018-hyperprior-vbr", variable_rate=True)
mbt2018_mean_vbr = _constructor("mbt2018-mean-vbr", variable_rate=True)

image_models = {fn.__name__.replace("_", "-"): fn for fn in (
    bmshj2018_factorized, bmshj2018_factorized_relu, bmshj2018_hyperprior, mbt2018_mean, mbt2018, cheng2020_anchor,
    cheng2020_attn, bmshj2018_hyperprior_vbr, mbt2018_mean_vbr)}
models = dict(image_models)
