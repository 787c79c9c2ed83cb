"""``compressai.models``: the base class and helpers for models written against CompressAI
(built on :mod:`ransform.compressai.entropy_models`), and the published architectures under
CompressAI's class names.

The published architectures are ransform's own (:mod:`ransform.models`): they load
CompressAI's checkpoints as they are and code with ransform's scale-based entropy models,
which decode several times faster; their entropy models take scales, and refuse table
indexes with a TypeError.
"""
from ransform.compressai.models.base import SCALES_LEVELS, SCALES_MAX, SCALES_MIN, CompressionModel, get_scale_table
from ransform.compressai.models.utils import (
    conv,
    deconv,
    find_named_buffer,
    find_named_module,
    remap_old_keys,
    update_registered_buffers,
)
from ransform.models import (
    CheckerboardContext,
    Cheng2020Anchor,
    Cheng2020AnchorCheckerboard,
    Cheng2020Attention,
    Elic2022Chandelier,
    Elic2022Official,
    FactorizedPrior,
    FactorizedPriorReLU,
    JointAutoregressiveHierarchicalPriors,
    MeanScaleHyperprior,
    MeanScaleHyperpriorVbr,
    ScaleHyperprior,
    ScaleHyperpriorVbr,
)

__all__ = [
    "SCALES_LEVELS", "SCALES_MAX", "SCALES_MIN", "CheckerboardContext", "Cheng2020Anchor", "Cheng2020AnchorCheckerboard",
    "Cheng2020Attention", "CompressionModel", "Elic2022Chandelier", "Elic2022Official", "FactorizedPrior",
    "FactorizedPriorReLU", "JointAutoregressiveHierarchicalPriors", "MeanScaleHyperprior", "MeanScaleHyperpriorVbr",
    "ScaleHyperprior", "ScaleHyperpriorVbr", "conv",
    "deconv", "find_named_buffer", "find_named_module", "get_scale_table", "remap_old_keys", "update_registered_buffers",
]
