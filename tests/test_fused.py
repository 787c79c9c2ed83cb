"""Fused likelihoods (ransform.kernels): the explicit backward is the derivative (gradcheck),
the bound rules equal the PyTorch path's, the CUDA module builds wherever nvcc is, the scale ->
row map and its per-table cache, the families' single definition, and on a GPU the kernels
agree with the reference (skipped without one)."""
import gc
import math
import shutil
import weakref

import numpy as np
import pytest
from conftest import FAMILIES

torch = pytest.importorskip("torch")

from ransform import _core, kernels  # noqa: E402
from ransform.entropy_models import GaussianConditional, LaplaceConditional, LogisticConditional  # noqa: E402
from ransform.kernels.backend import cuda_kernels  # noqa: E402

MODELS = {"gaussian": GaussianConditional, "laplace": LaplaceConditional, "logistic": LogisticConditional}
needs_gpu = pytest.mark.skipif(kernels.backend() != "cuda", reason="no CUDA GPU (or ransform._cuda not built)")


def inputs(n=64, seed=0, dtype=torch.float64, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    scales = torch.exp(torch.empty(n, dtype=torch.float64).uniform_(-1.5, 2.5, generator=g))
    means = torch.randn(n, generator=g, dtype=torch.float64)
    values = means + scales * torch.randn(n, generator=g, dtype=torch.float64) * 1.5
    return [t.to(device, dtype) for t in (values, scales, means)]


def test_cuda_module_builds_where_nvcc_is():
    from ransform import _build_config
    if shutil.which("nvcc") is None:
        pytest.skip("no nvcc on this machine")
    if _build_config.CUDA_OPTION == "OFF":
        pytest.skip("built with RANSFORM_CUDA=OFF (pip's default): the CUDA module was not asked for")
    assert kernels.cuda_module_built()
    assert cuda_kernels.device_count() >= 0


def test_backend_names_the_path():
    import ransform

    assert ransform.backend() == kernels.backend() in ("cuda", "pytorch")
    if not torch.cuda.is_available():
        assert kernels.backend() == "pytorch"


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("with_means", [True, False])
def test_gradcheck(family, with_means):
    v, s, m = inputs()
    s = s.clamp_min(0.2)  # bounds inactive: the true derivative is what is checked here
    args = [t.requires_grad_(True) for t in (v, s, m)]
    fn = lambda v, s, m: kernels.conditional_likelihood(v, s, m if with_means else None, family, 0.11, 0)  # noqa: E731
    assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-7, rtol=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
def test_forward_and_bound_rules_equal_the_entropy_model(family):
    v, s, m = inputs(256, seed=1, dtype=torch.float32)
    s[:40] = 0.01                # scale bound active
    v[40:60] = m[40:60] + 40     # likelihood bound active
    weights = torch.randn(256)   # both signs: blocked and passing gradients
    grads = []
    for path in ("fused", "model"):
        a = [t.clone().requires_grad_(True) for t in (v, s, m)]
        if path == "fused":
            lik = kernels.conditional_likelihood(*a, family=family)
        else:
            gc = MODELS[family]()
            lik = gc.bound_likelihood(gc.likelihood(*a))
        ((-torch.log2(lik)).sum() + (lik * weights).sum()).backward()
        grads.append((lik.detach(), *[t.grad for t in a]))
    for got, want in zip(*grads):
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-6)


def test_errors():
    v, s, m = inputs(8)
    with pytest.raises(ValueError, match="family"):
        kernels.conditional_likelihood(v, s, m, family="cauchy")
    with pytest.raises(ValueError, match="same shape"):
        kernels.conditional_likelihood(v, s[:4], m)


@needs_gpu
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_cuda_matches_reference(family, dtype):
    v, s, m = inputs(100_003, seed=2, dtype=torch.float32)
    s[:1000] = 0.01
    v[1000:2000] += 60
    weights = torch.randn(v.shape)
    results = []
    for device in ("cpu", "cuda"):
        # The reference sees the same rounded inputs, computed in float32 like the kernels. Copies:
        # without copy=True, float32 on the CPU would hand back (and mark) the shared inputs.
        a = [t.to(dtype).to(device, torch.float32 if device == "cpu" else dtype, copy=True).requires_grad_(True)
             for t in (v, s, m)]
        lik = kernels.conditional_likelihood(*a, family=family)
        ((-torch.log2(lik.float())).sum() + (lik.float() * weights.to(device)).sum()).backward()
        results.append([lik.detach().float().cpu()] + [t.grad.float().cpu() for t in a])
    # The GPU returns its results in dtype: bfloat16's rounding alone is up to 2^-8 relative.
    rtol = 1e-2 if dtype == torch.bfloat16 else 2e-3
    for got, want in zip(results[1], results[0]):
        assert torch.allclose(got, want, rtol=rtol, atol=1e-5)


def test_scale_index_cpu_path_equals_the_table():
    import ransform

    table = ransform.GaussianTable()
    scales = torch.cat([torch.from_numpy(table.thresholds), torch.exp(torch.empty(1000).uniform_(-4, 7)),
                        torch.tensor([0.0, 1e-30, 3e38])])
    rows = kernels.scale_index(table, scales)
    assert rows.dtype == torch.int32
    assert np.array_equal(rows.numpy(), table.index(scales.numpy()))
    with pytest.raises(ValueError):
        kernels.scale_index(table, torch.tensor([1.0, float("nan")]))


def test_threshold_cache_serves_each_table_its_own_thresholds(monkeypatch):
    """The GPU scale -> row map uploads a table's thresholds once per device. Keyed by id(), a
    table allocated where a freed one lived was served the freed table's thresholds (wrong
    rows). Made deterministic: every id() collides here, and each table still gets its own."""
    import ransform

    cache = kernels.rows
    monkeypatch.setattr(cache, "id", lambda obj: 0, raising=False)
    small = ransform.ScaleTable([0.5, 1.0, 2.0])
    large = ransform.ScaleTable(np.geomspace(0.2, 50, 9).astype(np.float32), family="laplace")
    for table in (small, large, small):
        assert np.array_equal(cache.device_thresholds(table, "cpu").numpy(), table.thresholds)
    assert cache.device_thresholds(small, "cpu") is cache.device_thresholds(small, "cpu")  # uploaded once

    # The cache holds its tables weakly: a freed table leaves nothing a later one could hit.
    freed = weakref.ref(small)
    del table, small
    gc.collect()
    assert freed() is None


def test_families_are_defined_once_in_the_core():
    """csrc/core/families.hpp names the families and their codes; Python reads them from
    _core, the CUDA kernels include the header, and the reference math covers each one."""
    import ransform

    assert kernels.FAMILIES == _core.families()
    assert set(kernels.FAMILIES) == {"gaussian", "laplace", "logistic"}
    t = torch.linspace(-3, 3, 7, dtype=torch.float64)
    for name in kernels.FAMILIES:
        assert torch.allclose(kernels.upper_tail(name, t) + kernels.upper_tail(name, -t), torch.ones_like(t))
        assert (kernels.density(name, t) > 0).all()
    with pytest.raises(ValueError, match="'gaussian', 'laplace' or 'logistic', got 'cauchy'"):
        ransform.ScaleTable([1.0], family="cauchy")
    if cuda_kernels is not None:  # the kernels check the code before any launch
        unknown = max(kernels.FAMILIES.values()) + 1
        with pytest.raises(ValueError, match=f"family code {unknown}"):
            cuda_kernels.conditional_likelihood_forward(0, 0, 0, 0, unknown, 0.11, 1e-9, 0, 0, 0)


@needs_gpu
@pytest.mark.parametrize("family", FAMILIES)
def test_gpu_rows_are_the_cpus(family):
    import ransform

    table = ransform.ScaleTable(family=family)
    t = torch.from_numpy(table.thresholds)
    on_boundaries = torch.cat([t, torch.nextafter(t, torch.zeros_like(t)), torch.nextafter(t, t * 2)])
    g = torch.Generator().manual_seed(0)
    scales = torch.cat([on_boundaries, torch.exp(torch.empty(10_000_000).uniform_(-5, 7, generator=g))])
    gpu = kernels.scale_index(table, scales.cuda()).cpu().numpy()
    assert np.array_equal(gpu, table.index(scales.numpy()))
    with pytest.raises(ValueError):
        kernels.scale_index(table, torch.tensor([1.0, -1.0]).cuda())


@pytest.mark.parametrize("family", FAMILIES)
def test_bits_are_minus_log2_of_the_bounded_likelihood(family):
    v, s, m = inputs(300, seed=4, dtype=torch.float32)
    v[:30] += 80  # the likelihood bound caps these at -log2(1e-9) bits
    bits = kernels.conditional_bits(v, s, m, family)
    lik = kernels.conditional_likelihood(v, s, m, family)
    assert torch.allclose(bits, -torch.log2(lik))
    cap = -math.log2(1e-9)
    assert bits.max() <= cap + 1e-4
    if family == "gaussian":  # 80 away is far past the bound for the light tail
        assert torch.allclose(bits[:30], torch.full((30,), cap))
    if kernels.backend() == "cuda":
        gpu = kernels.conditional_bits(v.cuda(), s.cuda(), m.cuda(), family).cpu()
        assert torch.allclose(gpu, bits, rtol=1e-4, atol=1e-4)
