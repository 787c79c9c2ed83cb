"""``compressai.models.priors``: the old name of ``compressai.models.google`` (deprecated in
CompressAI; older research code imports the base class and entropy models from it)."""
from ransform.compressai.entropy_models import EntropyBottleneck, GaussianConditional
from ransform.compressai.models import *  # noqa: F401, F403
from ransform.compressai.models import __all__ as _models_all

__all__ = [*_models_all, "EntropyBottleneck", "GaussianConditional"]
