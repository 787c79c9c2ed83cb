"""``compressai.losses``: the rate-distortion loss with CompressAI's ``return_type``."""
from __future__ import annotations

from ransform.losses import RateDistortionLoss as _RateDistortionLoss

__all__ = ["RateDistortionLoss"]


class RateDistortionLoss(_RateDistortionLoss):
    """``lmbda * 255**2 * MSE + bpp`` (or MS-SSIM); ``return_type="all"`` returns the dict of
    terms, another key (``"loss"``, ``"bpp_loss"``, ...) returns that term alone."""

    def __init__(self, lmbda: float = 0.01, metric: str = "mse", return_type: str = "all"):
        super().__init__(lmbda, metric)
        self.return_type = return_type

    def forward(self, output, target):
        out = super().forward(output, target)
        if self.return_type == "all":
            return out
        if self.return_type not in out:
            raise ValueError(f"return_type must be 'all' or one of {sorted(out)}, got {self.return_type!r}")
        return out[self.return_type]
