"""Table builders that run on the CPU and, with the same code, on the GPU: scale-table rows
(rows, crossings, assembly into a ScaleTable) and per-element mixture rows. The GPU halves
check bit-identity and skip without a GPU."""
import numpy as np
import pytest
from conftest import FAMILIES
from ransform import _core
from ransform.tables import ScaleTable, build_scale_rows

torch = pytest.importorskip("torch")

from ransform import kernels  # noqa: E402
from ransform.kernels import mixture_rows  # noqa: E402

needs_gpu = pytest.mark.skipif(kernels.backend() != "cuda", reason="no CUDA GPU (or ransform._cuda not built)")


def tables_equal(a, b):
    return (a.rows == b.rows and np.array_equal(a.thresholds, b.thresholds)
            and all(a.offset(r) == b.offset(r) and np.array_equal(a.frequencies(r), b.frequencies(r))
                    for r in range(a.rows)))


@pytest.mark.parametrize("family", FAMILIES)
def test_rows_assemble_into_the_table(family):
    scales = np.geomspace(0.1, 300, 23).astype(np.float32)
    radius, freqs, crossings = build_scale_rows(scales, family=family, precision=14)
    assert radius.dtype == np.int32 and freqs.dtype == np.uint32 and crossings.shape == (22,)
    assert freqs.size == int((2 * radius.astype(np.int64) + 2).sum())
    assert np.all((crossings > scales[:-1]) & (crossings <= scales[1:]))
    direct = ScaleTable(scales, family=family, precision=14)
    assembled = _core.ScaleTable.from_rows(family, scales, 14, 1e-9, radius, freqs, crossings)
    assert tables_equal(direct, assembled)


def test_from_rows_checks_its_input():
    radius, freqs, crossings = build_scale_rows()
    with pytest.raises(ValueError, match="shorter"):
        _core.ScaleTable.from_rows("gaussian", None, 16, 1e-9, radius, freqs[:-1], crossings)
    with pytest.raises(ValueError, match="longer"):
        _core.ScaleTable.from_rows("gaussian", None, 16, 1e-9, radius, np.append(freqs, 1).astype(np.uint32),
                                   crossings)
    with pytest.raises(ValueError, match="size"):
        _core.ScaleTable.from_rows("gaussian", None, 16, 1e-9, radius, freqs, crossings[:-1])
    bad = freqs.copy()
    bad[0] += 1  # no longer sums to 2**16
    with pytest.raises(ValueError, match="sum"):
        _core.ScaleTable.from_rows("gaussian", None, 16, 1e-9, radius, bad, crossings)
    with pytest.raises(ValueError, match="device"):
        ScaleTable(device="tpu")


def test_gpu_builder_without_a_gpu_says_so():
    if kernels.backend() == "cuda":
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="GPU"):
        build_scale_rows(device="cuda")


# --- mixtures --------------------------------------------------------------------------------------
def random_mixtures(n, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    weights = torch.rand(n, k, generator=g) + 0.01
    means = torch.randn(n, k, generator=g) * 4
    scales = torch.exp(torch.empty(n, k).uniform_(-2.5, 3.0, generator=g))
    return weights, means, scales


def reference_pmf(w, m, s, lo, hi):
    """Mixture pmf over lo..hi and the escape mass, in float64 with torch's erfc."""
    v = torch.arange(lo, hi + 1, dtype=torch.float64)[:, None]
    w, m, s = (t.double() for t in (w, m, s))
    cdf = lambda x: 0.5 * torch.erfc(-(x - m) / (s * 2 ** 0.5))  # noqa: E731
    p = ((cdf(v + 0.5) - cdf(v - 0.5)) * w).sum(1) / w.sum()
    return p, 1 - p.sum()


def test_mixture_rows_are_valid_and_follow_the_density():
    w, m, s = random_mixtures(2000)
    freqs, offsets, lengths = mixture_rows(w, m, s, max_symbols=128)
    assert freqs.dtype == np.uint32 and freqs.shape == (2000, lengths.max())
    valid = np.arange(freqs.shape[1])[None, :] < lengths[:, None]
    assert np.all(freqs[valid] >= 1) and np.all(freqs[~valid] == 0)
    assert np.all(freqs.astype(np.int64).sum(1) == 2**16)
    assert lengths.max() <= 129
    for i in range(0, 2000, 97):
        lo, hi = int(offsets[i]), int(offsets[i]) + int(lengths[i]) - 2
        if lengths[i] < 129:  # not capped: the support covers every component's +-6 scales
            assert lo <= float((m[i] - 6 * s[i]).min()) and hi >= float((m[i] + 6 * s[i]).max())
        p, escape = reference_pmf(w[i], m[i], s[i], lo, hi)
        q = freqs[i, : lengths[i]] / 2**16
        assert np.allclose(q[:-1], p.numpy(), atol=2 * lengths[i] / 2**16)
        assert abs(q[-1] - float(escape)) < 2 * lengths[i] / 2**16


def test_mixture_rows_threads_and_families_and_errors():
    w, m, s = random_mixtures(5000, k=2, seed=1)
    one = mixture_rows(w, m, s, family="laplace")
    two = mixture_rows(w, m, s, family="laplace", threads=2)
    assert all(np.array_equal(a, b) for a, b in zip(one, two))
    assert not np.array_equal(one[0], mixture_rows(w, m, s)[0][:, : one[0].shape[1]])
    s[1234, 1] = float("nan")
    with pytest.raises(ValueError, match="element 1234"):
        mixture_rows(w, m, s)
    with pytest.raises(ValueError, match="max_symbols"):
        mixture_rows(*random_mixtures(4), max_symbols=20000)
    with pytest.raises(ValueError, match="components"):
        mixture_rows(*random_mixtures(4, k=9))
    with pytest.raises(ValueError, match="shape"):
        mixture_rows(w, m[:10], s)


# --- on a GPU: the same bits -------------------------------------------------------------------------
@needs_gpu
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("precision", [12, 16])
def test_gpu_scale_rows_are_the_cpus(family, precision):
    for scales in (None, np.geomspace(0.05, 900, 57).astype(np.float32)):
        cpu = build_scale_rows(scales, family=family, precision=precision)
        gpu = build_scale_rows(scales, family=family, precision=precision, device="cuda")
        for a, b in zip(cpu, gpu):
            assert a.dtype == b.dtype and np.array_equal(a, b)
    assert tables_equal(ScaleTable(family=family, precision=precision),
                        ScaleTable(family=family, precision=precision, device="cuda"))


@needs_gpu
@pytest.mark.parametrize("family", FAMILIES)
def test_gpu_mixture_rows_are_the_cpus(family):
    w, m, s = random_mixtures(1_000_000, k=4, seed=2)
    m[:1000] = torch.round(m[:1000]) + 0.5  # means on half-integer boundaries
    s[1000:2000] = 1e-6
    cpu = mixture_rows(w, m, s, family=family)
    gpu = mixture_rows(w.cuda(), m.cuda(), s.cuda(), family=family)
    for a, b in zip(cpu, gpu):
        assert np.array_equal(a, b)
    s[77, 0] = -1.0
    with pytest.raises(ValueError, match="element 77"):
        mixture_rows(w.cuda(), m.cuda(), s.cuda(), family=family)
