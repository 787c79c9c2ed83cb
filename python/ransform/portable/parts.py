"""The portable entropy parameters of each model family: which float sub-networks become
integer networks, how they are calibrated, and how the coded passes call them.

- hyperprior models (bmshj2018-hyperprior, mbt2018-mean): h_s, float z_hat in, float
  (scales[, means]) out;
- context models (mbt2018, cheng2020-anchor, checkerboard): h_s (float z_hat in, int16 out),
  the masked context convolution (float y_hat in, int16 out) and the entropy-parameter
  network (int16 concatenation in, float scales and means out).
The factorized models need nothing: their rows are the channel indexes.
"""
from __future__ import annotations

import torch
from torch import nn

from ransform.portable.convert import convert, structure


class PortableHyperSynthesis(nn.Module):
    """h_s as one integer network: z_hat -> the float parameters the model splits."""

    def __init__(self, model):
        super().__init__()
        self.h_s = structure(model.h_s, model.N, float_input=True, float_output=True)

    def forward(self, z_hat: torch.Tensor, threads: int = 0) -> torch.Tensor:
        return self.h_s(z_hat, threads).to(z_hat.dtype)

    def calibrate(self, model, z_hats: list[torch.Tensor], y_hats: list[torch.Tensor]) -> None:
        convert(model.h_s, self.h_s, z_hats)


class PortableContextModel(nn.Module):
    """h_s, the context convolution and the entropy-parameter network of a context model."""

    def __init__(self, model):
        super().__init__()
        M = model.M
        self.h_s = structure(model.h_s, model.N, float_input=True, float_output=False)
        self.context = structure(model.context_prediction, M, float_input=True, float_output=False)
        self.entropy_parameters = structure(model.entropy_parameters, 4 * M, float_input=False, float_output=True)

    def calibrate(self, model, z_hats: list[torch.Tensor], y_hats: list[torch.Tensor]) -> None:
        hyper, s_hyper = convert(model.h_s, self.h_s, z_hats)
        ctx, s_ctx = convert(model.context_prediction, self.context, y_hats)
        joined = [torch.cat([h, c], 1) for h, c in zip(hyper, ctx)]
        convert(model.entropy_parameters, self.entropy_parameters, joined, torch.cat([s_hyper, s_ctx]))

    def context_taps(self, taps: torch.Tensor):
        """The context layer as a 1x1 layer over the gathered causal taps: (weight, layer)."""
        layer = self.context.layers[0]
        weight = layer.weight.flatten(2)[:, :, taps].reshape(layer.weight.shape[0], -1, 1, 1).contiguous()
        return weight, layer


class NoPortableForm:
    """Stands for the portable part of models whose entropy parameters have no integer form
    yet (ELIC, the variable-rate models): they code in float mode, and asking for portable
    coding says so."""

    def __init__(self, model):
        raise ValueError(f"{type(model).__name__} has no portable (integer) entropy parameters yet: its files "
                         "code in float mode and decode reliably where they were written")


def portable_class(model) -> type | None:
    """The portable module class a model needs (None where every row is already exact)."""
    from ransform.models.autoregressive import JointAutoregressiveHierarchicalPriors
    from ransform.models.elic import Elic2022Official
    from ransform.models.hyperprior import ScaleHyperprior
    from ransform.models.vbr import ScaleHyperpriorVbr
    if isinstance(model, (Elic2022Official, ScaleHyperpriorVbr)):
        return NoPortableForm
    if isinstance(model, JointAutoregressiveHierarchicalPriors):
        return PortableContextModel
    if isinstance(model, ScaleHyperprior):
        return PortableHyperSynthesis
    return None


def has_portable_form(model) -> bool:
    """Whether the model's files can be made to decode anywhere (exact already, or with
    portable entropy parameters once converted)."""
    return portable_class(model) is not NoPortableForm


def portable_part(model) -> nn.Module | None:
    """The empty portable module for a model (None where every row is already exact)."""
    cls = portable_class(model)
    return None if cls is None else cls(model)
