"""EntropyBottleneck: the non-parametric factorized density of Ballé et al. 2018 ("Variational
image compression with a scale hyperprior", appendix 6.1), one per channel."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ransform.coder import check_symbols, decode, encode
from ransform.entropy_models.base import EntropyModel, as_host_array
from ransform.kernels import backend, bottleneck_likelihood
from ransform.tables import CategoricalTable


class EntropyBottleneck(EntropyModel):
    """Per-channel density whose CDF is a small monotone MLP: ``sigmoid(f(x))`` with
    f = (softplus(H_k) . + b_k, then x + tanh(a_k) tanh(x)) repeated.

    ``quantiles`` (C, 1, 3) hold each channel's tail_mass/2 quantile, median and
    1 - tail_mass/2 quantile; the median is where values are rounded around, the outer two
    bound the coder table. They are learned with :meth:`loss` (CompressAI's auxiliary loss)
    or solved directly by :meth:`solve_quantiles` (bisection; ``update()`` uses the solve for
    the table range either way, so it works without aux training).

    Parameter names (``matrices.i``, ``biases.i``, ``factors.i``, ``quantiles``) are
    CompressAI 1.2.8's.
    """

    dynamic_buffers = ("_frequencies", "_lengths", "_offsets")

    def __init__(self, channels: int, tail_mass: float = 1e-9, init_scale: float = 10.0,
                 filters: tuple[int, ...] = (3, 3, 3, 3), **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.filters = tuple(int(f) for f in filters)
        self.init_scale = float(init_scale)
        self.tail_mass = float(tail_mass)
        widths = (1,) + self.filters + (1,)
        # Initialised so that the density starts as a wide bump of about init_scale.
        scale = self.init_scale ** (1 / (len(self.filters) + 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(self.filters) + 1):
            init = math.log(math.expm1(1 / scale / widths[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, widths[i + 1], widths[i]), init)))
            self.biases.append(nn.Parameter(torch.empty(channels, widths[i + 1], 1).uniform_(-0.5, 0.5)))
            if i < len(self.filters):
                self.factors.append(nn.Parameter(torch.zeros(channels, widths[i + 1], 1)))
        self.quantiles = nn.Parameter(torch.tensor([-self.init_scale, 0.0, self.init_scale]).repeat(channels, 1, 1))
        logit = math.log(2 / self.tail_mass - 1)
        self.register_buffer("target", torch.tensor([-logit, 0.0, logit]), persistent=False)
        for name in self.dynamic_buffers:
            self.register_buffer(name, torch.zeros(0, dtype=torch.int32))
        self._table = None
        self._step_tables: dict[float, CategoricalTable] = {}

    # --- density -------------------------------------------------------------------------
    def logits_cumulative(self, x: torch.Tensor, stop_gradient: bool = False) -> torch.Tensor:
        """f(x) for x of shape (C, 1, K): the logit of each channel's CDF."""
        logits = x
        for i, matrix in enumerate(self.matrices):
            bias = self.biases[i]
            factor = self.factors[i] if i < len(self.factors) else None
            if stop_gradient:
                matrix, bias = matrix.detach(), bias.detach()
                factor = None if factor is None else factor.detach()
            logits = torch.matmul(F.softplus(matrix), logits) + bias
            if factor is not None:
                logits = logits + torch.tanh(factor) * torch.tanh(logits)
        return logits

    def likelihood(self, x: torch.Tensor, stop_gradient: bool = False, step: float = 1.0):
        """P(x - step/2 < X <= x + step/2) for x of shape (C, 1, K); also the two logits.
        (``step`` is the quantization step; variable-rate models use others than 1.)

        Computed on the side of the median where both CDF values are small (the sign flip),
        so tails keep their relative precision instead of becoming 1 - 1."""
        half = step / 2
        lower = self.logits_cumulative(x - half, stop_gradient)
        upper = self.logits_cumulative(x + half, stop_gradient)
        sign = -torch.sign(lower + upper).detach()
        return torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)), lower, upper

    def medians(self) -> torch.Tensor:
        return self.quantiles[:, :, 1:2]

    def loss(self) -> torch.Tensor:
        """Auxiliary loss: pulls ``quantiles`` to where f reaches its targets."""
        logits = self.logits_cumulative(self.quantiles, stop_gradient=True)
        return torch.abs(logits - self.target).sum()

    @torch.no_grad()
    def solve_quantiles(self, search_radius: float = 1e5, steps: int = 48) -> torch.Tensor:
        """The (C, 1, 3) quantiles where f reaches its targets, by bisection (f is monotone).

        48 halvings of [-1e5, 1e5] reach the float32 resolution of the answer."""
        shape = (self.channels, 1, 3)
        low = torch.full(shape, -search_radius, device=self.quantiles.device)
        high = torch.full(shape, search_radius, device=self.quantiles.device)
        for _ in range(steps):
            mid = (low + high) / 2
            below = self.logits_cumulative(mid.reshape(self.channels, 1, 3), True) < self.target
            low = torch.where(below, mid, low)
            high = torch.where(below, high, mid)
        return (low + high) / 2

    # --- forward ----------------------------------------------------------------------------
    def _channels_first(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2 or x.shape[1] != self.channels:
            raise ValueError(f"expected input of shape (N, {self.channels}, ...), got {tuple(x.shape)}")
        return x.transpose(0, 1).reshape(self.channels, 1, -1)

    def _like_input(self, values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        shape = (x.shape[1], x.shape[0]) + tuple(x.shape[2:])
        return values.reshape(shape).transpose(0, 1).contiguous()

    def forward(self, x: torch.Tensor, training: bool | None = None, step: float | torch.Tensor = 1.0):
        """(quantized x, likelihoods); noise in training, rounding around the medians in eval.
        ``step``: the quantization step (variable-rate models; noise and bins scale with it)."""
        values = self._channels_first(x)
        mode = self._mode(training)
        if not (isinstance(step, (int, float)) and step == 1):
            if mode == "noise":
                outputs = values + torch.empty_like(values).uniform_(-0.5, 0.5) * step
            else:
                medians = self.medians()
                outputs = self.quantize((values - medians) / step, mode) * step + medians
            likelihood = self.bound_likelihood(self.likelihood(outputs, step=step)[0])
            return self._like_input(outputs, x), self._like_input(likelihood, x)
        # Noise ignores the medians; not touching ``quantiles`` keeps them out of the graph
        # (DistributedDataParallel must not wait for a gradient that never comes).
        outputs = self.quantize(values, mode, None if mode == "noise" else self.medians())
        if outputs.is_cuda and backend() == "cuda":  # likelihood and bound in one kernel each way
            likelihood = bottleneck_likelihood(outputs, self.matrices, self.biases, self.factors,
                                               self.likelihood_bound)
        else:  # autograd of the plain ops is faster on the CPU than the explicit reference backward
            likelihood = self.bound_likelihood(self.likelihood(outputs)[0])
        return self._like_input(outputs, x), self._like_input(likelihood, x)

    # --- coding -------------------------------------------------------------------------------
    @torch.no_grad()
    def update(self, force: bool = False, update_quantiles: bool = False) -> bool:
        """Builds the coder table from the density (one row per channel) into buffers.

        The table range comes from solved quantiles, so it is right whether or not the aux
        loss was trained; ``update_quantiles=True`` also writes them into ``quantiles``
        (which moves the medians, and with them what ``forward`` rounds around)."""
        if self._frequencies.numel() and not force:
            return False
        self._step_tables = {}
        table, lengths, minima = self._quantized_rows(update_quantiles)
        device = self.quantiles.device
        self._frequencies = torch.from_numpy(padded_frequencies(table)).to(device)
        self._lengths = (lengths + 1).to(torch.int32).to(device)  # + the escape symbol
        self._offsets = (-minima).to(torch.int32).to(device)
        self._table = table
        return True

    def _quantized_rows(self, update_quantiles: bool, step: float = 1.0):
        """(table, lengths, minima): each channel's row from its median - minima steps to its
        median + maxima steps (lengths values, plus the escape)."""
        solved = self.solve_quantiles()
        if update_quantiles:
            self.quantiles.copy_(solved)
        medians = self.quantiles[:, 0, 1]
        minima = torch.clamp_min(torch.ceil((medians - solved[:, 0, 0]) / step), 0).to(torch.int64)
        maxima = torch.clamp_min(torch.ceil((solved[:, 0, 2] - medians) / step), 0).to(torch.int64)
        lengths = minima + maxima + 1
        samples = torch.arange(int(lengths.max()), device=medians.device) * step + (medians - minima * step)[:, None]
        pmf, lower, upper = self.likelihood(samples[:, None, :], stop_gradient=True, step=step)
        pmf = pmf[:, 0, :].double()
        valid = torch.arange(pmf.shape[1], device=pmf.device)[None, :] < lengths[:, None]
        pmf = torch.where(valid, pmf, torch.zeros_like(pmf))
        last = (lengths - 1)[:, None]
        tail = (torch.sigmoid(lower[:, 0, :1]) + torch.sigmoid(-upper[:, 0, :].gather(1, last))).double()
        table = CategoricalTable(as_host_array(pmf, torch.float64), offsets=as_host_array(-minima, torch.int32),
                                 tail_mass=as_host_array(tail[:, 0], torch.float64), precision=self.precision,
                                 lengths=as_host_array(lengths, torch.int32))
        return table, lengths, minima

    @property
    def table(self) -> CategoricalTable:
        """The coder table (rebuilt from the buffers after loading a state dict)."""
        self._require_tables(self._frequencies.numel() > 0)
        if self._table is None:
            self._table = CategoricalTable.from_frequencies(
                as_host_array(self._frequencies, torch.int64), as_host_array(self._offsets, torch.int32),
                has_escape=True, precision=self.precision, lengths=as_host_array(self._lengths, torch.int32))
        return self._table

    def table_at(self, step: float) -> CategoricalTable:
        """The table of values quantized with ``step`` around the medians (variable-rate
        models; step 1 is :attr:`table`), built from the density once per step and kept."""
        if step == 1:
            return self.table
        self._require_tables(self._frequencies.numel() > 0)
        if float(step) not in self._step_tables:
            self._step_tables[float(step)] = self._quantized_rows(False, float(step))[0]
        return self._step_tables[float(step)]

    def _tables_changed(self) -> None:
        super()._tables_changed()
        self._step_tables = {}

    def _indexes(self, shape) -> np.ndarray:
        channel = np.arange(self.channels, dtype=np.int32).reshape((1, -1) + (1,) * (len(shape) - 2))
        return np.ascontiguousarray(np.broadcast_to(channel, shape))

    def _medians_like(self, ndim: int) -> torch.Tensor:
        return self.quantiles[:, 0, 1].detach().reshape((1, -1) + (1,) * (ndim - 2))

    def _symbols(self, x: torch.Tensor, step: float) -> torch.Tensor:
        # (x - m) / 1.0 and s * 1.0 are exact: step 1 gives round(x - m) and s + m bit for bit
        return torch.round((x - self._medians_like(x.dim())) / step).to(torch.int32)

    def dequantized(self, x: torch.Tensor, step: float = 1.0) -> torch.Tensor:
        """What :meth:`decompress` returns for :meth:`compress`'s streams of x."""
        return self._symbols(x, step) * step + self._medians_like(x.dim())

    @torch.no_grad()
    def compress(self, x: torch.Tensor, step: float = 1.0) -> list[bytes]:
        """One stream per batch element: x rounded around the channel medians (in units of
        ``step``)."""
        self._channels_first(x)
        symbols = as_host_array(self._symbols(x, step), torch.int32)
        indexes = self._indexes(symbols.shape)
        table = self.table_at(step)
        return [encode(symbols[i], indexes[i], table, threads=self.threads) for i in range(len(symbols))]

    @torch.no_grad()
    def decompress(self, strings: list[bytes], size, step: float = 1.0) -> torch.Tensor:
        """The dequantized latent (N, C, *size) from :meth:`compress`'s streams."""
        shape = (len(strings), self.channels) + tuple(int(s) for s in size)
        for s in strings:
            check_symbols(s, math.prod(shape[1:]))
        indexes = self._indexes(shape)
        table = self.table_at(step)
        symbols = np.stack([decode(s, indexes[i], table, threads=self.threads)
                            for i, s in enumerate(strings)]) if strings else np.zeros(shape, np.int32)
        medians = self._medians_like(len(shape))
        return torch.from_numpy(symbols).to(medians.device, medians.dtype) * step + medians


def padded_frequencies(table) -> np.ndarray:
    """(rows, widest row) int32: each row's frequencies (escape last), zeros after them."""
    rows = [table.frequencies(r) for r in range(table.rows)]
    out = np.zeros((len(rows), max(f.size for f in rows)), np.int32)
    for r, f in enumerate(rows):
        out[r, : f.size] = f
    return out
