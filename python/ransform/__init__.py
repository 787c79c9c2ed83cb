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
    CategoricalTable,
    GaussianTable,
    LaplaceTable,
    LogisticTable,
    ScaleTable,
    Table,
    default_scales,
)

__version__ = "0.1.0"

__all__ = [
    "CategoricalTable", "Decoder", "Encoder", "GaussianTable", "LaplaceTable", "LogisticTable",
    "ScaleTable", "StreamError", "Table", "decode", "default_scales", "encode", "ideal_bits",
]
