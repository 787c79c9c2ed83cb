"""Fuzzing: thousands of damaged streams in ONE child process.

Base streams: 1-lane, 2-lane, 4-lane (categorical) and 8-lane (~100 KB) ones, with and without
escaped values. Damage: bit flips, byte bursts, truncations, insertions, deletions, duplicated
ranges, swapped words, splices of two streams, edited header fields. Each damaged stream goes
through decode (1 or 2 threads; truncated ones from a buffer that ends at an inaccessible page,
so over-reads fault) and some through the incremental Decoder in random call sizes.

The child must exit normally, every damaged stream must raise StreamError or decode to the
original symbols, and no other exception type may escape.
"""
from __future__ import annotations

import sys

import pytest
from conftest import BASE_STREAMS_SNIPPET, CHILD_PRELUDE, GUARD_PAGE_SNIPPET, describe_exit, run_python

FUZZ_CHILD = CHILD_PRELUDE + BASE_STREAMS_SNIPPET + (GUARD_PAGE_SNIPPET if sys.platform.startswith("linux") else
                                                     "\ndef guarded(data):\n    return data\n") + r'''
import time
t_start = time.perf_counter()
rng = np.random.default_rng(20240601)
bases = base_streams()
names = sorted(bases)
per_base = {}
tally = Tally()

def mutate(data, other):
    b = bytearray(data)
    kind = int(rng.integers(13))
    n = len(b)
    if kind == 0:    # one bit
        p = int(rng.integers(n)); b[p] ^= 1 << int(rng.integers(8))
    elif kind == 1:  # a few bits anywhere
        for _ in range(int(rng.integers(2, 17))):
            p = int(rng.integers(n)); b[p] ^= 1 << int(rng.integers(8))
    elif kind == 2:  # a burst of random bytes
        p = int(rng.integers(n)); k = int(rng.integers(1, 33))
        b[p:p + k] = rng.integers(0, 256, len(b[p:p + k]), dtype=np.uint8).tobytes()
    elif kind == 3:  # zeroed range
        p = int(rng.integers(n)); k = int(rng.integers(1, 65)); b[p:p + k] = bytes(len(b[p:p + k]))
    elif kind == 4:  # truncation
        b = b[: int(rng.integers(n))]
    elif kind == 5:  # insertion
        p = int(rng.integers(n + 1)); b[p:p] = rng.integers(0, 256, int(rng.integers(1, 17)), dtype=np.uint8).tobytes()
    elif kind == 6:  # deletion
        p = int(rng.integers(n)); del b[p:p + int(rng.integers(1, 17))]
    elif kind == 7:  # duplicated range
        p = int(rng.integers(n)); k = int(rng.integers(1, 65)); b[p:p] = b[p:p + k]
    elif kind == 8:  # two 4-byte words swapped
        p, q = sorted(int(x) for x in rng.integers(0, max(1, n - 4), 2))
        b[p:p + 4], b[q:q + 4] = bytes(b[q:q + 4]), bytes(b[p:p + 4])
    elif kind == 9:  # appended garbage
        b += rng.integers(0, 256, int(rng.integers(1, 13)), dtype=np.uint8).tobytes()
    elif kind == 10:  # header byte 0 edited (version / precision / lanes)
        b[0] = int(rng.integers(256))
    elif kind == 11:  # a byte of the header varints edited
        p = int(rng.integers(1, min(n, 8))) if n > 1 else 0; b[p] = int(rng.integers(256))
    else:            # splice: this stream's head, another stream's tail
        p = int(rng.integers(n)); q = int(rng.integers(len(other)))
        b = b[:p] + bytearray(other[q:])
    return kind, bytes(b)

attempts = 0
for round_ in range(100000):
    if attempts >= 10000 or time.perf_counter() - t_start > 15:
        break
    name = names[round_ % len(names)]
    data, v, idx, t, esc = bases[name]
    other = bases[names[int(rng.integers(len(names)))]][0]
    kind, bad = mutate(data, other)
    if bad == data:
        continue
    label = "%s kind %d round %d len %d" % (name, kind, round_, len(bad))
    sys.stderr.write(label + "\n")
    sys.stderr.flush()
    src = guarded(bad) if kind in (4, 6) else bad
    r = outcome(whole(src, idx, t, threads=1 + round_ % 2), v)
    tally.add(label, r)
    per_base.setdefault(name, {}).setdefault(r.split(":")[0], 0)
    per_base[name][r.split(":")[0]] += 1
    attempts += 1
    if round_ % 8 == 0:
        r = outcome(pieces(bad, idx, t, rng, 5000), v)
        tally.add(label + " pieces", r)
        attempts += 1
tally.dump(per_base=per_base, attempts=attempts, seconds=time.perf_counter() - t_start)
'''


@pytest.fixture(scope="module")
def fuzz_run():
    return run_python(FUZZ_CHILD, timeout=120)


def _report(proc):
    import json
    assert proc.returncode == 0, describe_exit(proc)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_fuzz_child_exits_normally(fuzz_run):
    report = _report(fuzz_run)
    assert report["attempts"] >= 3000, f"only {report['attempts']} damaged streams in {report['seconds']:.1f} s"
    assert len(report["per_base"]) >= 8


def test_fuzz_only_stream_errors(fuzz_run):
    report = _report(fuzz_run)
    assert report["counts"].get("other", 0) == 0, report["examples"].get("other")


def test_fuzz_no_silent_misdecodes(fuzz_run):
    report = _report(fuzz_run)
    assert report["counts"].get("WRONG", 0) == 0, (
        f"{report['counts'].get('WRONG')} of {report['attempts']} damaged streams decoded silently to other "
        f"symbols; outcomes per base stream: {report['per_base']}; e.g. {report['examples'].get('WRONG')}")
    assert report["counts"].get("error", 0) > 0.9 * report["attempts"]
