"""Rate-distortion curves: Bjøntegaard deltas (BD-rate, BD-PSNR) and RD plots of results
files in CompressAI's schema (see :mod:`ransform.evaluation`)."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from ransform.files import write_atomic


def _numbers(values) -> bool:
    return isinstance(values, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def load_results(path) -> dict:
    """A results file, checked: 'bpp' and each quality metric present are equally long lists
    of numbers (a wrong file fails here, with its name, not inside the plotting)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a JSON results file ({exc})") from None
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, dict) or "bpp" not in results:
        raise ValueError(f"{path}: not a results file (expected {{'name', 'results': {{'bpp', ...}}}})")
    for key in ("bpp", "psnr-rgb", "ms-ssim-rgb"):
        if key in results and not (_numbers(results[key]) and len(results[key]) == len(results["bpp"])):
            raise ValueError(f"{path}: results {key!r} must be a list of numbers, one per 'bpp' entry")
    data["name"] = str(data.get("name", path))
    return data


def quality_db(results: dict, metric: str) -> np.ndarray:
    """PSNR as is; MS-SSIM as -10 log10(1 - MS-SSIM) dB, the usual way to plot it."""
    values = np.asarray(results[metric], dtype=np.float64)
    return -10 * np.log10(1 - values) if metric == "ms-ssim-rgb" else values


BD_METHODS = ("pchip", "akima", "cubic")  # pchip: the JVET common test conditions; cubic: Bjøntegaard's 2001 fit


def _curve(results: dict, metric: str):
    """(bpp, quality dB) of a results file: finite points, by increasing rate."""
    rate = np.asarray(results["results"]["bpp"], dtype=np.float64)
    quality = quality_db(results["results"], metric)
    keep = np.isfinite(rate) & np.isfinite(quality) & (rate > 0)
    if keep.sum() < 2:
        raise ValueError(f"{results['name']}: BD needs at least 2 points, got {int(keep.sum())}")
    order = np.argsort(rate[keep])
    return rate[keep][order], quality[keep][order]


def _bd(anchor: dict, test: dict, metric: str, method: str, delta) -> float:
    import warnings

    import bjontegaard
    if method not in BD_METHODS:
        raise ValueError(f"unknown BD method {method!r}; known: {', '.join(BD_METHODS)}")
    curves = [_curve(anchor, metric), _curve(test, metric)]
    if method == "cubic" and min(len(rate) for rate, _ in curves) < 4:
        raise ValueError("cubic BD fits 4 points per curve; use pchip for curves of 2 or 3 points")
    with warnings.catch_warnings():  # curves that do not overlap: NaN, which the table shows
        warnings.simplefilter("ignore")
        value = getattr(bjontegaard, delta)(*curves[0], *curves[1], method=method, require_matching_points=False,
                                            min_overlap=0)
    return float(value)


def bd_rate(anchor: dict, test: dict, metric: str = "psnr-rgb", method: str = "pchip") -> float:
    """Average rate difference (%) of ``test`` against ``anchor`` at equal quality, over the
    quality range both cover (negative: test needs fewer bits); NaN when they do not overlap.
    ``method``: "pchip" (default, as the JVET common test conditions), "akima", or "cubic"
    (Bjøntegaard's original polynomial, 4 points or more)."""
    return _bd(anchor, test, metric, method, "bd_rate")


def bd_quality(anchor: dict, test: dict, metric: str = "psnr-rgb", method: str = "pchip") -> float:
    """Average quality difference (dB) of ``test`` against ``anchor`` at equal rate, over the
    rate range both cover (BD-PSNR for metric="psnr-rgb"); ``method`` as :func:`bd_rate`."""
    return _bd(anchor, test, metric, method, "bd_psnr")


def bd_table(results: list[dict], metric: str = "psnr-rgb", method: str = "pchip") -> str:
    """A text table of every curve against the first."""
    anchor = results[0]
    unit = "BD-PSNR dB" if metric == "psnr-rgb" else "BD-MS-SSIM dB"
    lines = [f"anchor: {anchor['name']} ({method} interpolation)", f"{'curve':<36}{'BD-rate %':>12}{unit:>16}"]
    for r in results[1:]:
        try:
            rate = f"{bd_rate(anchor, r, metric, method):.2f}"
            quality = f"{bd_quality(anchor, r, metric, method):.3f}"
        except ValueError as exc:  # too few points: say so in the row, keep the others
            rate, quality = "n/a", str(exc).split(": ", 1)[-1]
        lines.append(f"{r['name']:<36}{rate:>12}{quality:>16}")
    return "\n".join(lines)


def plot(results: list[dict], path, metric: str = "psnr-rgb", title: str | None = None):
    """Writes the RD curves (bpp against PSNR or MS-SSIM in dB) to an image file."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError("plotting needs matplotlib: pip install matplotlib") from None
    fig, ax = plt.subplots(figsize=(7, 5), dpi=120)
    for r in results:
        rate = np.asarray(r["results"]["bpp"])
        order = np.argsort(rate)
        ax.plot(rate[order], quality_db(r["results"], metric)[order], marker="o", markersize=3, label=r["name"])
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel("PSNR (dB)" if metric == "psnr-rgb" else "MS-SSIM (dB)")
    ax.set_title(title or ("Rate-distortion" + (f" ({len(results)} curves)" if len(results) > 1 else "")))
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format=Path(path).suffix.lstrip(".").lower() or "png")
    plt.close(fig)
    write_atomic(path, buffer.getvalue())
    return path
