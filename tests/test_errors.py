"""Bad input raises a clear Python exception, never crashes, never decodes silently wrong.

Damaged streams are decoded in child processes (run_child_json), so a segfault or abort fails
the test that caused it instead of killing pytest. Each child reports how every attempt ended:
"error" (StreamError), "same" (the original symbols: harmless, e.g. a flipped unused bit),
"WRONG" (other symbols, no error: a silent mis-decode) or "other" (a non-StreamError exception).
"""
from __future__ import annotations

import numpy as np
import pytest
import ransform
from conftest import (
    BASE_STREAMS_SNIPPET,
    CHILD_PRELUDE,
    GUARD_PAGE_SNIPPET,
    HAVE_TORCH,
    INT32_MAX,
    INT32_MIN,
    needs_torch,
    run_child_json,
)

if HAVE_TORCH:
    import torch

CHILD = CHILD_PRELUDE + BASE_STREAMS_SNIPPET


def assert_all_detected(report, allow_same=True):
    counts, examples = report["counts"], report["examples"]
    assert counts.get("WRONG", 0) == 0, f"damaged streams decoded silently to wrong symbols: {examples.get('WRONG')}"
    assert counts.get("other", 0) == 0, f"damaged streams raised something else than StreamError: {examples.get('other')}"
    if not allow_same:
        assert counts.get("same", 0) == 0, counts
    assert counts.get("error", 0) > 0


# --------------------------------------------------------------------------- truncation


def test_every_prefix_of_small_streams_raises():
    report = run_child_json(CHILD + r'''
rng = np.random.default_rng(1)
tally = Tally()
for name, (data, v, idx, t, _) in base_streams(["small", "small_esc", "two_lane", "two_lane_esc"]).items():
    for cut in range(len(data)):
        tally.add("%s[:%d]" % (name, cut), outcome(whole(data[:cut], idx, t), v))
        if cut % 7 == 0:
            tally.add("%s[:%d] pieces" % (name, cut), outcome(pieces(data[:cut], idx, t, rng), v))
empty_sym = np.zeros(0, np.int32)
data = ransform.encode(empty_sym, empty_sym, ransform.GaussianTable())
tally.add("empty[:0]", outcome(whole(data[:0], empty_sym, ransform.GaussianTable()), empty_sym))
tally.add("empty[:1]", outcome(whole(data[:1], empty_sym, ransform.GaussianTable()), empty_sym))
tally.dump()
''')
    assert_all_detected(report, allow_same=False)


def test_random_cuts_of_big_streams_raise():
    report = run_child_json(CHILD + r'''
def varint(data, p):
    v, shift = 0, 0
    while True:
        b = data[p]; p += 1; v |= (b & 0x7F) << shift; shift += 7
        if not b & 0x80:
            return v, p

rng = np.random.default_rng(2)
tally = Tally()
bases = base_streams(["eight_lane", "eight_lane_esc", "categorical"], multi_chunk=True)
for name, (data, v, idx, t, _) in bases.items():
    cuts = [int(c) for c in rng.integers(0, len(data), 40)] + [len(data) - k for k in (1, 2, 3, 4, 5, 8, 9)]
    if name == "multi_chunk":  # around the end of the first chunk
        _, p = varint(data, 1)
        chunks_m1, p = varint(data, p)
        assert chunks_m1 == 1
        first_len, p = varint(data, p)
        cuts += [p + first_len + k for k in range(-5, 6)]
    for cut in cuts:
        tally.add("%s[:%d]" % (name, cut), outcome(whole(data[:cut], idx, t, threads=2), v))
    for cut in cuts[:8]:
        tally.add("%s[:%d] pieces" % (name, cut), outcome(pieces(data[:cut], idx, t, rng, 50000), v))
tally.dump()
''', timeout=180)
    assert_all_detected(report, allow_same=False)


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="guard pages via mprotect: Linux only")
def test_truncated_streams_never_read_past_their_end():
    """Every prefix of a stream, placed right before an inaccessible page, must raise StreamError.

    A decoder that reads even one byte past the end of the buffer it was given segfaults here.
    (Streams may live in np.memmap'd files that end at a page boundary.)"""
    report = run_child_json(CHILD + GUARD_PAGE_SNIPPET + r'''
tally = Tally()
for name, (data, v, idx, t, _) in base_streams(["small_esc", "two_lane", "two_lane_esc"]).items():
    for cut in range(len(data) + 1):
        tally.add("%s[:%d]" % (name, cut), outcome(whole(guarded(data[:cut]), idx, t), v))
        if cut % 100 == 0:
            sys.stderr.write("reached %s[:%d]\n" % (name, cut)); sys.stderr.flush()
tally.dump()
''', timeout=180)
    assert report["counts"].get("same", 0) == 3  # each full stream itself
    assert report["counts"].get("WRONG", 0) == 0 and report["counts"].get("other", 0) == 0, report


# --------------------------------------------------------------------------- corruption


def test_bit_flips_never_decode_wrong():
    """Every single-bit flip of small 1- and 2-lane streams (and of the first and last bytes of
    4- and 8-lane ones), with and without escapes, raises StreamError or, for bits the format
    ignores, decodes the originals; never other symbols."""
    report = run_child_json(CHILD + r'''
tally = Tally()
span = {"small": 10**9, "small_esc": 10**9, "two_lane": 800, "two_lane_esc": 800, "eight_lane": 48,
        "eight_lane_esc": 48, "categorical": 150, "uniform": 150}
for name, (data, v, idx, t, _) in base_streams(list(span)).items():
    nbytes, k = len(data), span[name]
    positions = range(nbytes) if nbytes <= 2 * k else list(range(k)) + list(range(nbytes - k, nbytes))
    for byte in positions:
        for bit in range(8):
            b = bytearray(data); b[byte] ^= 1 << bit
            tally.add("%s byte %d bit %d" % (name, byte, bit), outcome(whole(bytes(b), idx, t), v))
tally.dump()
''', timeout=180)
    assert_all_detected(report)
    assert report["counts"].get("same", 0) < report["counts"]["error"] / 20


def test_minimal_frequency_one_flip_reproduction():
    """Two symbols of frequency 1 leave the same rANS state behind (x' = x >> P for both), so a
    flip of the slot bit that tells them apart passes the final-state check; something else (the
    chunk checksum) must catch it. Wide rows of every ScaleTable have such tails."""
    t = ransform.CategoricalTable.from_frequencies(np.array([[2**16 - 2, 1, 1]]), has_escape=False)
    data, wrong = _silent_single_bit_flips(t, np.array([0, 2, 0, 0], np.int32))
    assert not wrong, f"stream {data.hex()}: flipping bit(s) {[w[0] for w in wrong]} decodes to {wrong[:3]} silently"


def _silent_single_bit_flips(table, sym, idx=None):
    """Encodes sym (row 0 each unless idx is given) and returns the stream and every
    (bit, symbols) whose flip decodes without error to other symbols."""
    idx = np.zeros(sym.shape, np.int32) if idx is None else idx
    data = ransform.encode(sym, idx, table)
    wrong = []
    for pos in range(len(data) * 8):
        b = bytearray(data)
        b[pos // 8] ^= 1 << (pos % 8)
        try:
            out = ransform.decode(bytes(b), idx, table)
        except ransform.StreamError:
            continue
        if not np.array_equal(out, sym):
            wrong.append((pos, out.tolist()))
    return data, wrong


def test_minimal_uniform_table_flip_reproduction():
    """Same mechanism, starker: with a uniform 256-symbol table every symbol has f = 256 and
    x' = 256 (x >> 16) + (slot mod 256), so a flip in a slot's top 8 bits changes the symbol and
    leaves the state as it was (without a checksum, 31 of the 96 flips of this stream pass)."""
    t = ransform.CategoricalTable(np.ones((1, 256)), tail_mass=0.0)
    data, wrong = _silent_single_bit_flips(t, np.array([10, 20, 30, 40], np.int32))
    assert not wrong, (f"stream {data.hex()}: {len(wrong)} of {len(data) * 8} single-bit flips decode silently "
                       f"to other symbols, e.g. {wrong[:3]}")


def test_minimal_escape_bit_flip_reproduction(gauss):
    """One escaped value, every bit flipped: never a silent change of the value."""
    idx = gauss.index(np.full(4, 0.5, np.float32))
    data, wrong = _silent_single_bit_flips(gauss, np.array([0, 1000, 0, 0], np.int32), idx)
    assert not wrong, f"stream {data.hex()}: flipping bit(s) {[w[0] for w in wrong]} decodes to {wrong[:3]} silently"


def test_empty_and_garbage_streams_raise(gauss):
    for idx in (np.zeros(0, np.int32), np.zeros(5, np.int32)):
        with pytest.raises(ransform.StreamError, match="empty"):
            ransform.decode(b"", idx, gauss)
    with pytest.raises(ransform.StreamError):
        ransform.Decoder(b"", gauss)
    with pytest.raises(ransform.StreamError, match="version"):
        ransform.decode(b"\x00" * 32, np.zeros(10, np.int32), gauss)
    report = run_child_json(CHILD + r'''
rng = np.random.default_rng(4)
g = ransform.GaussianTable()
tally = Tally()
ref = base_streams(["small", "two_lane"])
for trial in range(3000):
    n = int(rng.choice([0, 1, 2, 10, 200, 12000]))
    idx = rng.integers(0, g.rows, n).astype(np.int32)
    length = int(rng.integers(1, 300))
    data = bytearray(rng.integers(0, 256, length, dtype=np.uint8).tobytes())
    if trial % 2:  # a plausible header: right version, precision and symbol count
        data[0] = (1 << 5) | (4 << 2) | (data[0] & 3)
        hdr = bytearray(); m = n
        while m >= 0x80: hdr.append(m & 0x7F | 0x80); m >>= 7
        hdr.append(m)
        data[1:1] = hdr + (b"\x00" if trial % 4 == 1 else b"")
    sym = np.zeros(n, np.int32)
    # garbage has no original symbols: a success counts as wrong, except for n = 0, where the
    # plausible header can make a valid stream of no symbols (header byte + varint 0)
    fix = (lambda r: r) if n == 0 else (lambda r: r.replace("same", "WRONG"))
    tally.add("garbage %d: %s" % (trial, bytes(data[:12]).hex()), fix(outcome(whole(bytes(data), idx, g), sym)))
    if trial % 5 == 0:
        tally.add("garbage %d pieces" % trial, fix(outcome(pieces(bytes(data), idx, g, rng, 64), sym)))
tally.dump()
''')
    assert_all_detected(report)


def test_extra_trailing_bytes_raise(gauss):
    rng = np.random.default_rng(5)
    cases = []
    for n in (0, 1, 300, 12000, 2**21 + 10):
        s = np.exp(rng.uniform(-2, 3, n)).astype(np.float32)
        v, idx = np.rint(s * rng.standard_normal(n)).astype(np.int32), gauss.index(s)
        cases.append((ransform.encode(v, idx, gauss), idx))
    for data, idx in cases:
        for extra in (b"\x00", b"\x00" * 3, b"\x00" * 4, b"\xff" * 4, b"\x01\x02\x03\x04\x05", data[:8], data):
            with pytest.raises(ransform.StreamError):
                ransform.decode(data + extra, idx, gauss)
            with pytest.raises(ransform.StreamError):
                dec = ransform.Decoder(data + extra, gauss)
                dec.decode(idx)


# --------------------------------------------------------------------------- wrong indexes / table


def test_wrong_number_of_indexes_raises(gauss):
    rng = np.random.default_rng(6)
    v = rng.integers(-3, 4, 1000).astype(np.int32)
    idx = np.full(1000, 60, np.int32)
    data = ransform.encode(v, idx, gauss)
    for m in (0, 1, 999, 1001, 5000):
        with pytest.raises(ransform.StreamError, match=f"1000 symbols but {m} indexes"):
            ransform.decode(data, np.full(m, 60, np.int32), gauss)
    with pytest.raises(ransform.StreamError):
        ransform.decode(ransform.encode(v[:0], idx[:0], gauss), idx[:1], gauss)


def test_other_indexes_or_table_never_decode_wrong():
    """Decoding with indexes or a table other than the encoder's raises StreamError, or (rarely,
    when the change does not matter) returns the original symbols; never other symbols."""
    report = run_child_json(CHILD + r'''
rng = np.random.default_rng(7)
tally = Tally()
g = ransform.GaussianTable()
others = [ransform.LaplaceTable(), ransform.LogisticTable(),
          ransform.GaussianTable(np.geomspace(0.1, 300, 160).astype(np.float32))]
for name, (data, v, idx, t, _) in base_streams(["small", "small_esc", "two_lane", "eight_lane_esc", "categorical"]).items():
    n = idx.size
    for trial in range(60):
        bad = idx.copy()
        kind = trial % 5
        if kind == 0:  # one index moved by one row
            k = int(rng.integers(n)); bad[k] = bad[k] + 1 if bad[k] + 1 < t.rows else bad[k] - 1
        elif kind == 1:  # a few indexes changed anywhere
            k = rng.integers(0, n, 3); bad[k] = rng.integers(0, t.rows, 3)
        elif kind == 2:  # the indexes in another order
            bad = rng.permutation(bad)
        elif kind == 3:  # every index one row up
            bad = np.minimum(bad + 1, t.rows - 1).astype(np.int32)
        else:  # indexes from other scales
            bad = rng.integers(0, t.rows, n).astype(np.int32)
        if np.array_equal(bad, idx):
            continue
        tally.add("%s kind %d trial %d" % (name, kind, trial), outcome(whole(data, bad, t), v))
        if trial < 10:
            tally.add("%s kind %d trial %d pieces" % (name, kind, trial), outcome(pieces(data, bad, t, rng), v))
    if t.rows == 160:
        for other in others:
            tally.add("%s other table %s" % (name, other), outcome(whole(data, idx, other), v))
tally.dump()
''', timeout=180)
    assert_all_detected(report)


def test_wrong_precision_raises(gauss):
    v = np.arange(-5, 5, dtype=np.int32)
    idx = np.full(10, 50, np.int32)
    data = ransform.encode(v, idx, gauss)
    for p in (12, 13, 14, 15):
        other = ransform.GaussianTable(precision=p)
        with pytest.raises(ransform.StreamError, match=f"precision 16 but the table has precision {p}"):
            ransform.decode(data, idx, other)
        with pytest.raises(ransform.StreamError, match="precision"):
            ransform.Decoder(data, other)


def test_stream_error_is_a_value_error():
    assert issubclass(ransform.StreamError, ValueError)


# --------------------------------------------------------------------------- crash-prone batch


def test_damaged_streams_never_crash_decode_or_decoder():
    """A batch of garbage and damaged streams through decode (1 and 2 threads) and the
    incremental Decoder, in a child: it must exit normally."""
    report = run_child_json(CHILD + r'''
rng = np.random.default_rng(8)
tally = Tally()
for name, (data, v, idx, t, esc) in base_streams(["small", "small_esc", "two_lane_esc", "categorical"]).items():
    for trial in range(300):
        b = bytearray(data)
        kind = trial % 4
        if kind == 0:
            for _ in range(int(rng.integers(1, 6))):
                b[int(rng.integers(len(b)))] = int(rng.integers(256))
        elif kind == 1:
            b = b[: int(rng.integers(len(b)))]
        elif kind == 2:
            k = int(rng.integers(len(b))); b[k:k] = rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8).tobytes()
        else:
            k = int(rng.integers(len(b))); del b[k:k + int(rng.integers(1, 9))]
        tally.add("%s trial %d" % (name, trial), outcome(whole(bytes(b), idx, t, threads=1 + trial % 2), v))
        tally.add("%s trial %d pieces" % (name, trial), outcome(pieces(bytes(b), idx, t, rng, 700), v))
tally.dump()
''', timeout=180)
    assert report["counts"].get("other", 0) == 0, report["examples"]
    assert report["counts"].get("WRONG", 0) == 0, report["examples"]


# --------------------------------------------------------------------------- bad arrays


def test_out_of_range_indexes_name_the_position(gauss):
    v = np.zeros((4, 25), np.int32)
    for bad in (-1, gauss.rows, 10**6, INT32_MIN):
        idx = np.full((4, 25), 10, np.int32)
        idx[2, 7] = bad  # flat position 57
        pat = rf"indexes\[57\] = {bad} is out of range for a table with 160 rows"
        with pytest.raises(ValueError, match=pat):
            ransform.encode(v, idx, gauss)
        with pytest.raises(ValueError, match=pat):
            ransform.ideal_bits(v, idx, gauss)
        good = ransform.encode(v, np.full((4, 25), 10, np.int32), gauss)
        with pytest.raises(ValueError, match=pat):
            ransform.decode(good, idx, gauss)
        with pytest.raises(ValueError, match=pat):
            ransform.Encoder(gauss).encode(v, idx)
        with pytest.raises(ValueError, match=rf"= {bad} is out of range"):
            ransform.Decoder(good, gauss).decode(idx)


def test_out_of_range_index_in_a_late_chunk_names_its_position(gauss):
    n = 2**21 + 5000
    v = np.zeros(n, np.int32)
    idx = np.full(n, 3, np.int32)
    idx[n - 17] = -1
    for threads in (1, 2):
        with pytest.raises(ValueError, match=rf"indexes\[{n - 17}\] = -1"):
            ransform.encode(v, idx, gauss, threads=threads)
    good = ransform.encode(v, np.full(n, 3, np.int32), gauss)
    for threads in (1, 2):
        with pytest.raises(ValueError, match=rf"indexes\[{n - 17}\] = -1"):
            ransform.decode(good, idx, gauss, threads=threads)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, -1.0, -1e-30, -1e-45])
def test_bad_scales_raise(gauss, bad):
    for table in (gauss, ransform.LaplaceTable(), ransform.LogisticTable()):
        s = np.ones((3, 4), np.float32)
        s[1, 2] = bad  # flat position 6
        with pytest.raises(ValueError, match="position 6"):
            table.index(s)
        with pytest.raises(ValueError, match="position 6"):
            table.index(s.astype(np.float64))
    assert gauss.index(np.array([0.0, -0.0], np.float32)).tolist() == [0, 0]


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.bool_, np.complex64, object, "U3"])
def test_non_integer_symbols_or_indexes_raise_type_error(gauss, dtype):
    good = np.zeros(6, np.int32)
    bad = np.zeros(6, dtype=dtype) if dtype != "U3" else np.array(["a"] * 6)
    with pytest.raises(TypeError, match="symbols must have an integer dtype"):
        ransform.encode(bad, good, gauss)
    with pytest.raises(TypeError, match="indexes must have an integer dtype"):
        ransform.encode(good, bad, gauss)
    with pytest.raises(TypeError, match="indexes"):
        ransform.decode(ransform.encode(good, good, gauss), bad, gauss)
    with pytest.raises(TypeError):
        ransform.ideal_bits(bad, good, gauss)
    with pytest.raises(TypeError):
        ransform.Encoder(gauss).encode(bad, good)
    with pytest.raises(TypeError):
        ransform.Decoder(ransform.encode(good, good, gauss), gauss).decode(bad)


def test_values_outside_int32_raise(gauss):
    idx = np.zeros(3, np.int32)
    for dtype, val in ((np.int64, 2**31), (np.int64, -(2**31) - 1), (np.uint32, 2**31), (np.uint64, 2**63)):
        a = np.array([0, val, 0], dtype=dtype)
        with pytest.raises(ValueError, match="symbols has values outside the int32 range"):
            ransform.encode(a, idx, gauss)
        with pytest.raises(ValueError, match="indexes has values outside the int32 range"):
            ransform.encode(idx, a, gauss)


def test_ragged_or_mismatched_arrays_raise(gauss):
    with pytest.raises(TypeError):
        ransform.encode([[1, 2], [3]], [[0, 0], [0]], gauss)
    with pytest.raises(ValueError, match="same shape"):
        ransform.encode(np.zeros((2, 3), np.int32), np.zeros(6, np.int32), gauss)
    with pytest.raises(ValueError, match="same shape"):
        ransform.Encoder(gauss).encode(np.zeros(5, np.int32), np.zeros(6, np.int32))
    with pytest.raises(ValueError, match="threads"):
        ransform.encode(np.zeros(2, np.int32), np.zeros(2, np.int32), gauss, threads=-1)
    with pytest.raises(TypeError, match="table"):
        ransform.encode(np.zeros(2, np.int32), np.zeros(2, np.int32), "gaussian")
    with pytest.raises(TypeError, match="table"):
        ransform.decode(b"0\x00", np.zeros(0, np.int32), None)
    for data in ("abc", [1, 2, 3], 12, np.zeros(4, np.int32)):
        with pytest.raises(TypeError, match="data must be bytes"):
            ransform.decode(data, np.zeros(0, np.int32), gauss)


@needs_torch
def test_torch_devices_and_grad(gauss):
    meta = torch.zeros(5, dtype=torch.int32, device="meta")
    with pytest.raises(ValueError, match=r"symbols is on device 'meta'.*\.cpu\(\)"):
        ransform.encode(meta, np.zeros(5, np.int32), gauss)
    with pytest.raises(ValueError, match="indexes is on device 'meta'"):
        ransform.decode(b"0\x05", meta, gauss)
    with pytest.raises(ValueError, match="scales is on device 'meta'"):
        gauss.index(torch.ones(5, device="meta"))
    with pytest.raises(TypeError):
        ransform.encode(torch.zeros(5), torch.zeros(5, dtype=torch.int32), gauss)
    s = torch.full((5,), 2.0, requires_grad=True)
    assert gauss.index(s).tolist() == gauss.index(np.full(5, 2.0, np.float32)).tolist()
    if torch.cuda.is_available():  # pragma: no cover - only on a GPU machine
        cuda = torch.zeros(5, dtype=torch.int32, device="cuda")
        with pytest.raises(ValueError, match="cuda"):
            ransform.encode(cuda, cuda, gauss)
        with pytest.raises(ValueError, match="cuda"):
            gauss.index(torch.ones(5, device="cuda", requires_grad=True))


def test_symbols_outside_a_row_without_escape_raise():
    t = ransform.CategoricalTable(np.ones((2, 4)), offsets=[0, -10], tail_mass=[0.0, 1e-3])
    idx = np.array([1, 1, 0, 0, 0], np.int32)
    for bad in (4, -1, INT32_MAX, INT32_MIN):
        sym = np.array([500, -500, 1, bad, 2], np.int32)  # row 1 has an escape, row 0 has not
        pat = rf"symbols\[3\] = {bad} is outside row 0's range \[0, 3\].*no escape"
        with pytest.raises(ValueError, match=pat):
            ransform.encode(sym, idx, t)
        with pytest.raises(ValueError, match=r"symbols\[3\]"):
            ransform.ideal_bits(sym, idx, t)
        enc = ransform.Encoder(t)
        enc.encode(sym, idx)
        with pytest.raises(ValueError, match=pat):
            enc.finish()
    sym = np.array([500, -500, 1, 3, 2], np.int32)
    np.testing.assert_array_equal(ransform.decode(ransform.encode(sym, idx, t), idx, t), sym)


# --------------------------------------------------------------------------- bad tables


@pytest.mark.parametrize("bad", [-0.1, np.nan, np.inf, -np.inf])
def test_bad_pmf_entries_raise(bad):
    p = np.array([[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]])
    p[1, 1] = bad
    with pytest.raises(ValueError, match="pmfs row 1 has a negative, NaN or infinite entry"):
        ransform.CategoricalTable(p)
    with pytest.raises(ValueError, match="row 1"):
        ransform.CategoricalTable(p, tail_mass=0.0)


def test_pmfs_without_mass_raise():
    p = np.array([[0.2, 0.8], [0.0, 0.0]])
    with pytest.raises(ValueError, match="pmfs row 1 has no probability mass"):
        ransform.CategoricalTable(p, tail_mass=0.0)
    t = ransform.CategoricalTable(p, tail_mass=1e-9)  # the escape carries the mass: fine
    assert t.frequencies(1).tolist()[:2] == [1, 1]


@pytest.mark.parametrize("tail", [-1e-9, 1.0, 2.0, np.nan, np.inf])
def test_bad_tail_mass_raises(tail):
    with pytest.raises(ValueError, match="tail_mass"):
        ransform.CategoricalTable(np.ones((1, 3)), tail_mass=tail)
    with pytest.raises(ValueError, match="tail_mass"):
        ransform.GaussianTable(tail_mass=tail)
    with pytest.raises(ValueError, match="tail_mass"):
        ransform.GaussianTable(tail_mass=0.0)


@pytest.mark.parametrize("precision", [0, 11, 17, 32, -16])
def test_bad_precision_raises(precision):
    with pytest.raises(ValueError, match="precision"):
        ransform.CategoricalTable(np.ones((1, 3)), precision=precision)
    with pytest.raises(ValueError, match="precision"):
        ransform.ScaleTable(precision=precision)
    with pytest.raises(ValueError, match="precision"):
        ransform.CategoricalTable.from_frequencies(np.array([[1, 1]]), precision=precision)


def test_alphabet_size_limits():
    with pytest.raises(ValueError, match="65537 symbols"):
        ransform.CategoricalTable(np.ones((1, 65537)), tail_mass=0.0, precision=16)
    with pytest.raises(ValueError, match="65537 symbols"):
        ransform.CategoricalTable(np.ones((1, 65536)), tail_mass=1e-9, precision=16)
    with pytest.raises(ValueError, match="4097 symbols"):
        ransform.CategoricalTable(np.ones((1, 4096)), tail_mass=1e-9, precision=12)
    with pytest.raises(ValueError):
        ransform.CategoricalTable.from_frequencies(np.ones((1, 65537), np.int64), has_escape=False)
    for precision in (12, 16):
        m = 2**precision
        t = ransform.CategoricalTable(np.ones((1, m)), offsets=-5, tail_mass=0.0, precision=precision)
        assert t.size(0) == m and not t.has_escape(0)
        assert t.frequencies(0).tolist() == [1] * m
        sym = np.concatenate([np.arange(-5, m - 5), [m - 6, -5]]).astype(np.int32)
        idx = np.zeros(sym.size, np.int32)
        np.testing.assert_array_equal(ransform.decode(ransform.encode(sym, idx, t), idx, t), sym)


def test_bad_frequencies_raise():
    cases = [
        (np.array([[1, 2, 3]]), "sum to 2"),
        (np.array([[0, 2**16]]), "at least 1"),
        (np.array([[-1, 2**16 + 1]]), r"\[0, 2\*\*precision\]"),
        (np.array([[2**32 + 1, 2**16 - 1]]), r"\[0, 2\*\*precision\]"),
        (np.array([[2**16]]), "alphabet size"),  # one column with an escape: nothing to code
        (np.array([[2**15, 2**15], [2**15, 2**15 - 1]]), "sum to 2"),
    ]
    for f, pat in cases:
        with pytest.raises(ValueError, match=pat):
            ransform.CategoricalTable.from_frequencies(f)


def test_bad_lengths_offsets_and_shapes_raise():
    p = np.ones((2, 4))
    for lengths in (0, 5, [4, 0], [-1, 3]):
        with pytest.raises(ValueError, match="lengths"):
            ransform.CategoricalTable(p, lengths=lengths)
    with pytest.raises(ValueError, match="offsets"):
        ransform.CategoricalTable(p, offsets=[1, 2, 3])
    with pytest.raises(ValueError, match="tail_mass"):
        ransform.CategoricalTable(p, tail_mass=[0.1, 0.1, 0.1])
    with pytest.raises(ValueError, match="offset \\+ size exceeds int32"):
        ransform.CategoricalTable(p, offsets=INT32_MAX - 2)
    with pytest.raises(ValueError, match="2-D"):
        ransform.CategoricalTable(np.ones((2, 2, 2)))
    with pytest.raises(ValueError):
        ransform.CategoricalTable(np.ones((0, 3)))
    with pytest.raises(ValueError):
        ransform.CategoricalTable(np.ones((3, 0)))
    with pytest.raises(TypeError):
        ransform.CategoricalTable([[0.5, 0.5], [1.0]])
    with pytest.raises((TypeError, ValueError)):
        ransform.CategoricalTable(np.array([["a", "b"]]))


def test_offsets_outside_int32_raise():
    """An offset that does not fit int32 must be rejected, not wrapped around."""
    for off in (2**31, -(2**31) - 1, 2**40):
        with pytest.raises((ValueError, OverflowError)):
            t = ransform.CategoricalTable(np.ones((1, 3)), offsets=off, tail_mass=0.0)
            raise AssertionError(f"offsets={off} accepted as offset {t.offset(0)}")
        with pytest.raises((ValueError, OverflowError)):
            t = ransform.CategoricalTable(np.ones((2, 3)), offsets=np.array([0, off], np.int64), tail_mass=0.0)
            raise AssertionError(f"offsets=[0, {off}] accepted as offset {t.offset(1)}")


def test_non_integer_offsets_and_lengths_raise():
    """A fractional offset or length is a caller's mistake; silently truncating it codes other values."""
    with pytest.raises((TypeError, ValueError)):
        t = ransform.CategoricalTable(np.ones((1, 3)), offsets=0.5, tail_mass=0.0)
        raise AssertionError(f"offsets=0.5 accepted as offset {t.offset(0)}")
    with pytest.raises((TypeError, ValueError)):
        t = ransform.CategoricalTable(np.ones((1, 3)), lengths=2.7, tail_mass=0.0)
        raise AssertionError(f"lengths=2.7 accepted as size {t.size(0)}")


def test_complex_pmfs_raise():
    """Complex probabilities are not probabilities; dropping the imaginary part is silent data loss."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises((TypeError, ValueError)):
            ransform.CategoricalTable(np.array([[1 + 1j, 2 + 0j]]))


def test_bad_scale_tables_raise():
    for scales, pat in (([2.0, 1.0], "increasing"), ([1.0, 1.0], "increasing"), ([0.0, 1.0], "positive"),
                        ([-1.0, 1.0], "positive"), ([1.0, np.nan], "positive"), ([1.0, np.inf], "positive"),
                        ([], "empty")):
        with pytest.raises(ValueError, match=pat):
            ransform.GaussianTable(np.array(scales, np.float32))
    with pytest.raises(ValueError, match="family"):
        ransform.ScaleTable(family="cauchy")
    with pytest.raises(TypeError):
        ransform.GaussianTable(np.array(["a", "b"]))
    # scales closer than the index grid can resolve: a clear ValueError or a working table
    close = np.array([1.0, np.nextafter(np.float32(1.0), np.float32(2)), 1e30], np.float32)
    try:
        t = ransform.GaussianTable(close)
    except ValueError:
        pass
    else:
        assert t.index(close).tolist() == [0, 1, 2]


def test_row_accessors_reject_bad_rows(gauss):
    for r in (-1, gauss.rows, 10**9):
        for f in (gauss.frequencies, gauss.offset, gauss.size, gauss.has_escape, gauss.entropy):
            with pytest.raises(IndexError):
                f(r)
