"""Loading CompressAI checkpoints as they are.

:func:`convert_state_dict` takes what ``torch.load`` returned for a CompressAI (or ransform)
checkpoint and returns a state dict ransform's models load with ``strict=True``:

- wrappers: ``{"state_dict": ...}``, ``{"network": ...}``, ``{"model": ...}``;
- prefixes: ``module.`` (DataParallel / DistributedDataParallel) and ``_orig_mod.``
  (``torch.compile``);
- ``downsample`` (CompressAI's published cheng2020 weights) -> ``skip``;
- the three spellings of EntropyBottleneck parameters across CompressAI versions:
  ``_matrices.N`` / ``_matrixN`` / ``matrices.N`` (and biases, factors) -> ``matrices.N``;
- CompressAI's derived buffers are dropped: its quantized CDFs, offsets and lengths (any
  size), its 64-level scale table, bounds, reparametrization pedestals, masks and targets.
  They are functions of the weights (or constants); ``model.update()`` rebuilds ransform's
  own, better quantized tables from the weights.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

_WRAPPERS = ("state_dict", "network", "model")
_PREFIXES = ("module.", "_orig_mod.")
_EB_RENAMES = [
    (re.compile(r"(^|\.)_(matrices|biases|factors)\.(\d+)$"), r"\1\2.\3"),
    (re.compile(r"(^|\.)_matrix(\d+)$"), r"\1matrices.\2"),
    (re.compile(r"(^|\.)_bias(\d+)$"), r"\1biases.\2"),
    (re.compile(r"(^|\.)_factor(\d+)$"), r"\1factors.\2"),
]
# Keys only CompressAI writes: their presence marks a CompressAI state dict.
_COMPRESSAI_MARKERS = re.compile(r"(_quantized_cdf|_cdf_length|\.pedestal|lower_bound\.bound)$")
_COMPRESSAI_DERIVED = re.compile(
    r"(^|\.)(_quantized_cdf|_cdf_length|_offset|scale_table|scale_bound|target|mask|pedestal|bound)$")


def unwrap(checkpoint) -> Mapping:
    """The state dict inside a training checkpoint (or the checkpoint itself)."""
    for key in _WRAPPERS:
        if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get(key), Mapping):
            return checkpoint[key]
    if not isinstance(checkpoint, Mapping):
        raise TypeError(f"expected a state dict or a checkpoint dict, got {type(checkpoint).__name__}")
    return checkpoint


def _strip_prefixes(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix):], True
    return key


def rename_bottleneck_key(key: str) -> str:
    """Old CompressAI spellings of EntropyBottleneck parameters -> ``matrices.N`` etc."""
    for pattern, replacement in _EB_RENAMES:
        key = pattern.sub(replacement, key)
    return key


def rename_keys(state: Mapping, rules) -> dict:
    """``state`` with each key's first matching ``(pattern, replacement)`` rule applied at its
    start: how a model maps CompressAI's nested module names (latent codecs) to its own."""
    compiled = [(re.compile(pattern), replacement) for pattern, replacement in rules]
    out = {}
    for key, value in state.items():
        for pattern, replacement in compiled:
            if pattern.match(key):
                key = pattern.sub(replacement, key, count=1)
                break
        out[key] = value
    return out


def _rename(key: str) -> str:
    # CompressAI's published cheng2020 weights predate its ``downsample`` -> ``skip`` rename
    return rename_bottleneck_key(key).replace(".downsample.", ".skip.")


def is_compressai(state_dict: Mapping) -> bool:
    return any(_COMPRESSAI_MARKERS.search(k) for k in state_dict)


def convert_state_dict(checkpoint) -> dict:
    """A ransform state dict from a CompressAI or ransform checkpoint (see module docs)."""
    state = {_rename(_strip_prefixes(k)): v for k, v in unwrap(checkpoint).items()}
    if is_compressai(state):
        state = {k: v for k, v in state.items() if not _COMPRESSAI_DERIVED.search(k)}
    return state
