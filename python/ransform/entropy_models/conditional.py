"""Conditional entropy models: each element has its own scale (and mean), predicted by a
hyperprior or a context model; coded with a :class:`ransform.ScaleTable`."""
from __future__ import annotations

import numpy as np
import torch

from ransform.coder import Decoder, check_symbols, decode, encode, stream_version
from ransform.entropy_models.base import EntropyModel, as_host_array
from ransform.kernels import backend, conditional_likelihood, scale_index, upper_tail
from ransform.ops import lower_bound
from ransform.tables import ScaleTable, default_scales


def bin_probability(family: str, values, scales, means, scale_bound: float) -> torch.Tensor:
    """P(v - 1/2 < X <= v + 1/2) for X of ``family`` at ``means`` and ``scales`` (bounded below
    by ``scale_bound``). Both terms are upper tails of |v - mean|: small numbers a float holds to
    full relative precision, where 1 - CDF would round to 0 far from the mean."""
    centred = torch.abs(values if means is None else values - means)
    s = lower_bound(scales, scale_bound)
    return upper_tail(family, (centred - 0.5) / s) - upper_tail(family, (centred + 0.5) / s)


def _check_scales(scales, what: str) -> None:
    """Scales are floating-point tensors; integer ones are table indexes (CompressAI's API,
    :mod:`ransform.compressai`), a mix-up that would otherwise code with the wrong rows."""
    if not isinstance(scales, torch.Tensor) or not scales.is_floating_point():
        kind = scales.dtype if isinstance(scales, (torch.Tensor, np.ndarray)) else type(scales).__name__
        raise TypeError(f"GaussianConditional.{what} takes scales (a floating-point tensor), got {kind}: table "
                        "indexes belong to ransform.compressai.entropy_models.GaussianConditional")


class GaussianConditional(EntropyModel):
    """Discretized Gaussian N(mean, scale^2) convolved with U(-1/2, 1/2).

    The likelihood of a value v is T((|v - mean| - 1/2) / s) - T((|v - mean| + 1/2) / s) with
    T the unit upper tail and s = max(scale, scale_bound): both terms are upper-tail values,
    small numbers a float holds to full relative precision, where 1 - CDF would round to 0
    far from the mean. The scale bound keeps the likelihood from collapsing on zero scales;
    its gradient still lets a bounded scale grow (see :func:`ransform.ops.lower_bound`).

    Args:
        scale_table: the coder table's scales (default: :func:`ransform.default_scales`,
            160 scales from 0.11 to 256). Stored in the ``scale_table`` buffer by ``update()``;
            the tables are a pure function of it, so a state dict carries them.
        scale_bound: lower bound on scales (0.11).
        tail_mass: the table's tail-mass bound (see :class:`ransform.ScaleTable`).
    """

    family = "gaussian"
    dynamic_buffers = ("scale_table",)

    def __init__(self, scale_table=None, scale_bound: float = 0.11, tail_mass: float = 1e-9, **kwargs):
        super().__init__(**kwargs)
        if scale_bound is None or not scale_bound > 0:
            raise ValueError(f"scale_bound must be positive, got {scale_bound}")
        self.scale_bound = float(scale_bound)
        self.tail_mass = float(tail_mass)
        self._requested_scales = None
        if scale_table is not None:
            s = np.asarray(scale_table, dtype=np.float32).ravel()
            if s.size < 1 or not np.all(s > 0) or not np.all(np.diff(s) > 0):
                raise ValueError("scale_table must be increasing positive scales")
            self._requested_scales = s
        self.register_buffer("scale_table", torch.zeros(0))
        self._table = None
        self._older_tables = {}  # format version -> the rows its streams were coded with

    def likelihood(self, values: torch.Tensor, scales: torch.Tensor, means: torch.Tensor | None = None):
        """P(v - 1/2 < X <= v + 1/2), without the likelihood bound."""
        return bin_probability(self.family, values, scales, means, self.scale_bound)

    def forward(self, x: torch.Tensor, scales: torch.Tensor, means: torch.Tensor | None = None,
                training: bool | None = None):
        """(quantized x, likelihoods): noise in training, rounding around the means in eval."""
        outputs = self.quantize(x, self._mode(training), means)
        same_shape = scales.shape == outputs.shape and (means is None or means.shape == outputs.shape)
        if outputs.is_cuda and same_shape and backend() == "cuda":  # one fused kernel each way
            return outputs, conditional_likelihood(outputs, scales, means, self.family, self.scale_bound,
                                                   self.likelihood_bound)
        return outputs, self.bound_likelihood(self.likelihood(outputs, scales, means))

    def standardized(self, y: torch.Tensor, scales: torch.Tensor, means: torch.Tensor | None = None) -> torch.Tensor:
        """(y - mean) / max(scale, scale_bound): the latent as the model sees it, for analysis
        (close to the unit family where the model fits; the bound shows as a floor on |.|)."""
        centred = y if means is None else y - means
        return centred / torch.clamp_min(scales, self.scale_bound)

    # --- coding -------------------------------------------------------------------------------
    @torch.no_grad()
    def update(self, force: bool = False) -> bool:
        """Sets the ``scale_table`` buffer (and builds the table) if not set, or with ``force``."""
        if self.scale_table.numel() and not force:
            return False
        scales = default_scales() if self._requested_scales is None else self._requested_scales
        self.scale_table = torch.from_numpy(np.array(scales, dtype=np.float32)).to(self.scale_table.device)
        self._tables_changed()
        return True

    @property
    def table(self) -> ScaleTable:
        self._require_tables(self.scale_table.numel() > 0)
        if self._table is None:
            self._table = ScaleTable(as_host_array(self.scale_table, torch.float32), family=self.family,
                                     precision=self.precision, tail_mass=self.tail_mass)
        return self._table

    def _tables_changed(self) -> None:
        super()._tables_changed()
        self._older_tables = {}

    def table_for(self, string: bytes) -> ScaleTable:
        """The table that decodes ``string``: :attr:`table`, or for a stream of an earlier format
        version the rows it was coded with (built once; a version-1 file stays readable)."""
        version = stream_version(string)
        if version == self.table.version:
            return self.table
        if version not in self._older_tables:
            self._older_tables[version] = ScaleTable(self.table.scales, family=self.family, precision=self.precision,
                                                     tail_mass=self.tail_mass, version=version)
        return self._older_tables[version]

    def build_indexes(self, scales: torch.Tensor, table: ScaleTable | None = None) -> np.ndarray:
        """Table row of every scale (int32, scale bound applied): a pure function of the
        float32 value, so encoder and decoder agree wherever the scales agree. ``table``:
        :attr:`table` unless given (a stream's, see :meth:`table_for`)."""
        table = self.table if table is None else table
        bounded = torch.clamp_min(scales.detach().float(), self.scale_bound)
        if bounded.is_cuda:  # rows computed on the GPU; only the int32 rows travel
            return as_host_array(scale_index(table, bounded), torch.int32)
        return table.index(as_host_array(bounded, torch.float32))

    @torch.no_grad()
    def compress(self, x: torch.Tensor, scales: torch.Tensor, means: torch.Tensor | None = None) -> list[bytes]:
        """One stream per batch element: round(x - means) coded with the scales' rows."""
        _check_scales(scales, "compress")
        if x.shape != scales.shape or (means is not None and means.shape != x.shape):
            raise ValueError(f"x, scales and means must have the same shape, got {tuple(x.shape)}, "
                             f"{tuple(scales.shape)}" + ("" if means is None else f", {tuple(means.shape)}"))
        symbols = as_host_array(self.quantize(x, "symbols", means), torch.int32)
        indexes = self.build_indexes(scales)
        return [encode(symbols[i], indexes[i], self.table, threads=self.threads) for i in range(len(symbols))]

    @torch.no_grad()
    def decompress(self, strings: list[bytes], scales: torch.Tensor, means: torch.Tensor | None = None) -> torch.Tensor:
        """The dequantized latent, shaped like ``scales``."""
        _check_scales(scales, "decompress")
        if len(strings) != scales.shape[0]:
            raise ValueError(f"got {len(strings)} streams for a batch of {scales.shape[0]}")
        for s in strings:
            check_symbols(s, scales[0].numel())
        tables = [self.table_for(s) for s in strings]
        indexes = {id(t): self.build_indexes(scales, t) for t in tables}  # once per version in the batch
        symbols = np.stack([decode(s, indexes[id(t)][i], t, threads=self.threads)
                            for i, (s, t) in enumerate(zip(strings, tables))])
        y = torch.from_numpy(symbols).to(scales.device, scales.dtype)
        return y if means is None else y + means

    def readers(self, strings, count: int, batch: int) -> list[SteppedReader]:
        """One :meth:`reader` per image of a batch, each stream holding ``count`` symbols."""
        if len(strings) != batch:
            raise ValueError(f"got {len(strings)} y streams for a batch of {batch}")
        return [self.reader(s, count) for s in strings]

    def reader(self, string: bytes, count: int) -> SteppedReader:
        """A reader that decodes one image's stream in steps, for context models, whose
        scales and means for the next elements depend on the values decoded so far. The
        stream must announce ``count`` symbols (checked before anything is allocated)."""
        check_symbols(string, count)
        return SteppedReader(self, string)


class SteppedReader:
    """One stream of a :class:`GaussianConditional`, decoded step by step: ``read(scales,
    means)`` returns the next ``scales.numel()`` values dequantized, in the order the encoder
    passed them to ``compress``. The context model supplies parameters; the entropy model
    owns quantization, table rows and the stream."""

    def __init__(self, model: GaussianConditional, string: bytes):
        self._model = model
        self._table = model.table_for(string)
        self._decoder = Decoder(string, self._table)

    @torch.no_grad()
    def read(self, scales: torch.Tensor, means: torch.Tensor | None = None) -> torch.Tensor:
        if means is not None and means.shape != scales.shape:
            raise ValueError(f"scales and means must have the same shape, got {tuple(scales.shape)} "
                             f"and {tuple(means.shape)}")
        symbols = self._decoder.decode(np.ascontiguousarray(self._model.build_indexes(scales, self._table)))
        y = torch.from_numpy(symbols).to(scales.device, scales.dtype)
        return y if means is None else y + means


class LaplaceConditional(GaussianConditional):
    """Discretized Laplace (scale = diversity b); see :class:`GaussianConditional`."""

    family = "laplace"


class LogisticConditional(GaussianConditional):
    """Discretized logistic (CDF sigmoid(x / scale)); see :class:`GaussianConditional`."""

    family = "logistic"
