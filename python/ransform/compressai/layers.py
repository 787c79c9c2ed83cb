"""``compressai.layers``: ransform's layers under CompressAI's names and signatures.

Module and parameter names are CompressAI's, so its checkpoints load; the constant buffers
it also saves (GDN's reparametrization constants, masks) are accepted and checked on load.
"""
from __future__ import annotations

from ransform import layers as _layers
from ransform.layers import (
    GDN,
    AttentionBlock,
    ResidualBlock,
    ResidualBlockUpsample,
    ResidualBlockWithStride,
    conv1x1,
    conv3x3,
    subpel_conv3x3,
)

__all__ = ["GDN", "AttentionBlock", "CheckerboardMaskedConv2d", "MaskedConv2d", "ResidualBlock",
           "ResidualBlockUpsample", "ResidualBlockWithStride", "conv1x1", "conv3x3", "subpel_conv3x3"]

_MASKS = {"A": "raster", "B": "raster-b"}


class MaskedConv2d(_layers.MaskedConv2d):
    """PixelCNN masked convolution: ``mask_type="A"`` hides the centre and what follows it in
    raster order, ``"B"`` hides only what follows."""

    def __init__(self, *args, mask_type: str = "A", **kwargs):
        if mask_type not in _MASKS:
            raise ValueError(f'Invalid "mask_type" value "{mask_type}"')
        super().__init__(*args, mask=_MASKS[mask_type], **kwargs)


class CheckerboardMaskedConv2d(_layers.MaskedConv2d):
    """Checkerboard masked convolution (He et al. 2021): sees the positions of the other colour."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, mask="checkerboard", **kwargs)
