"""A slow, independent reference decoder for the ransform stream format (docs/FORMAT.md).

Written from docs/FORMAT.md alone, in plain Python integers, to cross-check the C++ decoder.
Section numbers and check ids (H1, C11, ...) below refer to that document.

    symbols = decode(data, indexes, table)

``table`` is either a ransform table (anything with ``precision``, ``rows``, ``frequencies(r)``,
``offset(r)``, ``size(r)`` and ``has_escape(r)``), or a callable ``row(r) -> (frequencies,
offset, has_escape)`` together with ``precision=`` (and optionally ``rows=``).

Errors are ``ValueError`` subclasses carrying the id of the violated check in ``.check``:
``ReferenceStreamError`` for the stream checks, ``ReferenceIndexError`` for C7 and
``ReferenceTableError`` for an invalid table row. A checksum mismatch (C13) also carries the
values the chunk decoded to in ``.symbols``.

``checksum(values, first)`` is the chunk checksum of section 6.3 (the sum of
``checksum_term(value, pos) = checksum_mix(uint32(value) + uint32(pos + 1) * 0x9E3779B1)``) and
``chunk_checksums(data)`` reads the checksums a stream stores; ``encode`` is the informative
encoder (explicit layout).

The second half of the module rebuilds the library's tables from section 8 (deterministic
exp/log/erfc, families, support radius and the radius of least expected code length,
quantization with its exchange phase, default scales, scale thresholds by bisection).
"""
from __future__ import annotations

import bisect
import heapq
import math
import struct

L = 1 << 31  # lower bound of a normalised state


class ReferenceStreamError(ValueError):
    def __init__(self, check: str, reason: str):
        super().__init__(f"{check}: {reason}")
        self.check = check


class ReferenceIndexError(ValueError):
    def __init__(self, reason: str):
        super().__init__(f"C7: {reason}")
        self.check = "C7"


class ReferenceTableError(ValueError):
    check = "table"


# ---------------------------------------------------------------------------------------------
# Section 2: header


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """LEB128, at most 10 bytes, minimal; returns (value, new position)."""
    value = 0
    for i in range(10):
        if pos >= len(data):
            raise ReferenceStreamError("H4", "stream is truncated (inside the header)")
        b = data[pos]
        pos += 1
        if i == 9 and b > 1:
            raise ReferenceStreamError("H4", "malformed varint (10th byte above 1)")
        value |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            if b == 0 and i > 0:
                raise ReferenceStreamError("H4", "malformed varint (not minimal)")
            return value, pos
    raise ReferenceStreamError("H4", "malformed varint (longer than 10 bytes)")


def parse_header(data: bytes) -> dict:
    """Checks H1-H9; returns precision, lanes, n, chunks, S and the chunk bodies' byte ranges."""
    data = bytes(data)
    if len(data) == 0:
        raise ReferenceStreamError("H1", "stream is empty")
    b0 = data[0]
    version = b0 >> 5
    if version not in (1, 2):
        raise ReferenceStreamError("H2", f"unsupported format version {version}")
    pfield = (b0 >> 2) & 7
    if pfield > 4:
        raise ReferenceStreamError("H3", "precision field out of range")
    precision = 12 + pfield
    lanes = 1 << (b0 & 3)
    n, pos = _read_varint(data, 1)
    if n > 1 << 48:
        raise ReferenceStreamError("H5", "symbol count too large")
    header = {"version": version, "precision": precision, "lanes": lanes, "n": n, "chunks": 0, "S": 0, "bodies": []}
    if n == 0:
        if pos != len(data):
            raise ReferenceStreamError("H6", "bytes after an empty stream")
        return header
    chunks_m1, pos = _read_varint(data, pos)
    if chunks_m1 >= n or chunks_m1 >= len(data):
        raise ReferenceStreamError("H7", "chunk count")
    chunks = chunks_m1 + 1
    S = -(-n // chunks)
    if (chunks - 1) * S >= n:
        raise ReferenceStreamError("H8", "chunk count (last chunk empty)")
    lengths = []
    for _ in range(chunks - 1):
        length, pos = _read_varint(data, pos)
        lengths.append(length)
    bodies = []
    start = pos
    for length in lengths:
        if length > len(data) - start:
            raise ReferenceStreamError("H9", "chunk runs past the end")
        bodies.append((start, start + length))
        start += length
    bodies.append((start, len(data)))
    header.update(chunks=chunks, S=S, bodies=bodies)
    return header


# ---------------------------------------------------------------------------------------------
# Section 5: rows


class Rows:
    """Per-row (offset, nsym, has_escape, cdf), fetched lazily and validated once. Pass a Rows
    instead of a table to reuse the rows it has loaded over several calls."""

    def __init__(self, table, precision=None, rows=None):
        if callable(table) and not hasattr(table, "frequencies"):
            if precision is None:
                raise TypeError("a row callable needs precision=")
            self._get = table
            self.precision = int(precision)
            self.rows = rows
        else:
            self._get = lambda r: (table.frequencies(r), table.offset(r), table.has_escape(r), table.size(r))
            self.precision = int(table.precision)
            self.rows = int(table.rows) if rows is None else rows
        self._cache = {}

    def get(self, r: int):
        row = self._cache.get(r)
        if row is None:
            row = self._cache[r] = self._load(r)
        return row

    def _load(self, r):
        got = self._get(r)
        freqs = [int(f) for f in (got[0].tolist() if hasattr(got[0], "tolist") else got[0])]
        offset, esc = int(got[1]), bool(got[2])
        nsym = len(freqs) - esc
        if len(got) > 3 and int(got[3]) != nsym:
            raise ReferenceTableError(f"row {r}: size {got[3]} but {len(freqs)} frequencies")
        M = 1 << self.precision
        if not 1 <= len(freqs) <= M or nsym < 1 or min(freqs) < 1 or sum(freqs) != M:
            raise ReferenceTableError(f"row {r}: frequencies must be >= 1 and sum to 2^{self.precision}")
        if offset + nsym - 1 > 2**31 - 1 or offset < -2**31:
            raise ReferenceTableError(f"row {r}: offset out of range")
        cdf = [0]
        for f in freqs:
            cdf.append(cdf[-1] + f)
        return offset, nsym, esc, cdf


# ---------------------------------------------------------------------------------------------
# Sections 4 and 6: chunks


class _Words:
    """The chunk's 32-bit little-endian word stream."""

    def __init__(self, body: bytes, start: int):
        self.body, self.pos = body, start

    def next(self, check: str, where: str) -> int:
        if self.pos + 4 > len(self.body):
            raise ReferenceStreamError(check, f"stream is truncated ({where})")
        w = int.from_bytes(self.body[self.pos:self.pos + 4], "little")
        self.pos += 4
        return w


def _decode_chunk(body: bytes, lanes: int, count: int, first: int, indexes, rows: Rows, version: int) -> list:
    P = rows.precision
    M = 1 << P
    # Section 4: state-size codes, lane states, words.
    ncode = (lanes + 3) // 4
    if len(body) < ncode:
        raise ReferenceStreamError("C1", "stream is truncated (chunk header)")
    pos = ncode
    x = []
    for lane in range(lanes):
        code = (body[lane // 4] >> (2 * (lane % 4))) & 3
        nbytes = 4 + code
        if len(body) - pos < nbytes:
            raise ReferenceStreamError("C2", "stream is truncated (lane states)")
        state = int.from_bytes(body[pos:pos + nbytes], "little")
        pos += nbytes
        if state < 1 << (8 * (nbytes - 1)):
            raise ReferenceStreamError("C3", "stream is corrupted (lane state not canonical)")
        x.append(state)
    if body[ncode - 1] >> (2 * (lanes - 4 * (ncode - 1))):  # the bits above the last lane's code
        raise ReferenceStreamError("C4", "stream is corrupted (unused state-size bits are set)")
    if (len(body) - pos) % 4 != 0:
        raise ReferenceStreamError("C5", "chunk size: words are not a multiple of 4 bytes")
    words = _Words(body, pos)
    for lane in range(lanes):
        if x[lane] < L:
            x[lane] = (x[lane] << 32) | words.next("C6", "lane initialisation")

    # Section 6.3: the chunk's checksum, in lane 0, before the first symbol (high half first).
    high, x[0] = _take(x[0], words, 16, "inside the checksum")
    low, x[0] = _take(x[0], words, 16, "inside the checksum")
    expected = high << 16 | low

    # Section 6.1: one step per symbol, symbol j on lane j mod lanes.
    out = []
    for j in range(count):
        r = indexes[first + j]
        if rows.rows is not None and not 0 <= r < rows.rows:
            raise ReferenceIndexError(f"indexes[{first + j}] = {r} is out of range for a table with {rows.rows} rows")
        try:
            offset, nsym, esc, cdf = rows.get(r)
        except (IndexError, KeyError) as e:
            raise ReferenceIndexError(f"indexes[{first + j}] = {r}: {e}") from None
        lane = j % lanes
        s_x = x[lane]
        assert L <= s_x < 1 << 63
        slot = s_x % M
        s = bisect.bisect_right(cdf, slot) - 1  # cdf[s] <= slot < cdf[s + 1]
        f = cdf[s + 1] - cdf[s]
        s_x = f * (s_x >> P) + slot - cdf[s]
        if s_x < L:
            s_x = (s_x << 32) | words.next("C6", f"refill after symbol {first + j}")
        if s < nsym:
            value = offset + s
        else:
            value, s_x = _read_escape(s_x, words, offset, nsym, first + j, version)
        x[lane] = s_x
        out.append(value)

    # Section 6.4: end of the chunk.
    if words.pos != len(body):
        raise ReferenceStreamError("C11", "stream is corrupted (unread data at the end of a chunk)")
    for lane in range(lanes):
        if x[lane] != L:
            raise ReferenceStreamError("C12", f"final state check failed (lane {lane}: {x[lane]:#x})")
    actual = checksum(out, first)
    if actual != expected:
        err = ReferenceStreamError("C13", f"checksum mismatch (symbols {actual:#010x}, stored {expected:#010x})")
        err.symbols = out  # what the chunk decoded to, for diagnostics
        raise err
    return out


def _take(x: int, words: _Words, n: int, where: str) -> tuple[int, int]:
    """Section 6.2's take(n): returns (bits, state)."""
    bits = x & ((1 << n) - 1)
    x >>= n
    if x < L:
        x = (x << 32) | words.next("C8", where)
    return bits, x


CHECKSUM_MULTIPLIER = 0x9E3779B1
_M32 = 0xFFFFFFFF


def checksum_mix(x: int) -> int:
    """Section 6.3's mix: a bijection of uint32 (xor-shifts and odd multipliers)."""
    x &= _M32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & _M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & _M32
    x ^= x >> 16
    return x


def checksum_term(value: int, pos: int) -> int:
    """Section 6.3: mix(uint32(value) + uint32(pos + 1) * 0x9E3779B1), all modulo 2^32."""
    return checksum_mix((int(value) & _M32) + ((pos + 1) & _M32) * CHECKSUM_MULTIPLIER)


def checksum(values, first: int = 0, total: int = 0) -> int:
    """Section 6.3: total plus the sum of checksum_term(v, pos) over values, the first at stream
    position first, modulo 2^32."""
    for i, v in enumerate(values):
        total = (total + checksum_term(v, first + i)) & _M32
    return total


def chunk_checksums(data) -> list:
    """The checksum stored in each chunk body of a stream (section 6.3), read without decoding
    the symbols."""
    data = bytes(data)
    header = parse_header(data)
    lanes, out = header["lanes"], []
    for begin, end in header["bodies"]:
        body = data[begin:end]
        ncode = (lanes + 3) // 4
        pos, x = ncode, []
        for lane in range(lanes):
            nbytes = 4 + ((body[lane // 4] >> (2 * (lane % 4))) & 3)
            x.append(int.from_bytes(body[pos:pos + nbytes], "little"))
            pos += nbytes
        words = _Words(body, pos)
        for lane in range(lanes):
            if x[lane] < L:
                x[lane] = (x[lane] << 32) | words.next("C6", "lane initialisation")
        high, x0 = _take(x[0], words, 16, "inside the checksum")
        low, _ = _take(x0, words, 16, "inside the checksum")
        out.append(high << 16 | low)
    return out


def _read_escape(x: int, words: _Words, offset: int, nsym: int, pos: int, version: int) -> tuple[int, int]:
    """Section 6.2; returns (value, state)."""
    where = f"inside the escaped value of symbol {pos}"
    below, x = _take(x, words, 1, where)
    zeros = 0
    while True:
        bit, x = _take(x, words, 1, where)
        if bit:
            break
        zeros += 1
        if version == 1 and zeros > 31:
            raise ReferenceStreamError("C9", "exp-Golomb prefix too long")
        if version == 2 and zeros > 5:
            raise ReferenceStreamError("C9", "escape length prefix too long")
    if version == 1:
        k = zeros  # u has k + 1 bits
    else:  # Elias delta: u's bit length n in Elias gamma, then u below its leading one
        n = 1
        if zeros:
            bits, x = _take(x, words, zeros, where)
            n = (1 << zeros) | bits
        if n > 32:
            raise ReferenceStreamError("C9", "escape length above 32 bits")
        k = n - 1
    u = 1
    left = k
    while left > 0:
        g = min(16, left)
        left -= g
        bits, x = _take(x, words, g, where)
        u = (u << g) | bits
    d = u - 1
    value = offset - 1 - d if below else offset + nsym + d
    if not -2**31 <= value <= 2**31 - 1:
        raise ReferenceStreamError("C10", "escaped value outside int32")
    return value, x


def decode(data, indexes, table, *, precision=None, rows=None) -> list:
    """Decodes a whole stream; returns the symbols as a list of Python ints."""
    data = bytes(data)
    indexes = [int(i) for i in (indexes.ravel() if hasattr(indexes, "ravel") else indexes)]
    header = parse_header(data)
    table_rows = table if isinstance(table, Rows) else Rows(table, precision, rows)
    if header["precision"] != table_rows.precision:
        raise ReferenceStreamError("M1", f"stream precision {header['precision']} but table {table_rows.precision}")
    n = header["n"]
    if n != len(indexes):
        raise ReferenceStreamError("M2", f"stream holds {n} symbols but {len(indexes)} indexes were given")
    out = []
    S = header["S"]
    for c, (begin, end) in enumerate(header["bodies"]):
        count = min(n, (c + 1) * S) - c * S
        out.extend(_decode_chunk(data[begin:end], header["lanes"], count, c * S, indexes, table_rows,
                                 header["version"]))
    return out


# ---------------------------------------------------------------------------------------------
# Section 8: tables. Every operation is a Python float (IEEE binary64) operation, as specified.

LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
INV_LN2 = 1.44269504088896338700e+00
INV_SQRT_PI = 5.64189583547756286948e-01
SQRT2 = 1.41421356237309504880e+00
SQRT_HALF = 0.70710678118654752440


def det_exp(x: float) -> float:
    if x != x:
        return x
    if x > 709.78:
        return math.inf
    if x < -745.2:
        return 0.0
    k = float(math.floor(x * INV_LN2 + 0.5))
    r = (x - k * LN2_HI) - k * LN2_LO
    p = 1.0
    for n in range(15, 0, -1):
        p = 1.0 + (p * r) / n
    return math.ldexp(p, int(k))


def det_log(x: float) -> float:
    if x == 0.0:
        return -math.inf
    if not x > 0.0:
        return math.nan
    if x == math.inf:
        return x
    m, e = math.frexp(x)
    if m < SQRT_HALF:
        m *= 2.0
        e -= 1
    s = (m - 1.0) / (m + 1.0)
    s2 = s * s
    series = 1.0 / 25.0
    for n in range(23, 0, -2):
        series = 1.0 / n + s2 * series
    return e * LN2_HI + (e * LN2_LO + (2.0 * s) * series)


def det_log2(x: float) -> float:
    return det_log(x) * INV_LN2


def det_erfc(x: float) -> float:
    if x != x:
        return x
    if x < 0.0:
        return 2.0 - det_erfc(-x)
    if x < 2.0:
        x2 = x * x
        term = total = x
        for n in range(1, 60):
            term = ((-term) * x2) / n
            nxt = total + term / (2 * n + 1)
            if nxt == total:
                break
            total = nxt
        return 1.0 - (2.0 * INV_SQRT_PI) * total
    if x > 27.3:
        return 0.0
    depth = 120 if x < 3.0 else (60 if x < 5.0 else 30)
    cf = x
    for n in range(depth, 0, -1):
        cf = x + (0.5 * n) / cf
    return (det_exp(-x * x) * INV_SQRT_PI) / cf


def upper_tail(family: str, x: float, s: float) -> float:
    if family == "gaussian":
        return 0.5 * det_erfc(x / (s * SQRT2))
    if family == "laplace":
        return 0.5 * det_exp(-x / s)
    if family == "logistic":
        e = det_exp(-x / s)
        return e / (1.0 + e)
    raise ValueError(family)


def support_radius(family: str, s: float, tail_mass: float, r_max: int) -> int:
    def outside(r):
        return 2.0 * upper_tail(family, r + 0.5, s) > tail_mass

    hi = 1
    while hi < r_max and outside(hi):
        hi = r_max if hi > r_max // 2 else 2 * hi
    if outside(hi):
        return r_max
    lo = -1
    while hi - lo > 1:
        mid = lo + (hi - lo) // 2
        if outside(mid):
            lo = mid
        else:
            hi = mid
    return hi


def discretised_pmf(family: str, s: float, radius: int) -> list:
    return pmf_from_tails(half_integer_tails(family, s, radius))


def start_frequencies(p: list, precision: int) -> list:
    """Section 8.3's starting point: max(1, floor(p_i / sum(p) * 2^P)), capped at 2^P."""
    M = 1 << precision
    mass = 0.0
    for v in p:
        mass += v
    f = []
    for v in p:
        q = math.floor((v / mass) * float(M))
        f.append(1 if q < 1.0 else int(min(q, M)))
    return f


def _gain(p: list, f: list, i: int) -> float:
    """Section 8.3: what raising f[i] by one saves in expected code length."""
    return p[i] * (det_log(f[i] + 1.0) - det_log(float(f[i])))


def _loss(p: list, f: list, i: int) -> float:
    """Section 8.3: what lowering f[i] by one costs."""
    return p[i] * (det_log(float(f[i])) - det_log(f[i] - 1.0))


def quantize(p: list, precision: int) -> list:
    """Section 8.3. Heaps with lazy deletion (the library re-keys indexed heaps instead; both
    pick the same symbol): an entry carries the f it was computed for and is dropped when it
    reaches the top with a stale f. An entry's value is a function of (i, f[i]) alone, so the
    top valid entry is always the argmax (argmin) of 8.3; quantize_naive checks that on small
    inputs."""
    M = 1 << precision
    f = start_frequencies(p, precision)
    excess = sum(f) - M

    gains = []   # (-gain, i, f): min-heap = largest gain first, then the lowest index
    losses = []  # (loss, i, f): smallest loss first, then the lowest index; only f > 1

    def push(i):
        heapq.heappush(gains, (-_gain(p, f, i), i, f[i]))
        if f[i] > 1:
            heapq.heappush(losses, (_loss(p, f, i), i, f[i]))

    def top(heap):
        while heap and f[heap[0][1]] != heap[0][2]:
            heapq.heappop(heap)
        return heap[0] if heap else None

    for i in range(len(p)):
        push(i)
    while excess < 0:
        i = top(gains)[1]
        f[i] += 1
        excess += 1
        push(i)
    while excess > 0:
        i = top(losses)[1]
        f[i] -= 1
        excess -= 1
        push(i)
    while True:  # exchange while the largest gain strictly exceeds the smallest loss
        g, l = top(gains), top(losses)
        if l is None or not -g[0] > l[0]:
            break
        up, down = g[1], l[1]
        if up == down:
            break
        f[up] += 1
        f[down] -= 1
        push(up)
        push(down)
    return f


def quantize_naive(p: list, precision: int, exchange: bool = True) -> list:
    """Section 8.3 word for word (argmax/argmin over every symbol at every step): O(m) a step.
    exchange=False stops after the greedy fix-up (the result before the exchange phase)."""
    M = 1 << precision
    f = start_frequencies(p, precision)
    excess = sum(f) - M

    def best_gain():
        return min(range(len(p)), key=lambda i: (-_gain(p, f, i), i))

    def best_loss():
        cands = [i for i in range(len(p)) if f[i] > 1]
        return min(cands, key=lambda i: (_loss(p, f, i), i)) if cands else None

    while excess < 0:
        f[best_gain()] += 1
        excess += 1
    while excess > 0:
        f[best_loss()] -= 1
        excess -= 1
    while exchange:
        up, down = best_gain(), best_loss()
        if down is None or not _gain(p, f, up) > _loss(p, f, down) or up == down:
            break
        f[up] += 1
        f[down] -= 1
    return f


def to_float32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def float32_bits(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


def default_scales() -> list:
    lo, hi = det_log(0.11), det_log(256.0)
    return [to_float32(det_exp(lo + ((hi - lo) * i) / 159)) for i in range(160)]


def escape_payload_bits(d: int) -> float:
    """Section 8.4: bits of the exp-Golomb part of an escape d + 1 values past the support,
    2 floor(log2(d + 1)) + 2 (section 6.2), as a double."""
    k = 0
    while (d + 1) >> (k + 1):
        k += 1
    return 2.0 * k + 2.0


def pmf_from_tails(t: list) -> list:
    """Section 8.2's pmf over -R .. R plus the escape, from t = half_integer_tails(.., R)."""
    radius = len(t) - 1
    p = [0.0] * (2 * radius + 2)
    p[radius] = 1.0 - 2.0 * t[0]
    for k in range(1, radius + 1):
        p[radius + k] = p[radius - k] = t[k - 1] - t[k]
    p[2 * radius + 1] = 2.0 * t[radius]
    return p


def radius_cost(tails: list, r: int, precision: int) -> float:
    """Section 8.4's cost(R) for tails = half_integer_tails(.., R_max), 0 <= r <= R_max."""
    p = pmf_from_tails(tails[:r + 1])
    f = quantize(p, precision)
    M = float(1 << precision)
    bits = 0.0
    for k in range(len(f)):
        bits -= p[k] * det_log2(f[k] / M)
    r_max = len(tails) - 1
    for k in range(r + 1, r_max + 1):
        bits += (2.0 * (tails[k - 1] - tails[k])) * escape_payload_bits(k - r - 1)
    return bits + (2.0 * tails[r_max]) * escape_payload_bits(r_max - r)


def best_radius(tails: list, precision: int, cost=None) -> int:
    """Section 8.4: integer ternary search for the R in [0, R_max] of least radius_cost, then the
    lowest cost in the final [lo, hi] (ties: the smaller R), then R_max if it costs strictly less.
    cost(r) overrides radius_cost."""
    memo = {}

    def c(r):
        if r not in memo:
            memo[r] = radius_cost(tails, r, precision) if cost is None else cost(r)
        return memo[r]

    lo, hi = 0, len(tails) - 1
    while hi - lo > 2:
        m1, m2 = lo + (hi - lo) // 3, hi - (hi - lo) // 3
        if c(m1) <= c(m2):
            hi = m2
        else:
            lo = m1
    best = lo
    for r in range(lo + 1, hi + 1):
        if c(r) < c(best):
            best = r
    bound = len(tails) - 1
    if best != bound and c(bound) < c(best):  # the bound itself is a candidate
        best = bound
    return best


def escape_probability_floor(radius: int) -> float:
    """Section 8.4, version 2: the least probability of a row's escape, by its radius."""
    return 1.0 / 4096.0 if radius >= 2 else 1.0 / 16384.0 if radius == 1 else 0.0


def scale_row(family: str, scale: float, precision: int, tail_mass: float = 1e-9, version: int = 2) -> tuple:
    """Section 8.4: (offset, frequencies) of one scale-table row; nsym = len - 1, escape last."""
    r_max = (2 ** (precision - 1) - 2) // 2
    tails = half_integer_tails(family, float(scale), support_radius(family, float(scale), tail_mass, r_max))
    radius = best_radius(tails, precision)
    p = pmf_from_tails(tails[:radius + 1])
    if version >= 2:  # the escape's probability is at least 2^-12 (radius >= 2) or 2^-14 (radius 1)
        p[-1] = max(p[-1], escape_probability_floor(radius))
    return -radius, quantize(p, precision)


def half_integer_tails(family: str, s: float, radius: int) -> list:
    """t[k] = T(k + 0.5), k = 0 .. radius (section 8.2)."""
    return [upper_tail(family, k + 0.5, s) for k in range(radius + 1)]


def code_lengths(freqs: list, precision: int) -> list:
    """Section 8.5: len[k] = -log2(f[k] / M) for every entry of a row (escape last)."""
    M = float(1 << precision)
    return [-det_log2(f / M) for f in freqs]


def expected_bits(lengths: list, t: list, big: int) -> float:
    """Section 8.5's E: the expected bits of a row with code lengths ``lengths`` (radius
    R = (len(lengths) - 2) / 2, escape last) for data whose tails are t = half_integer_tails(.., big),
    R <= big."""
    radius = (len(lengths) - 2) // 2
    p = [0.0] * (2 * big + 1)  # p[big + k] = P(k), k = -big .. big, as in section 8.2
    p[big] = 1.0 - 2.0 * t[0]
    for k in range(1, big + 1):
        p[big + k] = p[big - k] = t[k - 1] - t[k]
    bits = 0.0
    for k in range(-radius, radius + 1):
        bits += p[big + k] * lengths[radius + k]
    return bits + (2.0 * t[radius]) * (lengths[2 * radius + 1] + 2.0)


def grid_shift(scales: list) -> int:
    gap = min(float32_bits(scales[j]) - float32_bits(scales[j - 1]) for j in range(1, len(scales)))
    shift = 0
    while shift < 14 and (2 << shift) <= gap:
        shift += 1
    return shift


def crossing(family: str, a: float, b: float, len_a: list, len_b: list) -> float:
    """Section 8.5 step 2: 20 bisection steps on [a, b] (rows j and j + 1); the data's pmf is
    taken at B = the larger of the two rows' radii."""
    big = max(len(len_a) - 2, len(len_b) - 2) // 2
    lo, hi = a, b
    for _ in range(20):
        mid = 0.5 * (lo + hi)
        t = half_integer_tails(family, mid, big)
        if expected_bits(len_a, t, big) <= expected_bits(len_b, t, big):
            lo = mid
        else:
            hi = mid
    return hi


def threshold_bits(family: str, scales: list, j: int, precision: int, tail_mass: float = 1e-9,
                   rows: dict | None = None, version: int = 2) -> int:
    """Section 8.5: the float32 bit pattern of threshold t_j (between rows j and j + 1)."""
    rows = {} if rows is None else rows
    for r in (j, j + 1):
        if r not in rows:
            rows[r] = scale_row(family, scales[r], precision, tail_mass, version)
    (_, f_a), (_, f_b) = rows[j], rows[j + 1]  # the rows' frequencies; their offsets do not matter here
    c = crossing(family, float(scales[j]), float(scales[j + 1]), code_lengths(f_a, precision),
                 code_lengths(f_b, precision))
    step = 1 << grid_shift(scales)
    t = (float32_bits(to_float32(c)) + step // 2) & ~(step - 1)
    first = (float32_bits(scales[j]) & ~(step - 1)) + step
    last = float32_bits(scales[j + 1]) & ~(step - 1)
    return min(max(t, first), last)


def scale_index(thresholds_bits: list, scale: float) -> int:
    """Section 8.5: row of a float32 scale given the thresholds' bit patterns."""
    u = float32_bits(scale)
    if u == 0x80000000:
        u = 0
    if u >= 0x7F800000:
        raise ValueError(f"invalid scale {scale!r}")
    return sum(1 for t in thresholds_bits if t <= u)


# ---------------------------------------------------------------------------------------------
# The informative encoder of sections 3, 4, 6.1, 6.2 and 6.3, with an explicit layout. Used by the
# tests to check the encoder description and to write layouts the library's encoder never
# chooses (several chunks of small streams, more lanes than symbols).


def _varint(v: int) -> bytes:
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _encode_chunk(symbols, indexes, lanes: int, rows: Rows, first: int = 0, version: int = 2) -> bytes:
    """One chunk body; first is the position of symbols[0] in the stream (for the checksum)."""
    P = rows.precision
    M = 1 << P
    x = [L] * lanes
    emitted = []  # words in the order the encoder emits them (the body holds them reversed)

    def put(lane, c, f):
        if x[lane] >= f << (63 - P):
            emitted.append(x[lane] & 0xFFFFFFFF)
            x[lane] >>= 32
        x[lane] = (x[lane] // f) * M + (x[lane] % f) + c

    def put_bits(lane, bits, n):
        if x[lane] >= 1 << (63 - n):
            emitted.append(x[lane] & 0xFFFFFFFF)
            x[lane] >>= 32
        x[lane] = (x[lane] << n) | bits

    for j in reversed(range(len(symbols))):
        lane = j % lanes
        offset, nsym, esc, cdf = rows.get(indexes[j])
        v = symbols[j]
        s = v - offset
        if 0 <= s < nsym:
            put(lane, cdf[s], cdf[s + 1] - cdf[s])
            continue
        if not esc:
            raise ValueError(f"value {v} outside a row without escape")
        below = v < offset
        u = (offset - 1 - v if below else v - (offset + nsym - 1) - 1) + 1
        k = u.bit_length() - 1
        groups = []
        left = k
        while left > 0:
            groups.append(min(16, left))
            left -= groups[-1]
        low = 0
        for g in reversed(groups):
            put_bits(lane, (u >> low) & ((1 << g) - 1), g)
            low += g
        if version == 1:  # exp-Golomb: k zeros, then the one
            put_bits(lane, 1, 1)
            for _ in range(k):
                put_bits(lane, 0, 1)
        else:  # Elias delta: n = k + 1 in Elias gamma
            n = k + 1
            zeros = n.bit_length() - 1
            if zeros:
                put_bits(lane, n & ((1 << zeros) - 1), zeros)
            put_bits(lane, 1, 1)
            for _ in range(zeros):
                put_bits(lane, 0, 1)
        put_bits(lane, 1 if below else 0, 1)
        put(lane, cdf[nsym], cdf[nsym + 1] - cdf[nsym])

    # Section 6.3: the checksum goes last into lane 0 (low half, then high half), so that it is
    # decoded first (high half first).
    total = checksum(symbols, first)
    put_bits(0, total & 0xFFFF, 16)
    put_bits(0, total >> 16, 16)

    return finish_chunk(x, emitted)


def finish_chunk(x: list, emitted: list) -> bytes:
    """Section 4's flush: the body from the lanes' final states and the words emitted so far
    (in emission order)."""
    x = list(x)
    emitted = list(emitted)
    lanes = len(x)
    for lane in reversed(range(lanes)):
        if x[lane] >= 1 << 56:
            emitted.append(x[lane] & 0xFFFFFFFF)
            x[lane] >>= 32
    codes = bytearray((lanes + 3) // 4)
    states = []
    for lane in range(lanes):
        nbytes = max(4, (x[lane].bit_length() + 7) // 8)
        codes[lane // 4] |= (nbytes - 4) << (2 * (lane % 4))
        states.append(x[lane].to_bytes(nbytes, "little"))
    words = b"".join(w.to_bytes(4, "little") for w in reversed(emitted))
    return bytes(codes) + b"".join(states) + words


def encode(symbols, indexes, table, *, lanes: int = 1, chunks: int = 1, precision=None, rows=None,
           version: int | None = None) -> bytes:
    """Writes a stream with the given layout (the library picks its own, section 3), of format
    version ``version`` (default: the table's, else 2)."""
    version = getattr(table, "version", 2) if version is None else version
    symbols = [int(v) for v in (symbols.ravel() if hasattr(symbols, "ravel") else symbols)]
    indexes = [int(i) for i in (indexes.ravel() if hasattr(indexes, "ravel") else indexes)]
    table_rows = table if isinstance(table, Rows) else Rows(table, precision, rows)
    n = len(symbols)
    b0 = bytes([version << 5 | (table_rows.precision - 12) << 2 | {1: 0, 2: 1, 4: 2, 8: 3}[lanes]])
    if n == 0:
        return b0 + _varint(0)
    S = -(-n // chunks)
    assert (chunks - 1) * S < n, "empty last chunk"
    bodies = [_encode_chunk(symbols[c * S:(c + 1) * S], indexes[c * S:(c + 1) * S], lanes, table_rows, c * S,
                            version) for c in range(chunks)]
    header = b0 + _varint(n) + _varint(chunks - 1) + b"".join(_varint(len(b)) for b in bodies[:-1])
    return header + b"".join(bodies)
