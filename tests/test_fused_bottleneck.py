"""Fused EntropyBottleneck likelihood (ransform.kernels.fused_bottleneck): the explicit backward is
the derivative (gradcheck), padding to the kernels' shapes is exact, forward and bound rules
equal EntropyBottleneck.likelihood + bound_likelihood, the bindings check their arguments,
and on a GPU the kernels agree with the reference (skipped without one)."""
import pytest

torch = pytest.importorskip("torch")

from ransform import kernels  # noqa: E402
from ransform.entropy_models import EntropyBottleneck  # noqa: E402
from ransform.kernels import fused_bottleneck as fb  # noqa: E402
from ransform.kernels.backend import cuda_kernels  # noqa: E402

needs_gpu = pytest.mark.skipif(kernels.backend() != "cuda", reason="no CUDA GPU (or ransform._cuda not built)")
FILTERS = [(3, 3, 3, 3), (2, 5, 1), (), (8, 8, 8, 8, 8)]


def bottleneck(filters=(3, 3, 3, 3), channels=3, seed=0, dtype=torch.float32, **kwargs):
    torch.manual_seed(seed)
    eb = EntropyBottleneck(channels, filters=filters, **kwargs).to(dtype)
    with torch.no_grad():
        for p in eb.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return eb


def raw_parameters(eb):
    return list(eb.matrices), list(eb.biases), list(eb.factors)


def values_for(channels, k, seed=1, dtype=torch.float32, tail=0):
    """Values around the densities' bulk, the first ``tail`` of each channel far out."""
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(channels, 1, k, generator=g, dtype=torch.float64) * 6
    v[:, :, :tail] = 400 + 400 * torch.rand(channels, 1, tail, generator=g, dtype=torch.float64)
    return v.to(dtype)


def model_path(eb, v):
    return eb.bound_likelihood(eb.likelihood(v)[0])


def fused_path(eb, v):
    return fb.bottleneck_likelihood(v, *raw_parameters(eb), eb.likelihood_bound)


def likelihood_and_grads(eb, fn, v, weights):
    """Likelihood and the gradients of a loss with both gradient signs, wrt values and parameters."""
    eb.zero_grad()
    v = v.clone().requires_grad_(True)
    lik = fn(eb, v)
    (lik * weights).sum().backward()
    # Copies: moving the module to another device afterwards moves its parameters' .grad in place.
    return [lik.detach(), v.grad] + [p.grad.clone() for p in eb.parameters() if p.grad is not None]


# --- the reference path ---------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(3, 4), (2, 2), (1, 1)])
def test_gradcheck_of_the_function(shape):
    """Values and packed parameters, any values of them: the explicit backward is the derivative."""
    width, hidden = shape
    g = torch.Generator().manual_seed(0)
    params = torch.randn(3, fb.param_count(width, hidden), generator=g, dtype=torch.float64)
    v = torch.randn(3, 40, generator=g, dtype=torch.float64) * 3
    args = (v.requires_grad_(True), params.requires_grad_(True))
    fn = lambda v, p: fb.BottleneckLikelihood.apply(v, p, width, hidden, 0.0)  # noqa: E731
    assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-8, rtol=1e-5)


@pytest.mark.parametrize("filters", FILTERS[:3])
def test_gradcheck_through_the_raw_parameters(filters):
    eb = bottleneck(filters, dtype=torch.float64)
    params = [p.detach().clone().requires_grad_(True) for group in raw_parameters(eb) for p in group]
    layers = len(eb.matrices)

    def fn(v, *ps):
        return fb.bottleneck_likelihood(v, ps[:layers], ps[layers:2 * layers], ps[2 * layers:], 0)

    v = values_for(3, 30, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(fn, (v, *params), eps=1e-6, atol=1e-8, rtol=1e-5)


@pytest.mark.parametrize("filters", FILTERS)
@pytest.mark.parametrize("shape", [(3, 8), (8, 4), (8, 8)])
def test_padding_to_a_bigger_shape_is_exact(filters, shape):
    natural = fb.natural_shape(bottleneck(filters).matrices)
    if natural[0] > shape[0] or natural[1] > shape[1]:
        pytest.skip("the network does not fit this shape")
    eb = bottleneck(filters, dtype=torch.float64)
    weights = torch.randn(3, 200, dtype=torch.float64)
    results = []
    for width, hidden in (natural, shape):
        eb.zero_grad()
        v = values_for(3, 200, dtype=torch.float64)[:, 0].requires_grad_(True)
        params = fb.pack_parameters(*raw_parameters(eb), width, hidden)
        lik = fb.BottleneckLikelihood.apply(v, params, width, hidden, 1e-9)
        (lik * weights).sum().backward()
        results.append([lik.detach(), v.grad] + [p.grad for p in eb.parameters() if p.grad is not None])
    for got, want in zip(*results):
        assert torch.allclose(got, want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("filters", FILTERS)
def test_forward_and_gradients_equal_the_entropy_model(filters):
    eb = bottleneck(filters)
    v = values_for(3, 500, tail=20)  # the default bound is active in the tails
    weights = torch.randn(3, 1, 500)
    fused_results = likelihood_and_grads(eb, fused_path, v, weights)
    model_results = likelihood_and_grads(eb, model_path, v, weights)
    assert len(fused_results) == len(model_results) == 2 + len(list(eb.parameters())) - 1  # all but quantiles
    assert (fused_results[0][:, :, :20] == eb.likelihood_bound).all()
    for got, want in zip(fused_results, model_results):
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-4 * want.abs().max())


def test_bound_rules_equal_the_entropy_model():
    """A large bound, gradients of both signs below it: blocked where they would lower the
    likelihood, passing where they raise it."""
    bound = 2e-2
    eb = bottleneck(likelihood_bound=bound)
    v = values_for(3, 400)
    weights = torch.randn(3, 1, 400, generator=torch.Generator().manual_seed(3))
    below = (eb.likelihood(v)[0] < bound).detach()
    assert (below & (weights > 0)).sum() > 20 and (below & (weights < 0)).sum() > 20
    fused_results = likelihood_and_grads(eb, fused_path, v, weights)
    model_results = likelihood_and_grads(eb, model_path, v, weights)
    for got, want in zip(fused_results, model_results):
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-4 * want.abs().max())
    v_grad = fused_results[1]
    assert (v_grad[below & (weights > 0)] == 0).all()
    assert (v_grad[below & (weights < 0)] != 0).all()


def test_no_bound():
    eb = bottleneck(likelihood_bound=0)
    v = values_for(3, 100, tail=10)
    lik = fused_path(eb, v)
    want = eb.likelihood(v)[0].detach()
    # Far in the tails a one-ulp difference in exp (another CPU's vector code: 7e-5 relative at
    # 6e-18 on a Xeon with torch 2.11) is amplified, so the tail is compared less tightly.
    body = want > 1e-9
    assert torch.allclose(lik[body], want[body], rtol=1e-5, atol=0)
    assert torch.allclose(lik, want, rtol=1e-3, atol=0)
    assert lik[:, :, :10].min() < 1e-9  # not clamped


@pytest.mark.parametrize("mode", ["noise", "ste", "dequantize"])
def test_entropy_bottleneck_forward_is_unchanged(mode):
    eb = bottleneck(train_quantization="ste" if mode == "ste" else "noise")
    with torch.no_grad():
        eb.quantiles.copy_(eb.solve_quantiles())
    x = torch.randn(2, 3, 5, 7) * 4
    results = []
    for path in ("fused", "model"):
        eb.zero_grad()
        xi = x.clone().requires_grad_(True)
        torch.manual_seed(7)  # the same noise
        if path == "fused":
            out, lik = eb(xi, training=mode != "dequantize")
        else:
            values = eb._channels_first(xi)
            outputs = eb.quantize(values, mode, None if mode == "noise" else eb.medians())
            out, lik = eb._like_input(outputs, xi), eb._like_input(model_path(eb, outputs), xi)
        (-torch.log2(lik).sum() + out.square().sum()).backward()
        results.append([out.detach(), lik.detach(), xi.grad, eb.quantiles.grad] +
                       [p.grad for p in eb.parameters() if p is not eb.quantiles])
    for got, want in zip(*results):
        if want is None:
            assert got is None
        else:
            assert torch.allclose(got, want, rtol=1e-4, atol=1e-4 * want.abs().max())
    if mode == "noise":  # the medians stay out of the graph
        assert results[0][3] is None


def test_bits_are_minus_log2_of_the_likelihood():
    eb = bottleneck()
    v = values_for(3, 300, tail=10)
    bits = fb.bottleneck_bits(v, *raw_parameters(eb), eb.likelihood_bound)
    assert bits.shape == v.shape and not bits.requires_grad
    assert torch.allclose(bits, -torch.log2(fused_path(eb, v)).detach(), rtol=1e-6)
    assert torch.allclose(bits[:, :, :10], torch.full_like(bits[:, :, :10], -torch.log2(torch.tensor(1e-9)).item()))


def test_half_values_compute_in_float32():
    eb = bottleneck()
    v = values_for(3, 50).to(torch.bfloat16)
    lik = fused_path(eb, v)
    assert lik.dtype == torch.float32
    assert torch.allclose(lik, model_path(eb, v.float()).detach(), rtol=1e-5, atol=1e-9)


def test_empty_values():
    eb = bottleneck()
    v = torch.zeros(3, 1, 0, requires_grad=True)
    lik = fused_path(eb, v)
    lik.sum().backward()
    assert lik.shape == (3, 1, 0) and v.grad.shape == (3, 1, 0)
    assert all(p.grad is None or (p.grad == 0).all() for p in eb.parameters())


def test_errors():
    eb = bottleneck()
    v = values_for(3, 8)
    m, b, f = raw_parameters(eb)
    with pytest.raises(ValueError, match="shaped"):
        fb.bottleneck_likelihood(v[:, 0], m, b, f)
    with pytest.raises(ValueError, match="factors"):
        fb.bottleneck_likelihood(v, m, b, f[:-1])
    with pytest.raises(ValueError, match="layer 0"):
        fb.bottleneck_likelihood(v[:2], m, b, f)  # 2 channels of values, 3 of parameters
    with pytest.raises(ValueError, match="layer 2"):
        fb.bottleneck_likelihood(v, m, b[:2] + [b[2][:, :2]] + b[3:], f)
    with pytest.raises(ValueError, match="one device"):
        fb.bottleneck_likelihood(v.to("meta"), m, b, f)
    params = fb.pack_parameters(m, b, f, 3, 4)
    with pytest.raises(ValueError, match="params"):
        fb.BottleneckLikelihood.apply(v[:, 0], params, 3, 8, 1e-9)  # packed for another shape
    with pytest.raises(ValueError, match="params"):
        fb.BottleneckLikelihood.apply(v, params, 3, 4, 1e-9)  # values not (C, K)


# --- the bindings (argument checks need no GPU) ---------------------------------------------------
needs_bindings = pytest.mark.skipif(not hasattr(cuda_kernels, "bottleneck_likelihood_forward"),
                                    reason="ransform._cuda not built (or built without the bottleneck kernels)")


@needs_bindings
def test_binding_shapes_and_parameter_counts():
    shapes = cuda_kernels.bottleneck_shapes()
    assert (3, 4) in shapes  # the default filters run unpadded
    for width, hidden in shapes:
        assert cuda_kernels.bottleneck_param_count(width, hidden) == fb.param_count(width, hidden)
    assert fb.param_count(3, 4) == 58


@needs_bindings
@pytest.mark.parametrize("change, message", [
    ({"n": -1}, "n must be"), ({"channels": -1}, "channels"), ({"channels": 70000}, "channels"),
    ({"width": 5, "hidden": 3}, "no kernel"), ({"width": 9, "hidden": 4}, "no kernel"),
    ({"values": 0}, "must be set"),
])
def test_binding_argument_errors(change, message):
    forward = dict(values=16, params=16, channels=2, n=4, width=3, hidden=4, likelihood_bound=1e-9,
                   likelihood=16, bits=0, stream=0)
    with pytest.raises(ValueError, match=message):
        cuda_kernels.bottleneck_likelihood_forward(**{**forward, **change})
    backward = {k: v for k, v in forward.items() if k not in ("likelihood", "bits")}
    backward.update(grad_likelihood=16, grad_values=0, grad_params=0)
    with pytest.raises(ValueError, match=message):
        cuda_kernels.bottleneck_likelihood_backward(**{**backward, **change})
    with pytest.raises(ValueError, match="grad_likelihood"):
        cuda_kernels.bottleneck_likelihood_backward(**{**backward, "grad_likelihood": 0})


# --- CUDA vs the reference -------------------------------------------------------------------------
def cuda_and_reference(eb, v, weights, dtype):
    """Likelihood and gradients on the GPU (values in dtype) and on the CPU reference (the same
    rounded values in float32, the kernels' arithmetic)."""
    results = []
    for device in ("cpu", "cuda"):
        model = eb.to(device)
        values = v.to(dtype).to(device, torch.float32 if device == "cpu" else dtype)
        results.append([t.float().cpu() for t in likelihood_and_grads(model, fused_path, values, weights.to(device))])
    eb.cpu()
    return results


def assert_close(got, want, rtol=2e-3):
    assert torch.allclose(got, want, rtol=rtol, atol=1e-5 * max(want.abs().max().item(), 1.0))


def assert_sums_close(got, want, rtol=2e-3):
    """Parameter gradients are sums over 10^5 values in another order: an entry that nearly
    cancels is off by 1 % in the CPU's own float32 (against float64), but every tensor is within
    3e-4 of its largest entry, so that is the scale compared against."""
    assert (got - want).abs().max() <= rtol * want.abs().max()


@needs_gpu
@pytest.mark.parametrize("filters", FILTERS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_cuda_matches_reference(filters, dtype):
    eb = bottleneck(filters, channels=5)
    v = values_for(5, 100_003, tail=1000)  # many blocks per channel, a ragged last one
    weights = torch.randn(v.shape)  # both signs: blocked and passing gradients at the bound
    got, want = cuda_and_reference(eb, v, weights, dtype)
    assert len(got) == len(want) == 2 + len(list(eb.parameters())) - 1
    assert_close(got[0], want[0])
    assert_close(got[1], want[1], rtol=1e-2 if dtype == torch.bfloat16 else 2e-3)  # returned in dtype
    for g, w in zip(got[2:], want[2:]):
        assert_sums_close(g, w)


@needs_gpu
def test_cuda_bound_rules():
    eb = bottleneck(channels=4, likelihood_bound=2e-2)
    v = values_for(4, 5000)
    weights = torch.randn(v.shape)
    got, want = cuda_and_reference(eb, v, weights, torch.float32)
    for g, w in zip(got[:2], want[:2]):
        assert_close(g, w)
    for g, w in zip(got[2:], want[2:]):
        assert_sums_close(g, w)
    below = (eb.likelihood(v)[0] < 2e-2).detach()
    assert (got[1][below & (weights > 0)] == 0).all()


@needs_gpu
def test_cuda_kernel_runs_the_default_filters_unpadded():
    eb = bottleneck().cuda()
    v = values_for(3, 10).cuda()
    shape = fb.natural_shape(eb.matrices)
    assert shape == (3, 4) and fb._kernel_shape(*shape) == shape
    assert fb._kernel_ready(v[:, 0], fb.pack_parameters(*raw_parameters(eb), *shape), *shape)


@needs_gpu
def test_cuda_bits_and_gradients_for_values_only():
    eb = bottleneck()
    v = values_for(3, 20_000, tail=100)
    want = fb.bottleneck_bits(v, *raw_parameters(eb), eb.likelihood_bound)
    eb.cuda()
    got = fb.bottleneck_bits(v.cuda(), *raw_parameters(eb), eb.likelihood_bound)
    assert got.is_cuda and got.shape == v.shape
    assert torch.allclose(got.cpu(), want, rtol=1e-4, atol=1e-4)
    for p in eb.parameters():  # parameter gradients not asked for: the kernel skips them
        p.requires_grad_(False)
    vc = v.cuda().requires_grad_(True)
    fused_path(eb, vc).sum().backward()
    eb.cpu()
    vr = v.clone().requires_grad_(True)
    fused_path(eb, vr).sum().backward()
    assert_close(vc.grad.cpu(), vr.grad)


@needs_gpu
def test_cuda_empty_and_entropy_bottleneck_forward():
    eb = bottleneck().cuda()
    v = torch.zeros(3, 1, 0, device="cuda", requires_grad=True)
    lik = fused_path(eb, v)
    lik.sum().backward()
    assert lik.shape == (3, 1, 0) and all((p.grad == 0).all() for p in eb.parameters() if p.grad is not None)
    x = torch.randn(2, 3, 16, 16) * 4
    out, lik = eb.eval()(x.cuda())
    out_ref, lik_ref = eb.cpu()(x)
    assert torch.allclose(out.cpu(), out_ref)
    assert_close(lik.cpu(), lik_ref)
