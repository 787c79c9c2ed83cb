"""ransform.losses: MS-SSIM / SSIM, PSNR, the rate-distortion loss and the lambda table."""
from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ransform import losses  # noqa: E402

ms_ssim, ssim, psnr = losses.ms_ssim, losses.ssim, losses.psnr
RateDistortionLoss, lambda_for, convert_lambda = losses.RateDistortionLoss, losses.lambda_for, losses.convert_lambda


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """These tensors are small; on a busy 2-core CI machine torch's OpenMP threads waiting on a
    descheduled sibling made single calls take seconds instead of milliseconds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------- deterministic test images


def hash_uniform(seed, shape):
    """Uniforms in [0, 1) from a splitmix64 hash of (seed, flat index): identical on every
    machine and numpy/torch version (no library RNG stream involved)."""
    n = int(np.prod(shape))
    with np.errstate(over="ignore"):
        z = np.arange(n, dtype=np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return ((z >> np.uint64(11)).astype(np.float64) / 2.0**53).reshape(shape)


def image_pair(seed, shape, noise):
    """A smooth-plus-texture image in [0, 1] and a noisy copy (channel noise x0.25, x1, x2.5), float64."""
    n, c, h, w = shape
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    phase = hash_uniform(seed, (n, c, 1, 1)) * 6.283
    base = 0.5 + 0.25 * np.sin(xx / 9.0 + phase) * np.cos(yy / 13.0 - phase)
    x = np.clip(base + 0.2 * (hash_uniform(seed + 1, shape) - 0.5), 0, 1)
    per_channel = np.array([0.25, 1.0, 2.5][:c] + [1.0] * max(0, c - 3)).reshape(1, c, 1, 1)
    y = np.clip(x + noise * per_channel * (hash_uniform(seed + 2, shape) - 0.5), 0, 1)
    return torch.from_numpy(x), torch.from_numpy(y)


# --------------------------------------------------------------------------- MS-SSIM / SSIM

# Reference values computed once with pytorch-msssim 1.0.0 (pytorch_msssim.ms_ssim / .ssim,
# size_average=False, default window 11 / 1.5, K=(0.01, 0.03)) on the image_pair() inputs above,
# float64, in a separate virtual environment; the package is not a dependency of ransform.
# "odd" and "range255" have odd sides at some scale, so they pin the pooling of odd sides.
# pytorch-msssim builds its Gaussian window in float32, ransform in float64: the two differ by
# < 1e-6 (with a float32-built window they agree to 1e-12), hence the 2e-6 tolerance.
REFERENCE = [
    # name, seed, shape, noise, data_range, MS-SSIM per image, SSIM per image
    ("even", 1, (1, 3, 192, 192), 0.3, 1.0, [0.849334464869], [0.545458979625]),
    ("odd", 2, (2, 3, 181, 203), 0.6, 1.0, [0.699942004268, 0.699136099825], [0.361995725122, 0.363343145747]),
    ("far", 3, (1, 3, 192, 176), 2.0, 1.0, [0.419204287210], [0.112497682894]),
    ("range255", 4, (1, 3, 170, 161), 0.4, 255.0, [0.791626565908], [0.467561513140]),
]


@pytest.mark.parametrize("case", REFERENCE, ids=[c[0] for c in REFERENCE])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_ms_ssim_and_ssim_match_reference(case, dtype):
    _, seed, shape, noise, data_range, ref_ms, ref_ss = case
    x, y = image_pair(seed, shape, noise)
    x, y = (x * data_range).to(dtype), (y * data_range).to(dtype)
    got_ms = ms_ssim(x, y, data_range=data_range, reduction="none")
    got_ss = ssim(x, y, data_range=data_range, reduction="none")
    assert got_ms.shape == (shape[0],) and got_ms.dtype == dtype
    np.testing.assert_allclose(got_ms.double().numpy(), ref_ms, rtol=0, atol=2e-6)
    np.testing.assert_allclose(got_ss.double().numpy(), ref_ss, rtol=0, atol=2e-6)
    # the default reduction is the batch mean
    assert ms_ssim(x, y, data_range=data_range).item() == pytest.approx(float(np.mean(ref_ms)), abs=2e-6)


def test_ms_ssim_of_identical_images_is_one():
    x, _ = image_pair(7, (1, 3, 161, 176), 0.0)
    for t in (x, x.float(), torch.zeros(1, 1, 161, 161)):
        np.testing.assert_allclose(ms_ssim(t, t.clone(), reduction="none").double().numpy(), 1.0, atol=1e-6)
        np.testing.assert_allclose(ssim(t, t.clone(), reduction="none").double().numpy(), 1.0, atol=1e-6)


def test_ms_ssim_orders_distortions_and_is_symmetric():
    x, mild = image_pair(8, (1, 3, 161, 161), 0.1)
    _, strong = image_pair(8, (1, 3, 161, 161), 0.8)
    a, b = ms_ssim(x, mild).item(), ms_ssim(x, strong).item()
    assert 0 < b < a < 1
    assert ms_ssim(mild, x).item() == pytest.approx(a, abs=1e-12)


def test_ms_ssim_per_image_values_are_independent_of_the_batch():
    x, y = image_pair(9, (3, 3, 161, 163), 0.5)
    batch = ms_ssim(x, y, reduction="none")
    singles = torch.stack([ms_ssim(x[i:i + 1], y[i:i + 1]) for i in range(3)])
    np.testing.assert_allclose(batch.numpy(), singles.numpy(), rtol=0, atol=1e-12)
    assert len(set(np.round(batch.numpy(), 9))) == 3  # three different images, three values


def test_ms_ssim_weights_and_window_options():
    x, y = image_pair(10, (1, 3, 176, 176), 0.5)
    full = ms_ssim(x, y).item()
    # a single scale of weight 1 is SSIM itself
    assert ms_ssim(x, y, weights=[1.0]).item() == pytest.approx(ssim(x, y).item(), abs=1e-12)
    # three scales need only (11 - 1) * 4 + 1 = 41 pixels
    small_x, small_y = x[..., :41, :41], y[..., :41, :41]
    assert 0 < ms_ssim(small_x, small_y, weights=[0.3, 0.3, 0.4]).item() < 1
    assert ms_ssim(x, y, window_size=7, sigma=1.0).item() != pytest.approx(full, abs=1e-6)


def test_ms_ssim_of_anticorrelated_images_is_zero_not_nan():
    # every cs term is negative: without the relu, a negative base to a fractional power is NaN
    x, _ = image_pair(11, (1, 3, 161, 161), 0.0)
    a = (1 - x).requires_grad_(True)
    value = ms_ssim(a, x)
    assert value.item() == 0.0
    value.backward()
    assert torch.isfinite(a.grad).all()


@pytest.mark.parametrize("kind", ["identical", "near", "noisy", "unrelated", "constant"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_ms_ssim_gradient_is_finite(kind, dtype):
    x, noisy = image_pair(12, (1, 3, 168, 161), 0.5)
    x, noisy = x.to(dtype), noisy.to(dtype)
    start = {
        "identical": x.clone(),
        "near": (x + 1e-4 * (torch.from_numpy(hash_uniform(13, x.shape)).to(dtype) - 0.5)),
        "noisy": noisy,
        "unrelated": torch.from_numpy(hash_uniform(14, x.shape)).to(dtype),
        "constant": torch.full_like(x, 0.5),
    }[kind]
    a = start.clone().requires_grad_(True)
    loss = 1 - ms_ssim(a, x)
    loss.backward()
    assert a.grad is not None and torch.isfinite(a.grad).all()
    if kind == "identical":
        assert a.grad.abs().max().item() < 1e-6  # a maximum: no slope
    else:
        assert a.grad.abs().max().item() > 0
    if kind in ("noisy", "unrelated"):
        # a small step against the gradient improves MS-SSIM: the gradient is the right one
        with torch.no_grad():
            stepped = a - 0.01 * a.grad / a.grad.abs().max()
        assert ms_ssim(stepped, x).item() > 1 - loss.item()


def test_ms_ssim_rejects_small_images_with_a_clear_message():
    x = torch.rand(1, 3, 160, 300)
    with pytest.raises(ValueError, match="at least 161"):
        ms_ssim(x, x)
    with pytest.raises(ValueError, match="at least 161"):
        ms_ssim(x.transpose(2, 3), x.transpose(2, 3))
    ok = torch.rand(1, 3, 161, 161)
    assert ms_ssim(ok, ok).item() == pytest.approx(1.0)  # the boundary size works
    with pytest.raises(ValueError, match="smaller than"):
        ssim(torch.rand(1, 1, 10, 20), torch.rand(1, 1, 10, 20))


def test_ms_ssim_rejects_bad_arguments():
    x = torch.rand(1, 3, 176, 176)
    with pytest.raises(ValueError, match="same shape"):
        ms_ssim(x, x[:, :, :-1])
    with pytest.raises(ValueError, match="same shape"):
        ssim(x, x[:, :2])
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        ms_ssim(x[0], x[0])
    with pytest.raises(ValueError, match="odd"):
        ms_ssim(x, x, window_size=10)
    with pytest.raises(ValueError, match="reduction"):
        ms_ssim(x, x, reduction="sum")
    with pytest.raises(ValueError, match="data_range"):
        ssim(x, x, data_range=0)
    with pytest.raises(TypeError):
        ms_ssim(x.numpy(), x.numpy())


def test_ms_ssim_data_range_scales_with_the_images():
    x, y = image_pair(15, (1, 3, 161, 161), 0.4)
    unit = ms_ssim(x, y).item()
    assert ms_ssim(255 * x, 255 * y, data_range=255).item() == pytest.approx(unit, abs=1e-10)
    assert ms_ssim(255 * x, 255 * y, data_range=1.0).item() != pytest.approx(unit, abs=1e-3)


# --------------------------------------------------------------------------- PSNR


def test_psnr_of_known_mse():
    x = torch.zeros(3, 3, 8, 8, dtype=torch.float64)
    y = x.clone()
    y[0] += 0.1        # MSE 1e-2 -> 20 dB
    y[1] += 0.01       # MSE 1e-4 -> 40 dB
    got = psnr(y, x)
    assert got.shape == (3,)
    assert got[0].item() == pytest.approx(20.0, abs=1e-9)
    assert got[1].item() == pytest.approx(40.0, abs=1e-9)
    assert got[2].item() == math.inf
    assert psnr(255 * y, 255 * x, data_range=255)[0].item() == pytest.approx(20.0, abs=1e-9)
    # half the pixels off by 0.2: MSE 0.02
    z = x[:1].clone()
    z[..., :4] = 0.2
    assert psnr(z, x[:1]).item() == pytest.approx(10 * math.log10(1 / 0.02), abs=1e-9)
    with pytest.raises(ValueError, match="same shape"):
        psnr(x, x[:, :2])


# --------------------------------------------------------------------------- rate-distortion loss


def model_output(x_hat, y_lik=0.5, z_lik=0.25):
    """Likelihoods y: (2, 8, 2, 3) = 96 values, z: (2, 4, 1, 1) = 8 values (for a batch of 2)."""
    return {
        "x_hat": x_hat,
        "likelihoods": {
            "y": torch.full((2, 8, 2, 3), y_lik, dtype=torch.float64),
            "z": torch.full((2, 4, 1, 1), z_lik, dtype=torch.float64),
        },
    }


# target (2, 3, 4, 6): 2 * 4 * 6 = 48 pixels; y: 96 * 1 bit = 2 bpp, z: 8 * 2 bits = 1/3 bpp
PIXELS = 48
BPP_Y, BPP_Z = 96 / PIXELS, 16 / PIXELS


def small_pair():
    target = torch.zeros(2, 3, 4, 6, dtype=torch.float64)
    x_hat = torch.full_like(target, 0.1)  # MSE 0.01, L1 0.1
    return x_hat, target


def test_rate_sums_every_likelihood_tensor():
    x_hat, target = small_pair()
    out = RateDistortionLoss(0.01)(model_output(x_hat), target)
    assert out["bpp_y"].item() == pytest.approx(BPP_Y, abs=1e-12)
    assert out["bpp_z"].item() == pytest.approx(BPP_Z, abs=1e-12)
    assert out["bpp_loss"].item() == pytest.approx(BPP_Y + BPP_Z, abs=1e-12)
    # a third tensor is counted too, and the pixel count comes from the target, not x_hat's dtype etc.
    output = model_output(x_hat)
    output["likelihoods"]["w"] = torch.full((5,), 0.125, dtype=torch.float64)  # 15 bits
    out3 = RateDistortionLoss(0.01)(output, target)
    assert out3["bpp_loss"].item() == pytest.approx(BPP_Y + BPP_Z + 15 / PIXELS, abs=1e-12)
    assert set(out3) == {"loss", "bpp_loss", "mse_loss", "bpp_y", "bpp_z", "bpp_w"}


def test_rate_of_mixed_likelihoods():
    x_hat, target = small_pair()
    lik_y = torch.tensor([[0.5, 0.25, 1.0, 1 / 1024]], dtype=torch.float64)  # 1 + 2 + 0 + 10 bits
    out = RateDistortionLoss(0.0)({"x_hat": x_hat, "likelihoods": {"y": lik_y}}, target)
    assert out["bpp_loss"].item() == pytest.approx(13 / PIXELS, abs=1e-12)
    assert out["loss"].item() == pytest.approx(13 / PIXELS, abs=1e-12)  # lmbda 0: rate only


@pytest.mark.parametrize("metric, key, value, scale", [
    ("mse", "mse_loss", 0.01, 255.0**2),
    ("l1", "l1_loss", 0.1, 255.0),
])
def test_pixel_metric_losses_exact(metric, key, value, scale):
    x_hat, target = small_pair()
    lmbda = 0.0067
    out = RateDistortionLoss(lmbda, metric=metric)(model_output(x_hat), target)
    assert out[key].item() == pytest.approx(value, rel=1e-12)
    assert out["loss"].item() == pytest.approx(lmbda * scale * value + BPP_Y + BPP_Z, rel=1e-12)
    dist = RateDistortionLoss(lmbda, metric=metric, convention="distortion")(model_output(x_hat), target)
    assert dist[key].item() == pytest.approx(value, rel=1e-12)
    assert dist["loss"].item() == pytest.approx(value + lmbda * (BPP_Y + BPP_Z), rel=1e-12)


def test_ms_ssim_loss_both_conventions():
    target, x_hat = image_pair(16, (2, 3, 161, 165), 0.5)
    output = model_output(x_hat)
    pixels = 2 * 161 * 165
    bpp = (96 + 16) / pixels
    score = ms_ssim(x_hat, target).item()
    assert 0.3 < score < 0.99
    out = RateDistortionLoss(8.73, metric="ms-ssim")(output, target)
    assert out["ms_ssim_loss"].item() == pytest.approx(score, abs=1e-12)  # the raw MS-SSIM
    assert out["bpp_loss"].item() == pytest.approx(bpp, rel=1e-12)
    assert out["loss"].item() == pytest.approx(8.73 * (1 - score) + bpp, rel=1e-12)
    dist = RateDistortionLoss(0.5, metric="ms_ssim", convention="distortion")(output, target)
    assert dist["loss"].item() == pytest.approx((1 - score) + 0.5 * bpp, rel=1e-12)
    # perfect reconstruction: the loss is the rate alone
    perfect = RateDistortionLoss(8.73, metric="ms-ssim")(model_output(target.clone()), target)
    assert perfect["ms_ssim_loss"].item() == pytest.approx(1.0, abs=1e-12)
    assert perfect["loss"].item() == pytest.approx(bpp, abs=1e-9)


def test_loss_gradients_reach_reconstruction_and_likelihoods():
    for metric in ("mse", "l1", "ms-ssim"):
        target, x_hat = image_pair(17, (2, 3, 161, 161), 0.5)
        x_hat.requires_grad_(True)
        y = torch.full((2, 8, 2, 3), 0.5, dtype=torch.float64, requires_grad=True)
        z = torch.full((2, 4, 1, 1), 0.25, dtype=torch.float64, requires_grad=True)
        out = RateDistortionLoss(1.0, metric=metric)({"x_hat": x_hat, "likelihoods": {"y": y, "z": z}}, target)
        out["loss"].backward()
        assert torch.isfinite(x_hat.grad).all() and x_hat.grad.abs().max() > 0, metric
        # d(-log2 p)/dp / pixels = -1 / (p ln 2 * pixels)
        pixels = 2 * 161 * 161
        np.testing.assert_allclose(y.grad.numpy(), -1 / (0.5 * math.log(2) * pixels), rtol=1e-12)
        np.testing.assert_allclose(z.grad.numpy(), -1 / (0.25 * math.log(2) * pixels), rtol=1e-12)


def test_half_precision_likelihoods_do_not_overflow():
    x_hat, target = small_pair()
    lik = torch.full((100000,), 0.5, dtype=torch.float16)  # 100000 bits > float16's max 65504
    out = RateDistortionLoss(0.01)({"x_hat": x_hat, "likelihoods": {"y": lik}}, target)
    assert out["bpp_y"].item() == pytest.approx(100000 / PIXELS, rel=1e-6)


def test_conventions_agree_through_convert_lambda():
    x_hat, target = small_pair()
    for metric, lmbda in (("mse", 0.0130), ("l1", 0.05), ("ms-ssim", 16.64)):
        if metric == "ms-ssim":
            target, x_hat = image_pair(18, (2, 3, 161, 161), 0.5)
        output = model_output(x_hat)
        a = RateDistortionLoss(lmbda, metric=metric)(output, target)["loss"].item()
        b = RateDistortionLoss(convert_lambda(lmbda, metric), metric=metric, convention="distortion")(
            output, target)["loss"].item()
        scale = {"mse": 255.0**2, "l1": 255.0, "ms-ssim": 1.0}[metric]
        assert a == pytest.approx(lmbda * scale * b, rel=1e-12), metric
        assert convert_lambda(convert_lambda(lmbda, metric), metric) == pytest.approx(lmbda, rel=1e-12)
    assert convert_lambda(0.0067, "mse") == pytest.approx(0.0022952, rel=1e-4)


def test_loss_rejects_bad_configuration():
    with pytest.raises(ValueError, match="unknown metric"):
        RateDistortionLoss(metric="psnr")
    with pytest.raises(ValueError, match="unknown convention"):
        RateDistortionLoss(convention="lagrange")
    with pytest.raises(ValueError, match="lmbda"):
        RateDistortionLoss(lmbda=-1.0)
    with pytest.raises(ValueError, match="lmbda"):
        RateDistortionLoss(lmbda=float("nan"))


def test_loss_rejects_bad_inputs():
    x_hat, target = small_pair()
    loss = RateDistortionLoss()
    with pytest.raises(ValueError, match="likelihoods"):
        loss({"x_hat": x_hat}, target)
    with pytest.raises(ValueError, match="likelihoods"):
        loss({"x_hat": x_hat, "likelihoods": {}}, target)
    with pytest.raises(ValueError, match="x_hat"):
        loss({"likelihoods": {"y": torch.full((3,), 0.5)}}, target)
    with pytest.raises(ValueError, match="same shape"):
        loss(model_output(x_hat[:, :, :3]), target)
    with pytest.raises(ValueError, match="same shape"):
        loss(model_output(x_hat[:1]), target)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        loss(model_output(x_hat[0]), target[0])
    with pytest.raises(TypeError):
        loss((x_hat, {"y": torch.full((3,), 0.5)}), target)
    with pytest.raises(ValueError, match="too small"):
        RateDistortionLoss(metric="ms-ssim")(model_output(x_hat), target)


# --------------------------------------------------------------------------- lambdas


def test_lambda_for():
    assert lambda_for(1) == 0.0018
    assert lambda_for(3, "mse") == 0.0067
    assert lambda_for(8, "mse") == 0.1800
    assert lambda_for(1, "ms-ssim") == 2.40
    assert lambda_for(5, "ms_ssim") == 31.73
    assert lambda_for(8, "ms-ssim") == 220.00
    assert lambda_for(np.int64(2)) == 0.0035
    # the whole published table (CompressAI's zoo lambdas), typed independently of losses.py
    assert [lambda_for(q, "mse") for q in range(1, 9)] == [
        0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800]
    assert [lambda_for(q, "ms-ssim") for q in range(1, 9)] == [
        2.40, 4.58, 8.73, 16.64, 31.73, 60.50, 115.37, 220.00]
    for table in losses.LAMBDAS.values():
        assert len(table) == 8 and all(a < b for a, b in zip(table, table[1:]))
    for bad in (0, 9, -1):
        with pytest.raises(ValueError, match="1..8"):
            lambda_for(bad)
    with pytest.raises(TypeError):
        lambda_for(2.5)
    with pytest.raises(ValueError, match="no lambda table"):
        lambda_for(3, "l1")
    with pytest.raises(ValueError, match="unknown metric"):
        lambda_for(3, "psnr")
