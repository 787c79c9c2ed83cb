"""Round trips: decode(encode(x)) == x for random tables, shapes, values, dtypes and thread counts."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest
import ransform
from conftest import (
    FAMILIES,
    HAVE_TORCH,
    INT32_MAX,
    INT32_MIN,
    MAX_CHUNK_SYMBOLS,
    assert_child_ok,
    categorical_cases,
    gaussian_latent,
    needs_torch,
    parse_header,
    run_python,
    scale_cases,
)
from hypothesis import given, settings
from hypothesis import strategies as st

if HAVE_TORCH:
    import torch


def roundtrip(symbols, indexes, table, threads=1):
    data = ransform.encode(symbols, indexes, table, threads=threads)
    assert isinstance(data, bytes)
    out = ransform.decode(data, indexes, table, threads=threads)
    return data, out


def assert_decoded(out, symbols, indexes):
    idx_shape = tuple(indexes.shape)
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.int32
    assert out.shape == idx_shape
    np.testing.assert_array_equal(out, np.asarray(symbols).astype(np.int64).reshape(idx_shape))


# --------------------------------------------------------------------------- property-based


@given(categorical_cases())
def test_categorical_roundtrip(case):
    data, out = roundtrip(case.symbols, case.indexes, case.table)
    assert_decoded(out, case.symbols, case.indexes)
    h = parse_header(data)
    assert (h.version, h.precision, h.symbols) == (ransform.FORMAT_VERSION, case.precision, case.symbols.size)


@given(categorical_cases(max_symbols=300), st.sampled_from([1, 2, 3, 0]))
def test_categorical_roundtrip_any_threads(case, threads):
    data, out = roundtrip(case.symbols, case.indexes, case.table, threads=threads)
    assert data == ransform.encode(case.symbols, case.indexes, case.table)
    assert_decoded(out, case.symbols, case.indexes)


@given(scale_cases())
def test_scale_table_roundtrip(case):
    table, values, scales = case
    idx = table.index(scales)
    assert idx.shape == scales.shape and idx.dtype == np.int32
    assert ((idx >= 0) & (idx < table.rows)).all()
    data, out = roundtrip(values, idx, table)
    assert_decoded(out, values, idx)


@settings(max_examples=40)
@given(family=st.sampled_from(FAMILIES), precision=st.integers(12, 16),
       log10_scales=st.lists(st.floats(-30, 30), min_size=1, max_size=6),
       seed=st.integers(0, 2**32 - 1))
def test_custom_scale_table_roundtrip(family, precision, log10_scales, seed):
    """ScaleTables on custom scale lists, from tiny to huge scales, code every int32."""
    table_scales = np.sort((10.0 ** np.array(log10_scales)).astype(np.float32))
    table_scales = table_scales[np.concatenate([[True], np.diff(table_scales) > 0])]
    ratios = table_scales[1:].astype(np.float64) / table_scales[:-1].astype(np.float64)
    if len(table_scales) > 1 and ratios.min() < 1 + 1e-5:
        table_scales = table_scales[:1]  # scales closer than the index grid are a separate test
        ratios = np.array([np.inf])
    try:
        table = ransform.ScaleTable(table_scales, family=family, precision=precision)
    except ValueError as e:  # close scales over a wide range: a documented, clear refusal
        assert "too close together" in str(e) and ratios.min() < 1.01
        return
    assert table.rows == len(table_scales)
    rng = np.random.default_rng(seed)
    n = 500
    scales = table_scales[rng.integers(0, len(table_scales), n)]
    values = np.clip(np.rint(scales.astype(np.float64) * rng.standard_normal(n)), INT32_MIN, INT32_MAX)
    values[::17] = rng.integers(INT32_MIN, INT32_MAX, len(values[::17]), endpoint=True)
    values[:2] = [INT32_MIN, INT32_MAX]
    idx = table.index(scales)
    _, out = roundtrip(values.astype(np.int32), idx, table)
    assert_decoded(out, values, idx)


# --------------------------------------------------------------------------- explicit edge cases


@pytest.mark.parametrize("n", [0, 1, 2])
@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_streams(n, family):
    table = ransform.ScaleTable(family=family)
    for values in ([INT32_MIN, INT32_MAX], [0, 0], [-INT32_MAX, 5], [123456, -1]):
        sym = np.array(values[:n], np.int32)
        idx = table.index(np.array([0.0, 300.0][:n], np.float32))
        _, out = roundtrip(sym, idx, table)
        assert_decoded(out, sym, idx)


def test_empty_stream_any_shape(gauss):
    for shape in [(0,), (0, 3), (4, 0, 2)]:
        idx = np.zeros(shape, np.int32)
        data = ransform.encode(np.zeros(shape, np.int16), idx, gauss)
        out = ransform.decode(data, idx, gauss)
        assert out.shape == shape and out.dtype == np.int32
        # any zero-size index array decodes the same empty stream
        assert ransform.decode(data, np.zeros((0,), np.int32), gauss).shape == (0,)


def test_every_int32_extreme_on_every_row(gauss):
    """Each row of the default table codes the int32 extremes and values just past its range."""
    rows = np.arange(gauss.rows, dtype=np.int32)
    vals = []
    for r in rows:
        lo, hi = gauss.offset(int(r)), gauss.offset(int(r)) + gauss.size(int(r)) - 1
        vals.append([INT32_MIN, INT32_MIN + 1, lo - 1, lo, hi, hi + 1, INT32_MAX - 1, INT32_MAX])
    sym = np.array(vals, np.int64)
    idx = np.repeat(rows[:, None], sym.shape[1], axis=1)
    _, out = roundtrip(sym.astype(np.int32), idx, gauss)
    assert_decoded(out, sym, idx)


def test_offsets_at_int32_limits():
    """Rows whose range touches INT32_MIN or INT32_MAX code everything around them."""
    for tail in (0.0, 1e-6):
        table = ransform.CategoricalTable(np.ones((2, 5)), offsets=[INT32_MIN, INT32_MAX - 4], tail_mass=tail)
        sym = np.array([INT32_MIN, INT32_MIN + 4, INT32_MAX, INT32_MAX - 4], np.int32)
        idx = np.array([0, 0, 1, 1], np.int32)
        if tail:
            sym = np.concatenate([sym, [INT32_MAX, 0, INT32_MIN, -1]]).astype(np.int32)
            idx = np.concatenate([idx, [0, 0, 1, 1]]).astype(np.int32)
        _, out = roundtrip(sym, idx, table)
        assert_decoded(out, sym, idx)


def test_single_symbol_rows_cost_nothing():
    """A row with one symbol and no escape has probability 1: a million of them cost ~no bytes."""
    t = ransform.CategoricalTable.from_frequencies(np.array([[2**16]]), offsets=[7], has_escape=False)
    assert t.size(0) == 1
    n = 1_000_000
    data, out = roundtrip(np.full(n, 7, np.int8), np.zeros(n, np.uint8), t)
    assert_decoded(out, np.full(n, 7), np.zeros(n))
    assert len(data) <= 16


# --------------------------------------------------------------------------- input types


INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_integer_dtypes_give_identical_streams(dtype, rng):
    info = np.iinfo(dtype)
    table = ransform.CategoricalTable(rng.random((3, 40)), offsets=[0, -20, 100], tail_mass=1e-4)
    n = 3000
    lo, hi = max(info.min, INT32_MIN), min(info.max, INT32_MAX)
    sym = rng.integers(lo, hi, n, endpoint=True)
    sym[: n // 2] = np.clip(rng.integers(-25, 140, n // 2), lo, hi)
    idx = rng.integers(0, 3, n)
    ref = ransform.encode(sym.astype(np.int32), idx.astype(np.int32), table)
    data = ransform.encode(sym.astype(dtype), idx.astype(dtype), table)
    assert data == ref
    out = ransform.decode(data, idx.astype(dtype), table)
    assert_decoded(out, sym, idx)
    assert ransform.ideal_bits(sym.astype(dtype), idx.astype(dtype), table) == pytest.approx(
        ransform.ideal_bits(sym.astype(np.int32), idx.astype(np.int32), table), rel=0, abs=0)


def test_non_contiguous_and_fortran_inputs(gauss, rng):
    values, scales = gaussian_latent(rng, 6 * 50 * 40)
    values, scales = values.reshape(6, 50, 40), scales.reshape(6, 50, 40)
    idx = gauss.index(scales)
    ref = ransform.encode(values, idx, gauss)
    views = [
        (np.asfortranarray(values), np.asfortranarray(idx)),
        (values.astype(np.int64)[:, ::-1, :][:, ::-1, :], idx[::-1][::-1]),
    ]
    for v, i in views:
        assert ransform.encode(v, i, gauss) == ref
        assert_decoded(ransform.decode(ref, i, gauss), values, idx)
    # a strided view codes exactly what it shows
    v, i = values[:, ::3, 1::2], idx[:, ::3, 1::2]
    data = ransform.encode(v, i, gauss)
    assert data == ransform.encode(np.ascontiguousarray(v), np.ascontiguousarray(i), gauss)
    assert_decoded(ransform.decode(data, np.ascontiguousarray(i), gauss), v, i)


def test_python_lists_and_bytes_like_streams(gauss):
    sym = [0, 1, -1, 5, -300, INT32_MAX]
    idx = [0, 10, 20, 30, 40, 159]
    data = ransform.encode(sym, idx, gauss)
    for d in (data, bytearray(data), memoryview(data), np.frombuffer(data, np.uint8)):
        assert_decoded(ransform.decode(d, idx, gauss), sym, np.array(idx))


@needs_torch
@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "int64", "uint8"])
def test_torch_tensors(dtype, rng):
    tdtype = getattr(torch, dtype)
    info = np.iinfo(np.dtype(dtype))
    table = ransform.CategoricalTable(rng.random((4, 64)), offsets=[-32, 0, 50, -128], tail_mass=1e-3)
    sym = rng.integers(max(info.min, -200), min(info.max, 200), (8, 16, 12), endpoint=True)
    idx = rng.integers(0, 4, sym.shape)
    ref = ransform.encode(sym.astype(np.int32), idx.astype(np.int32), table)
    ts, ti = torch.from_numpy(sym).to(tdtype), torch.from_numpy(idx).to(tdtype)
    assert ransform.encode(ts, ti, table) == ref
    # non-contiguous tensors (a transposed view) code the elements in logical order
    ts_t, ti_t = ts.transpose(0, 2), ti.transpose(0, 2)
    assert not ts_t.is_contiguous()
    data_t = ransform.encode(ts_t, ti_t, table)
    assert data_t == ransform.encode(sym.transpose(2, 1, 0).astype(np.int32), idx.transpose(2, 1, 0).astype(np.int32), table)
    out = ransform.decode(ref, ti, table)
    assert isinstance(out, np.ndarray)
    assert_decoded(out, sym, idx)
    assert_decoded(ransform.decode(data_t, ti_t, table), sym.transpose(2, 1, 0), idx.transpose(2, 1, 0))


@needs_torch
def test_torch_scales_with_grad(gauss, rng):
    s = torch.rand(2, 3, 4, 5, requires_grad=True) * 10
    idx = gauss.index(s)
    np.testing.assert_array_equal(idx, gauss.index(s.detach().numpy()))
    assert idx.shape == (2, 3, 4, 5)
    y = torch.round(torch.randn(2, 3, 4, 5) * s).detach().to(torch.int32)
    _, out = roundtrip(y, idx, gauss)
    assert_decoded(out, y.numpy(), idx)


# --------------------------------------------------------------------------- big streams, threads


def test_few_million_symbols(gauss, rng):
    """~3M W1-like symbols with outliers: two chunks, 8 lanes, exact round trip, well under a second."""
    n = 3_000_000
    values, scales = gaussian_latent(rng, n)
    values[rng.integers(0, n, 3000)] = rng.integers(INT32_MIN, INT32_MAX, 3000, endpoint=True)
    idx = gauss.index(scales)
    t0 = time.perf_counter()
    data, out = roundtrip(values, idx, gauss)
    elapsed = time.perf_counter() - t0
    assert_decoded(out, values, idx)
    h = parse_header(data)
    assert (h.chunks, h.lanes, h.symbols) == (2, 8, n)
    assert elapsed < 5.0, f"3M symbols took {elapsed:.2f} s to encode and decode"


@pytest.fixture(scope="module")
def multi_chunk(gauss):
    rng = np.random.default_rng(2024)
    n = 2 * MAX_CHUNK_SYMBOLS + 123_457  # > 2^22: four chunks
    values, scales = gaussian_latent(rng, n)
    values[rng.integers(0, n, 500)] = rng.integers(INT32_MIN, INT32_MAX, 500, endpoint=True)
    idx = gauss.index(scales)
    return values, idx


def test_thread_count_invariance(multi_chunk, gauss):
    values, idx = multi_chunk
    streams = {t: ransform.encode(values, idx, gauss, threads=t) for t in (1, 2, 4, 0, 7)}
    ref = streams[1]
    h = parse_header(ref)
    assert h.chunks >= 2 and h.symbols == values.size
    assert -(-h.symbols // h.chunks) <= MAX_CHUNK_SYMBOLS  # S = ceil(n / chunks)
    for t, d in streams.items():
        assert d == ref, f"threads={t} changed the stream"
    for t in (1, 2, 3, 4, 0):
        assert_decoded(ransform.decode(ref, idx, gauss, threads=t), values, idx)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity is Linux's")
def test_threads_in_a_process_pinned_to_one_cpu(multi_chunk, gauss):
    """Worker threads start off their creator's CPU where the process may use another
    (parallel.hpp); a process pinned to one CPU (taskset) still runs every thread count."""
    values, idx = multi_chunk
    ref = ransform.encode(values, idx, gauss, threads=1)
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})
    try:
        assert ransform.encode(values, idx, gauss, threads=4) == ref
        assert_decoded(ransform.decode(ref, idx, gauss, threads=4), values, idx)
    finally:
        os.sched_setaffinity(0, allowed)


@pytest.mark.parametrize("n", [MAX_CHUNK_SYMBOLS, MAX_CHUNK_SYMBOLS + 1])
def test_chunk_boundary_sizes(n, gauss, rng):
    values, scales = gaussian_latent(rng, n, lo=0.11, hi=2.0)
    idx = gauss.index(scales)
    data = ransform.encode(values, idx, gauss, threads=2)
    assert parse_header(data).chunks == 2  # 2^21 symbols hold > 64 KB: cut in two for two cores
    assert data == ransform.encode(values, idx, gauss, threads=1)
    assert_decoded(ransform.decode(data, idx, gauss, threads=2), values, idx)


@pytest.mark.parametrize("n,chunks", [(131071, 1), (131072, 2), (1_000_000, 2), (MAX_CHUNK_SYMBOLS + 1, 2)])
def test_streams_of_64_kb_are_cut_for_two_cores(n, chunks, rng):
    """A uniform 8-bit row makes the expected size exactly n bytes: from 2^17 symbols and 64 KB a
    stream is two chunks (a Kodak latent codes on two cores); the same bytes for any thread count."""
    table = ransform.CategoricalTable(np.ones((1, 256)), offsets=0, tail_mass=0.0)
    values = rng.integers(0, 256, n).astype(np.int32)
    idx = np.zeros(n, np.int32)
    data = ransform.encode(values, idx, table, threads=2)
    assert parse_header(data).chunks == chunks
    assert data == ransform.encode(values, idx, table, threads=1)
    assert np.array_equal(ransform.decode(data, idx, table, threads=2), values)


@pytest.mark.parametrize("n,lanes", [(1, 1), (8000, 1), (9000, 2), (20000, 4), (40000, 8), (300000, 8)])
def test_lane_counts_roundtrip(n, lanes, rng):
    """A uniform 8-bit row makes the expected size exactly n bytes, which fixes the lane count;
    every lane count round-trips (also with escapes and a partial last group of lanes)."""
    table = ransform.CategoricalTable(np.ones((1, 256)), offsets=-128, tail_mass=1e-9)
    sym = rng.integers(-128, 128, n)
    sym[rng.random(n) < 0.01] = rng.integers(INT32_MIN, INT32_MAX, 1, endpoint=True)[0]
    for m in (n, n - 1, n - 3):
        if m <= 0:
            continue
        idx = np.zeros(m, np.int32)
        data, out = roundtrip(sym[:m].astype(np.int32), idx, table)
        assert_decoded(out, sym[:m], idx)
    assert parse_header(ransform.encode(sym.astype(np.int32), np.zeros(n, np.int32), table)).lanes == lanes


def test_determinism_across_processes(gauss):
    """Same input, same bytes: tables and streams do not depend on the process (no hidden state)."""
    code = """
        import hashlib, numpy as np, ransform
        rng = np.random.default_rng(5)
        s = np.exp(rng.uniform(-2, 3, 50000)).astype(np.float32)
        v = np.rint(s * rng.standard_normal(50000)).astype(np.int32)
        out = []
        for fam in ("gaussian", "laplace", "logistic"):
            t = ransform.ScaleTable(family=fam, precision=14)
            out.append(hashlib.sha256(ransform.encode(v, t.index(s), t)).hexdigest())
        print(",".join(out))
    """
    p1, p2 = run_python(code), run_python(code)
    assert_child_ok(p1)
    assert_child_ok(p2)
    assert p1.stdout == p2.stdout


def test_out_arrays_are_filled_and_checked(gauss, rng):
    """decode(..., out=) and index(..., out=) write into the caller's array and return it; an
    array of the wrong kind, size or one that overlaps the input is refused."""
    scales = rng.uniform(0.11, 20.0, (3, 40, 7)).astype(np.float32)
    values = np.round(rng.standard_normal(scales.shape) * scales).astype(np.int32)
    idx = np.full(scales.shape, -1, np.int32)
    assert gauss.index(scales, out=idx) is idx
    assert np.array_equal(idx, gauss.index(scales))
    data = ransform.encode(values, idx, gauss)
    out = np.zeros(values.size, np.int32)  # any shape with as many elements
    for threads in (1, 2):
        out[:] = 0
        assert ransform.decode(data, idx, gauss, threads=threads, out=out) is out
        assert np.array_equal(out.reshape(values.shape), values)
    for bad, error, message in ((np.zeros(values.size, np.int64), TypeError, "out must have dtype int32"),
                                (np.zeros(values.size + 1, np.int32), ValueError, "out must have 840 elements"),
                                (np.zeros((values.size, 2), np.int32)[:, 0], TypeError, "C-contiguous"),
                                (idx, ValueError, "must not overlap"),
                                ([0] * values.size, TypeError, "numpy array")):
        with pytest.raises(error, match=message):
            ransform.decode(data, idx, gauss, out=bad)
    frozen = np.zeros(values.size, np.int32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        ransform.decode(data, idx, gauss, out=frozen)
    with pytest.raises(ValueError, match="out must have 840 elements"):
        gauss.index(scales, out=np.zeros(3, np.int32))
