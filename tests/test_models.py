"""Published models: compress/decompress round-trips to forward's reconstruction, sizes
match forward's estimate, checkpoints reload, bad input raises."""
import io
import math

import pytest

torch = pytest.importorskip("torch")

from ransform import models  # noqa: E402
from ransform.image import crop, pad  # noqa: E402
from ransform.layers import AttentionBlock  # noqa: E402

SMALL = {"N": 16, "M": 24}


# Residual blocks keep more of the input's energy: a smaller gain gives a similar spread.
# ELIC's random parameter networks predict small scales: a larger gain puts values at the bound.
LATENT_GAIN = {"cheng2020-anchor": 4.0, "cheng2020-attn": 4.0, "cheng2020-anchor-checkerboard": 4.0,
               "elic2022-official": 1.3, "elic2022-chandelier": 1.3}


def small_model(name, seed=0, latent_gain=None):
    """A random-weight model whose latents are spread over many symbols (random analysis
    transforms give |y| < 1 otherwise, and a test of all-zero symbols proves little)."""
    latent_gain = LATENT_GAIN.get(name, 8.0) if latent_gain is None else latent_gain
    torch.manual_seed(seed)
    net = models.MODELS[name](**models.sizes_from_name(name, SMALL))
    with torch.no_grad():
        last = next(m for m in reversed(net.g_a) if not isinstance(m, AttentionBlock))  # the residual block passes it on
        (last.weight if hasattr(last, "weight") else last[0].weight).mul_(latent_gain)
    net.use_quality(max(models.QUALITIES[name]))  # variable-rate models: the finest rate (gain 1)
    net.eval()
    net.update()
    return net


def image(h=64, w=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    smooth = torch.stack([torch.sin(6 * xx + c) * torch.cos(4 * yy - c) for c in range(3)]) * 0.4 + 0.5
    return (smooth + 0.05 * torch.randn(3, h, w, generator=g)).clamp(0, 1)[None]


def estimate_bits(out):
    return sum((-torch.log2(lik.double())).sum().item() for lik in out["likelihoods"].values())


@pytest.mark.parametrize("name", models.model_names())
def test_round_trip_matches_forward_and_its_estimate(name):
    net = small_model(name)
    x = image()
    with torch.no_grad():
        out = net(x)
        compressed = net.compress(x)
        decoded = net.decompress(compressed["strings"], compressed["shape"])
    assert torch.equal(decoded["x_hat"], out["x_hat"].clamp(0, 1))
    actual = 8 * sum(len(s) for strings in compressed["strings"] for s in strings)
    estimate = estimate_bits(out)
    assert estimate > 2000  # the latents are not degenerate
    # At most the estimate plus framing. Untrained weights put many values outside their rows,
    # and an escape costs the coder less than the likelihood bound (1e-9, 30 bits) prices it
    # (format version 2: about 13 bits plus the distance's Elias delta), so files may be smaller.
    assert actual <= 1.001 * estimate + 64 * 8
    assert actual >= 0.5 * estimate


@pytest.mark.parametrize("name", models.model_names())
def test_state_dict_reload_codes_identically(name):
    net = small_model(name)
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    buffer.seek(0)
    again = models.from_state_dict(name, torch.load(buffer, weights_only=True)).eval()
    again.use_quality(max(models.QUALITIES[name]))  # the rate is chosen per file, not stored with the weights
    x = image(seed=1)
    with torch.no_grad():
        assert again.compress(x)["strings"] == net.compress(x)["strings"]


@pytest.mark.parametrize("name", ["mbt2018", "cheng2020-anchor", "checkerboard"])
def test_coded_pass_is_causal(name):
    """The wavefront pass gives every position the context the masked convolution computes
    from the final y_hat: no position reads one that is decoded after it."""
    net = small_model(name)
    with torch.no_grad():
        y = net.g_a(image())
        hyper = net.h_s(net.entropy_bottleneck.dequantized(net.h_a(y)))
        y_hat, scales, means = net.coded_pass(y, hyper)
        params = net.entropy_parameters(torch.cat([hyper, net.context(y_hat)], 1))
    assert torch.allclose(torch.cat([scales, means], 1), params, atol=1e-4, rtol=1e-4)
    assert torch.equal(y_hat, torch.round(y - means) + means)


@pytest.mark.parametrize("name", ["mbt2018-mean", "mbt2018"])
def test_batches_code_each_image_alone(name):
    net = small_model(name)
    x = torch.cat([image(seed=2), image(seed=3)])
    with torch.no_grad():
        both = net.compress(x)
        second = net.compress(x[1:])
        decoded = net.decompress([[s[1]] for s in both["strings"]], both["shape"])
    assert [s[1] for s in both["strings"]] == [s[0] for s in second["strings"]]
    with torch.no_grad():
        assert torch.equal(decoded["x_hat"], net(x[1:])["x_hat"].clamp(0, 1))
        # Batched synthesis convolutions round differently in the last bits; the coded latents
        # are the same (a different symbol would move pixels by far more).
        assert torch.allclose(decoded["x_hat"], net(x)["x_hat"][1:].clamp(0, 1), atol=1e-5)


def test_training_forward_has_gradients_and_aux_loss():
    net = small_model("bmshj2018-hyperprior").train()
    out = net(image())
    bpp = sum(torch.log2(lik).sum() for lik in out["likelihoods"].values()) / -(64 * 128)
    loss = torch.mean((out["x_hat"] - image()) ** 2) + 0.01 * bpp
    loss.backward()
    assert net.g_a[0].weight.grad.abs().sum() > 0 and net.h_s[0].weight.grad.abs().sum() > 0
    aux = net.aux_loss()
    assert aux.item() > 0
    aux.backward()
    assert net.entropy_bottleneck.quantiles.grad.abs().sum() > 0


def test_zoo_sizes_and_errors():
    assert models.sizes("bmshj2018-hyperprior", 1) == {"N": 128, "M": 192}
    assert models.sizes("bmshj2018-hyperprior", 8) == {"N": 192, "M": 320}
    assert models.sizes("mbt2018-mean", 5) == {"N": 192, "M": 320}
    with pytest.raises(ValueError, match="qualities 1..8"):
        models.get_model("bmshj2018-hyperprior", 9)
    with pytest.raises(ValueError, match="unknown model"):
        models.get_model("jpeg", 1)


def test_bad_inputs_raise():
    net = small_model("bmshj2018-factorized")
    with pytest.raises(ValueError, match="multiples of 16"):
        net.compress(torch.zeros(1, 3, 40, 64))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        net.compress(torch.zeros(3, 64, 64))
    with pytest.raises(TypeError, match="floating-point"):
        net.compress(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    hyper = small_model("bmshj2018-hyperprior")
    with pytest.raises(ValueError, match="y_strings, z_strings"):
        hyper.decompress([[b""]], (1, 2))


def test_padding_round_trip():
    x = image(70, 45)
    padded, padding = pad(x, 64)
    assert padded.shape[-2:] == (128, 64)
    assert torch.equal(crop(padded, padding), x)
    assert math.isclose(padded.sum().item(), x.sum().item(), rel_tol=1e-6)


@pytest.mark.parametrize("name", ["bmshj2018-factorized", "mbt2018"])
def test_bitmap_totals_equal_the_estimate(name):
    import ransform

    net = small_model(name)
    x = image(70, 100)  # not a multiple of the factor: bits of padded cells must not be lost
    padded, _ = pad(x, net.downsampling_factor)
    with torch.no_grad():
        estimate = estimate_bits(net(padded))
    bm = ransform.bitmap(net, x[0])
    assert bm.total_bits == pytest.approx(estimate, rel=1e-4)
    assert bm.image.sum().item() == pytest.approx(estimate, rel=1e-4)
    assert bm.image.shape == (1, 70, 100)


@pytest.mark.parametrize("name", ["bmshj2018-hyperprior", "mbt2018", "checkerboard"])
def test_damaged_streams_raise(name):
    import ransform

    net = small_model(name)
    with torch.no_grad():
        c = net.compress(image())
    y, z = c["strings"]
    for damaged in ([[y[0][: len(y[0]) // 2]], z], [y, [z[0][:-3]]], [[y[0] + b"\x00" * 8], z]):
        with pytest.raises(ransform.StreamError):
            net.decompress(damaged, c["shape"])


@pytest.mark.parametrize("name", ["mbt2018-mean", "cheng2020-anchor", "elic2022-chandelier"])
def test_channels_last_moves_outputs_within_float_rounding(name):
    """codec.load_model puts g_a and g_s in channels-last layout (faster convolutions): the same
    weights fingerprint, latents and reconstructions within float rounding of the NCHW ones."""
    from ransform.container import weights_fingerprint

    net = small_model(name).eval()
    x = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        y, x_hat = net.g_a(x), net(x)["x_hat"]
        fingerprint = weights_fingerprint(net.state_dict())
        assert net.channels_last() is net
        conv = next(m for m in net.g_a.modules() if isinstance(m, torch.nn.Conv2d))
        assert conv.weight.is_contiguous(memory_format=torch.channels_last)
        assert torch.allclose(net.g_a(x), y, rtol=0, atol=1e-4 * y.abs().max().item())
        assert torch.allclose(net(x)["x_hat"], x_hat, rtol=0, atol=1e-5)
    assert weights_fingerprint(net.state_dict()) == fingerprint


def test_gdn_in_place_when_coding_equals_the_training_path():
    from ransform.layers import GDN, IGDN

    x = torch.randn(2, 8, 9, 7, generator=torch.Generator().manual_seed(0))
    for layer in (GDN(8), IGDN(8)):
        with torch.no_grad():
            layer.gamma.add_(0.05 * torch.rand(8, 8, generator=torch.Generator().manual_seed(1)))
            coded = layer(x)
        trained = layer(x.clone().requires_grad_())
        assert torch.equal(coded, trained.detach())
        trained.sum().backward()  # the training path keeps its graph
