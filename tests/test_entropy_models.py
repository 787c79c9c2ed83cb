"""Entropy models: likelihoods are proper distributions, gradients follow the bound rules,
coding round-trips, tables survive a state dict."""
import io
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ransform.coder import SymbolCountError  # noqa: E402
from ransform.entropy_models import (  # noqa: E402
    EntropyBottleneck,
    GaussianConditional,
    LaplaceConditional,
    LogisticConditional,
    quantize,
)

CONDITIONALS = [GaussianConditional, LaplaceConditional, LogisticConditional]


def perturbed_bottleneck(channels=3, seed=0):
    torch.manual_seed(seed)
    eb = EntropyBottleneck(channels)
    with torch.no_grad():
        for p in eb.parameters():
            p.add_(0.3 * torch.randn_like(p))
        eb.quantiles.copy_(eb.solve_quantiles())
    return eb


# --- quantization ---------------------------------------------------------------------------
def test_quantize_modes():
    x = torch.tensor([-1.6, -0.4, 0.49, 2.51], requires_grad=True)
    m = torch.tensor([0.3, 0.3, 0.3, 0.3])
    assert torch.equal(quantize(x, "symbols", m), torch.tensor([-2, -1, 0, 2], dtype=torch.int32))
    assert torch.allclose(quantize(x, "dequantize", m), torch.tensor([-1.7, -0.7, 0.3, 2.3]))
    ste = quantize(x, "ste", m)
    assert torch.allclose(ste, torch.tensor([-1.7, -0.7, 0.3, 2.3]))
    ste.sum().backward()
    assert torch.equal(x.grad, torch.ones(4))  # straight through
    noisy = quantize(torch.zeros(10000), "noise")
    assert noisy.abs().max() <= 0.5 and noisy.std() > 0.25
    with pytest.raises(ValueError, match="quantization mode"):
        quantize(x, "floor")


# --- conditionals ---------------------------------------------------------------------------
@pytest.mark.parametrize("cls", CONDITIONALS)
@pytest.mark.parametrize("scale", [0.05, 0.11, 0.7, 3.0, 40.0])
def test_conditional_likelihood_is_a_distribution(cls, scale):
    gc = cls()
    mean = 0.37
    values = torch.arange(-3000, 3001, dtype=torch.float64) + mean  # the grid round(y - mean) + mean
    lik = gc.likelihood(values, torch.full_like(values, scale), torch.full_like(values, mean))
    assert abs(lik.sum().item() - 1) < 1e-9
    assert (lik >= 0).all()


@pytest.mark.parametrize("cls,cdf", [
    (GaussianConditional, lambda t: 0.5 * (1 + math.erf(t / math.sqrt(2)))),
    (LaplaceConditional, lambda t: 0.5 * math.exp(t) if t < 0 else 1 - 0.5 * math.exp(-t)),
    (LogisticConditional, lambda t: 1 / (1 + math.exp(-t))),
])
def test_conditional_likelihood_matches_the_family(cls, cdf):
    gc = cls()
    for v, s, m in [(0.0, 1.0, 0.0), (3.0, 0.5, 0.2), (-7.0, 2.5, 1.0), (12.0, 4.0, -0.4)]:
        expected = cdf((v - m + 0.5) / s) - cdf((v - m - 0.5) / s)
        got = gc.likelihood(torch.tensor([v], dtype=torch.float64), torch.tensor([s], dtype=torch.float64),
                            torch.tensor([m], dtype=torch.float64)).item()
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_gaussian_tail_keeps_relative_precision():
    # 8 standard deviations out, in float32: CDF differences would give 1 - 1 = 0; upper
    # tails keep the value to float32 precision.
    gc = GaussianConditional()
    lik = gc.likelihood(torch.tensor([8.0, -8.0]), torch.tensor([1.0, 1.0]))
    exact = 0.5 * (math.erfc(7.5 / math.sqrt(2)) - math.erfc(8.5 / math.sqrt(2)))
    assert lik[0].item() == pytest.approx(exact, rel=1e-5)
    assert lik[1].item() == lik[0].item()


def test_scale_bound_gradient_only_pushes_up():
    gc = GaussianConditional(scale_bound=0.11)
    # Value 0: a larger scale lowers the likelihood, so -log p wants the scale down: the
    # gradient (pushing below the bound) is blocked.  Value 0.6: a larger scale helps: it flows.
    scales = torch.tensor([0.01, 0.01], requires_grad=True)
    values = torch.tensor([0.0, 0.6])
    bits = -torch.log2(gc.bound_likelihood(gc.likelihood(values, scales)))
    bits.sum().backward()
    assert scales.grad[0] == 0
    assert scales.grad[1] < 0  # descent increases the scale


def test_likelihood_bound_gradient():
    gc = GaussianConditional()
    values = torch.tensor([7.0, 1.0], requires_grad=True)
    lik = gc.bound_likelihood(gc.likelihood(values, torch.tensor([1.0, 1.0])))
    assert lik[0].item() == pytest.approx(1e-9)  # 7 sigma: below the bound
    (-torch.log(lik)).sum().backward()
    # Below the bound the gradient still passes where it raises the likelihood: both values
    # are pulled toward the mean.
    assert values.grad[0] > 0 and values.grad[1] > 0
    values.grad = None
    # A loss that wants the likelihood lower gets no gradient through the bound.
    lik = gc.bound_likelihood(gc.likelihood(values, torch.tensor([1.0, 1.0])))
    lik.sum().backward()
    assert values.grad[0] == 0 and values.grad[1] != 0


@pytest.mark.parametrize("cls", CONDITIONALS)
def test_conditional_round_trip_with_outliers(cls):
    torch.manual_seed(1)
    gc = cls()
    gc.update()
    scales = torch.exp(torch.empty(2, 8, 6, 5).uniform_(math.log(0.05), math.log(60)))
    means = torch.randn(2, 8, 6, 5) * 3
    y = means + scales * torch.randn(2, 8, 6, 5)
    y[0, 0, 0, 0] = 1e6
    y[1, 3, 2, 1] = -123456.7
    strings = gc.compress(y, scales, means)
    assert len(strings) == 2
    y_hat = gc.decompress(strings, scales, means)
    assert torch.equal(y_hat, gc.quantize(y, "dequantize", means))



def test_conditional_reader_decodes_in_steps_what_compress_wrote():
    """The context models' seam: the stream is read in steps of any size, each with its own
    scales and means, and gives what decompress gives at once; a stream announcing another
    size is refused before anything is decoded."""
    torch.manual_seed(2)
    gc = GaussianConditional()
    gc.update()
    scales = torch.exp(torch.empty(1, 40, 6).uniform_(math.log(0.1), math.log(30)))
    means = torch.randn(1, 40, 6) * 2
    y = means + scales * torch.randn(1, 40, 6)
    y[0, 5, 1] = 5e4
    [string] = gc.compress(y, scales, means)
    reader = gc.reader(string, 240)
    steps = [reader.read(scales[0, a:b], means[0, a:b]) for a, b in [(0, 1), (1, 17), (17, 17), (17, 40)]]
    assert torch.equal(torch.cat(steps), gc.decompress([string], scales, means)[0])
    assert torch.equal(torch.cat(steps), gc.quantize(y, "dequantize", means)[0])
    with pytest.raises(ValueError, match="same shape"):
        gc.reader(string, 240).read(scales[0, :2], means[0, :3])
    with pytest.raises(SymbolCountError, match="240"):
        gc.reader(string, 241)

def test_conditional_needs_update():
    gc = GaussianConditional()
    with pytest.raises(RuntimeError, match="update"):
        gc.compress(torch.zeros(1, 2, 3, 3), torch.ones(1, 2, 3, 3))


def test_conditional_rejects_mismatched_shapes_and_bad_tables():
    gc = GaussianConditional()
    gc.update()
    with pytest.raises(ValueError, match="same shape"):
        gc.compress(torch.zeros(1, 2, 3, 3), torch.ones(1, 2, 3, 4))
    with pytest.raises(ValueError, match="streams"):
        gc.decompress([b"", b""], torch.ones(1, 2, 3, 3))
    with pytest.raises(ValueError, match="increasing"):
        GaussianConditional([0.5, 0.2])
    with pytest.raises(ValueError, match="scale_bound"):
        GaussianConditional(scale_bound=0)


def test_conditional_state_dict_carries_the_scale_table():
    gc = GaussianConditional([0.2, 0.5, 1.0, 3.0, 9.0])
    gc.update()
    fresh = GaussianConditional()
    fresh.load_state_dict(gc.state_dict())
    assert torch.equal(fresh.scale_table, gc.scale_table)
    scales = torch.tensor([[[[0.3, 2.0, 8.0]]]])
    y = torch.tensor([[[[1.0, -2.0, 5.0]]]])
    assert fresh.compress(y, scales) == gc.compress(y, scales)
    assert np.array_equal(fresh.build_indexes(scales), gc.build_indexes(scales))


def test_standardized_latent():
    gc = GaussianConditional(scale_bound=0.5)
    z = gc.standardized(torch.tensor([3.0, 1.0]), torch.tensor([2.0, 0.1]), torch.tensor([1.0, 0.0]))
    assert torch.allclose(z, torch.tensor([1.0, 2.0]))


# --- EntropyBottleneck ----------------------------------------------------------------------
def test_bottleneck_likelihood_is_a_distribution():
    eb = perturbed_bottleneck()
    grid = torch.arange(-400, 401, dtype=torch.float32)[None, None, :].expand(3, 1, -1) + eb.medians()
    lik, _, _ = eb.likelihood(grid)
    assert torch.allclose(lik.sum(-1).double(), torch.ones(3, 1, dtype=torch.float64), atol=1e-5)


def test_bottleneck_solved_quantiles_hit_their_targets():
    eb = perturbed_bottleneck()
    q = eb.solve_quantiles()
    logits = eb.logits_cumulative(q)
    assert torch.allclose(logits, eb.target.expand_as(logits), atol=1e-2)
    assert eb.loss().item() < 0.05 * 3 * 3  # quantiles set from the solve: aux loss near 0


def test_bottleneck_aux_loss_trains_quantiles():
    eb = perturbed_bottleneck()
    with torch.no_grad():
        eb.quantiles.add_(torch.tensor([-3.0, 1.0, 3.0]))
    opt = torch.optim.Adam([eb.quantiles], lr=0.1)
    start = eb.loss().item()
    for _ in range(100):
        opt.zero_grad()
        eb.loss().backward()
        opt.step()
    assert eb.loss().item() < 0.5 * start


def test_bottleneck_forward_eval_rounds_around_medians():
    eb = perturbed_bottleneck().eval()
    x = torch.randn(2, 3, 4, 5) * 5
    out, lik = eb(x)
    assert torch.equal(out, eb.dequantized(x))
    assert lik.shape == x.shape and (lik > 0).all() and (lik <= 1).all()
    eb.train()
    noisy, _ = eb(x)
    assert (noisy - x).abs().max() <= 0.5 and not torch.equal(noisy, out)


def test_bottleneck_round_trip_and_escapes():
    eb = perturbed_bottleneck().eval()
    eb.update()
    x = torch.randn(3, 3, 7, 9) * 4
    x[0, 1, 2, 3] = 5000.0  # far outside the table: escape + exp-Golomb
    strings = eb.compress(x)
    assert len(strings) == 3
    assert torch.equal(eb.decompress(strings, (7, 9)), eb.dequantized(x))


def test_bottleneck_table_range_covers_the_density_without_aux_training():
    eb = perturbed_bottleneck()
    with torch.no_grad():
        eb.quantiles.copy_(torch.tensor([-0.5, 0.0, 0.5]).repeat(3, 1, 1))  # untrained, far too narrow
    eb.update()
    widths = eb._lengths - 1
    solved = eb.solve_quantiles()
    assert (widths >= torch.floor(solved[:, 0, 2] - solved[:, 0, 0]).int()).all()


def test_bottleneck_state_dict_carries_the_table():
    eb = perturbed_bottleneck()
    eb.update()
    buffer = io.BytesIO()
    torch.save(eb.state_dict(), buffer)
    buffer.seek(0)
    fresh = EntropyBottleneck(3)  # empty table buffers: loading resizes them
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    x = torch.randn(1, 3, 6, 6) * 3
    assert fresh.compress(x) == eb.compress(x)
    for c in range(3):
        assert np.array_equal(fresh.table.frequencies(c), eb.table.frequencies(c))


def test_bottleneck_update_is_lazy_unless_forced():
    eb = perturbed_bottleneck()
    assert eb.update() is True
    assert eb.update() is False
    assert eb.update(force=True) is True


def test_bottleneck_errors():
    eb = perturbed_bottleneck()
    with pytest.raises(RuntimeError, match="update"):
        eb.compress(torch.zeros(1, 3, 2, 2))
    eb.update()
    with pytest.raises(ValueError, match="shape"):
        eb.compress(torch.zeros(1, 4, 2, 2))
