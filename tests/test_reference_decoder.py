"""The library against the independent reference decoder of docs/FORMAT.md (reference_decoder.py).

(a) both decode the same streams to the same symbols; (b) golden bytes pin the format;
(c) both reject the same damaged streams, for the same reason (the check ids of FORMAT.md 6.5):
    every single-bit flip of small streams, the changes the final-state check cannot see (the
    chunk checksum catches them), the structured changes that defeated the earlier linear
    checksum (now caught), and both accept the value-dependent coincidence FORMAT.md 6.4 names;
(d) the table derivation of FORMAT.md section 8 rebuilds the library's tables bit for bit:
    quantization with its exchange phase, thresholds by bisection, the grid.
"""
import random
import struct

import numpy as np
import pytest
import ransform
import reference_decoder as ref

INT32_MIN, INT32_MAX = -2**31, 2**31 - 1
EXAMPLE = bytes.fromhex("30040000040200028ec6891202020302ffff6300")  # FORMAT.md section 7


def gaussian(precision=16, version=1):
    """The default Gaussian table. Version 1 unless asked: this file's pinned and hand-built
    streams (FORMAT.md's examples) are version 1 streams; version 2 has its own tests below."""
    return ransform.GaussianTable(precision=precision, version=version)


def lib_decode(data, indexes, table):
    """ransform.decode on a copy with zero bytes behind it, so that a decoder reading past the
    end of the stream (the library once did, see test_truncation_after_an_escape_in_a_lane_group)
    reads padding, not foreign memory: an over-read shows up as a disagreement with the reference
    decoder rather than as a crash. 16 bytes per symbol cover any over-read."""
    buf = bytearray(data) + bytearray(min(1 << 20, 64 + 16 * len(indexes)))
    return ransform.decode(memoryview(buf)[:len(data)], np.asarray(indexes, np.int32), table).tolist()


def agree(data, indexes, table, expected=None):
    out = lib_decode(data, indexes, table)
    assert ref.decode(data, indexes, table) == out
    if expected is not None:
        assert out == [int(v) for v in expected]
    return out


def random_stream(n, seed, rows=(0, 160), spread=1.0, escape_every=0, table=None):
    table = gaussian() if table is None else table
    rng = np.random.default_rng(seed)
    idx = rng.integers(rows[0], rows[1], n).astype(np.int32)
    sym = np.round(rng.normal(0, spread * table.scales[idx])).astype(np.int32)
    if escape_every:
        sym[::escape_every] = rng.integers(INT32_MIN, INT32_MAX, len(sym[::escape_every]), endpoint=True)
    return sym, idx


# ---------------------------------------------------------------------------------------------
# (a) same symbols


def test_worked_example_of_format_md():
    data = ransform.encode(np.array([0, 1, -1, 5]), np.zeros(4, np.int32), ransform.GaussianTable(version=1))
    assert data.hex(" ") == "30 04 00 00 04 02 00 02 8e c6 89 12 02 02 03 02 ff ff 63 00"
    assert data == EXAMPLE
    agree(data, [0] * 4, gaussian(), [0, 1, -1, 5])
    # The checksum (FORMAT.md 6.3 and the table of section 7): mix of the first argument step
    # by step, the four terms and their sum, read as take(16) = 0xc68e (bytes 8-9, the first
    # word w0) then take(16) = 0x1289 (bytes 10-11).
    m32 = 0xFFFFFFFF
    x1 = 0x9E3779B1 ^ (0x9E3779B1 >> 16)
    x2 = (x1 * 0x7FEB352D) & m32
    x3 = x2 ^ (x2 >> 15)
    x4 = (x3 * 0x846CA68B) & m32
    x5 = x4 ^ (x4 >> 16)
    assert [x1, x2, x3, x4, x5] == [0x9E37E786, 0x64C4708E, 0x64C4B906, 0x6D525A42, 0x6D523710]
    assert ref.checksum_mix(0x9E3779B1) == 0x6D523710 and ref.checksum_mix(0) == 0 and ref.checksum_mix(1) == 0x688990C0
    terms = [ref.checksum_term(v, p) for p, v in enumerate([0, 1, -1, 5])]
    assert terms == [0x6D523710, 0x4D586D55, 0x35A88EA3, 0xD63ADF81]
    assert ref.checksum([0, 1, -1, 5]) == sum(terms) % 2**32 == 0xC68E1289 == ref.chunk_checksums(data)[0]
    assert data[8:12] == bytes.fromhex("8ec68912")
    # Row 0 (scale 0.11) has radius 0 since the radius of least expected code length (FORMAT.md
    # 8.4): value 0 and the escape, so 1, -1 and 5 are escapes (d = 0, 0, 4).
    t = gaussian()
    assert (t.offset(0), t.size(0), t.frequencies(0).tolist()) == (0, 1, [65535, 1])
    # FORMAT.md 9: the worked example of the earlier tables (row 0: offset -1, f = [1, 65533, 1, 1])
    # is rejected with the current ones.
    old = bytes.fromhex("300400038ec6891260002062032101ffff0800")
    assert outcome(old, [0] * 4, t) == ((None, "C11"),) * 2


@pytest.mark.parametrize("n", [0, 1, 2, 3, 17, 500])
def test_small_streams(n):
    sym, idx = random_stream(n, seed=n, escape_every=7)
    data = ransform.encode(sym, idx, gaussian())
    agree(data, idx, gaussian(), sym)
    if n == 0:
        assert data == bytes([0x30, 0x00])


def test_100kb_stream_has_two_chunks_of_8_lanes():
    sym, idx = random_stream(150_000, seed=1, rows=(20, 160), escape_every=997)
    data = ransform.encode(sym, idx, gaussian())
    assert 90_000 < len(data) < 130_000
    header = ref.parse_header(data)
    assert data[0] & 3 == 3 and header["lanes"] == 8 and header["chunks"] == 2
    agree(data, idx, gaussian(), sym)
    assert ref.encode(sym, idx, gaussian(), lanes=8, chunks=2) == data  # FORMAT.md's encoder writes the same bytes
    one_chunk = ref.encode(sym, idx, gaussian(), lanes=8)  # as earlier encoders laid it out: decodes too
    assert np.array_equal(ransform.decode(one_chunk, idx, gaussian()).ravel(), np.asarray(sym).ravel())


@pytest.mark.parametrize("n, lanes", [(22_000, 2), (60_000, 4)])
def test_library_picks_2_and_4_lanes(n, lanes):
    sym, idx = random_stream(n, seed=n, rows=(60, 61))
    data = ransform.encode(sym, idx, gaussian())
    assert ref.parse_header(data)["lanes"] == lanes
    agree(data, idx, gaussian(), sym)
    assert ref.encode(sym, idx, gaussian(), lanes=lanes) == data


def test_multi_chunk_stream_over_2_pow_21_symbols():
    n = (1 << 21) + 1001
    sym, idx = random_stream(n, seed=5, rows=(0, 60), escape_every=65_537)
    data = ransform.encode(sym, idx, gaussian())
    header = ref.parse_header(data)
    assert header["chunks"] == 2 and header["S"] == (n + 1) // 2 and header["lanes"] == 8
    assert ref.decode(data, idx, gaussian()) == sym.tolist()
    assert np.array_equal(ransform.decode(data, idx, gaussian()), sym)
    S = header["S"]  # the second chunk's terms start at position S (FORMAT.md 6.3)
    assert ref.chunk_checksums(data) == [ref.checksum(sym[:S]), ref.checksum(sym[S:], S)]


def test_escapes_at_range_edges_and_int32_extremes():
    t = gaussian()
    values, rows = [], []
    for r in (0, 1, 37, 80, 120, 159):
        lo, hi = t.offset(r), t.offset(r) + t.size(r) - 1
        for v in (lo - 1, lo, hi, hi + 1, lo - 2, hi + 2, lo - 65_536, hi + 65_537, INT32_MIN, INT32_MAX,
                  INT32_MIN + 1, INT32_MAX - 1, 0):
            values.append(v)
            rows.append(r)
    data = ransform.encode(np.array(values, np.int32), np.array(rows, np.int32), t)
    agree(data, rows, t, values)


def test_longest_exp_golomb_codes():
    # Rows at the ends of int32: d = 2^32 - 2 (k = 31) is the largest escape distance.
    t = ransform.CategoricalTable([[1.0, 2.0, 1.0], [1.0, 1.0, 1.0]], offsets=[INT32_MAX - 2, INT32_MIN],
                                  tail_mass=0.25)
    values = [INT32_MIN, INT32_MAX - 3, INT32_MAX, INT32_MAX, INT32_MIN + 3, INT32_MIN + 1, 0, -1]
    rows = [0, 0, 0, 1, 1, 1, 0, 1]
    data = ransform.encode(np.array(values), np.array(rows), t)
    agree(data, rows, t, values)


def test_categorical_rows_without_escape_and_mixed():
    pmfs = np.array([[0.0, 1.0, 5.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0, 1.0], [9.0, 1.0, 0.0, 0.0, 0.0]])
    t = ransform.CategoricalTable(pmfs, offsets=[-2, 100, INT32_MIN], tail_mass=[0.0, 0.0, 0.01],
                                  lengths=[5, 5, 2], precision=14)
    assert [t.has_escape(r) for r in range(3)] == [False, False, True]
    rng = np.random.default_rng(2)
    rows = rng.integers(0, 3, 3000)
    values = np.where(rows == 0, rng.integers(-2, 3, 3000), np.where(rows == 1, rng.integers(100, 105, 3000),
                                                                     rng.integers(INT32_MIN, INT32_MIN + 4, 3000)))
    values[rows == 2] = np.where(rng.random((rows == 2).sum()) < 0.05, 77, values[rows == 2])
    data = ransform.encode(values, rows, t)
    agree(data, rows, t, values)
    with pytest.raises(ValueError):  # a row without escape cannot code 3
        ransform.encode(np.array([3]), np.array([0]), t)


@pytest.mark.parametrize("precision", [12, 13, 14, 15, 16])
@pytest.mark.parametrize("family", ["gaussian", "laplace", "logistic"])
def test_precisions_and_families(precision, family):
    t = ransform.ScaleTable(family=family, precision=precision)
    sym, idx = random_stream(4000, seed=precision, spread=1.3, escape_every=101, table=t)
    data = ransform.encode(sym, idx, t)
    assert (data[0] >> 2) & 7 == precision - 12
    agree(data, idx, t, sym)


def test_frequencies_from_a_row_callable():
    u = ransform.CategoricalTable.from_frequencies([[1000, 3000, 96]], offsets=5, precision=12)
    sym, idx = [5, 6, 99, -7, 5, INT32_MIN], [0] * 6
    data = ransform.encode(np.array(sym), np.array(idx), u)
    row = lambda r: (u.frequencies(r), u.offset(r), u.has_escape(r))  # noqa: E731
    assert ref.decode(data, idx, row, precision=12, rows=1) == sym
    # Rows with and without escape side by side (one library table cannot mix them with
    # from_frequencies): the reference encoder and decoder round-trip.
    freqs = {0: ([1, 4094, 1], -1, False), 1: ([1000, 3000, 96], 5, True)}
    sym, idx = [0, -1, 1, 5, 6, 99, -7, 0], [0, 0, 0, 1, 1, 1, 1, 0]
    data = ref.encode(sym, idx, freqs.__getitem__, precision=12, rows=2)
    assert ref.decode(data, idx, freqs.__getitem__, precision=12, rows=2) == sym
    with pytest.raises(ref.ReferenceIndexError):
        ref.decode(data, [0, 0, 0, 1, 1, 1, 1, 2], freqs.__getitem__, precision=12)


@pytest.mark.parametrize("lanes", [1, 2, 4, 8])
@pytest.mark.parametrize("chunks", [1, 2, 5])
def test_layouts_the_library_encoder_never_picks(lanes, chunks):
    # Several chunks of a tiny stream, more lanes than symbols: valid per FORMAT.md, so the
    # library must decode them.
    sym, idx = random_stream(13, seed=lanes * chunks, escape_every=4)
    data = ref.encode(sym, idx, gaussian(), lanes=lanes, chunks=chunks)
    header = ref.parse_header(data)
    assert (header["lanes"], header["chunks"]) == (lanes, chunks)
    agree(data, idx, gaussian(), sym)


def test_reference_encoder_matches_library_bytes():
    for seed, n, table in [(1, 1, gaussian()), (2, 40, gaussian(12)), (3, 3000, ransform.LaplaceTable(precision=13)),
                           (4, 9000, ransform.LogisticTable(precision=15))]:
        sym, idx = random_stream(n, seed=seed, escape_every=13, table=table)
        data = ransform.encode(sym, idx, table)
        h = ref.parse_header(data)
        assert ref.encode(sym, idx, table, lanes=h["lanes"], chunks=h["chunks"]) == data


def test_incremental_decoder_agrees():
    sym, idx = random_stream(5000, seed=9, escape_every=50)
    data = ref.encode(sym, idx, gaussian(), lanes=4, chunks=3)
    dec = ransform.Decoder(data, gaussian())
    parts = [dec.decode(idx[a:b]) for a, b in [(0, 1), (1, 1000), (1000, 1667), (1667, 5000)]]
    assert np.concatenate(parts).tolist() == ref.decode(data, idx, gaussian()) == sym.tolist()


def test_incremental_decoder_checks_each_chunk_at_its_end():
    # The library checksums in blocks of 4096 symbols, also across calls; a chunk is verified
    # (C11-C13) when its last symbol has been decoded, not before.
    t = gaussian()
    sym, idx = random_stream(10_000, seed=12, escape_every=97)
    data = ref.encode(sym, idx, t, lanes=2, chunks=2)  # chunk 1: symbols 5000..9999
    pieces = [(0, 1), (1, 4098), (4098, 4999), (4999, 5000), (5000, 9100), (9100, 9999), (9999, 10_000)]
    dec = ransform.Decoder(data, t)
    assert np.concatenate([dec.decode(idx[a:b]) for a, b in pieces]).tolist() == sym.tolist()
    # A flip in chunk 1 that changes only its stored checksum (the values decode intact).
    begin = ref.parse_header(data)["bodies"][1][0]
    for pos in range(8 * begin, 8 * begin + 96):
        bad = bytearray(data)
        bad[pos // 8] ^= 1 << (pos % 8)
        try:
            ref.decode(bytes(bad), idx, t)
        except ref.ReferenceStreamError as e:
            if e.check == "C13" and e.symbols == sym[5000:].tolist():
                break
    else:
        pytest.fail("no flip of chunk 1's first 12 bytes hits only its checksum")
    dec = ransform.Decoder(bytes(bad), t)
    got = [dec.decode(idx[a:b]) for a, b in pieces[:-1]]
    assert np.concatenate(got).tolist() == sym[:9999].tolist()
    with pytest.raises(ransform.StreamError, match="checksum mismatch"):
        dec.decode(idx[9999:])


def test_unused_state_size_code_bits_must_be_zero():
    # FORMAT.md section 4 / C4: 6 unused bits with 1 lane, 4 with 2 lanes, none with 4 or 8.
    for lanes, unused in [(1, range(2, 8)), (2, range(4, 8))]:
        data = ref.encode([0, 1, -1, 5], [0] * 4, gaussian(), lanes=lanes)
        agree(data, [0] * 4, gaussian(), [0, 1, -1, 5])
        for bit in unused:
            bad = bytearray(data)
            bad[3] ^= 1 << bit
            assert outcome(bytes(bad), [0] * 4, gaussian()) == ((None, "C4"),) * 2, (lanes, bit)


def test_checksum_matches_the_library():
    # FORMAT.md 6.3: the checksum the reference computes over the values equals the one the
    # library stores, across the library's checksum blocks (4096 symbols), all lane counts,
    # negative values and escapes. (Chunks after the first: test_multi_chunk_stream_over_2_pow_21_symbols.)
    t = gaussian()
    lanes = set()
    for n, rows, seed in [(1, (0, 160), 1), (7, (0, 160), 2), (4095, (0, 160), 3), (4097, (100, 160), 4),
                          (22_000, (60, 61), 5), (60_000, (60, 61), 6), (100_000, (20, 160), 7)]:
        sym, idx = random_stream(n, seed=seed, rows=rows, escape_every=11 if n < 20_000 else 0)
        data = ransform.encode(sym, idx, t)
        lanes.add(ref.parse_header(data)["lanes"])
        assert ref.chunk_checksums(data) == [ref.checksum(sym)], n
    assert lanes == {1, 2, 4, 8}
    # Positions wrap: p and p + 2^32 give the same term.
    assert ref.checksum([3], 2**32 + 5) == ref.checksum([3], 5)


def test_escape_bits_and_the_stored_checksum_are_covered_by_the_checksum():
    # FORMAT.md 6.4: an escape's sign and suffix bits never reach the state, nor do the
    # checksum's own bits; only the checksum sees them. Worked example (w2 = bytes 16-19): the
    # escape of step 2 reads w2's bits 0-1 (byte 16: bit 0 the sign, bit 1 the terminating one,
    # k = 0); step 3's slot is w2's bits 2-17; its escape reads bits 18-23 (byte 18: bit 2 the
    # sign, bits 3-4 the prefix zeros, bit 5 the terminating one, bits 6-7 the suffix). Bytes
    # 8-11 (w0) hold the checksum.
    for byte, bit in [(16, 0), (18, 2), (18, 6), (18, 7)] + [(b, i) for b in range(8, 12) for i in range(8)]:
        data = bytearray(EXAMPLE)
        data[byte] ^= 1 << bit
        assert outcome(bytes(data), [0] * 4, gaussian()) == ((None, "C13"),) * 2, (byte, bit)
    data = bytearray(EXAMPLE)
    data[18] ^= 1 << 3  # a prefix bit: changes what is read afterwards
    lib, mine = outcome(bytes(data), [0] * 4, gaussian())
    assert lib == mine and lib[0] is None


def test_checksum_covers_values_and_positions_not_rows():
    # Two rows with the same frequencies and offsets decode the same values, escapes included:
    # a wrong index there is harmless and accepted (the checksum does not cover rows).
    t = ransform.CategoricalTable([[1, 2, 1], [1, 2, 1]], offsets=0, tail_mass=0.1, precision=12)
    assert t.frequencies(0).tolist() == t.frequencies(1).tolist()
    sym = [1, 99, 2, -40]
    data = ransform.encode(np.array(sym), np.zeros(4, np.int32), t)
    assert outcome(data, [0, 1, 0, 1], t) == ((sym, None),) * 2
    # Likewise rows 2 and 3 of the default table at an escape: the escape has start 65535 and
    # frequency 1 in both and both have offset -1, nsym 3 (their other frequencies differ).
    g = gaussian()
    assert [(g.offset(r), g.size(r), g.frequencies(r).tolist()[-1]) for r in (2, 3)] == [(-1, 3, 1)] * 2
    assert g.frequencies(2).tolist() != g.frequencies(3).tolist()
    data = ransform.encode(np.array([0, 1, -1, 5]), np.full(4, 2, np.int32), g)
    assert outcome(data, [2, 2, 2, 3], g) == (([0, 1, -1, 5], None),) * 2
    # The same frequencies with offsets 5 apart: one changed value, escaped or not, is always caught.
    u = ransform.CategoricalTable([[1, 2, 1], [1, 2, 1]], offsets=[0, 5], tail_mass=0.1, precision=12)
    data = ransform.encode(np.array(sym), np.zeros(4, np.int32), u)
    for idx in ([1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [1, 1, 1, 1]):
        assert outcome(data, idx, u) == ((None, "C13"),) * 2, idx
    # Swapped chunk bodies of equal length (one row, no escapes): the final states cannot see
    # it, the positions in the checksum terms can.
    for seed in range(100):
        sym = np.round(np.random.default_rng(seed).normal(0, 3, 40)).astype(np.int32)
        idx = np.full(40, 100, np.int32)
        data = ref.encode(sym, idx, gaussian(), chunks=2)
        (a, b), (c, d) = ref.parse_header(data)["bodies"]
        if b - a == d - c and sym[:20].tolist() != sym[20:].tolist():
            break
    else:
        pytest.fail("no seed gave chunk bodies of equal length")
    swapped = data[:a] + data[c:d] + data[a:b]
    assert outcome(swapped, idx, gaussian()) == ((None, "C13"),) * 2


def test_equal_frequency_changes_are_caught_by_the_checksum():
    # FORMAT.md 6.4: a changed slot that lands on a symbol with the same frequency at the same
    # distance from its start leaves the state unchanged; the final-state check cannot see it
    # (these flips were accepted before the checksum), the checksum rejects it.
    t = ransform.CategoricalTable([[1, 1, 1, 1]], tail_mass=0, precision=12, version=1)  # 4 x 1024
    assert t.frequencies(0).tolist() == [1024] * 4
    data = ransform.encode(np.array([2]), np.array([0]), t)
    assert data.hex(" ") == "20 01 00 01 5b fe 00 00 02 a3 ac 00 08"  # 5-byte state, 2 words
    # Bits 2-3 of the last byte (bits 26-27 of the last word) become bits 10-11 of the symbol's
    # slot, which select one of the 4 symbols of frequency 1024.
    for bit, value in [(2, 3), (3, 0)]:
        bad = bytearray(data)
        bad[12] ^= 1 << bit
        assert outcome(bytes(bad), [0], t) == ((None, "C13"),) * 2
        with pytest.raises(ref.ReferenceStreamError) as e:
            ref.decode(bytes(bad), [0], t)
        assert e.value.symbols == [value]  # the states were intact: only the value changed
    # The same through a wrong table row: identical frequencies, different offsets.
    u = ransform.CategoricalTable([[1, 1, 1, 1], [1, 1, 1, 1]], offsets=[0, 10], tail_mass=0, precision=12, version=1)
    data = ransform.encode(np.array([2, 3]), np.array([0, 0]), u)
    assert outcome(data, [1, 0], u) == ((None, "C13"),) * 2
    with pytest.raises(ref.ReferenceStreamError) as e:
        ref.decode(data, [1, 0], u)
    assert e.value.symbols == [12, 3]


def test_every_single_bit_flip_is_rejected():
    # No bit is ignored and any single changed value changes the checksum (FORMAT.md 6.4): both
    # decoders reject every single-bit flip, for the same reason, of small streams with and
    # without escapes, 1, 2, 4 and 8 lanes, one and several chunks.
    t = gaussian()
    streams = [(EXAMPLE, [0] * 4)]
    for n, lanes, chunks, escape_every in [(4, 1, 1, 3), (9, 2, 1, 3), (16, 2, 3, 4), (12, 4, 2, 0), (10, 8, 1, 3),
                                           (40, 1, 1, 0)]:
        sym, idx = random_stream(n, seed=n, escape_every=escape_every)
        streams.append((ref.encode(sym, idx, t, lanes=lanes, chunks=chunks), idx))
    rows = ref.Rows(t)
    for data, idx in streams:
        for pos in range(len(data) * 8):
            bad = bytearray(data)
            bad[pos // 8] ^= 1 << (pos % 8)
            lib, mine = outcome(bytes(bad), idx, t, rows)
            assert lib == mine and lib[0] is None, (data.hex(), pos, lib, mine)


def linear_checksum(values, first=0):
    """The earlier checksum (before the terms were mixed), linear in the values:
    sum of uint32(v) * ((uint32(pos + 1) * 0x9E3779B1 mod 2^32) | 1) mod 2^32. Kept here to show
    which changes it missed."""
    total = 0
    for i, v in enumerate(values):
        w = ((((first + i + 1) & 0xFFFFFFFF) * 0x9E3779B1) & 0xFFFFFFFF) | 1
        total = (total + (int(v) & 0xFFFFFFFF) * w) & 0xFFFFFFFF
    return total


def test_structured_changes_are_caught():
    # FORMAT.md 6.4, "Measured, structured changes": the blind spots of the linear checksum.
    # (1) Rows with the same frequencies and offsets delta apart: every value is off by delta.
    # The linear checksum passed every even n for delta = 2^31 and 2^30, and n = 4096 (one of
    # the two n <= 4096) for delta = 2^20; the mixed one passes none.
    a = ransform.CategoricalTable([[1, 2, 1]], offsets=[0], tail_mass=0, precision=12, version=1)
    for delta in (2**31, 2**30, 2**20):
        b = ransform.CategoricalTable([[1, 2, 1]], offsets=[(delta + 2**31) % 2**32 - 2**31], tail_mass=0, precision=12,
                                      version=1)
        for n in (1, 2, 3, 4, 101, 1000, 4096):
            sym = np.random.default_rng(n).integers(0, 3, n).astype(np.int32)
            idx = np.zeros(n, np.int32)
            data = ransform.encode(sym, idx, a)
            assert outcome(data, idx, b) == ((None, "C13"),) * 2, (delta, n)
            shifted = (sym.astype(np.int64) + delta).tolist()
            linear_passes = n % 2 == 0 if delta >= 2**30 else n == 4096
            assert (linear_checksum(shifted) == linear_checksum(sym.tolist())) == linear_passes, (delta, n)
    # (2) Two bit flips: the two top suffix bits (2^30 and 2^29 of u) of the escapes at
    # positions 2 and 3 (lanes 0 and 1, k = 31). Each flip alone changes one value; a flip of
    # the same bit in both escapes passed the linear checksum (w(2) + w(3) = 0 mod 8): now
    # every one of these is caught.
    t = ransform.CategoricalTable([[1.0, 2.0, 1.0]], offsets=[INT32_MAX - 2], tail_mass=0.25, precision=12, version=1)
    sym = [INT32_MIN] * 4
    data = ref.encode(sym, [0] * 4, t, lanes=2)
    assert outcome(data, [0] * 4, t) == ((sym, None),) * 2
    for bits, diff in [((319, 383), 2**30), ((318, 382), 2**29)]:
        for pos, bit in zip((2, 3), bits):
            bad = bytearray(data)
            bad[bit // 8] ^= 1 << (bit % 8)
            assert outcome(bytes(bad), [0] * 4, t) == ((None, "C13"),) * 2
            with pytest.raises(ref.ReferenceStreamError) as e:
                ref.decode(bytes(bad), [0] * 4, t)
            assert e.value.symbols == [INT32_MIN + diff * (j == pos) for j in range(4)], (bit, pos)
        bad = bytearray(data)
        for bit in bits:
            bad[bit // 8] ^= 1 << (bit % 8)
        changed = [INT32_MIN, INT32_MIN, INT32_MIN + diff, INT32_MIN + diff]
        assert linear_checksum(changed) == linear_checksum(sym)
        assert outcome(bytes(bad), [0] * 4, t) == ((None, "C13"),) * 2
        with pytest.raises(ref.ReferenceStreamError) as e:
            ref.decode(bytes(bad), [0] * 4, t)
        assert e.value.symbols == changed


def test_changes_that_permute_the_checksum_arguments_pass():
    # FORMAT.md 6.4, "Not detected": the value at p changed by D and the value at p + 1 by -D,
    # D = v_(p+1) - v_p + 0x9E3779B1 (mod 2^32), swap the two arguments a = uint32(v) +
    # uint32(pos + 1) * 0x9E3779B1, so the sum of mix(a) is unchanged. It takes values chosen
    # for it: here v_2 - v_1 = -0x9E3779B1 - 2^20 (mod 2^32), and the flips of bit 20 of the
    # exp-Golomb suffix u = -v of both escapes (0 -> 1 in escape 1: v_1 - 2^20; 1 -> 0 in
    # escape 2: v_2 + 2^20) give D = -2^20. The same flips on other values are caught.
    t = ransform.CategoricalTable([[1, 2, 1]], offsets=0, tail_mass=0.25, precision=12, version=1)  # escapes below 0: u = -v
    v1, v2 = -0x6FEF0000, -0x0E3679B1
    assert (v2 - v1) % 2**32 == (-0x9E3779B1 - 2**20) % 2**32 and not (-v1 >> 20) & 1 and (-v2 >> 20) & 1
    sym = [1, v1, v2, 0]
    data = ransform.encode(np.array(sym, np.int32), np.zeros(4, np.int32), t)
    assert data.hex() == "200400010d5a1a4601651529d601000000e4fd05001b5ff4ba3e1bc706"
    assert ref.encode(sym, [0] * 4, t) == data
    changed = [1, v1 - 2**20, v2 + 2**20, 0]
    args = lambda values: sorted(ref.checksum_term(v, p) for p, v in enumerate(values))  # noqa: E731
    assert args(changed) == args(sym) and ref.checksum(changed) == ref.checksum(sym)
    for bit, expected in [(145, [1, v1 - 2**20, v2, 0]), (211, [1, v1, v2 + 2**20, 0])]:
        bad = bytearray(data)
        bad[bit // 8] ^= 1 << (bit % 8)
        assert outcome(bytes(bad), [0] * 4, t) == ((None, "C13"),) * 2
        with pytest.raises(ref.ReferenceStreamError) as e:
            ref.decode(bytes(bad), [0] * 4, t)
        assert e.value.symbols == expected
    bad = bytearray(data)
    for bit in (145, 211):
        bad[bit // 8] ^= 1 << (bit % 8)
    assert outcome(bytes(bad), [0] * 4, t) == ((changed, None),) * 2
    # v_2 moved by 2^22 (bit 20 of u and k unchanged): the same two flips are caught.
    sym[2] = v2 - 2**22
    data = ransform.encode(np.array(sym, np.int32), np.zeros(4, np.int32), t)
    flips = {}
    for bit in range(8 * len(data)):
        bad = bytearray(data)
        bad[bit // 8] ^= 1 << (bit % 8)
        try:
            ref.decode(bytes(bad), [0] * 4, t)
        except ref.ReferenceStreamError as e:
            if e.check == "C13":
                flips[tuple(u - v for u, v in zip(e.symbols, sym))] = bit
    bad = bytearray(data)
    for diff in ((0, -2**20, 0, 0), (0, 0, 2**20, 0)):
        bad[flips[diff] // 8] ^= 1 << (flips[diff] % 8)
    assert outcome(bytes(bad), [0] * 4, t) == ((None, "C13"),) * 2


# ---------------------------------------------------------------------------------------------
# (b) golden bytes

# Version 1 streams (pinned when it was the only version): encoded with version-1 tables they
# must come out byte for byte, and decode. Version 2 (the default since) below.
GOLDEN = [
    ("empty", lambda: ransform.GaussianTable(version=1), [], [], "3000"),
    ("one", lambda: ransform.GaussianTable(version=1), [0], [0], "30010000526d008010370080"),
    ("example", lambda: ransform.GaussianTable(version=1), [0, 1, -1, 5], [0] * 4,
     "30040000040200028ec6891202020302ffff6300"),
    ("extremes", lambda: ransform.GaussianTable(version=1), [INT32_MIN, INT32_MAX, 0, 3], [159, 159, 80, 80],
     "300400001468360232d12f2be5ff00e00000ffff7b3cfbbf000000fe7a7c3d60"),
    ("laplace12", lambda: ransform.LaplaceTable(precision=12, version=1), [3, -7, 0, 12, -1], [40, 60, 80, 100, 120],
     "2005000094db8b0fbf31a223c6bfe159"),
    ("logistic14", lambda: ransform.LogisticTable(precision=14, version=1), [1, 2, -3, 1000], [70, 90, 110, 10],
     "280400030d5086acc56a018624f82800340f00"),
    ("categorical13", lambda: ransform.CategoricalTable([[1, 2, 3, 4], [4, 3, 2, 1]], offsets=[10, -2], tail_mass=0,
                                                        precision=13, version=1),
     [10, 13, -2, 1, 11, 0], [0, 0, 1, 1, 0, 1], "240600021a20e42e8b1e9694e302"),
]


@pytest.mark.parametrize("name, make_table, symbols, indexes, hexbytes", GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden_bytes(name, make_table, symbols, indexes, hexbytes):
    table = make_table()
    data = ransform.encode(np.array(symbols, np.int32), np.array(indexes, np.int32), table)
    assert data.hex() == hexbytes, f"format drift in {name!r}"
    assert ref.encode(symbols, indexes, table, lanes=1, version=table.version) == data
    agree(data, indexes, table, symbols)


# ---------------------------------------------------------------------------------------------
# (c) damaged streams: both reject, for the same reason

LIB_MESSAGES = [  # FORMAT.md 6.5: fragment of the library's message -> check id
    ("stream is empty", "H1"), ("format version", "H2"), ("precision field out of range", "H3"),
    ("inside the header", "H4"), ("malformed varint", "H4"), ("symbol count too large", "H5"),
    ("bytes after an empty stream", "H6"), ("(chunk count)", "H7/H8"), ("chunk runs past the end", "H9"),
    ("stream was coded at precision", "M1"), ("indexes were given", "M2"), ("(chunk header)", "C1"),
    ("(lane states)", "C2"), ("(lane state)", "C3"), ("unused state-size bits are set", "C4"), ("(chunk size)", "C5"),
    ("is out of range for a table", "C7"), ("inside an escaped value", "C8"), ("prefix too long", "C9"),
    ("escape length above 32 bits", "C9"), ("outside int32", "C10"), ("unread data at the end of a chunk", "C11"),
    ("final state check failed", "C12"),
    ("checksum mismatch", "C13"),
]


def lib_check(message):
    if message == "stream is truncated":
        return "C6"
    for fragment, check in LIB_MESSAGES:
        if fragment in message:
            return check
    return f"unknown: {message}"


def outcome(data, indexes, table, rows=None):
    """(symbols, None) or (None, check id) for the library and for the reference decoder
    (which reads the table through rows, a reference_decoder.Rows, when given)."""
    try:
        lib = (lib_decode(data, indexes, table), None)
    except ransform.StreamError as e:
        lib = (None, lib_check(str(e)))
    except ValueError as e:  # the index check is a plain ValueError
        lib = (None, "C7" if lib_check(str(e)) == "C7" else f"ValueError: {e}")
    try:
        mine = (ref.decode(data, indexes, table if rows is None else rows), None)
    except ValueError as e:
        mine = (None, {"H7": "H7/H8", "H8": "H7/H8"}.get(e.check, e.check))
    return lib, mine


G16 = [0] * 4
M16 = 1 << 16


def raw_stream(ops, lanes=1, n=1, precision=16, version=1):
    """A one-chunk stream written with the informative encoder rules of FORMAT.md 6.1-6.3 from
    explicit operations in decoding order (the checksum included, see checksum_ops):
    ("sym", lane, start, freq) or ("bits", lane, bits, nbits)."""
    M = 1 << precision
    x, emitted = [ref.L] * lanes, []
    for kind, lane, a, b in reversed(ops):
        if x[lane] >= (b << (63 - precision) if kind == "sym" else 1 << (63 - b)):
            emitted.append(x[lane] & 0xFFFFFFFF)
            x[lane] >>= 32
        x[lane] = (x[lane] // b) * M + x[lane] % b + a if kind == "sym" else (x[lane] << b) | a
    b0 = version << 5 | (precision - 12) << 2 | (lanes.bit_length() - 1)
    return bytes([b0]) + ref._varint(n) + b"\x00" + ref.finish_chunk(x, emitted)


def checksum_ops(expected):
    """The stored checksum of FORMAT.md 6.3, in decoding order: high half, then low half."""
    return [("bits", 0, expected >> 16, 16), ("bits", 0, expected & 0xFFFF, 16)]


def _splice(n, lanes, chunks, lengths_fn=lambda lengths: lengths, table=None, seed=0):
    """A multi-chunk stream from the reference encoder, with its length fields rewritten."""
    table = gaussian() if table is None else table
    sym, idx = random_stream(n, seed=seed, escape_every=5, table=table)
    data = ref.encode(sym, idx, table, lanes=lanes, chunks=chunks)
    h = ref.parse_header(data)
    lengths = [e - b for b, e in h["bodies"][:-1]]
    header = data[:1] + ref._varint(n) + ref._varint(chunks - 1) + b"".join(ref._varint(v) for v in lengths_fn(lengths))
    return header + data[h["bodies"][0][0]:], idx


# Row 0 of the default Gaussian table: offset 0, nsym 1, cdf = [0, 65535, 65536]; symbol 0 is local 0.
ZERO_OF_ROW_0 = ("sym", 0, 0, 65535)
ESCAPE_OF_ROW_0 = ("sym", 0, 65535, 1)

DAMAGED = [
    # (name, data, indexes, table, expected check)
    ("empty", b"", [], None, "H1"),
    ("version 0", bytes([0x10]) + EXAMPLE[1:], G16, None, "H2"),
    ("version 3", bytes([0x70]) + EXAMPLE[1:], G16, None, "H2"),
    ("precision field 5", bytes([0x34]) + EXAMPLE[1:], G16, None, "H3"),
    ("only byte 0", EXAMPLE[:1], G16, None, "H4"),
    ("cut inside n", bytes([0x30, 0x84]), G16, None, "H4"),
    ("non-minimal n", EXAMPLE[:1] + bytes([0x84, 0x00]) + EXAMPLE[2:], G16, None, "H4"),
    ("non-minimal empty n", bytes([0x30, 0x80, 0x00]), [], None, "H4"),
    ("11-byte varint", bytes([0x30]) + bytes([0xFF] * 10) + bytes([0x01]), G16, None, "H4"),
    ("10th varint byte 2", bytes([0x30]) + bytes([0x80] * 9) + bytes([0x02]), G16, None, "H4"),
    ("n = 2^48 + 1", bytes([0x30]) + ref._varint(2**48 + 1) + bytes(10), G16, None, "H5"),
    ("bytes after empty", bytes([0x30, 0x00, 0x00]), [], None, "H6"),
    ("chunks - 1 = n", bytes([0x30, 0x04, 0x04]) + EXAMPLE[3:], G16, None, "H7/H8"),
    ("chunks - 1 >= size", bytes([0x30, 0x7F, 0x7E]) + bytes(20), [0] * 127, None, "H7/H8"),
    ("last chunk empty", bytes([0x30, 0x05, 0x03, 0x01, 0x01, 0x01]) + bytes(20), [0] * 5, None, "H7/H8"),
    ("truncated chunk header", EXAMPLE[:3], G16, None, "C1"),
    ("truncated lane state", EXAMPLE[:7], G16, None, "C2"),
    ("non-canonical state", EXAMPLE[:3] + bytes([0x01, 0x00, 0x00, 0x00, 0x80, 0x00]), G16, None, "C3"),
    ("4-byte state below 2^24", EXAMPLE[:3] + bytes([0x00, 0xFF, 0xFF, 0xFF, 0x00]), G16, None, "C3"),
    ("unused state-size bit", EXAMPLE[:3] + bytes([EXAMPLE[3] | 0x80]) + EXAMPLE[4:], G16, None, "C4"),
    ("unused bit and truncated state", EXAMPLE[:3] + bytes([0x41]) + EXAMPLE[4:8], G16, None, "C2"),
    ("words not a multiple of 4", EXAMPLE[:-1], G16, None, "C5"),
    ("missing word", EXAMPLE[:-4], G16, None, "C6"),
    ("missing pre-emitted word", bytes([0x30, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40]), [0], None, "C6"),
    ("index out of range", EXAMPLE, [0, 0, 160, 0], None, "C7"),
    ("negative index", EXAMPLE, [-1, 0, 0, 0], None, "C7"),
    ("no word for the checksum", EXAMPLE[:-8], G16, None, "C8"),
    ("no word for the checksum's low half", raw_stream(checksum_ops(0) + [ZERO_OF_ROW_0])[:-4], [0], None, "C8"),
    ("extra word", EXAMPLE + bytes(4), G16, None, "C11"),
    ("wrong indexes", EXAMPLE, [80, 0, 0, 0], None, "C11"),
    ("wrong word", EXAMPLE[:-4] + bytes([0xFF, 0xFF, 0x63, 0x01]), G16, None, "C12"),  # final x = L + 1
    ("wrong checksum", EXAMPLE[:8] + bytes([EXAMPLE[8] ^ 1]) + EXAMPLE[9:], G16, None, "C13"),
    ("wrong checksum (raw)", raw_stream(checksum_ops(1) + [ZERO_OF_ROW_0]), [0], None, "C13"),
    ("escape decoded with a wider row", EXAMPLE, [0, 0, 0, 80], None, "C13"),
    ("precision mismatch", EXAMPLE, G16, lambda: gaussian(15), "M1"),
    ("too few indexes", EXAMPLE, [0] * 3, None, "M2"),
    ("chunk runs past the end", *_splice(30, 1, 3, lambda ls: [ls[0], 10_000]), None, "H9"),
    ("chunk lengths shifted", *_splice(30, 2, 3, lambda ls: [ls[0] + 4, ls[1] - 4]), None, "C11"),
]


@pytest.mark.parametrize("name, data, indexes, make_table, check", DAMAGED, ids=[d[0] for d in DAMAGED])
def test_damaged_streams(name, data, indexes, make_table, check):
    table = gaussian() if make_table is None else make_table()
    lib, mine = outcome(data, indexes, table)
    assert lib == mine == (None, check)


def raw_escape_stream(pushes, value=None):
    """A one-symbol stream (row 0 of the default Gaussian table: escape c = 65535, f = 1) whose
    escape is followed by arbitrary bypass groups: pushes = [(bits, n), ...] in reading order.
    The stored checksum is that of value (0 when value is None)."""
    expected = 0 if value is None else ref.checksum([value])
    return raw_stream(checksum_ops(expected) + [ESCAPE_OF_ROW_0] + [("bits", 0, b, n) for b, n in pushes])


def test_escape_prefix_and_int32_checks():
    t = gaussian()
    assert (t.offset(0), t.size(0)) == (0, 1)
    value = 0 + 1 + (1 << 20 | 0xBEEF << 4 | 5) - 1  # offset + nsym + d
    ok = raw_escape_stream([(0, 1)] + [(0, 1)] * 20 + [(1, 1), (0xBEEF, 16), (5, 4)], value)
    assert outcome(ok, [0], t) == (([value], None),) * 2
    assert outcome(raw_escape_stream([(0, 1)] + [(0, 1)] * 20 + [(1, 1), (0xBEEF, 16), (5, 4)]), [0], t) == \
        ((None, "C13"),) * 2
    # k = 31 is the longest valid code: d = 2^32 - 2 reaches neither end of int32 from row 0.
    top = raw_escape_stream([(1, 1)] + [(0, 1)] * 31 + [(1, 1), (0x7FFF, 15), (0xFFFF, 16)])
    assert outcome(top, [0], t) == ((None, "C10"), (None, "C10"))
    # The 32nd zero bit after the sign: prefix too long (C9), whatever follows.
    assert outcome(raw_escape_stream([(0, 1)] * 33), [0], t) == ((None, "C9"), (None, "C9"))
    assert outcome(raw_escape_stream([(0, 1)] * 33 + [(1, 1), (0, 16), (0, 16)]), [0], t) == ((None, "C9"),) * 2
    # The stream ends inside the escape's bits (C8).
    assert outcome(ok[:-4], [0], t) == ((None, "C8"), (None, "C8"))


def test_fuzzed_streams_agree():
    t = gaussian()
    sym, idx = random_stream(300, seed=11, escape_every=9)
    bases = [ref.encode(sym, idx, t, lanes=lanes, chunks=chunks) for lanes, chunks in [(1, 1), (2, 1), (8, 3), (4, 2)]]
    bases.append(ransform.encode(sym, idx, t))
    rnd = random.Random(1234)
    rows = ref.Rows(t)
    seen = set()
    for _ in range(5000):
        data = bytearray(rnd.choice(bases))
        kind = rnd.randrange(4)
        pos = rnd.randrange(len(data))
        if kind == 0:
            data[pos] ^= 1 << rnd.randrange(8)
        elif kind == 1:
            del data[pos:]
        elif kind == 2:
            del data[pos]
        else:
            data.insert(pos, rnd.randrange(256))
        lib, mine = outcome(bytes(data), idx, t, rows)
        assert lib == mine, (bytes(data).hex(), lib[1], mine[1])
        seen.add(lib[1])
    assert {"C5", "C6", "C8", "C9", "C10", "C11", "C12", "C13", "H9"} <= seen, seen


def test_truncation_after_an_escape_in_a_lane_group():
    # Row 0: f = [1, 4095] (escape 4095/4096); row 1: 4096 symbols of frequency 1, no escape.
    # The library once skipped the refill check for a group of K symbols when >= K words were
    # left, but an escape inside the group can use up those words: a later symbol of the group
    # then read past the chunk.
    pmfs = np.ones((2, 4096))
    pmfs[0, 0] = 1e-9
    t = ransform.CategoricalTable(pmfs, tail_mass=[0.5, 0.0], precision=12, lengths=[1, 4096])
    assert t.frequencies(0).tolist() == [1, 4095]
    # 2 lanes: symbol 0 (lane 0) is an escape with k = 31 (64 bits: the last 2 words), symbol 1
    # (lane 1) needs the next word, which the cut removed.
    sym, idx = [INT32_MIN, 1, 2, 3, 4, 5], [0, 1, 1, 1, 1, 1]
    data = ref.encode(sym, idx, t, lanes=2)
    assert outcome(data, idx, t) == ((sym, None),) * 2
    lib, mine = outcome(data[:-4], idx, t)
    with pytest.raises(ref.ReferenceStreamError, match=r"refill after symbol 1\)"):
        ref.decode(data[:-4], idx, t)
    assert lib == mine == (None, "C6")
    # Every cut, for groups of 2, 4 and 8 symbols alternating 64-bit escapes and 12-bit symbols
    # (with the old check, 2 to 4 of the cuts of each stream read past the end).
    for lanes in (2, 4, 8):
        sym = [INT32_MIN, 7] * (3 * lanes)
        idx = [0, 1] * (3 * lanes)
        data = ref.encode(sym, idx, t, lanes=lanes)
        body = ref.parse_header(data)["bodies"][0][0]
        for cut in range(4, len(data) - body, 4):
            lib, mine = outcome(data[:-cut], idx, t)
            assert lib == mine and lib[0] is None, (lanes, cut)


# ---------------------------------------------------------------------------------------------
# (d) the tables of FORMAT.md section 8


def test_default_scales_bit_exact():
    assert np.array_equal(np.array(ref.default_scales(), np.float32).view(np.uint32),
                          ransform.default_scales().view(np.uint32))


def test_gaussian_rows_bit_exact():
    # Rows 0-129 (radius <= 225) and every 6th wider one: each row searches its radius over
    # many quantizations (FORMAT.md 8.4), so all 160 take ~10 s in pure Python; the widest
    # rows are in test_scale_rows_and_thresholds_bit_exact.
    scales = ref.default_scales()
    for version, rows in ((1, range(0, 130, 3)), (2, list(range(130)) + list(range(130, 160, 6)))):
        t = gaussian(version=version)
        for j in rows:
            offset, freqs = ref.scale_row("gaussian", scales[j], 16, version=version)
            assert (t.offset(j), t.size(j), t.has_escape(j)) == (offset, 2 * -offset + 1, True)
            assert t.frequencies(j).tolist() == freqs, (version, j)


@pytest.mark.parametrize("family", ["gaussian", "laplace", "logistic"])
@pytest.mark.parametrize("precision", [12, 14, 16])
def test_scale_rows_and_thresholds_bit_exact(family, precision):
    # A fixed subset of rows (all 160 of three families in pure Python would take minutes),
    # the widest (159) included, and thresholds around them from the library's rows.
    t = ransform.ScaleTable(family=family, precision=precision)
    scales = ref.default_scales()
    for j in (0, 1, 2, 33, 79, 118, 159):
        offset, freqs = ref.scale_row(family, scales[j], precision)
        assert t.offset(j) == offset and t.frequencies(j).tolist() == freqs, j
    rows = {j: (t.offset(j), t.frequencies(j).tolist()) for j in range(160)}
    lib = t.thresholds.view(np.uint32).tolist()
    for j in (0, 1, 33, 79, 118, 157, 158):
        assert ref.threshold_bits(family, scales, j, precision, 1e-9, rows) == lib[j], j


def test_radius_is_at_most_the_tail_mass_radius():
    # FORMAT.md 8.4: tail_mass only bounds the radius (R_j <= R_max); the expected-code-length
    # rule makes the wide rows narrower (row 159, scale 256: Gaussian 901 of R_max 1564,
    # Laplace 1709 and logistic 1887 of R_max 5305 and 5483 at P = 16), and narrows row 0 of
    # the Gaussian table to value 0 plus the escape.
    scales = ref.default_scales()
    for family, widest, r_max in [("gaussian", 901, 1564), ("laplace", 1709, 5305), ("logistic", 1887, 5483)]:
        t = ransform.ScaleTable(family=family)
        radii = [-t.offset(j) for j in range(160)]
        caps = [ref.support_radius(family, s, 1e-9, 16383) for s in scales]
        assert all(r <= c for r, c in zip(radii, caps)), family
        assert (radii[159], caps[159]) == (widest, r_max), family
        assert radii == sorted(radii), family  # FORMAT.md 8.5 no longer relies on this
    assert -ransform.GaussianTable().offset(0) == 0
    # At P = 12 the cost is not unimodal near r_max: the ternary search alone would give
    # logistic row 159 R = 1017, but the bound R = 1023 costs less and is compared last (FORMAT.md 8.4).
    t = ransform.ScaleTable(family="logistic", precision=12)
    tails = ref.half_integer_tails("logistic", scales[159], ref.support_radius("logistic", scales[159], 1e-9, 1023))
    assert len(tails) == 1024 and -t.offset(159) == ref.best_radius(tails, 12) == 1023
    assert ref.radius_cost(tails, 1023, 12) < ref.radius_cost(tails, 1017, 12) - 0.1


def test_custom_scale_table_rows_and_thresholds():
    scales = [0.02, 0.5, 0.5001, 0.6, 3.0, 40.0, 1000.0, 2.5e4]
    s32 = [ref.to_float32(s) for s in scales]
    for family, precision, tail in [("gaussian", 13, 1e-3), ("laplace", 12, 1e-6), ("logistic", 13, 0.2)]:
        t = ransform.ScaleTable(scales, family=family, precision=precision, tail_mass=tail)
        rows = {}
        for j, s in enumerate(s32):
            rows[j] = ref.scale_row(family, s, precision, tail)
            assert (t.offset(j), t.frequencies(j).tolist()) == rows[j]
            assert -t.offset(j) <= ref.support_radius(family, s, tail, 2 ** (precision - 2) - 1)  # the bound
        mine = [ref.threshold_bits(family, s32, j, precision, tail, rows) for j in range(len(s32) - 1)]
        assert t.thresholds.view(np.uint32).tolist() == mine


def test_default_thresholds_bit_exact():
    # Every crossing is bisected (FORMAT.md 8.5), narrow rows and wide ones (R_(j+1) = 162 at
    # j = 121, 901 at j = 158) alike. All 159 thresholds, from the library's rows (which
    # test_gaussian_rows_bit_exact checks against section 8.4).
    t = gaussian()
    scales = ref.default_scales()
    lib = t.thresholds.view(np.uint32).tolist()
    rows = {j: (t.offset(j), t.frequencies(j).tolist()) for j in range(160)}
    assert ref.grid_shift(scales) == 14
    assert [ref.threshold_bits("gaussian", scales, j, 16, 1e-9, rows) for j in range(159)] == lib


def test_grid_shift_is_at_most_14():
    # Scales octaves apart: the grid stops at 2^14 bit patterns (FORMAT.md 8.5 step 1), and
    # some thresholds are odd multiples of 2^14 (a grid of 2^15 could not hold them).
    for family, precision, scales in [("gaussian", 12, [0.05, 0.3, 2.0, 12.0, 70.0]), ("laplace", 14, [0.2, 1.0, 5.0]),
                                      ("logistic", 16, [0.1, 0.8, 6.0])]:
        s32 = [ref.to_float32(s) for s in scales]
        t = ransform.ScaleTable(scales, family=family, precision=precision)
        lib = t.thresholds.view(np.uint32).tolist()
        assert ref.grid_shift(s32) == 14
        assert lib == [ref.threshold_bits(family, s32, j, precision) for j in range(len(s32) - 1)], family
        assert all(b % (1 << 14) == 0 for b in lib) and any(b % (1 << 15) for b in lib), family


def test_scale_index_map():
    t = gaussian()
    th = t.thresholds.view(np.uint32).tolist()
    probes = [-0.0, 0.0, 1e-45, 1e-38, 0.05, 0.11, 0.115, 1.0, 7.5, 255.9, 256.0, 1e9, 3.4e38]
    probes += [struct.unpack("<f", struct.pack("<I", b))[0] for b in th[:5] + th[-3:]]
    probes += [struct.unpack("<f", struct.pack("<I", b - 1))[0] for b in th[:5] + th[-3:]]
    got = t.index(np.array(probes, np.float32)).tolist()
    assert got == [ref.scale_index(th, ref.to_float32(p)) for p in probes]
    for bad in (-1.0, -1e-45, float("nan"), float("inf"), float("-inf")):
        with pytest.raises(ValueError):
            t.index(np.array([bad], np.float32))
        with pytest.raises(ValueError):
            ref.scale_index(th, bad)


def test_categorical_rows_bit_exact():
    rng = np.random.default_rng(4)
    pmfs = rng.random((6, 40)) ** 4
    pmfs[:, ::7] = 0.0
    tails = [0.0, 1e-9, 0.3, 0.0, 1e-3, 0.5]
    lengths = [40, 1, 17, 2, 40, 33]
    for precision in (12, 16):
        t = ransform.CategoricalTable(pmfs, offsets=3, tail_mass=tails, precision=precision, lengths=lengths)
        for r in range(6):
            p = pmfs[r, :lengths[r]].tolist() + ([tails[r]] if tails[r] > 0 else [])
            assert t.frequencies(r).tolist() == ref.quantize(p, precision), (precision, r)


def test_quantization_exchange_phase():
    # FORMAT.md 8.3's example: the start f = [1, 682, 3413] already sums to 4096 (the fix-up does
    # nothing); one exchange moves a count from symbol 2 to symbol 1.
    g = lambda f, p: p * (ref.det_log(f + 1.0) - ref.det_log(float(f)))  # noqa: E731
    l = lambda f, p: p * (ref.det_log(float(f)) - ref.det_log(f - 1.0))  # noqa: E731,E741
    assert g(682, 1.0) == 0.0014652017273277806 > l(3413, 5.0) == 0.001465201475685518
    assert g(3412, 5.0) < l(683, 1.0)
    t = ransform.CategoricalTable([[0.0, 1.0, 5.0]], tail_mass=0, precision=12)
    assert t.frequencies(0).tolist() == ref.quantize([0.0, 1.0, 5.0], 12) == [1, 683, 3412]
    # Ties: the fix-up gives the count to the lowest index; equal gain and loss do not exchange
    # (strictly greater only).
    assert ref.quantize([1.0, 1.0, 1.0], 12) == [1366, 1365, 1365]
    assert ransform.CategoricalTable([[1.0, 1.0, 1.0]], tail_mass=0, precision=12).frequencies(0).tolist() == \
        [1366, 1365, 1365]


def test_quantization_heaps_match_the_argmax_definition():
    # FORMAT.md 8.3 defines G and D as an argmax/argmin over every symbol at every step; the
    # library (and ref.quantize) use heaps with lazy deletion. The three agree.
    rng = np.random.default_rng(8)
    cases = [[1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0, 1.0], [1e-300, 1.0, 1e-300], [3.0] * 7 + [1e-9] * 5]
    for k in range(60):
        m = int(rng.integers(1, 40))
        kind = k % 4
        if kind == 0:
            p = rng.random(m) ** 8
        elif kind == 1:
            p = np.exp(-30 * rng.random(m))
        elif kind == 2:
            p = rng.integers(0, 4, m).astype(float)
            p[0] += 1
        else:
            p = rng.random(m) * np.where(rng.random(m) < 0.5, 1e-6, 1.0)
        cases.append(p.tolist())
    exchanged = 0
    for i, p in enumerate(cases):
        precision = (12, 16)[i % 2]
        lib = ransform.CategoricalTable([p], tail_mass=0, precision=precision).frequencies(0).tolist()
        mine = ref.quantize(p, precision)
        assert mine == ref.quantize_naive(p, precision) == lib, (precision, p)
        exchanged += mine != ref.quantize_naive(p, precision, exchange=False)
    assert exchanged >= 10  # the exchange phase matters for many of them


# ---------------------------------------------------------------------------------------------
# (f) format version 2: Elias delta after the escape, scale rows with the escape at >= 2^-12


def test_version_2_streams_agree_with_the_reference():
    t = gaussian(version=2)
    wide = [r for r in range(t.rows) if t.size(r) >= 5]  # radius >= 2: the escape at >= 2^-12
    assert t.version == 2 and min(t.frequencies(r)[-1] for r in wide) >= 15 and t.frequencies(0)[-1] == 1
    for seed, (lanes, chunks) in enumerate([(1, 1), (2, 1), (8, 3)]):
        sym, idx = random_stream(3000, seed=40 + seed, escape_every=7, table=t)
        sym[:8] = [INT32_MIN, INT32_MAX, -INT32_MAX, 0, 1000, -1000, 100000, -100000]
        data = ref.encode(sym, idx, t, lanes=lanes, chunks=chunks)
        assert data[0] >> 5 == 2
        agree(data, idx, t, sym)
        lib = ransform.encode(sym, idx, t)
        h = ref.parse_header(lib)
        assert ref.encode(sym, idx, t, lanes=h["lanes"], chunks=h["chunks"]) == lib


def test_version_2_escape_checks():
    t = gaussian(version=2)
    assert (t.offset(0), t.size(0)) == (0, 1)
    escape = ("sym", 0, int(t.frequencies(0)[0]), int(t.frequencies(0)[1]))  # row 0: value 0, then the escape

    def stream(pushes, value=None):
        expected = 0 if value is None else ref.checksum([value])
        return raw_stream(checksum_ops(expected) + [escape] + [("bits", 0, b, n) for b, n in pushes], version=2)

    # d = 2^20 + 0xBEEF * 16 + 4: u = d + 1 has n = 21 bits = 0b10101, so L = 4 zeros, 1, 0101.
    u = 1 << 20 | 0xBEEF << 4 | 5
    ok = stream([(0, 1)] + [(0, 1)] * 4 + [(1, 1), (0b0101, 4), (0xBEEF, 16), (5, 4)], 1 + u - 1)
    assert outcome(ok, [0], t) == (([u], None),) * 2
    # n = 32 is the longest valid length: u = 2^32 - 1 from row 0 lies past int32.
    top = stream([(1, 1)] + [(0, 1)] * 5 + [(1, 1), (0, 5), (0xFFFF, 16), (0x7FFF, 15)])
    assert outcome(top, [0], t) == ((None, "C10"),) * 2
    # A sixth zero, or a length above 32, is corruption (C9).
    assert outcome(stream([(0, 1)] * 7), [0], t) == ((None, "C9"),) * 2
    assert outcome(stream([(0, 1)] + [(0, 1)] * 5 + [(1, 1), (1, 5)]), [0], t) == ((None, "C9"),) * 2


def test_a_scale_table_reads_its_own_version_and_categorical_tables_both():
    sym, idx = random_stream(500, seed=3, escape_every=11)
    v1, v2 = gaussian(version=1), gaussian(version=2)
    old, new = ransform.encode(sym, idx, v1), ransform.encode(sym, idx, v2)
    assert (old[0] >> 5, new[0] >> 5) == (1, 2) and len(new) < len(old)
    with pytest.raises(ransform.StreamError, match="version 1 but the table's rows are version 2's: build it with"):
        ransform.decode(old, idx, v2)
    with pytest.raises(ransform.StreamError, match="build it with version=2"):
        ransform.Decoder(new, v1)
    cat = [ransform.CategoricalTable([[1, 2, 3, 2, 1]], offsets=-2, version=v) for v in (1, 2)]
    values = np.array([0, 1, -2, 70000, -9, 2], np.int32)
    for written in cat:
        data = ransform.encode(values, np.zeros(6, np.int32), written)
        assert data[0] >> 5 == written.version
        for reader in cat:
            assert ransform.decode(data, np.zeros(6, np.int32), reader).tolist() == values.tolist()
    with pytest.raises(ValueError, match="version must be 1 or 2"):
        ransform.GaussianTable(version=3)

