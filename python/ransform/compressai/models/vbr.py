"""``compressai.models.vbr``: the variable-rate hyperprior models (ransform's implementations;
they load CompressAI's checkpoints)."""
from ransform.compressai.models import MeanScaleHyperpriorVbr, ScaleHyperpriorVbr

__all__ = ["MeanScaleHyperpriorVbr", "ScaleHyperpriorVbr"]
