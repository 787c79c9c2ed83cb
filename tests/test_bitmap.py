"""Per-element / per-pixel bit maps (ransform.bitmaps) and their PNG heat map."""
from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402
from ransform.bitmaps import BitMap, bitmap, colormap, plot_bitmap  # noqa: E402
from torch import nn  # noqa: E402

VIRIDIS_LOW = (0x44, 0x01, 0x54)
VIRIDIS_HIGH = (0xFD, 0xE7, 0x25)


class Dummy(nn.Module):
    """Stand-in for a compression model: likelihoods in (0, 1) derived deterministically
    from the input, one latent per (name, stride, channels) entry (a "hyperprior" by
    default: y at stride 16, z at stride 64, inputs padded to multiples of 64)."""

    def __init__(self, factor=64, latents=(("y", 16, 5), ("z", 64, 3))):
        super().__init__()
        self.downsampling_factor = factor
        self.spec = latents
        self.gain = nn.Parameter(torch.ones(()))
        self.sub = nn.Sequential(nn.Identity(), nn.BatchNorm2d(3))
        self.calls = []          # (training, grad enabled, input shape) per call
        self.last = None

    def forward(self, x):
        self.calls.append((self.training, torch.is_grad_enabled(), tuple(x.shape)))
        liks = {}
        for k, (name, stride, channels) in enumerate(self.spec):
            mean = F.avg_pool2d(x, stride).mean(1, keepdim=True) * self.gain
            ch = torch.arange(channels, dtype=x.dtype).view(1, channels, 1, 1)
            liks[name] = 0.02 + 0.96 * torch.frac(mean * (7.0 + ch) + 0.1234 * (ch + 1) + 0.05 * k)
        self.last = {"x_hat": x.clamp(0, 1), "likelihoods": liks}
        return self.last


class Fixed(nn.Module):
    """Returns likelihoods built by ``make(padded_height, padded_width)``."""

    def __init__(self, factor, make):
        super().__init__()
        self.downsampling_factor = factor
        self.make = make

    def forward(self, x):
        return {"x_hat": x, "likelihoods": self.make(x.shape[-2], x.shape[-1])}


def one_cells(stride, channels, cells):
    """Likelihoods all 1 (0 bits) except {(channel, row, col): likelihood}."""
    def make(hp, wp):
        lik = torch.ones(1, channels, hp // stride, wp // stride)
        for (c, i, j), p in cells.items():
            lik[0, c, i, j] = p
        return {"y": lik}
    return make


def rand_image(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g)


# --------------------------------------------------------------------------- bits


def test_latent_bits_are_exact_float64_minus_log2():
    model = Dummy()
    x = rand_image(2, 3, 70, 45)
    bm = bitmap(model, x)
    liks = model.last["likelihoods"]
    assert list(bm.latents) == ["y", "z"]
    for name, lik in liks.items():
        assert lik.dtype == torch.float32
        bits = bm.latents[name]
        assert bits.dtype == torch.float64 and bits.shape == lik.shape
        # the log is taken in float64: not -log2 in float32 converted afterwards
        assert torch.equal(bits, -torch.log2(lik.double()))
        assert not torch.equal(bits, (-torch.log2(lik)).double())
        assert bm.bits_by_latent[name] == pytest.approx(float(bits.sum()), rel=1e-12)
    assert bm.strides == {"y": (16, 16), "z": (64, 64)}
    assert bm.padding == (9, 10, 29, 29)        # 70x45 -> 128x64


@pytest.mark.parametrize("shape", [(1, 64, 64), (1, 70, 45), (1, 17, 130), (2, 33, 200)])
@pytest.mark.parametrize("factorized", [False, True])
def test_totals_preserved(shape, factorized):
    n, h, w = shape
    model = Dummy(16, (("y", 16, 6),)) if factorized else Dummy()
    x = rand_image(n, 3, h, w, seed=h * w)
    bm = bitmap(model, x)
    liks = model.last["likelihoods"]
    expected = math.fsum(
        math.fsum((-np.log2(v.double().numpy())).ravel()) for v in liks.values())
    assert isinstance(bm, BitMap)
    assert (bm.height, bm.width) == (h, w)
    assert bm.image.shape == (n, h, w) and bm.image.dtype == torch.float64
    assert bm.total_bits == pytest.approx(expected, rel=1e-12)
    assert float(bm.image.sum()) == pytest.approx(bm.total_bits, rel=1e-9)
    assert bm.bpp == pytest.approx(expected / (n * h * w), rel=1e-12)
    assert set(bm.per_latent_image) == set(liks)
    total_maps = torch.zeros_like(bm.image)
    for name, m in bm.per_latent_image.items():
        assert m.shape == (n, h, w)
        assert float(m.sum()) == pytest.approx(bm.bits_by_latent[name], rel=1e-9)
        # per image too, not only over the batch
        for i in range(n):
            assert float(m[i].sum()) == pytest.approx(float(bm.latents[name][i].sum()), rel=1e-9)
        total_maps += m
    torch.testing.assert_close(bm.image, total_maps, rtol=0, atol=1e-12)
    assert (bm.image >= 0).all()


def test_three_dim_input_is_a_batch_of_one():
    x = rand_image(3, 40, 50)
    a, b = bitmap(Dummy(), x), bitmap(Dummy(), x[None])
    assert a.image.shape == (1, 40, 50)
    assert torch.equal(a.image, b.image) and a.total_bits == b.total_bits


# --------------------------------------------------------------------------- spreading


def test_one_cell_spreads_over_exactly_its_pixels():
    # 64x64, no padding; cell (1, 2) of a stride-16 latent: 2 + 1 = 3 bits over 16x16 pixels
    model = Fixed(16, one_cells(16, 2, {(0, 1, 2): 0.25, (1, 1, 2): 0.5}))
    bm = bitmap(model, torch.full((3, 64, 64), 0.5))
    expected = torch.zeros(1, 64, 64, dtype=torch.float64)
    expected[0, 16:32, 32:48] = 3.0 / 256
    assert torch.equal(bm.image, expected)
    assert bm.total_bits == 3.0 and bm.bpp == 3.0 / 4096


def test_border_cells_give_bits_only_to_original_pixels():
    # 70x45 padded to 80x48: top 5, bottom 5, left 1, right 2.
    # cell (0, 0) covers padded rows 0..15, cols 0..15 -> original rows 0..10, cols 0..14;
    # cell (4, 2) covers padded rows 64..79, cols 32..47 -> original rows 59..69, cols 31..44.
    model = Fixed(16, one_cells(16, 1, {(0, 0, 0): 0.5 ** 3, (0, 4, 2): 0.5 ** 5}))
    bm = bitmap(model, torch.zeros(1, 3, 70, 45))
    assert bm.padding == (1, 2, 5, 5)
    expected = torch.zeros(1, 70, 45, dtype=torch.float64)
    expected[0, 0:11, 0:15] = 3.0 / (11 * 15)
    expected[0, 59:70, 31:45] = 5.0 / (11 * 14)
    torch.testing.assert_close(bm.image, expected, rtol=1e-15, atol=0)
    assert float(bm.image.sum()) == pytest.approx(8.0, rel=1e-14)


def test_fully_padded_cells_give_bits_to_nearest_covered_cell():
    # 17x130 padded to multiples of 64 -> 64x192: top 23, bottom 24, left 31, right 31.
    # Stride-16 cells: rows 0 and 3 and columns 0 and 11 cover only padding.
    # Cell (1, 1) covers padded rows 23..31 x col 31 -> original rows 0..8 x col 0;
    # cell (2, 10) covers padded rows 32..39 x col 160 -> original rows 9..16 x col 129.
    cells = {(0, 0, 0): 0.5, (0, 1, 1): 0.25, (0, 3, 11): 0.5 ** 4}
    bm = bitmap(Fixed(64, one_cells(16, 1, cells)), torch.zeros(3, 17, 130))
    assert bm.padding == (31, 31, 23, 24)
    expected = torch.zeros(1, 17, 130, dtype=torch.float64)
    expected[0, 0:9, 0] = (1.0 + 2.0) / 9       # (0, 0) -> nearest covered (1, 1)
    expected[0, 9:17, 129] = 4.0 / 8            # (3, 11) -> nearest covered (2, 10)
    torch.testing.assert_close(bm.image, expected, rtol=1e-15, atol=0)
    assert float(bm.image.sum()) == pytest.approx(7.0, rel=1e-14)


def test_fully_padded_edge_cells_keep_their_columns():
    # A padding-only row of cells (row 0) sends each cell's bits straight down to row 1 of
    # the same column, not to one corner cell.
    cells = {(0, 0, j): 0.5 for j in range(12)}
    bm = bitmap(Fixed(64, one_cells(16, 1, cells)), torch.zeros(3, 17, 130))
    # row 1 of cells covers original rows 0..8; columns: cell 1 -> col 0, cells 2..9 -> 16
    # columns each, cell 10 -> cols 129 only; cells 0 and 11 fold into 1 and 10.
    row = torch.zeros(130, dtype=torch.float64)
    row[0] = 2.0 / 9
    for j in range(2, 10):
        lo = (j * 16) - 31
        row[lo:lo + 16] = 1.0 / (9 * 16)
    row[129] = 2.0 / 9
    expected = torch.zeros(1, 17, 130, dtype=torch.float64)
    expected[0, 0:9] = row
    torch.testing.assert_close(bm.image, expected, rtol=1e-14, atol=0)


# --------------------------------------------------------------------------- model handling


def test_eval_no_grad_and_training_flags_restored():
    model = Dummy()
    model.train()
    model.sub[1].eval()                        # a submodule in another mode stays so
    x = rand_image(1, 3, 20, 20)
    bitmap(model, x)
    assert model.calls[-1] == (False, False, (1, 3, 64, 64))
    assert model.training and model.sub.training and not model.sub[1].training
    model.eval()
    bitmap(model, x)
    assert not model.training and not model.sub.training


def test_training_flag_restored_when_the_model_raises():
    class Boom(Dummy):
        def forward(self, x):
            raise RuntimeError("boom")
    model = Boom()
    model.train()
    with pytest.raises(RuntimeError, match="boom"):
        bitmap(model, rand_image(3, 16, 16))
    assert model.training and model.sub[1].training


def test_input_moves_to_the_model_dtype():
    model = Dummy().double()
    bm = bitmap(model, rand_image(1, 3, 30, 30))
    assert model.last["likelihoods"]["y"].dtype == torch.float64
    assert torch.equal(bm.latents["y"], -torch.log2(model.last["likelihoods"]["y"]))


@pytest.mark.parametrize("x, exc", [
    (np.zeros((3, 8, 8), np.float32), TypeError),
    ([[[0.0]]], TypeError),
    (torch.zeros(3, 8, 8, dtype=torch.uint8), TypeError),
    (torch.zeros(8, 8), ValueError),
    (torch.zeros(1, 1, 3, 8, 8), ValueError),
    (torch.zeros(1, 4, 8, 8), ValueError),
    (torch.zeros(1, 1, 8, 8), ValueError),
    (torch.zeros(0, 3, 8, 8), ValueError),
    (torch.zeros(1, 3, 0, 8), ValueError),
    (torch.full((3, 8, 8), 1.5), ValueError),
    (torch.full((3, 8, 8), -0.1), ValueError),
    (torch.full((3, 8, 8), float("nan")), ValueError),
])
def test_bad_inputs(x, exc):
    with pytest.raises(exc):
        bitmap(Dummy(), x)


def test_bad_models():
    x = torch.zeros(3, 16, 16)

    class NoFactor(nn.Module):
        def forward(self, x):
            return {"likelihoods": {"y": torch.ones(1, 1, 1, 1)}}

    with pytest.raises(TypeError, match="downsampling_factor"):
        bitmap(NoFactor(), x)
    with pytest.raises(TypeError):
        bitmap(lambda t: t, x)
    bad = Dummy()
    bad.downsampling_factor = 0
    with pytest.raises(ValueError):
        bitmap(bad, x)
    bad.downsampling_factor = 16.0
    with pytest.raises(TypeError):
        bitmap(bad, x)
    with pytest.raises(TypeError, match="likelihoods"):
        bitmap(Fixed(16, lambda h, w: None), x)

    class TensorOut(Fixed):
        def forward(self, x):
            return x

    with pytest.raises(TypeError, match="likelihoods"):
        bitmap(TensorOut(16, None), x)
    with pytest.raises(ValueError, match="divide"):       # 16 / 3 is no integer stride
        bitmap(Fixed(16, lambda h, w: {"y": torch.ones(1, 1, 3, 3)}), x)
    with pytest.raises(ValueError):                       # wrong batch size
        bitmap(Fixed(16, lambda h, w: {"y": torch.ones(2, 1, 1, 1)}), x)
    with pytest.raises(TypeError):
        bitmap(Fixed(16, lambda h, w: {}), x)


# --------------------------------------------------------------------------- plotting


def colour_bar_columns(arr, x_from):
    """Columns right of x_from holding a vertical viridis gradient (yellow above purple)."""
    found = []
    for c in range(x_from, arr.shape[1]):
        col = arr[:, c, :].astype(int)
        if len({tuple(p) for p in col}) < 100:
            continue
        # matplotlib draws the bar's 256 colours into fewer rows: its ends are near, not at, the extremes
        hi = np.nonzero(np.abs(col - VIRIDIS_HIGH).sum(1) <= 24)[0]
        lo = np.nonzero(np.abs(col - VIRIDIS_LOW).sum(1) <= 24)[0]
        if hi.size and lo.size and hi.max() < lo.min():
            found.append(c)
    return found


def test_colormap_endpoints_and_order():
    rgb = colormap(np.linspace(0, 1, 256))
    assert rgb.shape == (256, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0]) == VIRIDIS_LOW and tuple(rgb[-1]) == VIRIDIS_HIGH
    assert tuple(colormap(np.array(-3.0))) == VIRIDIS_LOW
    assert tuple(colormap(np.array(7.0))) == VIRIDIS_HIGH
    # perceptually ordered: dark to bright (steps of 1/16, above 8-bit rounding noise)
    luminance = colormap(np.linspace(0, 1, 17)).astype(float) @ np.array([0.299, 0.587, 0.114])
    assert (np.diff(luminance) > 2).all()
    assert len({tuple(p) for p in rgb}) > 200     # a gradient, not a few flat bands


def test_plot_kodak_size_with_image(tmp_path):
    x = rand_image(3, 512, 768)
    bm = bitmap(Dummy(), x)
    out = plot_bitmap(bm, tmp_path / "bits.png", image=x, title="kodim-like")
    assert out == tmp_path / "bits.png"
    with Image.open(out) as im:
        assert im.format == "PNG"
        im.load()
        arr = np.asarray(im.convert("RGB"))
    height, width = arr.shape[:2]
    assert height > 512 and width > 2 * 768
    # the original is shown unchanged (1:1 at this size) near the top left corner
    # (up to float rounding of the 8-bit conversion)
    src = (x.permute(1, 2, 0).numpy() * 255).round().astype(int)
    def shown_at(r, c):
        if np.abs(arr[r, c:c + 16].astype(int) - src[0, :16]).max() > 1:   # quick reject
            return False
        return np.abs(arr[r:r + 512, c:c + 768].astype(int) - src).max() <= 1

    hits = [(r, c) for r in range(min(100, height - 511)) for c in range(40) if shown_at(r, c)]
    assert len(hits) == 1
    assert colour_bar_columns(arr, 2 * 768)


def test_plot_heat_map_shows_the_hot_cell(tmp_path):
    # only cell (1, 2) spends bits: the one square of top-colour pixels outside the bar
    model = Fixed(16, one_cells(16, 1, {(0, 1, 2): 0.125}))
    bm = bitmap(model, torch.zeros(3, 64, 64))
    out = plot_bitmap(bm, str(tmp_path / "hot.png"))
    arr = np.asarray(Image.open(out).convert("RGB"))
    bar = colour_bar_columns(arr, 64)
    assert bar
    heat = arr[:, :min(bar) - 4].astype(int)  # left of the bar and its anti-aliased frame
    hot = np.abs(heat - VIRIDIS_HIGH).sum(-1) <= 6
    cold = np.abs(heat - VIRIDIS_LOW).sum(-1) <= 6
    rows, cols = np.nonzero(hot)
    side_r, side_c = np.ptp(rows) + 1, np.ptp(cols) + 1
    assert side_r == side_c >= 16 and hot.sum() == side_r * side_c
    assert cold.sum() == 15 * hot.sum()          # the other 15 of 16 cells: zero bits


@pytest.mark.parametrize("log", [False, True])
def test_plot_small_batch_log_and_pil_image(tmp_path, log):
    x = rand_image(2, 3, 17, 130)
    bm = bitmap(Dummy(), x)
    pil = Image.fromarray((x[1].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    out = plot_bitmap(bm, tmp_path / "small.png", image=pil, index=1, log=log)
    with Image.open(out) as im:
        assert im.format == "PNG"
        assert im.width > 2 * 130 and im.height > 17
        arr = np.asarray(im.convert("RGB"))
    assert colour_bar_columns(arr, 2 * 130)


def test_plot_bad_arguments(tmp_path):
    bm = bitmap(Dummy(), rand_image(3, 20, 30))
    with pytest.raises(TypeError):
        plot_bitmap({"image": bm.image}, tmp_path / "a.png")
    with pytest.raises(IndexError):
        plot_bitmap(bm, tmp_path / "a.png", index=1)
    with pytest.raises(ValueError):
        plot_bitmap(bm, tmp_path / "a.png", image=torch.zeros(3, 30, 20))
    with pytest.raises(TypeError):
        plot_bitmap(bm, tmp_path / "a.png", image=np.zeros((20, 30, 3)))
    assert not (tmp_path / "a.png").exists()
