"""ransform.compressai: CompressAI's API on ransform's coder.

Two parts. The ``ans`` and entropy-model interfaces are tested on their own. Then CompressAI
1.2.8's own model code (models/google.py, waseda.py, base.py, utils.py), with ``compressai.``
changed to ``ransform.compressai.`` in its import lines and nothing else, must load
CompressAI's checkpoints, match their forward, and code every class. That code is read from
an installed CompressAI or from $RANSFORM_COMPRESSAI_SOURCE (its package folder; .ci/run
fetches the 1.2.8 wheel from PyPI); without it those tests skip. It is never copied here.
"""
import importlib
import importlib.util
import os
import pathlib
import re
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ransform  # noqa: E402
from ransform import models, zoo  # noqa: E402
from ransform.compressai import ans  # noqa: E402
from ransform.compressai.entropy_models import EntropyBottleneck, GaussianConditional  # noqa: E402
from ransform.compressai.models import CompressionModel, get_scale_table  # noqa: E402
from ransform.compressai.port import port_source, port_tree  # noqa: E402
from ransform.entropy_models import GaussianConditional as NativeGaussianConditional  # noqa: E402
from ransform.imagefile import read as read_image  # noqa: E402

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "compressai"
KODAK = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"


# --- ans ----------------------------------------------------------------------------------------
def small_cdfs():
    """Three CompressAI-style rows (escape last): offsets -2, 0, -5."""
    rows = [[0, 10000, 40000, 60000, 65000, 65536], [0, 65000, 65536], [0] + list(range(5000, 55001, 5000)) + [65536]]
    return rows, [len(r) for r in rows], [-2, 0, -5]


def test_ans_round_trips_lists_arrays_and_tensors():
    cdfs, lengths, offsets = small_cdfs()
    rng = np.random.default_rng(0)
    indexes = rng.integers(0, 3, 500).astype(np.int32)
    symbols = rng.integers(-8, 9, 500).astype(np.int32)
    symbols[:3] = [2**31 - 1, -(2**31), 1000]  # far outside every row: the escape
    stream = ans.RansEncoder().encode_with_indexes(symbols.tolist(), indexes.tolist(), cdfs, lengths, offsets)
    decoded = ans.RansDecoder().decode_with_indexes(stream, indexes.tolist(), cdfs, lengths, offsets)
    assert isinstance(decoded, list) and decoded == symbols.tolist()
    as_arrays = ans.RansDecoder().decode_with_indexes(stream, indexes, np.array(_padded(cdfs)), lengths, offsets)
    assert as_arrays.dtype == np.int32 and np.array_equal(as_arrays, symbols)
    tensors = [torch.tensor(_padded(cdfs)), torch.tensor(lengths), torch.tensor(offsets)]
    again = ans.RansEncoder().encode_with_indexes(torch.from_numpy(symbols), torch.from_numpy(indexes), *tensors)
    assert again == stream


def _padded(rows):
    width = max(map(len, rows))
    return [r + [0] * (width - len(r)) for r in rows]


def test_buffered_encoder_and_stepped_decoder_match_one_shot():
    cdfs, lengths, offsets = small_cdfs()
    rng = np.random.default_rng(1)
    indexes = rng.integers(0, 3, 300).tolist()
    symbols = rng.integers(-6, 7, 300).tolist()
    buffered = ans.BufferedRansEncoder()
    for a in range(0, 300, 7):
        buffered.encode_with_indexes(symbols[a:a + 7], indexes[a:a + 7], cdfs, lengths, offsets)
    stream = buffered.flush()
    assert stream == ans.RansEncoder().encode_with_indexes(symbols, indexes, cdfs, lengths, offsets)
    decoder = ans.RansDecoder()
    decoder.set_stream(stream)
    steps = [decoder.decode_stream(indexes[a:a + 7], cdfs, lengths, offsets) for a in range(0, 300, 7)]
    assert sum(steps, []) == symbols


@pytest.mark.parametrize("change, message", [
    (lambda c, n, o: ([r[:-1] + [65535] for r in c], n, o), "end at 2\\*\\*16"),
    (lambda c, n, o: ([[0, 0] + r[1:] for r in c], [x + 1 for x in n], o), "strictly increasing"),
    (lambda c, n, o: (c, n[:2], o), "offsets"),
    (lambda c, n, o: (c, [2, 3, 12], o), "at least 3"),
    (lambda c, n, o: (c, [6, 3, 40], o), "entries"),
])
def test_ans_refuses_malformed_cdfs(change, message):
    cdfs, lengths, offsets = change(*small_cdfs())
    with pytest.raises(ValueError, match=message):
        ans.RansEncoder().encode_with_indexes([0], [0], cdfs, lengths, offsets)


def test_ans_refuses_misuse():
    cdfs, lengths, offsets = small_cdfs()
    with pytest.raises(TypeError, match="integer"):
        ans.RansEncoder().encode_with_indexes([0.5], [0], cdfs, lengths, offsets)
    with pytest.raises(ValueError, match="out of range"):
        ans.RansEncoder().encode_with_indexes([0], [3], cdfs, lengths, offsets)
    with pytest.raises(ValueError, match="set_stream"):
        ans.RansDecoder().decode_stream([0], cdfs, lengths, offsets)
    buffered = ans.BufferedRansEncoder()
    buffered.encode_with_indexes([0], [0], cdfs, lengths, offsets)
    with pytest.raises(ValueError, match="same cdfs"):
        buffered.encode_with_indexes([0], [0], [list(r) for r in cdfs], lengths, offsets)
    stream = ans.RansEncoder().encode_with_indexes([1, 2], [0, 0], cdfs, lengths, offsets)
    with pytest.raises(ransform.StreamError):
        ans.RansDecoder().decode_with_indexes(stream[:-3], [0, 0], cdfs, lengths, offsets)


# --- entropy models -----------------------------------------------------------------------------
def test_bottleneck_codes_with_compressai_buffers():
    torch.manual_seed(0)
    eb = EntropyBottleneck(5).eval()
    assert eb.update() and not eb.update()
    assert eb.quantized_cdf.dtype == torch.int32 and eb.quantized_cdf.shape[0] == 5
    assert torch.all(eb.quantized_cdf[torch.arange(5), eb.cdf_length.long() - 1] == 65536)
    x = torch.randn(2, 5, 6, 7) * 4
    x[0, 0, 0, 0] = 1e5
    strings = eb.compress(x)
    medians = eb._get_medians().reshape(1, 5, 1, 1)
    assert torch.equal(eb.decompress(strings, (6, 7)), eb.quantize(x, "dequantize", medians))
    state = eb.state_dict()
    assert {"_quantized_cdf", "_cdf_length", "_offset", "quantiles", "target", "likelihood_lower_bound.bound"} <= set(state)
    other = EntropyBottleneck(5)
    other.load_state_dict(state)
    assert torch.equal(other.decompress(strings, (6, 7)), eb.decompress(strings, (6, 7)))


def test_gaussian_conditional_codes_with_indexes():
    torch.manual_seed(1)
    gc = GaussianConditional(None).eval()
    assert gc.update_scale_table(get_scale_table()) and not gc.update_scale_table(get_scale_table())
    assert gc.quantized_cdf.shape[0] == 64 and gc.offset.shape == (64,)
    scales = torch.exp(torch.empty(2, 8, 5, 5).uniform_(-3, 6))
    means = torch.randn(2, 8, 5, 5)
    y = means + scales * torch.randn(2, 8, 5, 5)
    indexes = gc.build_indexes(scales)
    assert indexes.dtype == torch.int32 and int(indexes.min()) >= 0 and int(indexes.max()) <= 63
    strings = gc.compress(y, indexes, means)
    assert torch.equal(gc.decompress(strings, indexes, means=means), gc.quantize(y, "dequantize", means))
    # indexes through the ans interface decode the entropy model's streams and back
    lists = [gc.quantized_cdf.tolist(), gc.cdf_length.tolist(), gc.offset.tolist()]
    symbols = ans.RansDecoder().decode_with_indexes(strings[0], indexes[0].flatten().tolist(), *lists)
    assert symbols == gc.quantize(y[0], "symbols", means[0]).flatten().tolist()


def test_indexes_and_scales_cannot_be_mixed_up():
    gc = GaussianConditional(None)
    gc.update_scale_table(get_scale_table())
    y, scales = torch.zeros(1, 2, 3, 3), torch.ones(1, 2, 3, 3)
    with pytest.raises(TypeError, match="were scales passed"):
        gc.compress(y, scales)
    with pytest.raises(TypeError, match="were scales passed"):
        gc.decompress([b""], scales)
    with pytest.raises(TypeError, match="were indexes passed"):
        gc.build_indexes(gc.build_indexes(scales))
    native = NativeGaussianConditional()
    native.update()
    with pytest.raises(TypeError, match="takes scales"):
        native.compress(y, gc.build_indexes(scales))
    with pytest.raises(TypeError, match="takes scales"):
        native.decompress([b""], gc.build_indexes(scales))


def test_entropy_models_need_update_first():
    with pytest.raises(RuntimeError, match="update"):
        EntropyBottleneck(2).compress(torch.zeros(1, 2, 2, 2))
    with pytest.raises(RuntimeError, match="update_scale_table"):
        GaussianConditional(None).build_indexes(torch.ones(1, 2, 2, 2))


def test_compression_model_base_resizes_buffers_on_load():
    class Tiny(CompressionModel):
        def __init__(self):
            super().__init__()
            self.entropy_bottleneck = EntropyBottleneck(3)
            self.gaussian_conditional = GaussianConditional(None)

    torch.manual_seed(2)
    a = Tiny()
    assert a.update() and not a.update()
    b = Tiny()
    b.load_state_dict(a.state_dict())
    for name, buffer in a.state_dict().items():
        assert torch.equal(b.state_dict()[name], buffer), name
    assert a.aux_loss().item() == pytest.approx(b.aux_loss().item())


# --- CompressAI's own model code ----------------------------------------------------------------
PORTED_FILES = ("google.py", "waseda.py", "base.py", "utils.py")


def compressai_source():
    """CompressAI's package folder (holding models/google.py), or None."""
    candidates = [pathlib.Path(os.environ["RANSFORM_COMPRESSAI_SOURCE"])] if "RANSFORM_COMPRESSAI_SOURCE" in os.environ else []
    spec = importlib.util.find_spec("compressai")
    if spec is not None and spec.submodule_search_locations:
        candidates += [pathlib.Path(p) for p in spec.submodule_search_locations]
    return next((c for c in candidates if (c / "models" / "google.py").is_file()), None)


@pytest.fixture(scope="module")
def ported(tmp_path_factory):
    """CompressAI's models package with its imports pointed at ransform.compressai."""
    source = compressai_source()
    if source is None:
        pytest.skip("CompressAI's source is not here: set RANSFORM_COMPRESSAI_SOURCE to its package folder")
    package = tmp_path_factory.mktemp("port") / "ported_compressai_models"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in PORTED_FILES:
        original = (source / "models" / name).read_text()
        port = port_source(original)
        changed = [a for a, b in zip(original.splitlines(), port.splitlines()) if a != b]
        assert all(re.match(r"\s*(from|import) compressai\.", line) for line in changed), changed
        (package / name).write_text(port)
    sys.path.insert(0, str(package.parent))
    try:
        yield {name: importlib.import_module(f"ported_compressai_models.{name[:-3]}") for name in ("google.py",
                                                                                                 "waseda.py")}
    finally:
        sys.path.remove(str(package.parent))


def ported_class(ported, class_name):
    return next(getattr(m, class_name) for m in ported.values() if hasattr(m, class_name))


# fixtures of the classes in google.py and waseda.py (sensetime.py's need CompressAI's latent
# codecs, vbr.py its variable-rate entropy models)
FIXTURE_NAMES = sorted(p.stem for p in FIXTURES.glob("*.pt")
                       if p.stem != "entropy_models" and not p.stem.endswith(("checkerboard", "vbr")))


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_compressai_code_loads_its_checkpoints_and_matches_its_forward(ported, name):
    ref = torch.load(FIXTURES / f"{name}.pt", weights_only=True)
    cls = ported_class(ported, ref["class"])
    net = cls(N=ref["N"]) if ref["class"].startswith("Cheng") else cls(N=ref["N"], M=ref["M"])
    net.load_state_dict(ref["state_dict"])  # CompressAI's own load_state_dict, strict
    net.eval()
    with torch.no_grad():
        out = net(ref["x"])
    assert torch.allclose(out["x_hat"], ref["x_hat"], atol=1e-5, rtol=1e-4)
    for key, likelihood in ref["likelihoods"].items():
        assert torch.allclose(out["likelihoods"][key], likelihood, rtol=1e-3, atol=1e-6), key
    with torch.no_grad():
        coded = net.compress(ref["x"])
        x_hat = net.decompress(coded["strings"], coded["shape"])["x_hat"]
    assert x_hat.shape == ref["x"].shape and torch.all(torch.isfinite(x_hat))


# CompressAI's class, its sizes here, and the registry name of ransform's own implementation
ALL_CLASSES = [("FactorizedPrior", {"N": 32, "M": 48}, "bmshj2018-factorized"),
               ("FactorizedPriorReLU", {"N": 32, "M": 48}, "bmshj2018-factorized-relu"),
               ("ScaleHyperprior", {"N": 32, "M": 48}, "bmshj2018-hyperprior"),
               ("MeanScaleHyperprior", {"N": 32, "M": 48}, "mbt2018-mean"),
               ("JointAutoregressiveHierarchicalPriors", {"N": 32, "M": 48}, "mbt2018"),
               ("Cheng2020Anchor", {"N": 32}, "cheng2020-anchor"), ("Cheng2020Attention", {"N": 32}, "cheng2020-attn")]
FRAMING = 24  # bytes a stream may add to its ideal length (header, final states, checksum)


def bits(out) -> torch.Tensor:
    return sum((-torch.log2(lik)).sum() for lik in out["likelihoods"].values())


def rate(out) -> float:
    """The likelihood estimate in bytes."""
    return float(bits(out)) / 8


@pytest.mark.parametrize("class_name, sizes, name", ALL_CLASSES, ids=[c for c, _, _ in ALL_CLASSES])
def test_every_compressai_class_trains_updates_and_codes(ported, class_name, sizes, name):
    torch.manual_seed(3)
    net = ported_class(ported, class_name)(**sizes)
    with torch.no_grad():  # latents spread over many symbols (random transforms keep |y| < 1)
        next(m for m in reversed(list(net.g_a.modules())) if isinstance(m, torch.nn.Conv2d)).weight.mul_(8)
    x = read_image(KODAK / "kodim23.png").pixels[None, :, :128, :192] if KODAK.is_dir() else torch.rand(1, 3, 128, 192)
    net.train()
    out = net(x.expand(2, -1, -1, -1))
    (bits(out) + out["x_hat"].square().mean() + net.aux_loss()).backward()
    assert not [n for n, p in net.named_parameters() if p.grad is None]  # gradients reach every part
    net.eval()
    assert net.update(force=True)
    with torch.no_grad():
        out = net(x)
        coded = net.compress(x)
        x_hat = net.decompress(coded["strings"], coded["shape"])["x_hat"]
        # ransform's implementation of the same weights: its forward gives what is coded,
        # the serial context included, so it checks CompressAI's decoding loops as well
        native = models.from_state_dict(name, net.state_dict()).eval()
        expected = native(x)["x_hat"].clamp(0, 1)
    assert torch.allclose(x_hat, expected, atol=1e-4), float((x_hat - expected).abs().max())
    if not hasattr(net, "context_prediction"):
        assert torch.equal(x_hat, out["x_hat"].clamp(0, 1))
    streams = [s for group in coded["strings"] for s in group]
    assert sum(map(len, streams)) <= rate(out) * 1.01 + FRAMING * len(streams)


@pytest.mark.skipif(not (KODAK / "kodim01.png").is_file(), reason="Kodak is not here")
def test_compressai_code_streams_within_one_percent_of_the_estimate(ported):
    """Trained weights (the shipped mbt2018-mean-small q2) in CompressAI's MeanScaleHyperprior
    code, on a whole Kodak image: the streams are at most the likelihood estimate + 1 %."""
    native = zoo.load("mbt2018-mean-small", 2)
    net = ported_class(ported, "MeanScaleHyperprior")(N=native.g_a[0].out_channels, M=native.g_a[6].out_channels)
    own = net.state_dict()
    weights = {k: v for k, v in native.state_dict().items() if k in own and own[k].shape == v.shape}
    assert len(weights) > 50
    net.load_state_dict({**own, **weights}, strict=False)
    net.eval().update(force=True)
    x = read_image(KODAK / "kodim01.png").pixels[None]
    with torch.no_grad():
        out = net(x)
        coded = net.compress(x)
        x_hat = net.decompress(coded["strings"], coded["shape"])["x_hat"]
    assert torch.equal(x_hat, out["x_hat"].clamp(0, 1))
    size = sum(len(s) for group in coded["strings"] for s in group)
    assert size <= rate(out) * 1.01


def test_port_rewrites_imports_only(tmp_path):
    source = tmp_path / "repo"
    (source / "models").mkdir(parents=True)
    lines = ["import compressai", "from compressai.models import CompressionModel", "    from compressai.ans import X",
             "import compressai.ans", "import compressai.zoo as z", "import compressai_extra",
             "x = 'compressai.models'  # from compressai.ans", ""]
    (source / "models" / "net.py").write_text("\n".join(lines))
    (source / "other.py").write_text("import torch\n")
    (source / "README.md").write_text("import compressai\n")
    assert port_tree(source, tmp_path / "ported") == [tmp_path / "ported" / "models" / "net.py"]
    assert (tmp_path / "ported" / "README.md").read_text() == "import compressai\n"  # copied as it is
    assert (tmp_path / "ported" / "other.py").read_text() == "import torch\n"
    assert (tmp_path / "ported" / "models" / "net.py").read_text().split("\n") == [
        "import ransform.compressai as compressai", "from ransform.compressai.models import CompressionModel",
        "    from ransform.compressai.ans import X", "import ransform.compressai.ans; from ransform import compressai",
        "import ransform.compressai.zoo as z", *lines[5:]]
    with pytest.raises(FileExistsError):
        port_tree(source, tmp_path / "ported")
    namespace = {}
    exec(port_source("import compressai.ans\nimport compressai\nencoder = compressai.ans.RansEncoder()"), namespace)
    assert isinstance(namespace["encoder"], ans.RansEncoder)


# --- zoo, datasets, losses, registry ------------------------------------------------------------
def test_zoo_constructors_build_compressai_sizes_and_fetch_published_weights(monkeypatch):
    from ransform.compressai import zoo as cai_zoo
    assert set(cai_zoo.models) == set(cai_zoo.image_models) >= {"bmshj2018-factorized", "mbt2018", "cheng2020-attn"}
    net = cai_zoo.mbt2018_mean(5)
    assert (net.g_a[0].out_channels, net.g_a[6].out_channels) == (192, 320)  # CompressAI's zoo size for q5
    assert cai_zoo.cheng2020_attn(1).g_a[0].conv1.out_channels == 128
    with pytest.raises(ValueError, match="quality"):
        cai_zoo.cheng2020_anchor(7)
    with pytest.raises(ValueError, match="metric"):
        cai_zoo.mbt2018(1, metric="psnr")
    calls = []
    monkeypatch.setattr(zoo, "load", lambda *args, **kwargs: calls.append((args, kwargs)) or "loaded")
    assert cai_zoo.bmshj2018_hyperprior(2, metric="ms-ssim", pretrained=True, progress=False) == "loaded"
    assert calls == [(("bmshj2018-hyperprior", 2), {"pretrained": "compressai", "metric": "ms-ssim",
                                                    "progress": False})]


def test_image_folder_reads_like_compressai(tmp_path):
    from PIL import Image
    from ransform.compressai.datasets import ImageFolder
    (tmp_path / "train").mkdir()
    Image.new("RGB", (20, 10), (200, 30, 7)).save(tmp_path / "train" / "a.png")
    Image.fromarray(np.full((8, 6), 65535, np.uint16)).save(tmp_path / "train" / "b.png")  # 16-bit gray
    (tmp_path / "train" / "notes.txt").write_text("not an image")
    data = ImageFolder(tmp_path, split="train")
    assert len(data) == 2
    assert data[0].mode == "RGB" and data[0].size == (20, 10) and data[0].getpixel((0, 0)) == (200, 30, 7)
    assert data[1].mode == "RGB" and data[1].getpixel((0, 0)) == (255, 255, 255)
    assert ImageFolder(tmp_path, transform=lambda im: im.size)[0] == (20, 10)
    with pytest.raises(RuntimeError, match="Missing directory"):
        ImageFolder(tmp_path, split="test")


def test_losses_and_registry_follow_compressai():
    from ransform.compressai.losses import RateDistortionLoss
    from ransform.compressai.registry import MODELS, register_model
    out = {"x_hat": torch.full((1, 3, 4, 4), 0.5), "likelihoods": {"y": torch.full((1, 2, 2, 2), 0.5)}}
    target = torch.zeros(1, 3, 4, 4)
    terms = RateDistortionLoss(lmbda=0.01)(out, target)
    assert RateDistortionLoss(lmbda=0.01, return_type="loss")(out, target) == terms["loss"]
    assert float(terms["bpp_loss"]) == pytest.approx(8 / 16)
    with pytest.raises(ValueError, match="return_type"):
        RateDistortionLoss(return_type="psnr")(out, target)

    @register_model("my-test-model")
    class Mine(CompressionModel):
        pass

    assert MODELS["my-test-model"] is Mine


def test_older_compressai_module_paths_still_import():
    """Research code written for CompressAI 1.0/1.1 imports these (e.g. ELiC re-implementations)."""
    from ransform.compressai.models.google import JointAutoregressiveHierarchicalPriors
    from ransform.compressai.models.priors import CompressionModel as Base
    from ransform.compressai.models.priors import GaussianConditional as Conditional
    from ransform.compressai.models.waseda import Cheng2020Attention
    from ransform.compressai.ops import ste_round
    from ransform.compressai.ops.parametrizers import NonNegativeParametrizer

    assert Base is CompressionModel and Conditional is GaussianConditional
    assert JointAutoregressiveHierarchicalPriors is models.MODELS["mbt2018"]
    assert Cheng2020Attention is models.MODELS["cheng2020-attn"]
    assert torch.equal(ste_round(torch.tensor([0.4, 1.6])), torch.tensor([0.0, 2.0]))
    reparam = NonNegativeParametrizer(minimum=1e-6)
    values = torch.tensor([1e-6, 0.5, 3.0])
    assert torch.allclose(reparam(reparam.init(values)), values, rtol=1e-5, atol=1e-9)
    assert float(reparam(torch.tensor([-5.0]))) == pytest.approx(1e-6, rel=1e-3)  # bounded below
    assert set(reparam.state_dict()) == {"pedestal", "lower_bound.bound"}
