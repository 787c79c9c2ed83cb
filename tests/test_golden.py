"""Golden tests: the bytes ransform persists, pinned by length and SHA-256.

- ``.rfm`` files of every shipped model on the bundled photo (a 256x256 centre crop of
  ``ransform/data/coffee.png``), portable mode: the file bytes, the latent a decoder hands to
  the synthesis transform, and the reconstruction's PSNR. The three files are kept in
  ``tests/golden/`` (7 KB), so that the decoder is checked on the pinned bytes even where the
  encoder would write other ones (see below).
- Raw coder streams (``ransform.encode``) of fixed latents: Gaussian scale table (1 lane,
  8 lanes, 2 chunks, escapes) and a categorical table at 12-bit precision.
- The mixture framing: ``GaussianMixtureConditional.compress`` of fixed parameters, coded in
  several slices joined into one string per image.

What is and is not machine-independent (docs/guide/portable.md):
- The coder's streams and everything decoded from a portable file (the latent) are the same
  bits on every machine and thread count: pinned exactly.
- A portable ``.rfm`` file's bytes also depend on the float analysis transforms g_a and h_a
  (float in both modes): the symbols are round(y - mean), and another machine's g_a can move
  a y across a rounding boundary. On the crop below the closest y is 2.6e-5 from one (q3;
  z: 1.2e-4, q2) while 1 / 2 / 4 threads and oneDNN on / off move y by at most 1.5e-5 here,
  and the bytes are the same under all of those. If the file pin alone fails on a new
  machine, the message says how many latent elements moved, and by how much.
- The reconstruction goes through the float synthesis transform g_s: a few values move by one
  level with the thread count (1-2 of the crop's 196,608 between 1 and 2 threads here), so no
  pixel hash is pinned; the PSNR is, to +-0.002 dB, and 1 thread is held to the guide's bound.
- Float-mode files (``codec.compress(model, x, portable=False)``) are not pinned at all: their
  coder rows come from float networks, whose results differ between machines.

Changing a pin is a deliberate act: ``python tests/test_golden.py`` prints the current values
(``--write`` also rewrites ``tests/golden/``).
"""
from __future__ import annotations

import hashlib
import math
import pathlib
import sys

import numpy as np
import pytest
import ransform
from conftest import decode_latent, parse_header, read_varint

GOLDEN = pathlib.Path(__file__).parent / "golden"
PHOTO = pathlib.Path(ransform.__file__).parent / "data" / "coffee.png"
CROP = 256


def sha256(data) -> str:
    return hashlib.sha256(bytes(data)).hexdigest()


def deliberate(what: str, got: str, want: str) -> str:
    return (f"{what} changed: got {got}, pinned {want}.\n"
            "These bytes are persisted (files, streams on disk): old ones must keep decoding. If the change is "
            "deliberate (a format, coder, table-derivation or shipped-weights change), bump the version and add "
            "the change to docs/FORMAT.md §9 'Versions and errata' (§10 for the .rfm container), then update the "
            "pin here (`python tests/test_golden.py` prints the current values). Otherwise it is a bug.")


def assert_pinned(what: str, data: bytes, length: int, digest: str, hint: str = "") -> None:
    got = (len(data), sha256(data))
    if got != (length, digest):
        raise AssertionError(deliberate(what, f"{got[0]} bytes sha256 {got[1]}", f"{length} bytes sha256 {digest}")
                             + hint)


def inputs_digest(*arrays) -> str:
    """First 16 hex digits of the SHA-256 of arrays' values (little-endian, C order)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.asarray(a)
        h.update(np.ascontiguousarray(a, a.dtype.newbyteorder("<")).tobytes())
    return h.hexdigest()[:16]


# What each case is made of: numpy's Generator (integers, choice) and Pillow's PNG reader. A
# change there changes the inputs, not ransform: these pins tell the two apart.
INPUT_PINS = {
    "gaussian small": "38fc93719db678ba",
    "gaussian escapes": "76d49325c8265d39",
    "gaussian eight_lanes": "b347a504ac5a0bdd",
    "gaussian two_chunks": "52d479112a268cbb",
    "categorical": "8055772e9ad71309",
    "mixture": "0c2ac791465be065",
    "coffee crop": "92b5d495f5120b4f",
}


def assert_inputs(case: str, *arrays) -> None:
    got = inputs_digest(*arrays)
    assert got == INPUT_PINS[case], (
        f"the inputs of case {case!r} changed (digest {got}, pinned {INPUT_PINS[case]}): numpy's random Generator "
        "or the image reader draws other values than when the pins were taken. That is not a ransform change: "
        "recompute this module's pins (`python tests/test_golden.py`) after checking that the old inputs still "
        "give the old bytes.")


# --------------------------------------------------------------------------- raw coder streams


def gaussian_case(name: str, n: int, scale_choices, escapes: int):
    """Symbols drawn with integers only (no libm, so every machine draws the same), scales from
    a fixed list of float32 values; ``escapes`` values far outside their rows."""
    rng = np.random.default_rng(sum(map(ord, name)))
    scales = np.asarray(scale_choices, np.float32)[rng.integers(0, len(scale_choices), n)]
    radius = np.ceil(2 * scales).astype(np.int64)
    symbols = rng.integers(-radius, radius, endpoint=True)
    if escapes:
        at = rng.choice(n, escapes, replace=False)
        symbols[at] = np.array([-1000, 1000, 70000, -2**31, 2**31 - 1])[rng.integers(0, 5, escapes)]
    return symbols.astype(np.int32), scales


# name: (symbols, scale choices, escapes) -> (length, sha256, lanes, chunks)
GAUSSIAN_CASES = {
    "small": (300, [0.11, 0.5, 1.0, 3.0], 0),
    "escapes": (2000, [0.2, 1.5, 7.0], 12),
    "eight_lanes": (60000, [4.0, 16.0, 64.0, 200.0], 30),
    "two_chunks": (2**21 + 3001, [0.11, 0.3, 0.8, 2.5], 5),
}
# format version -> name -> (length, sha256, lanes, chunks). Version 1 streams are still written
# by version-1 tables (for older readers) and read by every table of their kind.
GAUSSIAN_PINS = {
    1: {
        "small": (223, "a843bfadcdae4083256aecb3f7ab002b689dfc83ca0097f44fd686ef5bbe300a", 1, 1),
        "escapes": (1186, "8905a566b5cf4a8e497b981ea8f7a766fac52a59e5dc6a1c059ee6b383827ad6", 1, 1),
        "eight_lanes": (54665, "b9afeade95857185d7edfdff6c6d3592acef1919e0cbd473344499874628451f", 8, 1),
        "two_chunks": (1427800, "07049cab9e581e1a98e37aea37d05ad77f1cd2967b2883ee2fd42358007303ac", 8, 2),
    },
    2: {
        "small": (223, "4d31c80d82fb8960f3a77d47e83e1fc1b756d656247fb9508e12ed3e09c4ccd5", 1, 1),
        "escapes": (1163, "55f71b6842a0335946fbcf1272bdeedde694aabd93202db2e3c725533782965b", 1, 1),
        "eight_lanes": (54604, "22d76bdbfaed90b173c2b77009f72e071d17764dfae9525054a01a984372d987", 8, 1),
        "two_chunks": (1427839, "3088d3a7a55d11d485a011c3b268ef3a926d744ad9fa3f536cbea784d8862158", 8, 2),
    },
}


@pytest.mark.parametrize("version", GAUSSIAN_PINS)
@pytest.mark.parametrize("name", GAUSSIAN_CASES)
def test_gaussian_streams(name, version):
    gauss = ransform.GaussianTable(version=version)
    n, choices, escapes = GAUSSIAN_CASES[name]
    symbols, scales = gaussian_case(name, n, choices, escapes)
    assert_inputs(f"gaussian {name}", symbols, scales)
    idx = gauss.index(scales)
    data = ransform.encode(symbols, idx, gauss, threads=1)
    assert ransform.encode(symbols, idx, gauss, threads=4) == data, "the bytes depend on the thread count"
    length, digest, lanes, chunks = GAUSSIAN_PINS[version][name]
    assert_pinned(f"ransform.encode, GaussianTable(version={version}), case {name!r}", data, length, digest)
    assert parse_header(data).version == version
    header = parse_header(data)
    assert (header.lanes, header.chunks, header.precision) == (lanes, chunks, 16)
    assert np.array_equal(ransform.decode(data, idx, gauss, threads=2), symbols)


def categorical_case(version=ransform.FORMAT_VERSION):
    rng = np.random.default_rng(12)
    rows, width = 8, 40
    lengths = rng.integers(1, width, rows, endpoint=True)
    pmfs = rng.integers(0, 1000, (rows, width)).astype(np.float64)  # exact values; junk past lengths
    pmfs[np.arange(width) >= lengths[:, None]] = 7.0  # ignored (beyond each row's length)
    pmfs[:, 0] += 1  # no all-zero row
    offsets = rng.integers(-30, 30, rows)
    table = ransform.CategoricalTable(pmfs, offsets=offsets, tail_mass=1e-3, precision=12, lengths=lengths,
                                      version=version)
    idx = rng.integers(0, rows, 5000).astype(np.int32)
    symbols = offsets[idx] + rng.integers(0, lengths[idx])
    symbols[rng.choice(5000, 20, replace=False)] = rng.integers(-10**6, 10**6, 20)  # escapes
    return table, symbols.astype(np.int32), idx, (pmfs, offsets, lengths)


CATEGORICAL_PINS = {
    1: (2723, "c05d0274451e27f2cfc4485fb38bfb7b83176d0f0ed65760f2e788c40d65a2c7", 1, 1),
    2: (2698, "d3a2d3ffd6184cb4725fe13286d59e554d36f4212443116775b5a68bbbbde900", 1, 1),
}


@pytest.mark.parametrize("version", CATEGORICAL_PINS)
def test_categorical_stream(version):
    table, symbols, idx, parameters = categorical_case(version)
    assert_inputs("categorical", symbols, idx, *parameters)
    data = ransform.encode(symbols, idx, table, threads=1)
    assert ransform.encode(symbols, idx, table, threads=4) == data, "the bytes depend on the thread count"
    length, digest, lanes, chunks = CATEGORICAL_PINS[version]
    assert_pinned(f"ransform.encode, CategoricalTable (precision 12, escapes, version {version})", data, length,
                  digest)
    header = parse_header(data)
    assert (header.lanes, header.chunks, header.precision, header.version) == (lanes, chunks, 12, version)
    assert np.array_equal(ransform.decode(data, idx, table), symbols)
    other = categorical_case(3 - version)[0]  # a categorical table reads either version
    assert np.array_equal(ransform.decode(data, idx, other), symbols)


# --------------------------------------------------------------------------- mixture framing


def mixture_case():
    """Two images of 4x8x12 elements, K = 3, every parameter exactly representable (no float
    rounding anywhere before the coder's own deterministic rows); a few outliers."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2020)
    shape = (2, 3, 4, 8, 12)
    means = rng.integers(-96, 96, shape) / 8
    scales = np.array([0.25, 0.5, 1.0, 2.0, 4.0, 16.0, 32.0])[rng.integers(0, 7, shape)]
    weights = rng.integers(1, 9, shape).astype(np.float64)
    pick = rng.integers(0, 3, (2, 1, 4, 8, 12))
    center = np.take_along_axis(means, pick, 1)[:, 0]
    spread = np.ceil(2 * np.take_along_axis(scales, pick, 1)[:, 0]).astype(np.int64)
    x = np.round(center) + rng.integers(-spread, spread, endpoint=True) + rng.integers(-1, 2, center.shape) / 4
    x.reshape(-1)[[5, 77, 300, 511]] = [1e4, -3e5, 200.0, -2**20]
    return [torch.from_numpy(a.astype(np.float32)) for a in (x, scales, means, weights)]


SLICE = 160  # 384 elements per image: three slices (160, 160, 64), two framing lengths
MIXTURE_PINS = [  # (length, sha256) per image, format version 2 (version 1: 316 and 313 bytes)
    (313, "af0e694743e1b01e1c75c1fa2dacc01d85d6671e2ff9cb040894d8bd53c8d5ef"),
    (312, "24150b58007a1718a0194dd9a0e3103996b2fdc6cd798ac8015d8133954c8bea"),
]


def varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(out + bytes([n]))


def read_framing(data: bytes, count: int) -> list[bytes]:
    """The framing read from its description (entropy_models/mixture.py, FORMAT.md §2 varints):
    every slice but the last preceded by its byte length as a varint; the last takes the rest."""
    parts, at = [], 0
    for _ in range(count - 1):
        n, at = read_varint(data, at)  # the tests' own reading of §2, independent of ransform's
        parts.append(data[at:at + n])
        at += n
    return parts + [data[at:]]


def test_mixture_framing():
    torch = pytest.importorskip("torch")
    from ransform.entropy_models import GaussianMixtureConditional

    x, s, m, w = mixture_case()
    assert_inputs("mixture", x.numpy(), s.numpy(), m.numpy(), w.numpy())
    strings = GaussianMixtureConditional(components=3, slice_elements=SLICE).eval().compress(x, s, m, w)
    threaded = GaussianMixtureConditional(components=3, slice_elements=SLICE, threads=4).eval()
    assert threaded.compress(x, s, m, w) == strings, "the bytes depend on the thread count"
    for i, data in enumerate(strings):
        assert_pinned(f"GaussianMixtureConditional.compress, image {i}", data, *MIXTURE_PINS[i])
        parts = read_framing(data, 3)
        assert [parse_header(p).symbols for p in parts] == [160, 160, 64]
        assert sum(map(len, parts)) + sum(len(varint(len(p))) for p in parts[:-1]) == len(data)
    assert any(len(p) >= 128 for p in read_framing(strings[0], 3)[:-1]), "no two-byte framing length pinned"
    assert torch.equal(threaded.decompress(strings, s, m, w), torch.round(x))


# --------------------------------------------------------------------------- .rfm files


def photo_crop():
    from ransform import codec

    x = codec.read_image(PHOTO)
    top, left = (x.shape[1] - CROP) // 2, (x.shape[2] - CROP) // 2
    return x[:, top:top + CROP, left:left + CROP].contiguous()


def golden_file(quality: int, version: int = ransform.FORMAT_VERSION) -> pathlib.Path:
    suffix = "" if version == ransform.FORMAT_VERSION else f"-v{version}"
    return GOLDEN / f"coffee-{CROP}-mbt2018-mean-small-q{quality}{suffix}.rfm"


# quality -> (.rfm length, .rfm sha256, sha256 of the float32 latent given to g_s, PSNR dB of
# the 8-bit reconstruction against the 8-bit crop): the files written now (format version 2)
RFM_PINS = {
    1: (1711, "3502e703815155152e01124db101bf1d0cef7273e76999870068bc883aa29a89",
        "156f80bb30093a1919d69d2b0fde254e46ca65752977f9c0ed2ee5fe6de89441", 27.0057),
    2: (2343, "734299a05a745942758a3b81a797ec47ea7fc41f7627e4abeecaf57774c679c0",
        "5d37ae5480a2d9cd9581c6826523a945c71496daebc06d7b71fb952c27a13694", 28.2664),
    3: (3218, "f690cf094bb9e24a19b7346fb27460f0d2f38624fe2d7f4929734f53f8ce0f6d",
        "343aa2b4577a84a0409f8fae234e5bb0d83ddf781d76c3bfa2c388b0577b0211", 29.2148),
}
# The files the shipped models wrote with format version 1, kept: they must decode to these
# latents for good.
RFM_PINS_V1 = {
    1: (1711, "d5e3bcc6e47520adca7728cf6293e2e27486039f4539459695d2533fc3718a83",
        "156f80bb30093a1919d69d2b0fde254e46ca65752977f9c0ed2ee5fe6de89441", 27.0057),
    2: (2343, "6f6eaabcb53fad021de1a6d8b04cdc9b064865eec50dd7c08e60a12a161a92c4",
        "5d37ae5480a2d9cd9581c6826523a945c71496daebc06d7b71fb952c27a13694", 28.2664),
    3: (3218, "50c7afb04dbdd7b9510a66101d2d3f11c087c7a63ca525ecab6452da6a221fb3",
        "343aa2b4577a84a0409f8fae234e5bb0d83ddf781d76c3bfa2c388b0577b0211", 29.2148),
}
KEPT_FILES = {1: RFM_PINS_V1, ransform.FORMAT_VERSION: RFM_PINS}
PSNR_TOLERANCE = 0.002  # g_s drift (a few pixels by one level) moves it by ~1e-5 dB here


def decode_with_latent(model, data):
    """(latent given to g_s as contiguous float32, x_hat) of decoding a file."""
    import torch

    latent, x_hat = decode_latent(model, data)
    return latent.to(torch.float32).contiguous(), x_hat


def psnr_uint8(a, b) -> float:
    mse = float(((a.double() - b.double()) ** 2).mean())
    return 10 * math.log10(255 ** 2 / mse)


@pytest.fixture(scope="module")
def crop():
    pytest.importorskip("torch")
    pytest.importorskip("PIL")
    from ransform import codec

    x = photo_crop()
    assert_inputs("coffee crop", codec.to_uint8(x).numpy())
    return x


def test_every_shipped_model_is_pinned():
    pytest.importorskip("torch")
    from ransform import zoo

    assert zoo.shipped() == [("mbt2018-mean-small", q) for q in RFM_PINS], "pin the new shipped models too"


@pytest.mark.parametrize("version", KEPT_FILES)
@pytest.mark.parametrize("quality", RFM_PINS)
def test_golden_file_decodes_to_the_pinned_latent(quality, version, crop):
    """The decoder side: the kept file of each format version decodes, under every thread count,
    to the pinned latent."""
    import torch
    from ransform import codec

    length, digest, latent_digest, psnr = KEPT_FILES[version][quality]
    data = golden_file(quality, version).read_bytes()
    assert_pinned(f"tests/golden/{golden_file(quality, version).name}", data, length, digest)
    model = codec.load_model("mbt2018-mean-small", quality)
    latent, x_hat = decode_with_latent(model, data)
    assert sha256(latent.numpy().tobytes()) == latent_digest, deliberate(
        f"the latent decoded from {golden_file(quality, version).name}", sha256(latent.numpy().tobytes()),
        latent_digest)
    pixels = codec.to_uint8(x_hat)
    assert pixels.shape == (3, CROP, CROP)
    got = psnr_uint8(pixels, codec.to_uint8(crop))
    assert abs(got - psnr) <= PSNR_TOLERANCE, deliberate(f"the reconstruction's PSNR at q{quality}",
                                                         f"{got:.4f} dB", f"{psnr:.4f} dB")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        latent1, x_hat1 = decode_with_latent(model, data)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(latent1, latent), "the decoded latent depends on the thread count"
    diff = (codec.to_uint8(x_hat1).int() - pixels.int()).abs()
    assert diff.max() <= 1 and (diff > 0).float().mean() <= 0.001, "g_s drifts more than docs/guide/portable.md says"


@pytest.mark.parametrize("quality", RFM_PINS)
def test_shipped_model_writes_the_pinned_file(quality, crop):
    """The encoder side: codec.compress (default: portable) writes the kept file, with the
    default thread count and with one thread."""
    import torch
    from ransform import codec

    length, digest, _, _ = RFM_PINS[quality]
    model = codec.load_model("mbt2018-mean-small", quality)
    assert model.net.is_portable
    data = codec.compress(model, crop)
    # Not pinned: codec.compress(model, crop, portable=False), float-mode files differ between machines.
    if (len(data), sha256(data)) != (length, digest):
        assert_pinned(f".rfm file of the shipped mbt2018-mean-small q{quality} on coffee.png[{CROP}x{CROP}]", data,
                      length, digest, hint=latent_change(model, data, golden_file(quality).read_bytes()))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert codec.compress(model, crop) == data, "the .rfm bytes depend on the thread count"
    finally:
        torch.set_num_threads(threads)


def latent_change(model, data: bytes, golden: bytes) -> str:
    """How the file just written differs from the kept one, to tell float drift of g_a / h_a
    (a few elements one step over a rounding boundary) from a format change."""
    try:
        new, _ = decode_with_latent(model, data)
        old, _ = decode_with_latent(model, golden)
    except Exception as exc:  # noqa: BLE001 - a diagnosis only
        return f"\n(the new and kept files could not both be decoded: {exc!r})"
    if new.shape != old.shape:
        return f"\n(latent shape {tuple(new.shape)}, the kept file's {tuple(old.shape)})"
    moved = (new != old)
    if not moved.any():
        return ("\nThe new file decodes to the same latent as the kept one: the stream or container bytes changed "
                "(a format change), not the image's coding.")
    return (f"\nThe new file's latent differs from the kept file's in {int(moved.sum())} of {new.numel()} elements "
            f"(max |difference| {float((new - old).abs().max()):g}). A handful of elements moved by one step is "
            "float drift of the encoder's g_a / h_a on this machine (not a format change): see this module's "
            "docstring; the decoder-side test (test_golden_file_decodes_to_the_pinned_latent) must still pass.")


def test_cli_writes_the_pinned_file(crop, tmp_path):
    """``ransform compress`` of the crop (as an 8-bit PNG) writes the same file."""
    from ransform import cli, codec

    codec.write_image(crop, tmp_path / "crop.png")
    assert cli.main(["compress", str(tmp_path / "crop.png"), "-o", str(tmp_path / "crop.rfm"),
                     "--model", "mbt2018-mean-small", "--quality", "1", "--no-psnr"]) == 0
    assert (tmp_path / "crop.rfm").read_bytes() == golden_file(1).read_bytes()


# --------------------------------------------------------------------------- current values


def current_pins(write: bool = False) -> None:
    """Prints every pin as the current code computes it, in this module's notation (and, with
    ``write``, rewrites the files in tests/golden/)."""
    from ransform import codec, entropy_models

    inputs, gaussian, categorical = {}, {}, {}
    for version in GAUSSIAN_PINS:
        gauss, gaussian[version] = ransform.GaussianTable(version=version), {}
        for name, (n, choices, escapes) in GAUSSIAN_CASES.items():
            symbols, scales = gaussian_case(name, n, choices, escapes)
            inputs[f"gaussian {name}"] = inputs_digest(symbols, scales)
            data = ransform.encode(symbols, gauss.index(scales), gauss)
            h = parse_header(data)
            gaussian[version][name] = (len(data), sha256(data), h.lanes, h.chunks)
        table, symbols, idx, parameters = categorical_case(version)
        inputs["categorical"] = inputs_digest(symbols, idx, *parameters)
        data = ransform.encode(symbols, idx, table)
        h = parse_header(data)
        categorical[version] = (len(data), sha256(data), h.lanes, h.chunks)
    x, s, m, w = mixture_case()
    inputs["mixture"] = inputs_digest(x.numpy(), s.numpy(), m.numpy(), w.numpy())
    mixture = [(len(d), sha256(d)) for d in entropy_models.GaussianMixtureConditional(slice_elements=SLICE)
               .compress(x, s, m, w)]
    image = photo_crop()
    inputs["coffee crop"] = inputs_digest(codec.to_uint8(image).numpy())
    rfm = {}
    for quality in RFM_PINS:
        model = codec.load_model("mbt2018-mean-small", quality)
        data = codec.compress(model, image)
        if write:  # the current version's files; the kept older ones stay
            GOLDEN.mkdir(exist_ok=True)
            golden_file(quality).write_bytes(data)
        latent, x_hat = decode_with_latent(model, data)
        psnr = round(psnr_uint8(codec.to_uint8(x_hat), codec.to_uint8(image)), 4)
        rfm[quality] = (len(data), sha256(data), sha256(latent.numpy().tobytes()), psnr)
    for name, value in [("INPUT_PINS", inputs), ("GAUSSIAN_PINS", gaussian), ("CATEGORICAL_PINS", categorical),
                        ("MIXTURE_PINS", mixture), ("RFM_PINS", rfm)]:
        if isinstance(value, dict):
            print(f"{name} = {{\n" + "".join(f"    {k!r}: {v!r},\n" for k, v in value.items()) + "}")
        else:
            print(f"{name} = {value!r}")


if __name__ == "__main__":
    current_pins(write="--write" in sys.argv[1:])
