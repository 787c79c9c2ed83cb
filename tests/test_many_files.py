"""Many files in one process: `compress IMG... -o DIR/`, `decompress FILE... -o DIR/` and `eval`
over folders. Each file comes out as the one-file command would write it; a bad file is
reported on its own line and the rest go on; nothing existing is replaced."""
import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")

from ransform import cli, models  # noqa: E402


def _png(path, height, width, seed):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A folder of images (one in a sub-folder), a loose image, and a small checkpoint."""
    root = tmp_path_factory.mktemp("many")
    images = root / "images"
    (images / "sub").mkdir(parents=True)
    for i, name in enumerate(("a.png", "b.png", "sub/c.png")):
        _png(images / name, 40 + 8 * i, 56, seed=i)
    _png(root / "loose.png", 32, 48, seed=9)
    torch.manual_seed(0)
    net = models.MeanScaleHyperprior(8, 12).eval()
    net.update()
    checkpoint = root / "tiny.pth.tar"
    torch.save({"model": "mbt2018-mean", "quality": 1, "state_dict": net.state_dict()}, checkpoint)
    return {"root": root, "images": images, "loose": root / "loose.png", "checkpoint": str(checkpoint)}


def _one_by_one(setup, image, tmp_path, command="compress", suffix=".rfm", extra=()):
    out = tmp_path / f"single-{os.path.basename(image)}{suffix}"
    assert cli.main([command, str(image), "-o", str(out), "--checkpoint", setup["checkpoint"], *extra]) == 0
    return out.read_bytes()


def test_compress_many_writes_what_one_by_one_writes(setup, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["compress", str(setup["images"]), str(setup["loose"]), "-o", f"{out}/", "--checkpoint",
            setup["checkpoint"], "--no-psnr", "--quiet"]
    assert cli.main(argv) == 0
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.rfm"))
    assert written == ["a.png.rfm", "b.png.rfm", "loose.png.rfm"]  # the sub-folder only with -r
    stdout = capsys.readouterr().out
    assert "compressed 3 of 3 images into" in stdout and "model load" in stdout
    assert len([line for line in stdout.splitlines() if ".rfm:" in line]) == 3
    for name in ("a.png", "b.png"):
        assert (out / f"{name}.rfm").read_bytes() == _one_by_one(setup, setup["images"] / name, tmp_path, extra=[
            "--no-psnr"])
    capsys.readouterr()

    # Again with -r: the three existing files are refused one by one, the new one is written.
    marker = (out / "a.png.rfm").read_bytes()
    assert cli.main(argv + ["-r"]) == 2
    captured = capsys.readouterr()
    assert (out / "sub" / "c.png.rfm").is_file()
    assert (out / "a.png.rfm").read_bytes() == marker
    assert captured.err.count("exists; pass --force") == 3
    assert "compressed 1 of 4 images" in captured.out and "3 failed" in captured.out
    assert cli.main(argv + ["-r", "--force"]) == 0


def test_one_bad_image_does_not_stop_the_rest(setup, tmp_path, capsys):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        (folder / name).write_bytes((setup["images"] / name).read_bytes())
    (folder / "broken.png").write_text("not a PNG")
    assert cli.main(["compress", str(folder), "-o", str(tmp_path / "out") + "/", "--checkpoint",
                     setup["checkpoint"], "--quiet"]) == 2
    captured = capsys.readouterr()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png.rfm", "b.png.rfm"]
    errors = captured.err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith(str(folder / "broken.png")) and "cannot read image" in errors[0]
    assert "compressed 2 of 3 images" in captured.out and "1 failed" in captured.out
    assert "PSNR" in captured.out  # each file decoded to report it, unless --no-psnr


def test_decompress_many_and_a_damaged_file(setup, tmp_path, capsys):
    rfms = tmp_path / "rfms"
    assert cli.main(["compress", str(setup["images"]), "-r", "-o", f"{rfms}/", "--checkpoint", setup["checkpoint"],
                     "--no-psnr", "--quiet"]) == 0
    data = bytearray((rfms / "b.png.rfm").read_bytes())
    data[len(data) // 2] ^= 0x10
    (rfms / "damaged.rfm").write_bytes(bytes(data))
    capsys.readouterr()
    out = tmp_path / "decoded"
    assert cli.main(["decompress", str(rfms), "-r", "-o", f"{out}/", "--checkpoint", setup["checkpoint"],
                     "--quiet"]) == 2
    captured = capsys.readouterr()
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.png")) == ["a.png.png", "b.png.png", "sub/c.png.png"]
    errors = captured.err.strip().splitlines()
    assert len(errors) == 1 and "damaged.rfm" in errors[0] and "damaged file" in errors[0]
    assert "decompressed 3 of 4 files" in captured.out and "1 failed" in captured.out
    _one_by_one(setup, rfms / "sub" / "c.png.rfm", tmp_path, "decompress", ".png")
    assert np.array_equal(np.asarray(Image.open(out / "sub" / "c.png.png")),
                          np.asarray(Image.open(tmp_path / "single-c.png.rfm.png")))


def test_one_image_into_an_existing_folder(setup, tmp_path, capsys):
    assert cli.main(["compress", str(setup["loose"]), "-o", str(tmp_path), "--checkpoint", setup["checkpoint"],
                     "--no-psnr", "--quiet"]) == 0
    assert (tmp_path / "loose.png.rfm").read_bytes() == _one_by_one(setup, setup["loose"], tmp_path / "x", extra=[
        "--no-psnr"])
    assert "compressed 1 of 1 images" in capsys.readouterr().out


def test_device_cpu_writes_the_same_file(setup, tmp_path):
    a, b = tmp_path / "a.rfm", tmp_path / "b.rfm"
    for out, extra in ((a, []), (b, ["--device", "cpu", "--threads", "1"])):
        assert cli.main(["compress", str(setup["loose"]), "-o", str(out), "--checkpoint", setup["checkpoint"],
                         "--no-psnr", *extra]) == 0
    assert a.read_bytes() == b.read_bytes()


def test_eval_goes_on_past_a_bad_image(setup, tmp_path, capsys):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        (folder / name).write_bytes((setup["images"] / name).read_bytes())
    (folder / "broken.png").write_text("not a PNG")
    results = tmp_path / "r.json"
    assert cli.main(["eval", str(folder), "--model", "mbt2018-mean", "--checkpoint", setup["checkpoint"],
                     "--per-image", "--quiet", "-o", str(results)]) == 2
    captured = capsys.readouterr()
    summary = json.loads(results.read_text())
    assert [r["image"] for r in summary["per-image"]["1"]] == ["a.png", "b.png"]
    assert "2 images" in summary["description"]
    assert "broken.png" in captured.err and "1 of 3 images failed" in captured.err
