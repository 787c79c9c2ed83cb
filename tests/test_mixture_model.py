"""GaussianMixtureConditional: likelihood, gradients, exact round trips (outliers, several
slices, batch), size against the estimate, stream framing errors; on a GPU the same bytes."""
import math

import pytest

torch = pytest.importorskip("torch")

from conftest import avx512_kernels  # noqa: E402
from ransform import StreamError, kernels  # noqa: E402
from ransform.entropy_models import GaussianMixtureConditional  # noqa: E402
from ransform.entropy_models.mixture import join_streams, split_streams  # noqa: E402

needs_gpu = pytest.mark.skipif(kernels.backend() != "cuda", reason="no CUDA GPU (or ransform._cuda not built)")


def latent(n=2, k=3, shape=(8, 12, 16), seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn((n, k) + shape, generator=g) * 3
    scales = torch.exp(torch.randn((n, k) + shape, generator=g) * 0.7)
    weights = torch.softmax(torch.randn((n, k) + shape, generator=g), dim=1)
    pick = torch.multinomial(weights.movedim(1, -1).reshape(-1, k), 1, generator=g).reshape((n, 1) + shape)
    x = torch.gather(means, 1, pick)[:, 0] + torch.gather(scales, 1, pick)[:, 0] * torch.randn((n,) + shape, generator=g)
    return [t.to(dtype) for t in (x, scales, means, weights)]


def test_likelihood_is_the_weighted_sum_of_components():
    x, s, m, w = latent(dtype=torch.float64)
    gmc = GaussianMixtureConditional().double()
    v = torch.round(x)
    cdf = lambda t: 0.5 * torch.erfc(-(t - m) / (s.clamp_min(0.11) * math.sqrt(2)))  # noqa: E731
    w = w / w.sum(1, keepdim=True)
    want = (w * (cdf(v[:, None] + 0.5) - cdf(v[:, None] - 0.5))).sum(1)
    assert torch.allclose(gmc.likelihood(v, s, m, w), want, rtol=1e-9, atol=1e-12)
    assert torch.allclose(gmc.likelihood(v, s, m, 3 * w), want, rtol=1e-9, atol=1e-12)  # normalised over K


def test_gradcheck():
    x, s, m, w = latent(n=1, k=2, shape=(2, 3, 3), dtype=torch.float64)
    gmc = GaussianMixtureConditional(components=2)
    args = [t.requires_grad_(True) for t in (x, s.clamp_min(0.2).detach(), m, w)]
    assert torch.autograd.gradcheck(lambda *a: gmc.likelihood(*a), args, eps=1e-6, atol=1e-7, rtol=1e-4)


def test_round_trip_with_outliers_slices_and_batch():
    x, s, m, w = latent()
    x[0, 0, 0, :4] = torch.tensor([1e4, -3e5, 77.0, 2**30])
    gmc = GaussianMixtureConditional(slice_elements=500).eval()
    strings = gmc.compress(x, s, m, w)
    y = gmc.decompress(strings, s, m, w)
    assert torch.equal(y, torch.round(x))
    assert torch.equal(gmc(x, s, m, w)[0], y)
    with pytest.raises(ValueError):  # the other image's parameters: checksum or final state fails
        gmc.decompress(strings[::-1], s, m, w)


def test_size_is_close_to_the_estimate():
    x, s, m, w = latent(n=1, shape=(64, 32, 32), seed=3)
    gmc = GaussianMixtureConditional().eval()
    estimate = float(-torch.log2(gmc(x, s, m, w)[1]).sum()) / 8
    size = len(gmc.compress(x, s, m, w)[0])
    assert estimate < size < estimate * 1.01 + 64


def test_shapes_and_framing_errors():
    x, s, m, w = latent(n=1)
    gmc = GaussianMixtureConditional()
    with pytest.raises(ValueError, match="weights must have shape"):
        gmc.compress(x, s, m, w[:, :2])
    with pytest.raises(ValueError, match="components"):
        GaussianMixtureConditional(components=9)
    parts = [b"a" * 300, b"", b"bc"]
    assert split_streams(join_streams(parts), 3) == parts
    assert split_streams(join_streams([b"xyz"]), 1) == [b"xyz"]
    with pytest.raises(StreamError):
        split_streams(join_streams(parts)[:100], 3)
    with pytest.raises(StreamError):
        split_streams(b"\xff" * 8, 2)


@needs_gpu
def test_gpu_parameters_give_the_same_bytes():
    x, s, m, w = latent(shape=(32, 16, 16))
    gmc = GaussianMixtureConditional().eval()
    cpu = gmc.compress(x, s, m, w)
    gpu = gmc.compress(*(t.cuda() for t in (x, s, m, w)))
    assert cpu == gpu
    assert torch.equal(gmc.decompress(gpu, *(t.cuda() for t in (s, m, w))).cpu(), torch.round(x))


def test_batched_tails_give_the_per_boundary_bits():
    """The CPU computes a Gaussian mixture row's tails 32 at a time (detmath_many.hpp); the rows
    must be the bits of the per-boundary code (mixture.hpp, the GPU's), which gave this digest.
    Scales 0.11-40 and means +-12 reach every erfc branch (series, the three continued-fraction
    depths, and tails skipped past 9.2 scales)."""
    import hashlib

    import numpy as np

    g = torch.Generator().manual_seed(7)
    n, k = 20000, 3
    w = torch.rand(n, k, generator=g) + 0.01
    m = torch.randn(n, k, generator=g) * 4
    s = torch.exp(torch.rand(n, k, generator=g) * (math.log(40) - math.log(0.11)) + math.log(0.11))
    for threads, avx512 in ((1, True), (2, True), (1, False)):  # AVX-512 off: the portable groups
        with avx512_kernels(avx512):
            rows = kernels.mixture_rows(w, m, s, family="gaussian", deviations=6.0, max_symbols=512, precision=16,
                                        threads=threads)
        digest = hashlib.sha256(b"".join(np.ascontiguousarray(np.asarray(a)).tobytes() for a in rows)).hexdigest()
        assert digest == "280028205f3c737ff643be69d6086b6d3737596d98625732863809915c0e76b9"
