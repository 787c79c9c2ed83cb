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
        assert torch.allclose(out["likelihoods"][key], lik, rtol=1e-3, atol=1e-6), key
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
