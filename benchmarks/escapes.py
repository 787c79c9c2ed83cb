"""What escapes cost, and what a different escape code would cost: the evidence behind format
version 2 (issue 14's outlier bar: W3 <= 31 bits per outlier, CompressAI 31.8).

    python benchmarks/escapes.py                       # W3 and the shipped models on Kodak
    python benchmarks/escapes.py --kodak DIR --qualities 1,3

Two parts:

* W3 (benchmarks/workloads.py: W1 with 472 outliers of +-1000 / +-100000): bits per outlier
  measured by the coder (bytes of W3 - bytes of W1), then the same cost computed per outlier
  from the table's rows for the coder's code (which must agree with the measurement) and for
  candidate codes. Per outlier: the escape symbol (-log2 of its frequency / 2^16; a candidate
  may raise that frequency to a floor), the sign bit, the payload, minus what the replaced
  in-range value cost. The floors are then measured too: the rows re-quantized with the floor
  (floored() below), and W1 / W3 coded with them.
* The shipped models on Kodak (with the current format version's tables): what their entropy
  models hand the coder (recorded at the coder's entry), how often a value escapes, how far past its row, and what the payload
  candidates cost on exactly those values. A floor on the escape frequency also takes mass from
  every other symbol: about (floor - f) / 2^16 / ln 2 bits each, which this prints next to what
  the floor saves on the escapes (first order), and then measures: the recorded values coded
  again with re-quantized rows.

Payload codes, for d >= 0 values past the row's edge (u = d + 1):
  exp-Golomb 0   format version 1 (FORMAT.md 6.2): 2 floor(log2 u) + 1 bits
  Elias delta    format version 2: the bit length n of u in Elias gamma, then u's n - 1 low bits
  delta, order k Elias delta of (d >> k) + 1, then d's k low bits; k = floor(log2 nsym)
"""
from __future__ import annotations

import argparse
import glob
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

M = 1 << 16


def exp_golomb(d: int, nsym: int) -> int:
    return 2 * int(math.floor(math.log2(d + 1))) + 1


def elias_delta_of(u: int) -> int:
    n = u.bit_length()
    return 2 * (n.bit_length() - 1) + 1 + n - 1


def elias_delta(d: int, nsym: int) -> int:
    return elias_delta_of(d + 1)


def delta_row_order(d: int, nsym: int) -> int:
    k = max(0, nsym.bit_length() - 1)
    return elias_delta_of((d >> k) + 1) + k


PAYLOADS = {"exp-Golomb 0 (version 1)": exp_golomb, "Elias delta": elias_delta, "delta, row's order": delta_row_order}
FLOORS = (1, 8, 16)


def row_geometry(table, row: int):
    """(frequencies incl. escape, offset, nsym) of one row."""
    f = np.asarray(table.frequencies(int(row)), dtype=np.int64)
    return f, int(table.offset(int(row))), len(f) - (1 if table.has_escape(int(row)) else 0)


def distance_past(value: int, offset: int, nsym: int) -> int:
    return offset - 1 - value if value < offset else value - offset - nsym


def floored(table, floor: int):
    """The table with every row's escape frequency raised to at least `floor`, the counts taken
    one at a time from the row's largest frequency: a valid table, not the exactly optimal
    re-quantization a format version would specify (so its cost is an upper bound)."""
    import ransform

    rows = []
    for r in range(table.rows):
        f, offset, nsym = row_geometry(table, r)
        if not table.has_escape(r):
            return None  # from_frequencies takes one has_escape for all rows
        f = f.copy()
        for _ in range(max(0, floor - int(f[-1]))):
            f[int(np.argmax(f[:-1]))] -= 1
            f[-1] += 1
        rows.append((f, offset))
    width = max(len(f) for f, _ in rows)
    freqs = np.zeros((len(rows), width), np.uint32)
    for r, (f, _) in enumerate(rows):
        freqs[r, :len(f)] = f
    return ransform.CategoricalTable.from_frequencies(freqs, np.array([o for _, o in rows], np.int32),
                                                      lengths=np.array([len(f) for f, _ in rows], np.int32))


def w3_part() -> None:
    import ransform
    from workloads import make_workload

    cache: dict = {}
    w1, w3 = make_workload("W1", cache=cache), make_workload("W3", cache=cache)
    for version in (1, ransform.FORMAT_VERSION):
        table = ransform.GaussianTable(version=version)
        idx = table.index(w3.scales)
        bits = (len(ransform.encode(w3.symbols, idx, table)) - len(ransform.encode(w1.symbols, idx, table))) * 8
        print(f"W3, format version {version}: the coder measures {bits / len(w3.outlier_positions):.1f} bits per "
              "outlier (CompressAI 1.2.8: 31.8; the bar: 31)")
    table = ransform.GaussianTable(version=1)  # the candidates below start from version 1's rows
    idx = table.index(w3.scales)
    measured = (len(ransform.encode(w3.symbols, idx, table)) - len(ransform.encode(w1.symbols, idx, table))) * 8
    flat_idx = idx.reshape(-1)
    pos = w3.outlier_positions
    outliers = [(int(flat_idx[p]), int(w3.symbols.reshape(-1)[p]), int(w1.symbols.reshape(-1)[p])) for p in pos]
    print(f"W3 from version 1's rows ({measured / len(pos):.1f} bits per outlier), per candidate code "
          "(computed per outlier from the rows):")
    print(f"  {'payload':24s}" + "".join(f"{f'escape >= {f}' if f > 1 else 'escape as tabled':>18s}" for f in FLOORS))
    for name, payload in PAYLOADS.items():
        costs = []
        for floor in FLOORS:
            bits = 0.0
            for row, value, replaced in outliers:
                f, offset, nsym = row_geometry(table, row)
                bits += math.log2(M / max(int(f[-1]), floor)) + 1 + payload(distance_past(value, offset, nsym), nsym)
                if offset <= replaced < offset + nsym:
                    bits -= math.log2(M / int(f[replaced - offset]))
            costs.append(bits / len(outliers))
        print(f"  {name:24s}" + "".join(f"{c:18.1f}" for c in costs))
    print("  measured with version 1's rows re-quantized (a uniform floor, the version 2 payload; W3 per outlier):")
    for floor in FLOORS[1:]:
        t = floored(table, floor)
        w1_bytes, w3_bytes = len(ransform.encode(w1.symbols, idx, t)), len(ransform.encode(w3.symbols, idx, t))
        print(f"    escape >= {floor:2d}: W3 {(w3_bytes - w1_bytes) * 8 / len(pos):.1f} bits per outlier; W1 "
              f"{w1_bytes:,} bytes ({(w1_bytes / len(ransform.encode(w1.symbols, idx, table)) - 1) * 100:+.4f} %)")


def kodak_part(kodak: str, qualities: list[int]) -> None:
    from ransform import _core, codec

    recorded = []
    encode = _core.encode

    def recording_encode(symbols, indexes, table, threads):
        recorded.append((np.array(symbols).reshape(-1), np.array(indexes).reshape(-1), table))
        return encode(symbols, indexes, table, threads)

    images = sorted(glob.glob(os.path.join(kodak, "*.png")))
    if not images:
        print(f"no PNG images in {kodak}: the Kodak part is skipped")
        return
    _core.encode = recording_encode
    try:
        for quality in qualities:
            model = codec.load_model("mbt2018-mean-small", quality)
            recorded.clear()
            file_bits = 8 * sum(len(codec.compress(model, codec.read_image(p))) for p in images)
            symbols, distances, floor_cost = 0, [], {floor: 0.0 for floor in FLOORS}
            for values, indexes, table in recorded:
                for row in np.unique(indexes):
                    in_row = values[indexes == row]
                    f, offset, nsym = row_geometry(table, row)
                    symbols += in_row.size
                    outside = in_row[(in_row < offset) | (in_row >= offset + nsym)]
                    distances += [(distance_past(int(v), offset, nsym), nsym) for v in outside]
                    for floor in FLOORS[1:]:  # saved on the escapes, paid by every other symbol
                        raise_by = max(0, floor - int(f[-1]))
                        floor_cost[floor] += (in_row.size - outside.size) * raise_by / M / math.log(2)
                        floor_cost[floor] -= outside.size * math.log2(max(int(f[-1]), floor) / int(f[-1]))
            print(f"mbt2018-mean-small q{quality}, {len(images)} images, {file_bits / 8:,.0f} bytes: {symbols:,} coded "
                  f"values, {len(distances)} escapes ({len(distances) / symbols * 1e6:.0f} per million)")
            if not distances:
                continue
            hist = np.bincount(np.minimum([d for d, _ in distances], 8))
            print("  distance past the row (0, 1, ..., 7, >= 8): " + " ".join(str(int(c)) for c in hist))
            base = sum(exp_golomb(d, n) for d, n in distances)
            for name, payload in PAYLOADS.items():
                bits = sum(payload(d, n) for d, n in distances)
                print(f"  payload {name:24s} {bits:6d} bits ({bits - base:+d}, {(bits - base) / file_bits * 100:+.4f} % "
                      "of the files)")
            coded = sum(len(encode(v, i, t, 1)) for v, i, t in recorded)
            for floor in FLOORS[1:]:
                tables = {id(t): floored(t, floor) for _, _, t in recorded}
                recoded = sum(len(encode(v, i, tables[id(t)]._native if tables[id(t)] else t, 1)) for v, i, t in recorded)
                print(f"  escape frequency >= {floor:2d}: {floor_cost[floor]:+8.0f} bits "
                      f"({floor_cost[floor] / file_bits * 100:+.4f} % of the files, first order); re-quantized rows, "
                      f"coded: {(recoded - coded) * 8:+d} bits ({(recoded - coded) / coded * 100:+.4f} % of the streams)")
    finally:
        _core.encode = encode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kodak", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "kodak"))
    parser.add_argument("--qualities", default="1,2,3")
    args = parser.parse_args()
    w3_part()
    kodak_part(args.kodak, [int(q) for q in args.qualities.split(",")])


if __name__ == "__main__":
    main()
