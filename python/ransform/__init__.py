"""ransform: learned image compression on a fast, exact, crash-proof rANS coder.

    import ransform
    table = ransform.GaussianTable()
    idx = table.index(scales)                  # int32, shape of scales
    data = ransform.encode(symbols, idx, table)
    out = ransform.decode(data, idx, table)    # int32, shape of idx
"""
from ransform._core import StreamError
from ransform.coder import Decoder, Encoder, decode, encode, ideal_bits
from ransform.tables import (
    FORMAT_VERSION,
    CategoricalTable,
    GaussianTable,
    LaplaceTable,
    LogisticTable,
    ScaleTable,
    Table,
    default_scales,
)

__version__ = "0.1.0"

# The torch-based parts load on first use, so the coder works without torch installed.
_LAZY = {"bitmap": "ransform.bitmaps", "plot_bitmap": "ransform.bitmaps", "backend": "ransform.kernels"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ransform' has no attribute {name!r}")


__all__ = [
    "FORMAT_VERSION", "CategoricalTable", "Decoder", "Encoder", "GaussianTable", "LaplaceTable", "LogisticTable",
    "ScaleTable", "StreamError", "Table", "backend", "bitmap", "decode", "default_scales", "encode", "ideal_bits",
    "plot_bitmap",
]
