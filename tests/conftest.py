"""Shared helpers for the ransform test suite.

- Hypothesis profiles: "ransform" (default, sized for a 2-core CI machine) and "thorough"
  (HYPOTHESIS_PROFILE=thorough, for hunting bugs locally).
- parse_header(): an independent reading of the stream header described in
  csrc/core/format.hpp (used to check framing costs, lanes and chunks).
- run_python(): runs a snippet in a child interpreter, so that a crash (segfault, abort)
  fails one test instead of killing pytest.
- KODAK_IMAGES: the project's Kodak copy (empty where it is missing).
- RANSFORM_CACHE_DIR: a fresh folder for the table cache, unless the caller set one.

Test modules import the plain helpers with ``from conftest import ...`` (pytest puts this
directory on sys.path in its default "prepend" import mode).
"""
from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field

import numpy as np
import pytest
import ransform
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# The suite's own table cache (ransform.table_cache): tests never read or fill the user's.
if "RANSFORM_CACHE_DIR" not in os.environ:
    import tempfile
    os.environ["RANSFORM_CACHE_DIR"] = tempfile.mkdtemp(prefix="ransform-test-cache-")

for profile, examples in (("ransform", 200), ("thorough", 1000)):
    settings.register_profile(profile, max_examples=examples, deadline=None, print_blob=True,
                              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ransform"))

# The project's Kodak copy: next to the checkout, or where this machine keeps it (CI may clone
# elsewhere); RANSFORM_KODAK overrides.
_KODAK_CANDIDATES = [os.environ.get("RANSFORM_KODAK", ""),
                     pathlib.Path(__file__).resolve().parents[2] / "shared/data/kodak", "/work/shared/data/kodak"]
KODAK = next((pathlib.Path(c) for c in _KODAK_CANDIDATES
              if c and len(list(pathlib.Path(c).glob("kodim*.png"))) == 24), pathlib.Path("missing"))
KODAK_IMAGES = sorted(KODAK.glob("kodim*.png"))

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
MAX_CHUNK_SYMBOLS = 2**21  # the encoder's chunking target (format.hpp)

try:  # torch is optional: tests that need it are skipped without it
    import torch  # noqa: F401

    HAVE_TORCH = True
except Exception:  # pragma: no cover - depends on the machine
    HAVE_TORCH = False

needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason="torch is not installed")


# --------------------------------------------------------------------------- stream header


@dataclass
class Header:
    version: int
    precision: int
    lanes: int
    symbols: int
    chunks: int
    chunk_lengths: list = field(default_factory=list)  # every chunk's body length, last included
    header_len: int = 0

    @property
    def code_bytes(self) -> int:
        """Bytes of lane state-size codes per chunk (2 bits per lane)."""
        return (self.lanes + 3) // 4


@contextlib.contextmanager
def avx512_kernels(allow: bool):
    """The AVX-512 kernels (the 8-lane decoder, the erfc groups) allowed or not, within the block.
    They must give the portable code's bits, so tests run both and compare."""
    from ransform import _core

    was = _core._avx512(allow)[1]
    try:
        yield
    finally:
        _core._avx512(was)


def read_varint(data: bytes, pos: int):
    value, shift = 0, 0
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


def parse_header(data: bytes) -> Header:
    """Header of a well-formed stream, read straight from the format description:
    byte 0 = version << 5 | (precision - 12) << 2 | log2(lanes); varint n; if n > 0:
    varint chunks - 1, then a varint length for every chunk but the last."""
    b0 = data[0]
    h = Header(version=b0 >> 5, precision=12 + ((b0 >> 2) & 7), lanes=1 << (b0 & 3), symbols=0, chunks=0)
    n, pos = read_varint(data, 1)
    h.symbols = n
    if n == 0:
        h.header_len = pos
        return h
    cm1, pos = read_varint(data, pos)
    h.chunks = cm1 + 1
    for _ in range(cm1):
        length, pos = read_varint(data, pos)
        h.chunk_lengths.append(length)
    h.header_len = pos
    h.chunk_lengths.append(len(data) - pos - sum(h.chunk_lengths))
    return h


def max_stream_bytes(data: bytes, ideal: float) -> float:
    """Upper bound on a correct stream's size given its ideal bits (format.hpp, chunk_coder.hpp):
    the header, the per-chunk lane codes, per lane its 31-bit start state plus at most one byte
    of flush rounding (<= 39 bits, 40 allowed), per chunk an integrity check (the 32-bit
    checksum, exactly 32 bits, no flag symbol; 6 bytes allowed), and a 1e-5 relative
    coding loss (rans.hpp claims < 1e-6)."""
    h = parse_header(data)
    lanes_total = h.lanes * h.chunks
    return h.header_len + h.chunks * (h.code_bytes + 6) + (ideal * (1 + 1e-5) + 40 * lanes_total) / 8


def min_stream_bytes(data: bytes, ideal: float) -> float:
    """Lower bound: a lane's final state holds its 31-bit start state plus the information of its
    symbols, so a correct stream cannot be much below ideal + 31 bits per lane."""
    h = parse_header(data)
    return h.header_len + h.chunks * h.code_bytes + (ideal * (1 - 1e-5) + 30 * h.lanes * h.chunks) / 8


# --------------------------------------------------------------------------- child processes


def run_python(code: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
    """Runs ``code`` in a fresh interpreter (same python, same ransform) and returns the result."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout)


def run_child_json(code: str, timeout: float = 120.0):
    """Runs ``code`` in a child interpreter; it must exit 0 and print one JSON document as its
    last line of stdout, which is returned."""
    import json

    proc = run_python(code, timeout=timeout)
    assert_child_ok(proc)
    return json.loads(proc.stdout.strip().splitlines()[-1])


# Prelude for child processes that decode damaged streams. outcome() classifies one attempt:
# "error" (StreamError: the wanted result), "same" (decoded the original symbols: harmless),
# "WRONG" (returned other symbols without an error) or "other:..." (another exception type).
CHILD_PRELUDE = r'''
import json, sys
import numpy as np
import ransform
from ransform import StreamError

def outcome(fn, sym):
    try:
        out = fn()
    except StreamError:
        return "error"
    except Exception as e:  # a bare ValueError, IndexError, SystemError...: wrong exception type
        return "other:%s:%s" % (type(e).__name__, str(e)[:120])
    return "same" if np.array_equal(np.asarray(out).ravel(), np.asarray(sym).ravel()) else "WRONG"

def whole(data, idx, table, threads=1):
    return lambda: ransform.decode(data, idx, table, threads=threads)

def pieces(data, idx, table, rng, max_call=2000):
    """Incremental decoding in calls of random sizes (0 included). A stream that still holds
    symbols after the caller's last index counts as detected (the caller sees remaining != 0)."""
    def run():
        dec = ransform.Decoder(data, table)
        flat, outs, i = np.ascontiguousarray(idx).ravel(), [], 0
        while i < flat.size:
            k = int(rng.integers(0, max_call + 1))
            outs.append(dec.decode(flat[i:i + k]))
            i += k
        if dec.remaining != 0:
            raise StreamError("stream holds more symbols than were asked for")
        return np.concatenate(outs) if outs else np.zeros(0, np.int32)
    return run

class Tally:
    def __init__(self):
        self.counts, self.examples = {}, {}
    def add(self, label, result):
        key = result.split(":")[0]
        self.counts[key] = self.counts.get(key, 0) + 1
        if key in ("WRONG", "other") and len(self.examples.setdefault(key, [])) < 10:
            self.examples[key].append(label + " -> " + result)
    def dump(self, **extra):
        print(json.dumps(dict(counts=self.counts, examples=self.examples, **extra)))
'''


def describe_exit(proc: subprocess.CompletedProcess) -> str:
    rc = proc.returncode
    how = f"exit code {rc}"
    if rc < 0:
        try:
            how = f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            how = f"killed by signal {-rc}"
    return f"child process {how}\n--- stdout (tail) ---\n{proc.stdout[-3000:]}\n--- stderr (tail) ---\n{proc.stderr[-3000:]}"


def assert_child_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, describe_exit(proc)


# Snippet for child processes: a numpy uint8 view whose last byte sits right before a PROT_NONE
# page, so that reading even one byte past the end of a stream faults (Linux only).
GUARD_PAGE_SNIPPET = r'''
import ctypes, mmap
import numpy as np
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_PAGE = mmap.PAGESIZE
_KEEP = []
def guarded(data):
    npages = (len(data) + _PAGE - 1) // _PAGE + 1
    m = mmap.mmap(-1, npages * _PAGE)
    buf = np.frombuffer(m, np.uint8)
    if _libc.mprotect(buf.ctypes.data + (npages - 1) * _PAGE, _PAGE, 0) != 0:
        raise OSError(ctypes.get_errno(), "mprotect failed")
    start = (npages - 1) * _PAGE - len(data)
    buf[start:start + len(data)] = np.frombuffer(bytes(data), np.uint8)
    _KEEP.append(m)
    if len(_KEEP) > 64:
        _KEEP.pop(0)
    return buf[start:start + len(data)]
'''


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def gauss():
    return ransform.GaussianTable()


@pytest.fixture
def rng(request):
    """A numpy Generator seeded from the test's name: reproducible, different per test."""
    seed = sum(ord(c) * (i + 1) for i, c in enumerate(request.node.nodeid)) % (2**32)
    return np.random.default_rng(seed)


def gaussian_latent(rng, n, lo=0.11, hi=20.0):
    """W1-like data: scales log-uniform in [lo, hi], values rint(scale * N(0, 1))."""
    scales = np.exp(rng.uniform(np.log(lo), np.log(hi), n)).astype(np.float32)
    values = np.rint(scales * rng.standard_normal(n)).astype(np.int32)
    return values, scales


# --------------------------------------------------------------------------- hypothesis strategies

PMF_KINDS = ("random", "sparse", "peaked", "one", "uniform", "powerlaw", "tiny", "huge")
TAILS = (0.0, 0.0, 1e-15, 1e-9, 1e-3, 0.1, 0.5, 0.999)


def make_pmf(rng, kind: str, width: int) -> np.ndarray:
    if kind == "random":
        p = rng.random(width)
    elif kind == "sparse":  # about half the entries are exactly zero
        p = rng.random(width) * (rng.random(width) < 0.5)
    elif kind == "peaked":  # one entry holds almost all the mass
        p = rng.random(width) * 1e-12
        p[rng.integers(width)] = 1.0
    elif kind == "one":  # all zeros but one entry
        p = np.zeros(width)
        p[rng.integers(width)] = rng.uniform(0.1, 10)
    elif kind == "uniform":
        p = np.ones(width)
    elif kind == "powerlaw":
        p = rng.random(width) ** 12
    elif kind == "tiny":  # unnormalized, denormal-adjacent magnitudes
        p = rng.random(width) * 1e-300
    else:  # "huge"
        p = rng.random(width) * 1e298
    if not p.any():
        p[rng.integers(width)] = 1.0
    return p


@dataclass
class CategoricalCase:
    table: "ransform.CategoricalTable"
    pmfs: np.ndarray
    widths: list
    offsets: list
    tails: list
    precision: int
    symbols: np.ndarray
    indexes: np.ndarray

    def __repr__(self):  # keep hypothesis' falsifying-example output readable
        return (f"CategoricalCase(precision={self.precision}, widths={self.widths}, offsets={self.offsets}, "
                f"tails={self.tails}, shape={self.symbols.shape}, symbols[:8]={self.symbols.ravel()[:8].tolist()}, "
                f"indexes[:8]={self.indexes.ravel()[:8].tolist()})")


def shapes_for(n: int):
    shapes = [(n,), (1, n), (n, 1)]
    shapes += [(d, n // d) for d in (2, 3, 4, 7) if n and n % d == 0]
    shapes += [(2, n // 4, 2)] if n and n % 4 == 0 else []
    if n == 0:
        shapes += [(0, 5), (3, 0), (2, 0, 4)]
    return st.sampled_from(shapes)


def int32_outliers(rng, k: int) -> np.ndarray:
    """Values anywhere in int32, with the extremes over-represented."""
    special = np.array([INT32_MIN, INT32_MIN + 1, -INT32_MAX, INT32_MAX, INT32_MAX - 1, -1, 0, 1], np.int64)
    v = rng.integers(INT32_MIN, INT32_MAX, k, endpoint=True)
    pick = rng.random(k) < 0.3
    v[pick] = special[rng.integers(0, len(special), pick.sum())]
    return v


@st.composite
def categorical_cases(draw, max_symbols: int = 1500):
    precision = draw(st.integers(12, 16))
    rows = draw(st.integers(1, 4))
    widths = [draw(st.one_of(st.integers(1, 4), st.integers(1, 300))) for _ in range(rows)]
    tails = [draw(st.sampled_from(TAILS)) for _ in range(rows)]
    kinds = [draw(st.sampled_from(PMF_KINDS)) for _ in range(rows)]
    offsets = [draw(st.one_of(st.integers(-20, 20), st.integers(INT32_MIN, INT32_MAX - w + 1),
                              st.just(INT32_MIN), st.just(INT32_MAX - w + 1))) for w in widths]
    n = draw(st.one_of(st.integers(0, 3), st.integers(0, max_symbols)))
    shape = draw(shapes_for(n))
    escape_fraction = draw(st.sampled_from([0.0, 0.01, 0.2, 1.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)

    width = max(widths)
    pmfs = np.zeros((rows, width))
    for r in range(rows):
        pmfs[r, :widths[r]] = make_pmf(rng, kinds[r], widths[r])
        pmfs[r, widths[r]:] = rng.random(width - widths[r])  # junk beyond `lengths` must be ignored
    table = ransform.CategoricalTable(pmfs, offsets=offsets, tail_mass=tails, precision=precision, lengths=widths)

    idx = rng.integers(0, rows, n)
    w = np.array(widths, np.int64)[idx]
    off = np.array(offsets, np.int64)[idx]
    sym = off + (rng.random(n) * w).astype(np.int64)
    esc = (np.array(tails)[idx] > 0) & (rng.random(n) < escape_fraction)
    sym[esc] = int32_outliers(rng, int(esc.sum()))
    return CategoricalCase(table, pmfs, widths, offsets, tails, precision,
                           sym.astype(np.int32).reshape(shape), idx.astype(np.int32).reshape(shape))


FAMILIES = tuple(ransform._core.families())  # defined once, in csrc/core/families.hpp

# Scales handed to table.index(): typical ones plus 0, -0, denormals, tiny and huge values.
SPECIAL_SCALES = np.array([0.0, -0.0, 1e-45, 1e-38, 1e-30, 1e-6, 0.11, 256.0, 1e6, 1e30, 3.4028235e38],
                          np.float32)


@st.composite
def scale_cases(draw, max_symbols: int = 1500):
    family = draw(st.sampled_from(FAMILIES))
    precision = draw(st.integers(12, 16))
    n = draw(st.one_of(st.integers(0, 3), st.integers(0, max_symbols)))
    shape = draw(shapes_for(n))
    outlier_fraction = draw(st.sampled_from([0.0, 0.001, 0.05, 1.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    table = ransform.ScaleTable(family=family, precision=precision)
    scales = np.exp(rng.uniform(np.log(1e-3), np.log(1e3), n)).astype(np.float32)
    special = rng.random(n) < 0.1
    scales[special] = SPECIAL_SCALES[rng.integers(0, len(SPECIAL_SCALES), special.sum())]
    values = np.clip(np.rint(scales.astype(np.float64) * rng.standard_normal(n)), INT32_MIN, INT32_MAX)
    out = rng.random(n) < outlier_fraction
    values[out] = int32_outliers(rng, int(out.sum()))
    return table, values.astype(np.int32).reshape(shape), scales.reshape(shape)


# Snippet for child processes (after CHILD_PRELUDE): base_streams() builds named streams
# deterministically; each is (data, symbols, indexes, table, has_escapes). Lanes grow with the
# expected size (1 lane below 8 KB per chunk, 8 lanes from 32 KB), chunks with the count.
BASE_STREAMS_SNIPPET = r'''
def _clip_to_rows(values, idx, table):
    rows = np.arange(table.rows)
    lo = np.array([table.offset(int(r)) for r in rows], np.int64)[idx]
    hi = lo + np.array([table.size(int(r)) for r in rows], np.int64)[idx] - 1
    return np.clip(values, lo, hi).astype(np.int32)

def _latent(rng, table, n, lo, hi, outlier_rate):
    s = np.exp(rng.uniform(np.log(lo), np.log(hi), n)).astype(np.float32)
    idx = table.index(s)
    v = _clip_to_rows(np.rint(s * rng.standard_normal(n)), idx, table)
    if outlier_rate:
        k = max(1, int(n * outlier_rate))
        pos = rng.choice(n, k, replace=False)
        v[pos] = rng.integers(-2**31, 2**31 - 1, k, endpoint=True)
        v[pos[: k // 2]] = rng.choice([-1000, 1000, 70000, -2**31, 2**31 - 1], k // 2)
    return v, idx

def base_streams(names=None, multi_chunk=False):
    import zlib
    g = ransform.GaussianTable()
    specs = {
        "small": (g, 200, 0.11, 20.0, 0.0),
        "small_esc": (g, 200, 0.11, 20.0, 0.05),
        "two_lane": (g, 12000, 15.0, 25.0, 0.0),
        "two_lane_esc": (g, 12000, 15.0, 25.0, 0.02),
        "eight_lane": (g, 300000, 0.11, 20.0, 0.0),
        "eight_lane_esc": (g, 300000, 0.11, 20.0, 0.001),
    }
    if multi_chunk:
        specs["multi_chunk"] = (g, 2**21 + 4099, 0.11, 20.0, 0.0)
    out = {}
    for name, (t, n, lo, hi, rate) in specs.items():
        if names is not None and name not in names:
            continue
        rng = np.random.default_rng(zlib.crc32(name.encode()))  # each stream on its own seed
        v, idx = _latent(rng, t, n, lo, hi, rate)
        out[name] = (ransform.encode(v, idx, t), v, idx, t, rate > 0)
    if names is None or "categorical" in names:
        rng = np.random.default_rng(zlib.crc32(b"categorical"))
        widths = rng.integers(1, 300, 24)
        pm = rng.random((24, 300)) ** 4
        t = ransform.CategoricalTable(pm, offsets=rng.integers(-100, 100, 24), tail_mass=0.0, precision=12,
                                      lengths=widths)
        idx = rng.integers(0, 24, 40000).astype(np.int32)
        offsets = np.array([t.offset(int(r)) for r in range(24)])
        v = (offsets[idx] + (rng.random(40000) * widths[idx]).astype(np.int64)).astype(np.int32)
        out["categorical"] = (ransform.encode(v, idx, t), v, idx, t, False)
    if names is None or "uniform" in names:  # byte-like symbols: equal frequencies everywhere
        rng = np.random.default_rng(zlib.crc32(b"uniform"))
        t = ransform.CategoricalTable(np.ones((1, 256)), offsets=-128, tail_mass=0.0)
        v = rng.integers(-128, 128, 20000).astype(np.int32)
        idx = np.zeros(20000, np.int32)
        out["uniform"] = (ransform.encode(v, idx, t), v, idx, t, False)
    return out
'''


def write_images(root, count: int, height: int, width: int) -> None:
    """count smooth, slightly noisy 8-bit RGB PNGs im0.png.. in root (photo-like enough for
    codecs and training; needs numpy and Pillow)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width]
    for i in range(count):
        im = (np.sin(xx / (5 + i)) * np.cos(yy / 8) * 95 + 128)[..., None] + rng.normal(0, 7, (height, width, 3))
        Image.fromarray(np.clip(im, 0, 255).astype(np.uint8)).save(root / f"im{i}.png")


def decode_latent(model, data):
    """(the latent handed to g_s, x_hat) of decoding a file with ``codec.decompress``: the
    latent is exact on every machine, g_s's output is float (tests compare each accordingly)."""
    from ransform import codec

    seen = {}
    handle = model.net.g_s.register_forward_pre_hook(lambda module, args: seen.setdefault("y", args[0].clone()))
    try:
        x_hat = codec.decompress(model, data)
    finally:
        handle.remove()
    return seen["y"], x_hat
