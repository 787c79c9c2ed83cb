"""Mixture entropy models: each element has K weighted components (Cheng et al. 2020's
Gaussian mixture), coded with one quantized row per element
(:func:`ransform.kernels.mixture_rows`)."""
from __future__ import annotations

import numpy as np
import torch

from ransform import StreamError, varint
from ransform.coder import decode, encode
from ransform.entropy_models.base import EntropyModel, as_host_array
from ransform.kernels import conditional_likelihood, mixture_rows
from ransform.tables import CategoricalTable


class GaussianMixtureConditional(EntropyModel):
    """sum_k w_k N(mean_k, scale_k^2), convolved with U(-1/2, 1/2); values are coded as
    round(x) (a mixture has no single mean to round around).

    ``weights``, ``means`` and ``scales`` have shape (N, K, *x.shape[1:]): component k of
    element x[n, c, ...] is ``[:, k]``. Weights must be non-negative (e.g. a softmax over K);
    they are normalised over K here. Scales are lower-bounded by ``scale_bound`` as in
    :class:`GaussianConditional`, and each component's likelihood goes through the same fused
    kernels on CUDA tensors.

    Coding builds one row per element on the device of the parameters (CPU or GPU, the same
    bits): the integers within ``deviations`` scales of any component's mean (at most
    ``max_symbols``), and an escape symbol for the rest. The elements of an image are coded in
    slices of ``slice_elements`` elements, one rANS stream each, joined into one string per
    image; the slices bound the host memory of the per-element tables (~1.5 KB per element).
    """

    family = "gaussian"

    def __init__(self, components: int = 3, scale_bound: float = 0.11, deviations: float = 6.0,
                 max_symbols: int = 256, slice_elements: int = 1 << 16, **kwargs):
        super().__init__(**kwargs)
        if not 1 <= int(components) <= 8:
            raise ValueError(f"components must be in 1..8, got {components}")
        if not scale_bound > 0:
            raise ValueError(f"scale_bound must be positive, got {scale_bound}")
        if int(slice_elements) < 1:
            raise ValueError(f"slice_elements must be >= 1, got {slice_elements}")
        self.components = int(components)
        self.scale_bound = float(scale_bound)
        self.deviations = float(deviations)
        self.max_symbols = int(max_symbols)
        self.slice_elements = int(slice_elements)

    def _check(self, x: torch.Tensor, *params: torch.Tensor):
        want = (x.shape[0], self.components) + tuple(x.shape[1:])
        for name, p in zip(("scales", "means", "weights"), params):
            if tuple(p.shape) != want:
                raise ValueError(f"{name} must have shape {want} (N, K, ...) for x of shape {tuple(x.shape)}, "
                                 f"got {tuple(p.shape)}")

    def likelihood(self, values: torch.Tensor, scales: torch.Tensor, means: torch.Tensor, weights: torch.Tensor):
        """P(v - 1/2 < X <= v + 1/2) under the mixture, without the likelihood bound."""
        self._check(values, scales, means, weights)
        v = values.unsqueeze(1).expand_as(means)
        per_component = conditional_likelihood(v, scales, means, self.family, self.scale_bound, 0.0)
        w = weights / weights.sum(dim=1, keepdim=True)
        return (w * per_component).sum(dim=1)

    def forward(self, x: torch.Tensor, scales: torch.Tensor, means: torch.Tensor, weights: torch.Tensor,
                training: bool | None = None):
        """(quantized x, likelihoods): noise in training, rounding in eval."""
        outputs = self.quantize(x, self._mode(training))
        return outputs, self.bound_likelihood(self.likelihood(outputs, scales, means, weights))

    # --- coding -------------------------------------------------------------------------------
    def _rows(self, scales, means, weights, image: int):
        """The rows of image ``image``'s elements, in x's element order."""
        k = self.components
        per_element = [t[image].detach().movedim(0, -1).reshape(-1, k) for t in (weights, means, scales)]
        per_element[2] = torch.clamp_min(per_element[2].float(), self.scale_bound)
        return mixture_rows(*per_element, family=self.family, deviations=self.deviations,
                            max_symbols=self.max_symbols, precision=self.precision, threads=self.threads)

    def _slices(self, n: int):
        return [(a, min(n, a + self.slice_elements)) for a in range(0, n, self.slice_elements)]

    def _slice_table(self, rows, a: int, b: int) -> CategoricalTable:
        freqs, offsets, lengths = rows
        return CategoricalTable.from_frequencies(freqs[a:b], offsets[a:b], has_escape=True, precision=self.precision,
                                                 lengths=lengths[a:b])

    @torch.no_grad()
    def compress(self, x: torch.Tensor, scales: torch.Tensor, means: torch.Tensor, weights: torch.Tensor) -> list[bytes]:
        """One string per batch element: round(x) coded with its elements' rows."""
        self._check(x, scales, means, weights)
        symbols = as_host_array(self.quantize(x, "symbols"), torch.int32).reshape(len(x), -1)
        strings = []
        for i in range(len(x)):
            rows = self._rows(scales, means, weights, i)
            parts = [encode(symbols[i, a:b], np.arange(b - a, dtype=np.int32), self._slice_table(rows, a, b),
                            threads=self.threads) for a, b in self._slices(symbols.shape[1])]
            strings.append(join_streams(parts))
        return strings

    @torch.no_grad()
    def decompress(self, strings: list[bytes], scales: torch.Tensor, means: torch.Tensor,
                   weights: torch.Tensor) -> torch.Tensor:
        """The quantized latent, shaped (N, *scales.shape[2:])."""
        if len(strings) != scales.shape[0]:
            raise ValueError(f"got {len(strings)} streams for a batch of {scales.shape[0]}")
        shape = (scales.shape[0],) + tuple(scales.shape[2:])
        self._check(torch.empty(shape, device="meta"), scales, means, weights)
        n = int(np.prod(shape[1:]))
        images = []
        for i, data in enumerate(strings):
            rows = self._rows(scales, means, weights, i)
            slices = self._slices(n)
            parts = split_streams(data, len(slices))
            images.append(np.concatenate(
                [decode(part, np.arange(b - a, dtype=np.int32), self._slice_table(rows, a, b), threads=self.threads)
                 for part, (a, b) in zip(parts, slices)] or [np.zeros(0, np.int32)]))
        return torch.from_numpy(np.stack(images).reshape(shape)).to(scales.device, scales.dtype)


# --- one string from several streams -----------------------------------------------------------
# Every stream but the last is preceded by its length in bytes as a varint (FORMAT.md §2); the
# last takes the rest. One stream costs nothing extra.
def join_streams(parts: list[bytes]) -> bytes:
    out = bytearray()
    for part in parts[:-1]:
        out += varint.encode(len(part)) + part
    return bytes(out + (parts[-1] if parts else b""))


def split_streams(data: bytes, count: int) -> list[bytes]:
    """Inverse of :func:`join_streams`; raises StreamError on truncated or malformed input."""
    data = bytes(data)
    parts, at = [], 0
    for _ in range(count - 1):
        try:
            n, at = varint.decode(data, at)
        except varint.VarintError as exc:
            raise StreamError(f"mixture stream is truncated or corrupted (slice length: {exc})") from None
        if at + n > len(data):
            raise StreamError("mixture stream is truncated (slice data)")
        parts.append(data[at:at + n])
        at += n
    return parts + [data[at:]] if count > 0 else []
