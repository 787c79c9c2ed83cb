"""Incremental coding: Encoder over several calls, Decoder piece by piece (autoregressive use)."""
from __future__ import annotations

import numpy as np
import pytest
import ransform
from conftest import (
    CHILD_PRELUDE,
    HAVE_TORCH,
    INT32_MAX,
    INT32_MIN,
    MAX_CHUNK_SYMBOLS,
    categorical_cases,
    gaussian_latent,
    needs_torch,
    parse_header,
    run_child_json,
)
from hypothesis import given
from hypothesis import strategies as st

if HAVE_TORCH:
    import torch


def split_points(rng, n, max_piece):
    cuts, i = [0], 0
    while i < n:
        i = min(n, i + int(rng.integers(0, max_piece + 1)))
        cuts.append(i)
    return cuts


def decode_in_pieces(data, idx, table, cuts):
    dec = ransform.Decoder(data, table)
    assert dec.remaining == idx.size and dec.position == 0
    out = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        part = dec.decode(idx[a:b])
        assert part.dtype == np.int32 and part.shape == (b - a,)
        assert dec.position == b and dec.remaining == idx.size - b
        out.append(part)
    assert dec.remaining == 0
    return np.concatenate(out) if out else np.zeros(0, np.int32)


# --------------------------------------------------------------------------- Encoder


@given(categorical_cases(max_symbols=2000), st.integers(0, 2**32 - 1))
def test_encoder_calls_equal_one_encode(case, seed):
    rng = np.random.default_rng(seed)
    sym, idx = case.symbols.ravel(), case.indexes.ravel()
    enc = ransform.Encoder(case.table)
    cuts = split_points(rng, sym.size, 300)
    for a, b in zip(cuts[:-1], cuts[1:]):
        dtype = [np.int32, np.int64][int(rng.integers(2))]
        enc.encode(sym[a:b].astype(dtype), idx[a:b].astype(dtype))
        assert len(enc) == b
    data = enc.finish()
    assert data == ransform.encode(sym, idx, case.table)
    np.testing.assert_array_equal(decode_in_pieces(data, idx, case.table, split_points(rng, sym.size, 300)), sym)


def test_encoder_shapes_and_types(gauss):
    rng = np.random.default_rng(1)
    v, s = gaussian_latent(rng, 6 * 8 * 10)
    v, idx = v.reshape(6, 8, 10), gauss.index(s).reshape(6, 8, 10)
    enc = ransform.Encoder(gauss)
    enc.encode(v[0], idx[0])                                  # 2-D
    enc.encode(v[1].T, idx[1].T)                              # non-contiguous, in its logical order
    enc.encode(v[2:4].tolist(), idx[2:4].tolist())            # nested lists
    enc.encode(np.zeros((0, 3), np.int8), np.zeros((0, 3), np.uint8))
    enc.encode(v[4:].astype(np.int64), idx[4:].astype(np.int16))
    expected = np.concatenate([v[0].ravel(), v[1].T.ravel(), v[2:4].ravel(), v[4:].ravel()])
    expected_idx = np.concatenate([idx[0].ravel(), idx[1].T.ravel(), idx[2:4].ravel(), idx[4:].ravel()])
    assert len(enc) == v.size
    data = enc.finish(threads=2)
    assert data == ransform.encode(expected, expected_idx, gauss)


@needs_torch
def test_encoder_and_decoder_take_torch_tensors(gauss):
    rng = np.random.default_rng(2)
    v, s = gaussian_latent(rng, 4 * 64)
    v, idx = torch.from_numpy(v.reshape(4, 64)), torch.from_numpy(gauss.index(s).reshape(4, 64))
    enc = ransform.Encoder(gauss)
    for k in range(4):
        enc.encode(v[k].to(torch.int16), idx[k].to(torch.int64))
    data = enc.finish()
    assert data == ransform.encode(v, idx, gauss)
    dec = ransform.Decoder(data, gauss)
    rows = [dec.decode(idx[k]) for k in range(4)]
    assert all(isinstance(r, np.ndarray) and r.shape == (64,) for r in rows)
    np.testing.assert_array_equal(np.stack(rows), v.numpy())


def test_encoder_big_stream_equals_encode(gauss):
    rng = np.random.default_rng(3)
    n = MAX_CHUNK_SYMBOLS + 250_000
    v, s = gaussian_latent(rng, n)
    v[rng.integers(0, n, 100)] = rng.integers(INT32_MIN, INT32_MAX, 100, endpoint=True)
    idx = gauss.index(s)
    enc = ransform.Encoder(gauss)
    cuts = split_points(rng, n, 400_000)
    for a, b in zip(cuts[:-1], cuts[1:]):
        enc.encode(v[a:b], idx[a:b])
    data = enc.finish(threads=0)
    assert data == ransform.encode(v, idx, gauss)
    assert parse_header(data).chunks == 2


# --------------------------------------------------------------------------- Decoder


def test_autoregressive_latent_192x32x48(gauss):
    """A 192x32x48 latent decoded position by position: 1536 calls of 192 channels each."""
    rng = np.random.default_rng(4)
    c, h, w = 192, 32, 48
    scales = np.exp(rng.uniform(np.log(0.11), np.log(20), (c, h, w))).astype(np.float32)
    y = np.rint(scales * rng.standard_normal((c, h, w))).astype(np.int32)
    y[rng.random((c, h, w)) < 1e-4] = 5000
    idx = gauss.index(scales)
    # coding order: position by position, all channels of a position together
    enc = ransform.Encoder(gauss)
    for i in range(h):
        for j in range(w):
            enc.encode(y[:, i, j], idx[:, i, j])
    data = enc.finish()
    assert data == ransform.encode(y.transpose(1, 2, 0), idx.transpose(1, 2, 0), gauss)
    dec = ransform.Decoder(data, gauss)
    out = np.empty_like(y)
    calls = 0
    for i in range(h):
        for j in range(w):
            col = np.ascontiguousarray(idx[:, i, j])
            out[:, i, j] = dec.decode(col)
            calls += 1
            assert dec.remaining == c * (h * w - calls)
    assert calls == 1536
    np.testing.assert_array_equal(out, y)
    assert parse_header(data).lanes == 8  # 8 lanes, so calls of 192 restart at lane 0 each time


@pytest.mark.parametrize("max_piece", [1, 7, 193, 5000])
def test_decoder_piece_sizes_small_stream(max_piece, gauss):
    rng = np.random.default_rng(5)
    n = 40_000  # several lanes: pieces start at every lane offset
    v, s = gaussian_latent(rng, n)
    v[::997] = INT32_MIN
    idx = gauss.index(s)
    data = ransform.encode(v, idx, gauss)
    assert parse_header(data).lanes > 1
    np.testing.assert_array_equal(decode_in_pieces(data, idx, gauss, split_points(rng, n, max_piece)), v)


def test_decoder_across_chunk_boundaries(gauss):
    """> 2^21 symbols in calls of mixed sizes, some ending exactly at, some straddling, the chunk
    boundary."""
    rng = np.random.default_rng(6)
    n = 2 * MAX_CHUNK_SYMBOLS + 77_777  # 4 chunks
    v, s = gaussian_latent(rng, n)
    v[rng.integers(0, n, 300)] = rng.integers(INT32_MIN, INT32_MAX, 300, endpoint=True)
    idx = gauss.index(s)
    data = ransform.encode(v, idx, gauss)
    h = parse_header(data)
    assert h.chunks == 4
    S = -(-n // h.chunks)
    cuts = sorted(set([0, n, S, S + 1, 2 * S - 1, 3 * S - 3, 3 * S + 5] + split_points(rng, n, 300_000)))
    sizes = np.diff(cuts)
    assert (sizes == 1).any() and sizes.max() > 100_000
    np.testing.assert_array_equal(decode_in_pieces(data, idx, gauss, cuts), v)
    # small calls around the boundaries too
    dec = ransform.Decoder(data, gauss)
    dec.decode(idx[:S - 5])
    out = [dec.decode(idx[S - 5 + k:S - 4 + k]) for k in range(10)]
    np.testing.assert_array_equal(np.concatenate(out), v[S - 5:S + 5])
    dec.decode(idx[S + 5:])
    assert dec.remaining == 0


def test_decoding_more_than_remains_raises(gauss):
    v = np.arange(-50, 50, dtype=np.int32)
    idx = np.full(100, 100, np.int32)
    data = ransform.encode(v, idx, gauss)
    dec = ransform.Decoder(data, gauss)
    with pytest.raises(ransform.StreamError, match="101"):
        dec.decode(np.full(101, 100, np.int32))
    dec = ransform.Decoder(data, gauss)
    np.testing.assert_array_equal(dec.decode(idx[:60]), v[:60])
    with pytest.raises(ransform.StreamError):
        dec.decode(idx[:41])
    dec = ransform.Decoder(data, gauss)
    np.testing.assert_array_equal(dec.decode(idx), v)
    assert dec.decode(np.zeros(0, np.int32)).shape == (0,)
    with pytest.raises(ransform.StreamError):
        dec.decode(idx[:1])
    empty = ransform.encode(np.zeros(0, np.int32), np.zeros(0, np.int32), gauss)
    dec = ransform.Decoder(empty, gauss)
    assert dec.remaining == 0 and dec.decode(np.zeros((0, 4), np.int32)).shape == (0, 4)
    with pytest.raises(ransform.StreamError):
        dec.decode(np.zeros(1, np.int32))


def test_decoder_output_shapes_and_index_types(gauss):
    rng = np.random.default_rng(7)
    v, s = gaussian_latent(rng, 2 * 3 * 4 * 5)
    idx = gauss.index(s)
    data = ransform.encode(v, idx, gauss)
    dec = ransform.Decoder(data, gauss)
    a = dec.decode(idx[:24].reshape(2, 3, 4))                      # int32 C-contiguous (fast path)
    b = dec.decode(idx[24:48].reshape(4, 6).T.copy(order="F").T)   # Fortran-ordered
    c = dec.decode(idx[48:72].astype(np.int64).reshape(6, 4))      # other dtype
    d = dec.decode(idx[72:96].tolist())                            # a list
    e = dec.decode(idx[96:120].reshape(2, 12)[:, ::1])
    assert a.shape == (2, 3, 4) and b.shape == (4, 6) and c.shape == (6, 4) and d.shape == (24,) and e.shape == (2, 12)
    np.testing.assert_array_equal(np.concatenate([x.ravel() for x in (a, b, c, d, e)]), v)


def test_decoder_keeps_its_own_copy_of_the_data(gauss):
    rng = np.random.default_rng(8)
    v, s = gaussian_latent(rng, 20_000)
    idx = gauss.index(s)
    buf = bytearray(ransform.encode(v, idx, gauss))
    dec = ransform.Decoder(buf, gauss)
    first = dec.decode(idx[:100])
    buf[:] = bytes(len(buf))  # the caller reuses its buffer
    del buf
    rest = dec.decode(idx[100:])
    np.testing.assert_array_equal(np.concatenate([first, rest]), v)


def test_decoder_bad_index_is_a_value_error_and_stays_failed(gauss):
    v = np.zeros(1000, np.int32)
    idx = np.full(1000, 5, np.int32)
    data = ransform.encode(v, idx, gauss)
    dec = ransform.Decoder(data, gauss)
    dec.decode(idx[:10])
    bad = idx[10:20].copy()
    bad[4] = gauss.rows
    with pytest.raises(ValueError, match=f"= {gauss.rows} is out of range"):
        dec.decode(bad)
    with pytest.raises(ValueError):  # its state is lost: later calls raise too, never crash
        dec.decode(idx[10:20])


def test_wrong_indexes_raise_by_the_last_call(gauss):
    rng = np.random.default_rng(9)
    v, s = gaussian_latent(rng, 100_000)
    idx = gauss.index(s)
    data = ransform.encode(v, idx, gauss)
    for trial in range(20):
        bad = idx.copy()
        k = int(rng.integers(0, bad.size))
        bad[k] = (bad[k] + 1 + int(rng.integers(0, 5))) % gauss.rows
        dec = ransform.Decoder(data, gauss)
        out = []
        cuts = split_points(rng, bad.size, 20_000)
        with pytest.raises(ransform.StreamError):
            for a, b in zip(cuts[:-1], cuts[1:]):
                out.append(dec.decode(bad[a:b]))


def test_corrupted_streams_raise_by_the_end_of_the_damaged_chunk():
    """Flip bits in chunk c of a 4-chunk stream and decode in pieces: StreamError comes at the
    latest with the call that decodes chunk c's last symbol; later calls raise as well."""
    report = run_child_json(CHILD_PRELUDE + r'''
rng = np.random.default_rng(10)
g = ransform.GaussianTable()
n = 2 * 2**21 + 5000
s = np.exp(rng.uniform(np.log(0.11), np.log(20), n)).astype(np.float32)
v = np.rint(s * rng.standard_normal(n)).astype(np.int32)
idx = g.index(s)
data = ransform.encode(v, idx, g)
p = 1
def varint():
    global p
    x, sh = 0, 0
    while True:
        b = data[p]; p += 1; x |= (b & 0x7F) << sh; sh += 7
        if not b & 0x80:
            return x
assert varint() == n
chunks = varint() + 1
lengths = [varint() for _ in range(chunks - 1)]
starts = [p]
for L in lengths:
    starts.append(starts[-1] + L)
ends = starts[1:] + [len(data)]
S = -(-n // chunks)
late, ok, wrong, later_ok = [], 0, 0, 0
for trial in range(24):
    c = trial % chunks
    b = bytearray(data)
    pos = int(rng.integers(starts[c], ends[c]))
    b[pos] ^= 1 << int(rng.integers(8))
    dec = ransform.Decoder(bytes(b), g)
    chunk_last = min(n, (c + 1) * S) - 1
    i, raised_at, got = 0, None, []
    while i < n:
        k = int(rng.integers(1, 300000))
        try:
            got.append(dec.decode(idx[i:i + k]))
        except StreamError:
            raised_at = i
            break
        i += k
    if raised_at is None:
        if np.array_equal(np.concatenate(got), v): ok += 1
        else: wrong += 1
        continue
    if raised_at > chunk_last:
        late.append([trial, c, pos, raised_at, chunk_last])
    try:
        dec.decode(idx[raised_at:raised_at + 10])
    except StreamError:
        later_ok += 1
print(json.dumps(dict(late=late, ok=ok, wrong=wrong, later_raise=later_ok)))
''', timeout=120)
    assert report["wrong"] == 0, report
    assert report["late"] == [], f"errors reported after the damaged chunk was fully decoded: {report['late']}"
    assert report["later_raise"] + report["ok"] == 24


def test_an_encoder_shared_by_threads_takes_turns():
    """Threads appending and finishing on one Encoder: every stream decodes, and every call's
    block of symbols lands whole (the lock makes each call atomic)."""
    import threading
    table = ransform.GaussianTable()
    enc = ransform.Encoder(table)
    streams, errors = [], []

    def writer(t):
        try:
            for k in range(300):
                block = np.full(37, t * 1000 + k % 500, dtype=np.int32)
                enc.encode(block, np.full(37, 100, dtype=np.int32))
        except Exception as exc:  # pragma: no cover - a failure is what the test looks for
            errors.append(exc)

    def finisher():
        for _ in range(40):
            streams.append(enc.finish())

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(3)] + [threading.Thread(target=finisher)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    streams.append(enc.finish())
    assert not errors
    total = 0
    for data in streams:
        n = ransform.Decoder(data, table).remaining
        out = ransform.decode(data, np.full(n, 100, dtype=np.int32), table)
        assert n % 37 == 0 and all(len(set(block)) == 1 for block in out.reshape(-1, 37))
        total += n
    assert total == 3 * 300 * 37


def test_a_decoder_shared_by_threads_hands_out_each_symbol_once():
    import threading
    table = ransform.GaussianTable()
    symbols = np.arange(20000, dtype=np.int32) % 7 - 3
    data = ransform.encode(symbols, np.full(symbols.size, 120, dtype=np.int32), table)
    dec = ransform.Decoder(data, table)
    pieces, lock = [], threading.Lock()

    def reader():
        while True:
            with lock:
                if dec.remaining == 0:
                    return
            try:
                out = dec.decode(np.full(50, 120, dtype=np.int32))
            except ValueError:  # another thread took the last symbols first
                return
            with lock:
                pieces.append(out)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    got = np.concatenate(pieces)
    assert got.size == symbols.size
    assert sorted(map(tuple, got.reshape(-1, 50))) == sorted(map(tuple, symbols.reshape(-1, 50)))
