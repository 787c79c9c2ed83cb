"""ransform eval / bench-codecs / plot: CompressAI's results schema, Bjøntegaard deltas."""
import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")

from conftest import write_images  # noqa: E402
from ransform import cli, evaluation, models, rdplot  # noqa: E402


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("kodak-like")
    write_images(root, 2, 176, 200)
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "m.pth.tar"
    torch.save({"model": "bmshj2018-hyperprior", "quality": 1,
                "state_dict": models.ScaleHyperprior(16, 24).state_dict()}, path)
    return path


def curve(name, bpp, psnr):
    return {"name": name, "results": {"bpp": list(bpp), "psnr-rgb": list(psnr)}}


def test_bd_rate_and_psnr_of_a_shifted_curve():
    anchor = curve("a", [0.25, 0.5, 1, 2], [28, 31, 34, 37])
    assert rdplot.bd_rate(anchor, curve("b", [0.2, 0.4, 0.8, 1.6], [28, 31, 34, 37])) == pytest.approx(-20)
    assert rdplot.bd_quality(anchor, curve("c", [0.25, 0.5, 1, 2], [29, 32, 35, 38])) == pytest.approx(1.0)
    assert math.isnan(rdplot.bd_quality(anchor, curve("far", [5, 6, 7, 8], [40, 41, 42, 43])))
    with pytest.raises(ValueError, match="at least 2 points"):
        rdplot.bd_rate(anchor, curve("one", [0.3], [30]))


@pytest.mark.parametrize("method", ["pchip", "akima", "cubic"])
def test_every_bd_method_measures_a_pure_shift_exactly(method):
    anchor = curve("a", [0.25, 0.5, 1, 2], [28, 31, 34, 36.5])
    shifted = curve("b", [0.2, 0.4, 0.8, 1.6], [28.5, 31.5, 34.5, 37])  # 20 % fewer bits and +0.5 dB
    assert rdplot.bd_quality(anchor, curve("c", [0.25, 0.5, 1, 2], [29, 32, 35, 37.5]), method=method) \
        == pytest.approx(1.0)
    assert rdplot.bd_rate(anchor, curve("d", [0.2, 0.4, 0.8, 1.6], [28, 31, 34, 36.5]), method=method) \
        == pytest.approx(-20)
    assert rdplot.bd_rate(anchor, shifted, method=method) < -20  # and better quality on top


def test_three_point_curves_need_pchip_and_unknown_methods_are_named():
    anchor, test = curve("a", [0.2, 0.3, 0.4], [30, 31, 32]), curve("b", [0.2, 0.3, 0.4], [30.5, 31.5, 32.5])
    assert rdplot.bd_quality(anchor, test) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="cubic BD fits 4 points"):
        rdplot.bd_rate(anchor, test, method="cubic")
    with pytest.raises(ValueError, match="unknown BD method 'spline'"):
        rdplot.bd_rate(anchor, test, method="spline")


def test_eval_writes_compressai_schema(folder, checkpoint, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert cli.main(["eval", str(folder), "--checkpoint", str(checkpoint), "--per-image", "-o", str(out),
                     "--quiet"]) == 0
    data = json.loads(out.read_text())
    assert data["name"] == "ransform bmshj2018-hyperprior"
    for key in ("bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time"):
        assert len(data["results"][key]) == 1
    per_image = data["per-image"]["1"]
    assert [r["image"] for r in per_image] == ["im0.png", "im1.png"]
    # bpp counts the whole .rfm file of each image.
    assert data["results"]["bpp"][0] == pytest.approx(np.mean([r["bpp"] for r in per_image]))
    assert all(r["bpp"] > 8 * 40 / (176 * 200) for r in per_image)  # at least the container's fixed bytes
    assert 0 < data["results"]["ms-ssim-rgb"][0] <= 1


def test_bench_codecs_and_plot(folder, tmp_path, capsys):
    assert cli.main(["bench-codecs", str(folder), "--codecs", "jpeg,webp", "-o", str(tmp_path), "--quiet"]) == 0
    jpeg = json.loads((tmp_path / "jpeg.json").read_text())
    bpp, psnr = jpeg["results"]["bpp"], jpeg["results"]["psnr-rgb"]
    assert len(bpp) == len(evaluation.CODEC_QUALITIES["jpeg"])
    assert bpp == sorted(bpp) and psnr == sorted(psnr)  # higher quality: more bits, less error
    png = tmp_path / "rd.png"
    assert cli.main(["plot", str(tmp_path / "jpeg.json"), str(tmp_path / "webp.json"), "-o", str(png)]) == 0
    out = capsys.readouterr().out
    assert "BD-rate" in out and "WEBP" in out
    assert Image.open(png).size[0] > 400


def test_codec_quality_metrics_are_exact_for_known_error():
    x = torch.full((3, 200, 200), 100, dtype=torch.uint8)
    y = x.clone()
    y[0, :, :100] += 10  # MSE = 100 * (1/6) over all values
    m = evaluation.quality_metrics(x, y)
    assert m["psnr-rgb"] == pytest.approx(10 * math.log10(255 ** 2 / (100 / 6)))
    assert evaluation.quality_metrics(x, x)["psnr-rgb"] == math.inf


def test_bad_results_file(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"foo": 1}')
    assert cli.main(["plot", str(bad), "-o", str(tmp_path / "p.png")]) == 2


def test_eval_keeps_every_checkpoint_when_two_share_a_quality(folder, checkpoint, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert cli.main(["eval", str(folder), "--checkpoint", f"{checkpoint},{checkpoint}", "-o", str(out),
                     "--quiet"]) == 0
    assert "share a quality" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["results"]["quality"] == [1, 2] and len(data["results"]["bpp"]) == 2


def test_a_checkpoint_of_another_architecture_says_which_it_holds(checkpoint):
    state = torch.load(checkpoint, weights_only=True)["state_dict"]
    with pytest.raises(ValueError, match="not a mbt2018; it holds a bmshj2018-hyperprior"):
        models.from_state_dict("mbt2018", state)
    with pytest.raises(ValueError, match="matches no known model"):
        models.from_state_dict("mbt2018", {"x": torch.zeros(1)})
