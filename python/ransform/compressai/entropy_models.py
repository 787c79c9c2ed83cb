"""``compressai.entropy_models`` with CompressAI's interface, coded by ransform.

These are CompressAI's classes as far as model code can tell: the same constructor
arguments, parameter and buffer names (``_quantized_cdf``, ``_cdf_length``, ``_offset``,
``scale_table``, ``scale_bound``, ``likelihood_lower_bound.bound``, ...), so CompressAI
checkpoints load with ``strict=True``, and the same methods: ``update()`` /
``update_scale_table()``, ``build_indexes``, ``compress(inputs, indexes, means)``,
``decompress(strings, indexes, dtype, means)``, ``quantize``, ``dequantize``, ``_likelihood``.

What differs is underneath: the CDF rows are quantized by ransform (docs/FORMAT.md §8.3, the
same on every machine) and streams are ransform's (checked, exact for every int32).

CompressAI's conditional models take table *indexes*, ransform's own
(:mod:`ransform.entropy_models`) take *scales*; each refuses the other's with a TypeError,
so mixing them up is loud.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ransform.coder import check_symbols, decode, encode
from ransform.compressai.ans import PRECISION, _TableCache
from ransform.compressai.ops import LowerBound
from ransform.entropy_models import EntropyBottleneck as _NativeBottleneck
from ransform.entropy_models.base import as_host_array, quantize
from ransform.entropy_models.bottleneck import padded_frequencies
from ransform.entropy_models.conditional import bin_probability
from ransform.kernels import scale_index, upper_tail
from ransform.tables import ScaleTable

__all__ = ["EntropyBottleneck", "EntropyModel", "GaussianConditional"]


def _check_coder(entropy_coder, precision) -> None:
    if entropy_coder not in (None, "ans", "rangecoder"):
        raise ValueError(f"unknown entropy coder {entropy_coder!r}: ransform codes with its own rANS ('ans')")
    if int(precision) != PRECISION:
        raise ValueError(f"entropy_coder_precision must be {PRECISION}, got {precision}")


def _cdf_rows(table) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A ransform table as CompressAI's (quantized_cdf, cdf_length, offset) buffers."""
    freqs = padded_frequencies(table).astype(np.int64)
    cdf = np.zeros((freqs.shape[0], freqs.shape[1] + 1), np.int32)
    cdf[:, 1:] = np.cumsum(freqs, axis=1)
    lengths = np.array([table.size(r) + 2 for r in range(table.rows)], np.int32)
    cdf = np.where(np.arange(cdf.shape[1])[None, :] < lengths[:, None], cdf, 0).astype(np.int32)  # zeros after
    offsets = np.array([table.offset(r) for r in range(table.rows)], np.int32)
    return torch.from_numpy(cdf), torch.from_numpy(lengths), torch.from_numpy(offsets)


def _as_indexes(indexes, what: str) -> np.ndarray:
    """Table rows as int32; floating values (scales passed where indexes belong) are refused."""
    if isinstance(indexes, torch.Tensor) and (indexes.is_floating_point() or indexes.is_complex()):
        raise TypeError(f"{what} takes integer table indexes from build_indexes(scales), got a {indexes.dtype} "
                        "tensor: were scales passed instead?")
    return as_host_array(torch.as_tensor(indexes), torch.int32)


class _CdfCoding:
    """CompressAI's coding methods over the ``_quantized_cdf`` / ``_cdf_length`` / ``_offset``
    buffers (the classes below register them)."""

    @property
    def offset(self) -> torch.Tensor:
        return self._offset

    @property
    def quantized_cdf(self) -> torch.Tensor:
        return self._quantized_cdf

    @property
    def cdf_length(self) -> torch.Tensor:
        return self._cdf_length

    def quantize(self, inputs: torch.Tensor, mode: str, means: torch.Tensor | None = None) -> torch.Tensor:
        if mode not in ("noise", "dequantize", "symbols"):
            raise ValueError(f'Invalid quantization mode: "{mode}"')
        return quantize(inputs, mode, means)

    _quantize = quantize

    @staticmethod
    def dequantize(inputs: torch.Tensor, means: torch.Tensor | None = None, dtype=torch.float) -> torch.Tensor:
        return inputs.type_as(means) + means if means is not None else inputs.type(dtype)

    @classmethod
    def _dequantize(cls, inputs: torch.Tensor, means: torch.Tensor | None = None) -> torch.Tensor:
        return cls.dequantize(inputs, means)

    def _coder_table(self):
        if self._quantized_cdf.numel() == 0:
            raise RuntimeError(f"{type(self).__name__} has no CDFs yet: call update() (or model.update()) first")
        if not hasattr(self, "_cdf_tables"):
            self._cdf_tables = _TableCache()
        return self._cdf_tables.get(self._quantized_cdf, self._cdf_length, self._offset)

    def compress(self, inputs: torch.Tensor, indexes: torch.Tensor, means: torch.Tensor | None = None) -> list[bytes]:
        if inputs.dim() < 2:
            raise ValueError("Invalid `inputs` size. Expected a tensor with at least 2 dimensions.")
        rows = _as_indexes(indexes, "compress")
        if tuple(inputs.shape) != rows.shape:
            raise ValueError(f"`inputs` and `indexes` should have the same size, got {tuple(inputs.shape)} "
                             f"and {rows.shape}")
        table = self._coder_table()
        symbols = as_host_array(self.quantize(inputs, "symbols", means), torch.int32)
        return [encode(symbols[i], rows[i], table) for i in range(len(symbols))]

    def decompress(self, strings, indexes: torch.Tensor, dtype=torch.float, means: torch.Tensor | None = None):
        if not isinstance(strings, (tuple, list)):
            raise ValueError("Invalid `strings` parameter type.")
        rows = _as_indexes(indexes, "decompress")
        if rows.ndim < 2 or len(strings) != rows.shape[0]:
            raise ValueError(f"got {len(strings)} strings for indexes of shape {rows.shape}")
        table = self._coder_table()
        for s in strings:
            check_symbols(s, math.prod(rows.shape[1:]))
        symbols = np.stack([decode(s, rows[i], table) for i, s in enumerate(strings)])
        device = indexes.device if isinstance(indexes, torch.Tensor) else self._quantized_cdf.device
        return self.dequantize(torch.from_numpy(symbols).to(device), means, dtype)

    def _register_cdf_buffers(self) -> None:
        for name in ("_offset", "_quantized_cdf", "_cdf_length"):
            self.register_buffer(name, torch.IntTensor())

    def _store_rows(self, table) -> None:
        device = self._quantized_cdf.device
        cdf, lengths, offsets = _cdf_rows(table)
        self._quantized_cdf, self._cdf_length, self._offset = cdf.to(device), lengths.to(device), offsets.to(device)


class EntropyModel(_CdfCoding, nn.Module):
    """Base of CompressAI-style entropy models: the likelihood bound and the CDF buffers."""

    def __init__(self, likelihood_bound: float = 1e-9, entropy_coder: str | None = None,
                 entropy_coder_precision: int = PRECISION):
        super().__init__()
        _check_coder(entropy_coder, entropy_coder_precision)
        self.entropy_coder_precision = int(entropy_coder_precision)
        self.use_likelihood_bound = likelihood_bound > 0
        if self.use_likelihood_bound:
            self.likelihood_lower_bound = LowerBound(likelihood_bound)
        self._register_cdf_buffers()

    def forward(self, *args):
        raise NotImplementedError


class EntropyBottleneck(_CdfCoding, _NativeBottleneck):
    """CompressAI's EntropyBottleneck (Ballé et al. 2018): ransform's density with
    CompressAI's buffers. ``update()`` sizes each channel's row from solved quantiles, so it
    is right with or without aux-loss training; the values are rounded around the medians
    in ``quantiles`` as CompressAI does."""

    dynamic_buffers = ("_offset", "_quantized_cdf", "_cdf_length")

    def __init__(self, channels: int, *args, tail_mass: float = 1e-9, init_scale: float = 10,
                 filters: tuple[int, ...] = (3, 3, 3, 3), likelihood_bound: float = 1e-9,
                 entropy_coder: str | None = None, entropy_coder_precision: int = PRECISION):
        if args:
            raise TypeError("EntropyBottleneck takes the channels, then keyword arguments")
        _check_coder(entropy_coder, entropy_coder_precision)
        super().__init__(channels, tail_mass=tail_mass, init_scale=init_scale, filters=filters,
                         likelihood_bound=likelihood_bound, precision=entropy_coder_precision)
        self.entropy_coder_precision = int(entropy_coder_precision)
        self.use_likelihood_bound = likelihood_bound > 0
        if self.use_likelihood_bound:
            self.likelihood_lower_bound = LowerBound(likelihood_bound)
        self.register_buffer("target", self.target.clone())  # persistent, as in CompressAI's state dicts

    _logits_cumulative = _NativeBottleneck.logits_cumulative
    _likelihood = _NativeBottleneck.likelihood

    def _get_medians(self) -> torch.Tensor:
        return self.quantiles[:, :, 1:2]

    @torch.no_grad()
    def update(self, force: bool = False, update_quantiles: bool = False) -> bool:
        if self._offset.numel() > 0 and not force:
            return False
        table, _, _ = self._quantized_rows(update_quantiles)
        self._store_rows(table)
        return True

    @staticmethod
    def _build_indexes(size) -> torch.Tensor:
        channel = torch.arange(size[1], dtype=torch.int32).view((1, -1) + (1,) * (len(size) - 2))
        return channel.expand(*size).contiguous()

    @staticmethod
    def _extend_ndims(tensor: torch.Tensor, n: int) -> torch.Tensor:
        return tensor.reshape(-1, *([1] * n)) if n > 0 else tensor.reshape(-1)

    def _medians_for(self, batch: int, spatial_dims: int) -> torch.Tensor:
        medians = self._extend_ndims(self._get_medians().detach(), spatial_dims)
        return medians.expand(batch, *([-1] * (spatial_dims + 1)))

    @torch.no_grad()
    def compress(self, x: torch.Tensor) -> list[bytes]:
        return super().compress(x, self._build_indexes(x.size()), self._medians_for(x.size(0), x.dim() - 2))

    @torch.no_grad()
    def decompress(self, strings, size) -> torch.Tensor:
        indexes = self._build_indexes((len(strings), self._quantized_cdf.size(0), *size))
        medians = self._medians_for(len(strings), len(size))
        return super().decompress(strings, indexes.to(medians.device), medians.dtype, medians)


class GaussianConditional(EntropyModel):
    """CompressAI's GaussianConditional: a Gaussian per element, coded with one of the rows
    tabulated at ``scale_table`` (``build_indexes`` picks it). The rows are ransform's
    Gaussian rows (exact integer arithmetic, the same on every machine)."""

    def __init__(self, scale_table, *args, scale_bound: float = 0.11, tail_mass: float = 1e-9, **kwargs):
        super().__init__(*args, **kwargs)
        if not isinstance(scale_table, (type(None), list, tuple)):
            raise ValueError(f'Invalid type for scale_table "{type(scale_table)}"')
        if isinstance(scale_table, (list, tuple)) and len(scale_table) < 1:
            raise ValueError(f'Invalid scale_table length "{len(scale_table)}"')
        if scale_table and (list(scale_table) != sorted(scale_table) or any(s <= 0 for s in scale_table)):
            raise ValueError(f'Invalid scale_table "({scale_table})"')
        self.tail_mass = float(tail_mass)
        if scale_bound is None and scale_table:
            scale_bound = scale_table[0]
        if scale_bound is None or scale_bound <= 0:
            raise ValueError(f"scale_bound must be positive, got {scale_bound}")
        self.lower_bound_scale = LowerBound(scale_bound)
        self.register_buffer("scale_table", self._prepare_scale_table(scale_table) if scale_table else torch.Tensor())
        self.register_buffer("scale_bound", torch.Tensor([float(scale_bound)]))

    @staticmethod
    def _prepare_scale_table(scale_table) -> torch.Tensor:
        return torch.Tensor(tuple(float(s) for s in scale_table))

    def _standardized_cumulative(self, inputs: torch.Tensor) -> torch.Tensor:
        return 1 - upper_tail("gaussian", inputs)

    @staticmethod
    def _standardized_quantile(quantile: float) -> float:
        return math.sqrt(2) * torch.erfinv(torch.tensor(2 * quantile - 1.0, dtype=torch.float64)).item()

    def update_scale_table(self, scale_table, force: bool = False) -> bool:
        if self._offset.numel() > 0 and not force:
            return False
        device = self.scale_table.device
        self.scale_table = self._prepare_scale_table(scale_table).to(device)
        self.update()
        return True

    @torch.no_grad()
    def update(self) -> None:
        self._store_rows(self._rows())

    def _likelihood(self, inputs: torch.Tensor, scales: torch.Tensor, means: torch.Tensor | None = None):
        return bin_probability("gaussian", inputs, scales, means, float(self.lower_bound_scale.bound))

    def forward(self, inputs: torch.Tensor, scales: torch.Tensor, means: torch.Tensor | None = None,
                training: bool | None = None):
        training = self.training if training is None else training
        outputs = self.quantize(inputs, "noise" if training else "dequantize", means)
        likelihood = self._likelihood(outputs, scales, means)
        if self.use_likelihood_bound:
            likelihood = self.likelihood_lower_bound(likelihood)
        return outputs, likelihood

    def _rows(self) -> ScaleTable:
        """ransform's Gaussian rows at ``scale_table`` (built once per table, then cached)."""
        if self.scale_table.numel() == 0:
            raise RuntimeError("GaussianConditional has no scale table yet: call update_scale_table() "
                               "(or model.update()) first")
        return ScaleTable(as_host_array(self.scale_table, torch.float32), family="gaussian",
                          precision=self.entropy_coder_precision, tail_mass=self.tail_mass)

    def build_indexes(self, scales: torch.Tensor) -> torch.Tensor:
        """The table row of each scale (int32, on the scales' device).

        The row is the tabulated scale with the least expected code length for data of that
        scale (ransform's rule, FORMAT.md §8.5), where CompressAI takes the next larger
        scale: on the shipped mbt2018-mean-small that alone costs CompressAI's 64-scale table
        +0.9 % of the y stream, this +0.08 %. Exact float32 comparisons, so encoder and
        decoder agree on any machine."""
        if not scales.is_floating_point():
            raise TypeError(f"build_indexes takes scales, got a {scales.dtype} tensor: were indexes passed?")
        return scale_index(self._rows(), self.lower_bound_scale(scales))
