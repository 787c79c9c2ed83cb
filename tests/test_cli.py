"""ransform bitmap and convert."""
import pathlib

import pytest

torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")

from ransform import cli, codec  # noqa: E402

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "compressai"


def test_convert_compressai_checkpoint(tmp_path, capsys):
    assert cli.main(["convert", str(FIXTURES / "mbt2018-mean.pt"), "-o", str(tmp_path / "out" / "m.pth.tar"),
                     "--model", "mbt2018-mean"]) == 0
    written = list((tmp_path / "out").glob("m-*.pth.tar"))
    assert len(written) == 1 and len(written[0].name) == len("m-12345678.pth.tar")
    state = torch.load(written[0], weights_only=True)
    assert state["model"] == "mbt2018-mean" and state["state_dict"]["gaussian_conditional.scale_table"].numel() > 0
    # The converted file codes exactly like the original checkpoint.
    original = codec.load_model("mbt2018-mean", None, str(FIXTURES / "mbt2018-mean.pt"))
    converted = codec.load_model(checkpoint=str(written[0]))
    assert converted.fingerprint == original.fingerprint
    x = torch.rand(3, 64, 64)
    assert codec.compress(converted, x) == codec.compress(original, x)
    assert cli.main(["convert", str(FIXTURES / "mbt2018-mean.pt"), "-o", str(tmp_path / "x.pth")]) == 2
    assert "--model" in capsys.readouterr().err


def test_convert_half_keeps_buffers_exact(tmp_path):
    assert cli.main(["convert", str(FIXTURES / "mbt2018-mean.pt"), "-o", str(tmp_path / "h.pth"),
                     "--model", "mbt2018-mean", "--half"]) == 0
    state = torch.load(next(tmp_path.glob("h-*.pth")), weights_only=True)["state_dict"]
    assert state["g_a.0.weight"].dtype == torch.float16
    assert state["gaussian_conditional.scale_table"].dtype == torch.float32
    model = codec.load_model(checkpoint=str(next(tmp_path.glob("h-*.pth"))))
    assert model.net.g_a[0].weight.dtype == torch.float32
    x = torch.rand(3, 64, 64)
    assert codec.decompress(model, codec.compress(model, x)).shape == x.shape


def test_bitmap_command(tmp_path, capsys):
    src = tmp_path / "in.png"
    codec.write_image(torch.rand(3, 70, 90), src)
    out = tmp_path / "map.png"
    assert cli.main(["bitmap", str(src), "-o", str(out), "--checkpoint", str(FIXTURES / "mbt2018-mean.pt"),
                     "--model", "mbt2018-mean"]) == 0
    assert "bpp" in capsys.readouterr().out
    assert Image.open(out).size[0] > 2 * 90


def test_demo_runs_the_shipped_model(tmp_path, capsys):
    assert cli.main(["demo", "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "ransform:" in out and "JPEG" in out and "PSNR" in out
    for name in ("coffee.rfm", "coffee-decoded.png", "coffee-bits.png"):
        assert (tmp_path / name).stat().st_size > 0
    # The demo's file decodes with the shipped model named inside it.
    assert cli.main(["decompress", str(tmp_path / "coffee.rfm"), "-o", str(tmp_path / "again.png")]) == 0
    assert torch.equal(codec.read_image(tmp_path / "again.png"), codec.read_image(tmp_path / "coffee-decoded.png"))


def test_zoo():
    from ransform import zoo

    assert {("mbt2018-mean-small", q) for q in (1, 2, 3)} <= set(zoo.shipped())
    net = zoo.load("mbt2018-mean-small", 1)
    assert not net.training and net.gaussian_conditional.scale_table.numel() > 0
    with pytest.raises(ValueError, match="no shipped weights"):
        zoo.load("mbt2018-mean-small", 8)


@pytest.mark.parametrize("name", ["mbt2018-mean", "mbt2018", "cheng2020-anchor"])
def test_convert_portable_makes_compressai_checkpoints_decode_anywhere(tmp_path, capsys, name):
    assert cli.main(["convert", str(FIXTURES / f"{name}.pt"), "-o", str(tmp_path / "p.pth"), "--model", name,
                     "--portable"]) == 0
    assert "portable entropy parameters" in capsys.readouterr().out
    path = next(tmp_path.glob("p-*.pth"))
    assert any(k.startswith("portable.") for k in torch.load(path, weights_only=True)["state_dict"])
    model = codec.load_model(checkpoint=str(path))
    assert model.net.coding_mode == "portable"
    x = torch.rand(3, 64, 80)
    data = codec.compress(model, x)
    torch.set_num_threads(1)
    try:
        again = codec.decompress(codec.load_model(checkpoint=str(path)), data)
    finally:
        torch.set_num_threads(2)
    # the latent is the same; only the float synthesis may move a pixel by a level
    diff = codec.to_uint8(again).int() - codec.to_uint8(codec.decompress(model, data)).int()
    assert diff.abs().max() <= 1


def test_convert_calibrates_with_threads_and_refuses_a_device_it_lacks(tmp_path, capsys):
    args = ["convert", str(FIXTURES / "mbt2018-mean.pt"), "-o", str(tmp_path / "p.pth"), "--model", "mbt2018-mean",
            "--portable"]
    before = torch.get_num_threads()
    try:
        assert cli.main(args + ["--threads", "1"]) == 0
    finally:
        torch.set_num_threads(before)
    path = next(tmp_path.glob("p-*.pth"))
    assert codec.load_model(checkpoint=str(path)).net.coding_mode == "portable"
    if not torch.cuda.is_available():
        capsys.readouterr()
        assert cli.main(args + ["--device", "cuda", "-f"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--device cuda" in err and "use --device cpu" in err
    assert cli.main(args + ["--device", "tpu", "-f"]) == 2
    assert "--device tpu: not a device" in capsys.readouterr().err


def test_threads_change_the_speed_not_the_files(tmp_path, capsys):
    """--threads on the commands that run a model: the same .rfm bytes and pixels for any count."""
    import torch

    photo = pathlib.Path(cli.__file__).parent / "data" / "coffee.png"
    before = torch.get_num_threads()
    try:
        files = []
        for threads in ("1", "2", "0"):
            out = tmp_path / f"t{threads}.rfm"
            assert cli.main(["compress", str(photo), "-o", str(out), "--model", "mbt2018-mean-small", "--quality", "1",
                             "--threads", threads, "--no-psnr"]) == 0
            files.append(out.read_bytes())
        assert files[0] == files[1] == files[2]
        pictures = []
        for threads in ("1", "2"):
            png = tmp_path / f"d{threads}.png"
            assert cli.main(["decompress", str(tmp_path / "t1.rfm"), "-o", str(png), "--threads", threads]) == 0
            pictures.append(codec.to_uint8(codec.read_image(png)).int())
        # the latent decodes exactly; the float synthesis transform's sums may round differently
        # with another thread count, by at most one level in a few pixels
        assert (pictures[0] - pictures[1]).abs().max() <= 1
        capsys.readouterr()
        with pytest.raises(SystemExit) as refused:  # argparse's usage error: one line, exit 2
            cli.main(["compress", str(photo), "-o", str(tmp_path / "x.rfm"), "--model", "mbt2018-mean-small",
                      "--quality", "1", "--threads", "-1"])
        assert refused.value.code == 2 and "--threads" in capsys.readouterr().err
    finally:
        torch.set_num_threads(before)
