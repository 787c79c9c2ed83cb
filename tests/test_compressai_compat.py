"""CompressAI 1.2.8 checkpoints load as they are and reproduce CompressAI's outputs.

The fixtures in tests/fixtures/compressai were written by CompressAI 1.2.8 itself from
random (seeded) weights; see the README there for how they were made."""
import pathlib

import pytest

torch = pytest.importorskip("torch")

from ransform import models  # noqa: E402
from ransform.compat import convert_state_dict  # noqa: E402
from ransform.entropy_models import EntropyBottleneck, GaussianConditional  # noqa: E402
from ransform.files import load_checkpoint  # noqa: E402

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "compressai"
FIXTURE_NAMES = sorted(p.name.split(".")[0] for p in FIXTURES.glob("*.pt*") if not p.name.startswith("entropy_models"))
MODEL_NAMES = FIXTURE_NAMES


def fixture(name):
    """A fixture file, plain or gzip-compressed (.pt.gz: ELIC's, mostly zeros)."""
    plain = FIXTURES / f"{name}.pt"
    return load_checkpoint(plain if plain.exists() else FIXTURES / f"{name}.pt.gz")


def respell(state, style):
    """The EntropyBottleneck key spellings of older CompressAI versions."""
    out = {}
    for key, value in state.items():
        for kind, single in (("matrices", "matrix"), ("biases", "bias"), ("factors", "factor")):
            marker = f"entropy_bottleneck.{kind}."
            if key.startswith(marker):
                i = key[len(marker):]
                key = f"entropy_bottleneck._{kind}.{i}" if style == "_list" else f"entropy_bottleneck._{single}{i}"
        out[key] = value
    return out


WRAPPINGS = {
    "plain": lambda s: s,
    "state_dict wrapper": lambda s: {"epoch": 3, "state_dict": s, "optimizer": {}},
    "network wrapper": lambda s: {"network": s},
    "module. prefix": lambda s: {"module." + k: v for k, v in s.items()},
    "_matrices.N": lambda s: respell(s, "_list"),
    "_matrixN": lambda s: respell(s, "_single"),
}


def test_every_fixture_model_is_registered():
    assert len(MODEL_NAMES) >= 6
    assert set(MODEL_NAMES) <= set(models.MODELS), set(MODEL_NAMES) - set(models.MODELS)


def load(name, state):
    """A model from a CompressAI state dict, evaluating as CompressAI does where it differs."""
    net = models.from_state_dict(name, state).eval()
    # CompressAI evaluates mbt2018 and cheng2020 with the context of round(y); its checkerboard
    # latent codec evaluates in two passes, which is what ransform codes
    if hasattr(net, "eval_context") and not name.endswith("checkerboard"):
        net.eval_context = "compressai"
    return net


@pytest.mark.parametrize("wrapping", sorted(WRAPPINGS))
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_matches_compressai(name, wrapping):
    ref = fixture(name)
    net = load(name, WRAPPINGS[wrapping](ref["state_dict"]))
    with torch.no_grad():
        out = net(ref["x"])
    assert torch.allclose(out["x_hat"], ref["x_hat"], atol=1e-5, rtol=1e-4)
    assert out["likelihoods"].keys() == ref["likelihoods"].keys()
    for key, lik in ref["likelihoods"].items():
        if name.endswith("-vbr") and key == "z":
            # CompressAI 1.2.8's EntropyBottleneckVbr.forward calls _likelihood_variable(outputs, qs),
            # which binds qs to stop_gradient: its z likelihoods use bins of width 1 around values
            # quantized with step qs. ransform's use the step it codes with (checked below).
            continue
        assert torch.allclose(out["likelihoods"][key], lik, rtol=1e-3, atol=1e-6), key
    if name.endswith("-vbr"):  # CompressAI's aux_loss skips EntropyBottleneckVbr (not an EntropyBottleneck)
        assert ref["aux_loss"] == 0
    else:
        assert net.aux_loss().item() == pytest.approx(ref["aux_loss"], rel=1e-5)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_loaded_checkpoint_compresses(name):
    ref = fixture(name)
    net = models.from_state_dict(name, ref["state_dict"]).eval()
    net.update()
    with torch.no_grad():
        c = net.compress(ref["x"])
        x_hat = net.decompress(c["strings"], c["shape"])["x_hat"]
        assert torch.equal(x_hat, net(ref["x"])["x_hat"].clamp(0, 1))


def test_derived_buffers_are_dropped_and_nothing_else():
    state = fixture("bmshj2018-hyperprior")["state_dict"]
    converted = convert_state_dict(state)
    dropped = set(state) - set(converted)
    assert all(k.endswith(("_quantized_cdf", "_cdf_length", "_offset", "scale_table", "scale_bound", "target",
                           "pedestal", "bound")) for k in dropped)
    assert not any(k.endswith(("weight", "bias", "beta", "gamma", "quantiles")) for k in dropped)


def test_bottleneck_likelihood_and_gradients_match():
    ref = fixture("entropy_models")["entropy_bottleneck"]
    eb = EntropyBottleneck(ref["channels"])
    eb.load_state_dict(convert_state_dict(ref["state_dict"]))
    values = ref["values"].clone().requires_grad_(True)
    lik, _, _ = eb.likelihood(values)
    bounded = eb.bound_likelihood(lik)
    # CompressAI evaluates sigmoid(upper) - sigmoid(lower) on both sides of the median, so its
    # upper tail loses relative precision; both agree wherever the value is above the bound.
    above = ref["bounded_likelihood"] > 1e-8
    assert torch.allclose(bounded[above], ref["bounded_likelihood"][above], rtol=1e-3, atol=1e-7)
    (-torch.log2(bounded)).sum().backward()
    assert torch.allclose(values.grad[above], ref["grad_values"][above], rtol=1e-2, atol=1e-4)
    assert eb.loss().item() == pytest.approx(float(ref["aux_loss"]), rel=1e-5)
    with torch.no_grad():
        out, out_lik = eb.eval()(ref["forward_input"])
    assert torch.equal(out, ref["forward_output"])
    assert torch.allclose(out_lik, ref["forward_likelihood"], rtol=1e-3, atol=1e-7)


def test_gaussian_likelihood_and_gradients_match():
    ref = fixture("entropy_models")["gaussian_conditional"]
    gc = GaussianConditional()
    gc.load_state_dict(convert_state_dict(ref["state_dict"]))
    values = ref["values"].clone().requires_grad_(True)
    scales = ref["scales"].clone().requires_grad_(True)
    means = ref["means"].clone().requires_grad_(True)
    lik = gc.likelihood(values, scales, means)
    assert torch.equal(lik, ref["likelihood"])  # the same float operations in the same order
    bounded = gc.bound_likelihood(lik)
    assert torch.equal(bounded, ref["bounded_likelihood"])
    (-torch.log2(bounded)).sum().backward()
    for got, key in ((values.grad, "grad_values"), (scales.grad, "grad_scales"), (means.grad, "grad_means")):
        assert torch.allclose(got, ref[key], rtol=1e-5, atol=1e-6), key
    values.grad = scales.grad = means.grad = None
    (gc.bound_likelihood(gc.likelihood(values, scales, means)) * ref["weights"]).sum().backward()
    for got, key in ((values.grad, "grad_values_weighted"), (scales.grad, "grad_scales_weighted"),
                     (means.grad, "grad_means_weighted")):
        assert torch.allclose(got, ref[key], rtol=1e-5, atol=1e-6), key
    with torch.no_grad():
        out, out_lik = gc.eval()(ref["values"], ref["scales"], ref["means"])
    assert torch.equal(out, ref["forward_output"]) and torch.equal(out_lik, ref["forward_likelihood"])


@pytest.mark.parametrize("name", [n for n in MODEL_NAMES if n.endswith("-vbr")])
def test_variable_rate_models_code_every_rate(name):
    """One set of weights, eight rates: each rate decodes to its forward's reconstruction, and
    the z likelihoods are those of the step it is coded with."""
    net = models.from_state_dict(name, fixture(name)["state_dict"]).eval()
    net.update()
    x = fixture(name)["x"]
    sizes = []
    for quality in range(1, 9):
        net.use_quality(quality)
        with torch.no_grad():
            out = net(x)
            c = net.compress(x)
            assert torch.equal(net.decompress(c["strings"], c["shape"])["x_hat"], out["x_hat"].clamp(0, 1))
            step = float(net.z_step(net.gain()))
            z = net.hyper_analysis(net.g_a(x))
            z_hat = net.entropy_bottleneck.dequantized(z, step)
            values = z_hat.transpose(0, 1).reshape(net.N, 1, -1)
            expected = net.entropy_bottleneck.likelihood(values, step=step)[0].reshape(net.N, 1, *z.shape[-2:])
            assert torch.allclose(out["likelihoods"]["z"], expected.transpose(0, 1).clamp_min(1e-9), rtol=1e-5)
        sizes.append(len(c["strings"][0][0]))
    assert sizes[-1] > sizes[0]  # higher quality, larger y stream
    with pytest.raises(ValueError, match="qualities 1..8"):
        net.use_quality(9)


def test_variable_rate_files_record_their_rate(tmp_path):
    """The CLI codes a variable-rate checkpoint at --quality; the file records it and decodes at it."""
    from ransform import cli
    from ransform.container import unpack
    checkpoint = tmp_path / "vbr.pth"
    torch.save(fixture("mbt2018-mean-vbr")["state_dict"], checkpoint)
    photo = pathlib.Path(__file__).resolve().parents[1] / "python" / "ransform" / "data" / "coffee.png"
    sizes = {}
    for quality in (2, 8):
        out = tmp_path / f"q{quality}.rfm"
        assert cli.main(["compress", str(photo), "-o", str(out), "--model", "mbt2018-mean-vbr", "--quality",
                         str(quality), "--checkpoint", str(checkpoint), "--no-psnr"]) == 0
        item = unpack(out.read_bytes())
        assert item.quality == quality and not item.portable
        assert cli.main(["decompress", str(out), "-o", str(tmp_path / f"q{quality}.png"),
                         "--checkpoint", str(checkpoint)]) == 0
        sizes[quality] = out.stat().st_size
    assert sizes[8] > sizes[2]
