"""Entropy models: differentiable densities for training, coder tables for compression."""
from ransform.entropy_models.base import EntropyModel, quantize
from ransform.entropy_models.bottleneck import EntropyBottleneck
from ransform.entropy_models.conditional import GaussianConditional, LaplaceConditional, LogisticConditional
from ransform.entropy_models.mixture import GaussianMixtureConditional

__all__ = ["EntropyBottleneck", "EntropyModel", "GaussianConditional", "GaussianMixtureConditional",
           "LaplaceConditional", "LogisticConditional", "quantize"]
