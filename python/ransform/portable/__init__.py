"""Portable entropy parameters: integer networks that give every machine the same coder rows
and means, so a file decodes anywhere (docs/guide/portable.md, docs/FORMAT.md section 11).

    net.make_portable(images)   # once, after training: calibrate and convert (a few images)
    net.coding_mode             # "portable" (default once converted) or "float"
"""
from ransform.portable.network import IntegerConv, IntegerNetwork, get_backend, set_backend
from ransform.portable.parts import PortableContextModel, PortableHyperSynthesis, portable_class, portable_part

__all__ = ["IntegerConv", "IntegerNetwork", "PortableContextModel", "PortableHyperSynthesis", "get_backend",
           "portable_class", "portable_part", "set_backend"]
