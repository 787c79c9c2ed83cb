"""Importing the peers' Python packages for side-by-side runs (in .venv-bench, see setup_peers.sh).

CompressAI 1.2.8's package __init__ imports datasets, zoo, transforms, ... which need
torchvision, tqdm and torch_geometric. Bare package modules with the real __path__ stand in
for ``compressai``, ``compressai.registry`` and ``compressai.models``, so the modules we
compare with (ans, entropy_models, layers, models.google / waseda) import on their own.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types


def _bare_package(name: str) -> types.ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"No module named {name!r}")
    module = types.ModuleType(name)
    module.__path__ = list(spec.submodule_search_locations)
    sys.modules[name] = module
    return module


def import_compressai(models: bool = False) -> types.SimpleNamespace:
    """CompressAI's ans, entropy_models and pmf_to_quantized_cdf; with ``models`` also its
    layers, models.base / google / waseda / sensetime / vbr and the model registry."""
    pkg = _bare_package("compressai")
    pkg.available_entropy_coders = lambda: ["ans"]  # what entropy_models looks up
    pkg.get_entropy_coder = lambda: "ans"
    out = types.SimpleNamespace(ans=importlib.import_module("compressai.ans"),
                                em=importlib.import_module("compressai.entropy_models"),
                                pmf_to_quantized_cdf=importlib.import_module("compressai._CXX").pmf_to_quantized_cdf)
    if models:
        registry = _bare_package("compressai.registry")
        registry_torch = importlib.import_module("compressai.registry.torch")
        for key in dir(registry_torch):
            if key.isupper() or key.startswith("register_"):
                setattr(registry, key, getattr(registry_torch, key))
        _bare_package("compressai.models")
        out.layers = importlib.import_module("compressai.layers")
        out.base = importlib.import_module("compressai.models.base")
        out.google = importlib.import_module("compressai.models.google")
        out.waseda = importlib.import_module("compressai.models.waseda")
        out.sensetime = importlib.import_module("compressai.models.sensetime")
        out.vbr = importlib.import_module("compressai.models.vbr")
        out.MODELS = registry_torch.MODELS
    return out
