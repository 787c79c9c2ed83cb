"""``compressai.models.google``: the models of Ballé et al. and Minnen et al. (ransform's
implementations, see :mod:`ransform.compressai.models`) and the base class."""
from ransform.compressai.models import (
    SCALES_LEVELS,
    SCALES_MAX,
    SCALES_MIN,
    CompressionModel,
    FactorizedPrior,
    FactorizedPriorReLU,
    JointAutoregressiveHierarchicalPriors,
    MeanScaleHyperprior,
    ScaleHyperprior,
    get_scale_table,
)

__all__ = ["SCALES_LEVELS", "SCALES_MAX", "SCALES_MIN", "CompressionModel", "FactorizedPrior", "FactorizedPriorReLU",
           "JointAutoregressiveHierarchicalPriors", "MeanScaleHyperprior", "ScaleHyperprior", "get_scale_table"]
