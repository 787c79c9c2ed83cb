"""The 8-lane vector decoder (csrc/core/vector_lanes.hpp) against the scalar one.

Both must give the same symbols and, on a damaged stream, the same error: a file decodes the
same on a CPU with AVX-512 and one without. Every test decodes with the vector kernel allowed
and forbidden and compares; on a CPU without the kernel both runs take the scalar path and the
tests still check round trips.
"""
from __future__ import annotations

import numpy as np
import pytest
import ransform
import reference_decoder as ref
from conftest import avx512_kernels, gaussian_latent, parse_header
from ransform import _core

HAVE_VECTOR = _core._avx512()[0]


def decoded_both_ways(fn):
    """(result or error text) with the vector decoder, then without it."""
    results = []
    for allow in (True, False):
        with avx512_kernels(allow):
            try:
                results.append(np.asarray(fn()).copy())
            except ValueError as e:
                results.append(f"{type(e).__name__}: {e}")
    return results


def assert_both_decode_to(values, fn):
    """fn() gives `values` with the vector decoder and without it."""
    for result in decoded_both_ways(fn):
        np.testing.assert_array_equal(result, values)


def assert_whole_stream_decodes(data, idx, table, values):
    """One call, on one thread (two chunks a task) and on two (one each), both ways."""
    for threads in (1, 2):
        assert_both_decode_to(values, lambda: ransform.decode(data, idx, table, threads=threads))


def assert_same(a, b):
    assert type(a) is type(b), (a, b)
    if isinstance(a, str):
        assert a == b
    else:
        np.testing.assert_array_equal(a, b)


def latent_with_outliers(rng, n, precision=16):
    """W1-like symbols (wide and narrow rows, so crowded buckets) with escapes sprinkled in."""
    table = ransform.GaussianTable(precision=precision)
    values, scales = gaussian_latent(rng, n)
    where = rng.choice(n, n // 2000, replace=False)
    values[where] = rng.choice([-100000, -1000, -40, 40, 1000, 2**31 - 1, -2**31], where.size)
    return values, table.index(scales), table


@pytest.mark.parametrize("precision", [12, 14, 16])
def test_big_streams_decode_the_same(rng, precision):
    values, idx, table = latent_with_outliers(rng, 700_000, precision)
    data = ransform.encode(values, idx, table)
    h = parse_header(data)
    assert (h.lanes, h.chunks) == (8, 2)  # the layout the vector decoder (and its pairs) take
    assert_whole_stream_decodes(data, idx, table, values)


def test_incremental_decoding_is_the_same(rng):
    values, idx, table = latent_with_outliers(rng, 400_000)
    data = ransform.encode(values, idx, table)
    assert parse_header(data).lanes == 8
    cuts = np.sort(rng.choice(values.size, 40, replace=False))

    def pieces():
        dec = ransform.Decoder(data, table)
        return np.concatenate([dec.decode(part) for part in np.split(idx, cuts)])

    assert_both_decode_to(values, pieces)


def test_odd_chunk_counts_and_short_chunks(rng):
    """Three and five 8-lane chunks (a pair and a chunk alone), chunks of a few blocks with a
    ragged end, written by the reference encoder."""
    table = ransform.GaussianTable()
    rows = ref.Rows(table)
    values, scales = gaussian_latent(rng, 3 * 4096 * 2 + 13)
    values[::997] = 5000
    idx = table.index(scales)
    for chunks in (3, 5):
        assert_whole_stream_decodes(ref.encode(values, idx, rows, lanes=8, chunks=chunks), idx, table, values)


def test_damaged_streams_fail_the_same_way(rng):
    values, idx, table = latent_with_outliers(rng, 300_000)
    data = ransform.encode(values, idx, table)
    assert (parse_header(data).lanes, parse_header(data).chunks) == (8, 2)
    seen = set()
    for k in range(60):
        bad = bytearray(data)
        pos = int(rng.integers(8, len(bad)))
        if k % 3 == 0:
            bad[pos] ^= 1 << int(rng.integers(8))
        elif k % 3 == 1:
            del bad[pos:]
        else:
            bad[pos:pos + 4] = bytes(4)
        for threads in (1, 2):
            fast, slow = decoded_both_ways(lambda: ransform.decode(bytes(bad), idx, table, threads=threads))
            assert_same(fast, slow)
            seen.add(fast.split(" (")[0] if isinstance(fast, str) else "decoded")
    assert len(seen) >= 2, seen  # the damage was noticed, in more than one way


def test_bad_index_in_a_pair_is_reported_at_its_position(rng):
    values, idx, table = latent_with_outliers(rng, 300_000)
    data = ransform.encode(values, idx, table)
    for pos in (5, 200_000):  # in the first chunk, in the second
        bad = idx.copy()
        bad[pos] = table.rows
        fast, slow = decoded_both_ways(lambda: ransform.decode(data, bad, table, threads=1))
        assert fast == slow
        assert f"indexes[{pos}] = {table.rows} is out of range" in fast


def test_switch_reports_the_cpu():
    has, allowed = _core._avx512()
    assert allowed is True  # on unless a test turned it off
    assert has == HAVE_VECTOR


def test_tables_of_many_rows_decode_the_same(rng):
    """A table of more than 4096 rows (a mixture's kind: few symbols a row) gets 16 buckets a
    row instead of 256; both decoders must still agree, escapes and crowded buckets included."""
    rows, width = 5000, 40
    pmfs = rng.dirichlet(np.full(width, 0.3), rows)
    table = ransform.CategoricalTable(pmfs, offsets=-(width // 2), tail_mass=1e-3)
    assert table._native._bucket_bits == 4 and ransform.GaussianTable()._native._bucket_bits == 8
    idx = rng.integers(0, rows, 600_000).astype(np.int32)
    cum = np.cumsum(pmfs[idx], axis=1)
    values = (cum < rng.random((idx.size, 1))).sum(1).astype(np.int32) - width // 2
    values[::3001] = 777  # escapes
    data = ransform.encode(values, idx, table)
    assert parse_header(data).lanes == 8
    assert_whole_stream_decodes(data, idx, table, values)
