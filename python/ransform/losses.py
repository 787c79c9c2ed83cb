"""Training and evaluation losses: rate-distortion loss, MS-SSIM / SSIM and PSNR.

Needs torch only (not the compiled coder).

    from ransform.losses import RateDistortionLoss, lambda_for, ms_ssim, psnr

    criterion = RateDistortionLoss(lmbda=lambda_for(3, "mse"), metric="mse")
    out = criterion(model(x), x)     # model(x) = {"x_hat": ..., "likelihoods": {"y": ..., "z": ...}}
    out["loss"].backward()           # also out["bpp_loss"], out["mse_loss"], out["bpp_y"], ...

Rate
----
``bpp = sum over every likelihood tensor of sum(-log2 p) / (N * H * W)``, with N, H, W from the
target. Every entry of ``output["likelihoods"]`` is summed (``y`` *and* ``z``, and any other):
each is a latent that is entropy coded into the bitstream, so each costs bits.

Distortion and the two conventions
----------------------------------
``convention="compressai"`` (the default; CompressAI's loss, whose lambdas are tabulated below):

| metric      | loss                                   |
| ----------- | -------------------------------------- |
| ``mse``     | ``lmbda * 255**2 * MSE + bpp``         |
| ``ms-ssim`` | ``lmbda * (1 - MS-SSIM) + bpp``        |
| ``l1``      | ``lmbda * 255 * L1 + bpp``             |

``convention="distortion"`` (``D + lmbda * R``): ``loss = D + lmbda * bpp`` with ``D`` = MSE,
``1 - MS-SSIM`` or L1 on images in [0, 1].

Both conventions have the same minimisers when ``lmbda' = 1 / (lmbda * s)``, with ``s = 255**2``
for MSE, ``255`` for L1 and ``1`` for MS-SSIM (the compressai loss is then ``lmbda * s`` times the
distortion-convention loss). The map is its own inverse; :func:`convert_lambda` applies it.
E.g. MSE quality 3 (``lmbda = 0.0067``) is ``lmbda' = 1 / (0.0067 * 65025) = 0.002295``.

Lambdas per quality (CompressAI's published values, compressai convention), see :data:`LAMBDAS`
and :func:`lambda_for`:

| quality | 1      | 2      | 3      | 4      | 5      | 6      | 7      | 8      |
| ------- | ------ | ------ | ------ | ------ | ------ | ------ | ------ | ------ |
| mse     | 0.0018 | 0.0035 | 0.0067 | 0.0130 | 0.0250 | 0.0483 | 0.0932 | 0.1800 |
| ms-ssim | 2.40   | 4.58   | 8.73   | 16.64  | 31.73  | 60.50  | 115.37 | 220.00 |

MS-SSIM
-------
Wang, Simoncelli and Bovik, "Multi-scale structural similarity for image quality assessment"
(2003): an 11-tap Gaussian window (sigma 1.5) applied separably without padding ("valid"),
``C1 = (0.01 * data_range)**2``, ``C2 = (0.03 * data_range)**2``, 5 scales with weights
(0.0448, 0.2856, 0.3001, 0.2363, 0.1333) and 2x2 average pooling between scales. Scales 1-4
contribute their contrast-structure term ``cs``; the last scale contributes its full SSIM
(luminance times contrast-structure), i.e. ``prod_{j<5} cs_j**w_j * ssim_5**w_5`` per channel,
then the mean over channels. Each side must be at least ``(window - 1) * 2**4 + 1 = 161`` pixels.
An odd side is pooled as in ``pytorch-msssim`` (the MS-SSIM CompressAI trains and evaluates with):
one zero row/column is padded in front and counted in the 2x2 average, so results match it on
any size; sides that stay even at every scale (e.g. 256) are plain 2x2 means.
"""
from __future__ import annotations

import math
import numbers
import operator
from typing import Dict, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "LAMBDAS",
    "MS_SSIM_WEIGHTS",
    "RateDistortionLoss",
    "convert_lambda",
    "lambda_for",
    "ms_ssim",
    "psnr",
    "ssim",
]

#: Weights of the 5 scales of MS-SSIM (Wang et al. 2003), finest scale first.
MS_SSIM_WEIGHTS: Tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)

#: CompressAI's published lambdas for qualities 1..8, in the compressai convention
#: (``lmbda * 255**2 * MSE + bpp`` and ``lmbda * (1 - MS-SSIM) + bpp``).
LAMBDAS: Dict[str, Tuple[float, ...]] = {
    "mse": (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800),
    "ms-ssim": (2.40, 4.58, 8.73, 16.64, 31.73, 60.50, 115.37, 220.00),
}

_METRICS = ("mse", "ms-ssim", "l1")
_METRIC_ALIASES = {"mse": "mse", "ms-ssim": "ms-ssim", "ms_ssim": "ms-ssim", "msssim": "ms-ssim", "l1": "l1"}
_CONVENTIONS = ("compressai", "distortion")
# Distortion scale of the compressai convention: images in [0, 1] measured as if in [0, 255].
_COMPRESSAI_SCALE = {"mse": 255.0**2, "ms-ssim": 1.0, "l1": 255.0}
# Output key of the raw metric value (CompressAI's key names).
_METRIC_KEYS = {"mse": "mse_loss", "ms-ssim": "ms_ssim_loss", "l1": "l1_loss"}


def _metric_name(metric: str) -> str:
    name = _METRIC_ALIASES.get(metric.lower()) if isinstance(metric, str) else None
    if name is None:
        raise ValueError(f"unknown metric {metric!r}: expected one of {', '.join(map(repr, _METRICS))}")
    return name


# --------------------------------------------------------------------------- SSIM / MS-SSIM


def _prepare_pair(x: Tensor, y: Tensor, fname: str) -> Tuple[Tensor, Tensor]:
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        raise TypeError(f"{fname}: x and y must be torch tensors, got {type(x).__name__} and {type(y).__name__}")
    if x.shape != y.shape:
        raise ValueError(f"{fname}: x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.dim() != 4:
        raise ValueError(f"{fname}: expected images of shape (N, C, H, W), got shape {tuple(x.shape)}")
    dtype = torch.promote_types(x.dtype, y.dtype)
    if not dtype.is_floating_point:
        dtype = torch.get_default_dtype()
    return x.to(dtype), y.to(dtype)


def _check_window(window_size: int, sigma: float, K: Sequence[float], data_range: float) -> None:
    if isinstance(window_size, bool) or not isinstance(window_size, numbers.Integral) or window_size < 1 \
            or window_size % 2 == 0:
        raise ValueError(f"window_size must be a positive odd integer, got {window_size!r}")
    if not (sigma > 0 and math.isfinite(sigma)):
        raise ValueError(f"sigma must be positive and finite, got {sigma!r}")
    if len(K) != 2 or not all(k >= 0 and math.isfinite(k) for k in K):
        raise ValueError(f"K must be two non-negative numbers (K1, K2), got {K!r}")
    if not (data_range > 0 and math.isfinite(data_range)):
        raise ValueError(f"data_range must be positive and finite, got {data_range!r}")


def _reduce(per_image: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return per_image.mean()
    if reduction == "none":
        return per_image
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def _gaussian_window(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Normalised 1-D Gaussian of ``size`` taps centred on the middle tap (built in float64)."""
    t = torch.arange(size, dtype=torch.float64) - (size // 2)
    g = torch.exp(-(t * t) / (2.0 * sigma * sigma))
    return (g / g.sum()).to(dtype=dtype, device=device)


def _blur(t: Tensor, window: Tensor) -> Tensor:
    """Separable Gaussian filter of every channel of ``t`` (N, K, H, W), 'valid' (no padding)."""
    k, n = t.shape[1], window.numel()
    t = F.conv2d(t, window.view(1, 1, 1, n).repeat(k, 1, 1, 1), groups=k)
    return F.conv2d(t, window.view(1, 1, n, 1).repeat(k, 1, 1, 1), groups=k)


def _ssim_cs(x: Tensor, y: Tensor, window: Tensor, c1: float, c2: float) -> Tuple[Tensor, Tensor]:
    """Per-channel mean SSIM and mean contrast-structure term, each of shape (N, C)."""
    c = x.shape[1]
    # One grouped convolution pass for the five local statistics.
    stats = _blur(torch.cat([x, y, x * x, y * y, x * y], dim=1), window)
    mu_x, mu_y, e_xx, e_yy, e_xy = stats.split(c, dim=1)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    var_x, var_y, cov = e_xx - mu_xx, e_yy - mu_yy, e_xy - mu_xy
    cs_map = (2.0 * cov + c2) / (var_x + var_y + c2)
    ssim_map = (2.0 * mu_xy + c1) / (mu_xx + mu_yy + c1) * cs_map
    return ssim_map.flatten(2).mean(-1), cs_map.flatten(2).mean(-1)


def _halve(t: Tensor) -> Tensor:
    # 2x2 average pooling; an odd side gets one zero row/column in front, counted in the mean
    # (pytorch-msssim's pooling, so values match it for any image size).
    pad = (t.shape[-2] % 2, t.shape[-1] % 2)
    return F.avg_pool2d(t, kernel_size=2, stride=2, padding=pad, count_include_pad=True)


def ssim(
    x: Tensor,
    y: Tensor,
    data_range: float = 1.0,
    window_size: int = 11,
    sigma: float = 1.5,
    K: Sequence[float] = (0.01, 0.03),
    *,
    reduction: str = "mean",
) -> Tensor:
    """Single-scale SSIM of two image batches (N, C, H, W): mean over pixels, then channels.

    Gaussian window ``window_size`` / ``sigma`` applied without padding, so each side must be at
    least ``window_size``. Returns the batch mean (``reduction="mean"``) or one value per image
    (``reduction="none"``, shape (N,)). SSIM can be negative; it is not clipped here.
    """
    x, y = _prepare_pair(x, y, "ssim")
    _check_window(window_size, sigma, K, data_range)
    if min(x.shape[-2:]) < window_size:
        raise ValueError(f"ssim: images of shape {tuple(x.shape)} are smaller than the "
                         f"{window_size}x{window_size} window")
    window = _gaussian_window(window_size, sigma, x.dtype, x.device)
    c1, c2 = (K[0] * data_range) ** 2, (K[1] * data_range) ** 2
    ssim_pc, _ = _ssim_cs(x, y, window, c1, c2)
    return _reduce(ssim_pc.mean(1), reduction)


def ms_ssim(
    x: Tensor,
    y: Tensor,
    data_range: float = 1.0,
    weights: Optional[Sequence[float]] = None,
    window_size: int = 11,
    sigma: float = 1.5,
    K: Sequence[float] = (0.01, 0.03),
    *,
    reduction: str = "mean",
) -> Tensor:
    """Multi-scale SSIM (Wang et al. 2003) of two image batches (N, C, H, W); differentiable.

    ``weights`` (default :data:`MS_SSIM_WEIGHTS`) sets the number of scales; each side must be at
    least ``(window_size - 1) * 2**(scales - 1) + 1`` (161 by default). Returns the batch mean
    (``reduction="mean"``) or one value per image (``reduction="none"``, shape (N,)), in [0, 1].
    """
    x, y = _prepare_pair(x, y, "ms_ssim")
    _check_window(window_size, sigma, K, data_range)
    w = torch.as_tensor(MS_SSIM_WEIGHTS if weights is None else weights, dtype=x.dtype, device=x.device)
    if w.dim() != 1 or w.numel() == 0:
        raise ValueError(f"ms_ssim: weights must be a non-empty 1-D sequence, got shape {tuple(w.shape)}")
    scales = w.numel()
    min_side = (window_size - 1) * 2 ** (scales - 1) + 1
    if min(x.shape[-2:]) < min_side:
        raise ValueError(
            f"ms_ssim: images of shape {tuple(x.shape)} are too small for {scales} scales with a "
            f"{window_size}-pixel window: each side must be at least {min_side} pixels")
    window = _gaussian_window(window_size, sigma, x.dtype, x.device)
    c1, c2 = (K[0] * data_range) ** 2, (K[1] * data_range) ** 2

    terms = []
    for scale in range(scales):
        ssim_pc, cs_pc = _ssim_cs(x, y, window, c1, c2)
        if scale < scales - 1:
            terms.append(cs_pc)
            x, y = _halve(x), _halve(y)
        else:
            terms.append(ssim_pc)
    # cs and SSIM lie in [-1, 1]; a negative base to a fractional power is NaN (and so would be
    # the loss and every gradient), so negative terms (anti-correlated content) count as 0.
    # The relu's backward is a mask, so gradients stay finite even when a term is exactly 0.
    factors = torch.relu(torch.stack(terms)) ** w.view(-1, 1, 1)  # (scales, N, C)
    return _reduce(factors.prod(dim=0).mean(dim=1), reduction)


def psnr(x: Tensor, y: Tensor, data_range: float = 1.0) -> Tensor:
    """PSNR in dB of each image of a batch: ``10 log10(data_range**2 / MSE)``, shape (N,).

    The MSE is taken over all dimensions but the first; identical images give ``inf``.
    """
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        raise TypeError("psnr: x and y must be torch tensors")
    if x.shape != y.shape:
        raise ValueError(f"psnr: x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.dim() < 2:
        raise ValueError(f"psnr: expected a batch (N, ...), got shape {tuple(x.shape)}")
    if not (data_range > 0 and math.isfinite(data_range)):
        raise ValueError(f"data_range must be positive and finite, got {data_range!r}")
    dtype = torch.promote_types(x.dtype, y.dtype)
    if not dtype.is_floating_point:
        dtype = torch.get_default_dtype()
    mse = (x.to(dtype) - y.to(dtype)).pow(2).flatten(1).mean(1)
    return 20.0 * math.log10(data_range) - 10.0 * torch.log10(mse)


# --------------------------------------------------------------------------- lambdas


def lambda_for(quality: int, metric: str = "mse") -> float:
    """CompressAI's lambda for ``quality`` 1..8 (compressai convention), see :data:`LAMBDAS`."""
    name = _metric_name(metric)
    if name not in LAMBDAS:
        raise ValueError(f"no lambda table for metric {metric!r}: tables exist for {', '.join(map(repr, LAMBDAS))}")
    if isinstance(quality, bool):
        raise TypeError("quality must be an integer, got a bool")
    try:
        q = operator.index(quality)
    except TypeError:
        raise TypeError(f"quality must be an integer, got {type(quality).__name__}") from None
    table = LAMBDAS[name]
    if not 1 <= q <= len(table):
        raise ValueError(f"quality must be in 1..{len(table)}, got {q}")
    return table[q - 1]


def convert_lambda(lmbda: float, metric: str = "mse") -> float:
    """Lambda of the other convention with the same minimisers: ``1 / (lmbda * s)``.

    ``s`` is 255**2 for MSE, 255 for L1 and 1 for MS-SSIM. The map is its own inverse, so it
    converts compressai -> distortion and distortion -> compressai alike.
    """
    if not (lmbda > 0 and math.isfinite(lmbda)):
        raise ValueError(f"lmbda must be positive and finite to convert, got {lmbda!r}")
    return 1.0 / (lmbda * _COMPRESSAI_SCALE[_metric_name(metric)])


# --------------------------------------------------------------------------- loss


class RateDistortionLoss(nn.Module):
    """Rate-distortion loss of a learned codec's output.

    Args:
        lmbda: rate-distortion trade-off (non-negative; its meaning depends on ``convention``).
        metric: ``"mse"``, ``"ms-ssim"`` (``"ms_ssim"`` accepted) or ``"l1"``, on images in [0, 1].
        convention: ``"compressai"``: ``lmbda * s * D + bpp`` with ``D`` = MSE (``s = 255**2``),
            ``1 - MS-SSIM`` (``s = 1``) or L1 (``s = 255``), so :data:`LAMBDAS` apply;
            ``"distortion"``: ``D + lmbda * bpp``. See :func:`convert_lambda`.

    ``forward(output, target)`` takes ``output = {"x_hat": (N, C, H, W), "likelihoods":
    {name: tensor, ...}}`` and the target (N, C, H, W). The rate is
    ``bpp = sum over every likelihood tensor of sum(-log2 p) / (N * H * W)``: all entries are
    summed (``y`` and ``z`` alike), since every latent with likelihoods is entropy coded and
    sent, the hyper-latent ``z`` as much as ``y``; dropping ``z`` would make side information
    look free. Likelihoods are expected positive (models floor them, e.g. at 1e-9).

    Returns a dict: ``"loss"``, ``"bpp_loss"`` (total bpp), the raw metric value under
    CompressAI's key (``"mse_loss"``, ``"ms_ssim_loss"`` (MS-SSIM itself, not 1 - MS-SSIM) or
    ``"l1_loss"``), and ``"bpp_<name>"`` per likelihood tensor (``"bpp_y"``, ``"bpp_z"``, ...).
    """

    def __init__(self, lmbda: float = 0.01, metric: str = "mse", convention: str = "compressai"):
        super().__init__()
        self.metric = _metric_name(metric)
        if convention not in _CONVENTIONS:
            raise ValueError(f"unknown convention {convention!r}: expected 'compressai' (lmbda * D + R) "
                             f"or 'distortion' (D + lmbda * R)")
        if isinstance(lmbda, bool) or not isinstance(lmbda, numbers.Real) or not (lmbda >= 0 and math.isfinite(lmbda)):
            raise ValueError(f"lmbda must be a non-negative finite number, got {lmbda!r}")
        self.lmbda = float(lmbda)
        self.convention = convention

    def extra_repr(self) -> str:
        return f"lmbda={self.lmbda}, metric={self.metric!r}, convention={self.convention!r}"

    def forward(self, output: Mapping[str, object], target: Tensor) -> Dict[str, Tensor]:
        if not isinstance(output, Mapping):
            raise TypeError(f"output must be a dict with 'x_hat' and 'likelihoods', got {type(output).__name__}")
        for key in ("x_hat", "likelihoods"):
            if key not in output:
                raise ValueError(f"output has no {key!r} entry (keys: {sorted(map(str, output))}); expected "
                                 f"{{'x_hat': tensor, 'likelihoods': {{'y': tensor, ...}}}}")
        x_hat, likelihoods = output["x_hat"], output["likelihoods"]
        if not isinstance(target, Tensor) or target.dim() != 4:
            raise ValueError(f"target must be a tensor of shape (N, C, H, W), got "
                             f"{tuple(target.shape) if isinstance(target, Tensor) else type(target).__name__}")
        if not isinstance(x_hat, Tensor) or x_hat.shape != target.shape:
            raise ValueError(f"x_hat and target must have the same shape, got "
                             f"{tuple(x_hat.shape) if isinstance(x_hat, Tensor) else type(x_hat).__name__} "
                             f"and {tuple(target.shape)}")
        if not isinstance(likelihoods, Mapping) or len(likelihoods) == 0:
            raise ValueError("output['likelihoods'] must be a non-empty dict of likelihood tensors")

        n, _, h, w = target.shape
        num_pixels = n * h * w
        rates: Dict[str, Tensor] = {}
        for name, lik in likelihoods.items():
            if not isinstance(lik, Tensor):
                raise ValueError(f"likelihoods[{name!r}] must be a tensor, got {type(lik).__name__}")
            key = f"bpp_{name}"
            if key == "bpp_loss":
                raise ValueError("a likelihood tensor may not be named 'loss' (its rate key would clash with 'bpp_loss')")
            # at least float32, so half-precision likelihoods do not overflow the bit count
            lik = lik.to(torch.promote_types(lik.dtype, torch.float32))
            rates[key] = -torch.log2(lik).sum() / num_pixels
        bpp = sum(rates.values())

        if self.metric == "mse":
            value = F.mse_loss(x_hat, target)
            distortion = value
        elif self.metric == "l1":
            value = F.l1_loss(x_hat, target)
            distortion = value
        else:
            value = ms_ssim(x_hat, target, data_range=1.0)
            distortion = 1.0 - value

        if self.convention == "compressai":
            loss = self.lmbda * _COMPRESSAI_SCALE[self.metric] * distortion + bpp
        else:
            loss = distortion + self.lmbda * bpp
        return {"loss": loss, "bpp_loss": bpp, _METRIC_KEYS[self.metric]: value, **rates}
