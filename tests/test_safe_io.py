"""Nothing run, nothing lost: checkpoints load as plain data on every path that takes one; no
command replaces an existing file (or its input) without --force; writes are atomic, so a
killed process leaves the old file or none."""
import os
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("PIL")

from conftest import write_images  # noqa: E402
from ransform import cli, codec, models  # noqa: E402
from ransform.files import UnsafeCheckpointError, load_checkpoint, save_atomic, write_atomic  # noqa: E402


class Payload:
    """Unpickling this runs code: it writes the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture()
def evil(tmp_path):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "evil.pth.tar"
    torch.save({"model": "mbt2018-mean", "quality": 1, "state_dict": {"x": Payload(marker)}}, path)
    return path, marker


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_images(root, 4, 64, 80)  # a 64px patch: mbt2018-mean takes multiples of 64
    return root


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "photo.png"
    codec.write_image(torch.rand(3, 40, 60), path)
    return path


def test_a_pickle_payload_never_runs_on_any_checkpoint_path(evil, image, data, tmp_path, capsys):
    path, marker = evil
    with pytest.raises(UnsafeCheckpointError, match="not a plain checkpoint"):
        codec.load_model(checkpoint=str(path))
    out = tmp_path / "out"
    commands = [
        ["compress", str(image), "-o", str(out / "a.rfm"), "--checkpoint", str(path)],
        ["bitmap", str(image), "-o", str(out / "b.png"), "--checkpoint", str(path)],
        ["eval", str(image.parent), "--checkpoint", str(path), "--quiet"],
        ["demo", "--checkpoint", str(path), "--output-dir", str(out / "demo")],
        ["convert", str(path), "-o", str(out / "c.pth")],
        ["train", "--model", "mbt2018-mean", "--quality", "1", "--data", str(data), "--out", str(out / "run"),
         "--patch", "64", "--channels", "8,12", "--init", str(path)],
    ]
    for argv in commands:
        assert cli.main(argv) == 2, argv
        assert "not a plain checkpoint" in capsys.readouterr().err, argv
    # resuming a run whose checkpoint was replaced by a payload
    run = out / "resume"
    run.mkdir(parents=True)
    (run / "checkpoint.pth.tar").write_bytes(path.read_bytes())
    assert cli.main(["train", "--model", "mbt2018-mean", "--quality", "1", "--data", str(data), "--out",
                     str(run), "--patch", "64", "--channels", "8,12"]) == 2
    assert "not a plain checkpoint" in capsys.readouterr().err
    # decompress with the payload as the decoder's checkpoint
    net = models.MeanScaleHyperprior(8, 12).eval()
    net.update()
    data = codec.compress(codec.LoadedModel(net, "mbt2018-mean", 1), torch.rand(3, 32, 32))
    rfm = out / "x.rfm"
    write_atomic(rfm, data)
    assert cli.main(["decompress", str(rfm), "-o", str(out / "x.png"), "--checkpoint", str(path)]) == 2
    assert "not a plain checkpoint" in capsys.readouterr().err
    assert not marker.exists()


def test_foreign_files_are_not_checkpoints(tmp_path):
    junk = tmp_path / "notes.pth"
    junk.write_text("hello")
    with pytest.raises(ValueError, match="not a PyTorch checkpoint"):
        load_checkpoint(junk)
    with pytest.raises(ValueError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="is a directory"):
        load_checkpoint(tmp_path)
    import gzip
    junk.write_bytes(gzip.compress(b"hello"))
    with pytest.raises(ValueError, match="not a PyTorch checkpoint") as refused:
        load_checkpoint(junk)
    assert not isinstance(refused.value, UnsafeCheckpointError)  # junk is junk, not "code that would run"
    junk.write_bytes(b"\x1f\x8b truncated gzip")
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        load_checkpoint(junk)


def test_a_gzip_compressed_pickle_payload_never_runs(evil):
    import gzip
    path, marker = evil
    path.write_bytes(gzip.compress(path.read_bytes()))
    with pytest.raises(UnsafeCheckpointError, match="did not run it"):
        load_checkpoint(path)
    assert not marker.exists()


def test_no_command_replaces_a_file_without_force(image, tmp_path, capsys):
    net = models.MeanScaleHyperprior(8, 12).eval()
    net.update()
    ckpt = tmp_path / "m.pth.tar"
    torch.save({"model": "mbt2018-mean", "quality": 1, "state_dict": net.state_dict()}, ckpt)
    target = tmp_path / "photo.rfm"
    target.write_bytes(b"precious")
    assert cli.main(["compress", str(image), "-o", str(target), "--checkpoint", str(ckpt), "--no-psnr"]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert target.read_bytes() == b"precious"
    assert cli.main(["compress", str(image), "-o", str(target), "--checkpoint", str(ckpt), "--no-psnr",
                     "--force"]) == 0
    assert target.read_bytes() != b"precious"
    # the data loss: decompressing photo.rfm would have replaced photo.png
    original = tmp_path / "photo.png"
    original.write_bytes(image.read_bytes())
    assert cli.main(["decompress", str(target), "--checkpoint", str(ckpt)]) == 2
    assert "photo.png exists" in capsys.readouterr().err
    assert original.read_bytes() == image.read_bytes()
    # never the input, even with --force
    assert cli.main(["compress", str(original), "-o", str(original), "--checkpoint", str(ckpt), "-f"]) == 2
    assert "it is the input" in capsys.readouterr().err
    assert original.read_bytes() == image.read_bytes()
    # a folder as the output: the file goes into it, once
    argv = ["compress", str(image), "-o", str(tmp_path), "--checkpoint", str(ckpt), "--quiet"]
    assert cli.main(argv) == 0
    written = (tmp_path / "photo.png.rfm").read_bytes()
    assert cli.main(argv) == 2
    assert "photo.png.rfm exists; pass --force" in capsys.readouterr().err
    assert (tmp_path / "photo.png.rfm").read_bytes() == written


def test_the_demo_never_replaces_an_earlier_demo(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["demo"]) == 0
    first = (tmp_path / "ransform-demo" / "coffee.rfm").read_bytes()
    (tmp_path / "ransform-demo" / "coffee.rfm").write_bytes(b"mine")
    assert cli.main(["demo"]) == 0
    assert (tmp_path / "ransform-demo" / "coffee.rfm").read_bytes() == b"mine"
    assert (tmp_path / "ransform-demo-2" / "coffee.rfm").read_bytes() == first
    assert "ransform-demo-2" in capsys.readouterr().out


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, b"new" * 1000)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


@pytest.mark.parametrize("what", ["checkpoint", "image"])
def test_kill_9_during_a_write_leaves_the_old_file(tmp_path, what):
    """The child is killed (SIGKILL) right after writing the new bytes, before the rename."""
    target = tmp_path / ("ckpt.pth.tar" if what == "checkpoint" else "out.png")
    if what == "checkpoint":
        save_atomic({"epoch": 1, "w": torch.ones(3)}, target)
    else:
        codec.write_image(torch.zeros(3, 8, 8), target)
    old = target.read_bytes()
    write = ('files.save_atomic({"epoch": 2, "w": torch.zeros(10**6)}, TARGET)' if what == "checkpoint"
             else "codec.write_image(torch.ones(3, 512, 512), TARGET)")
    code = textwrap.dedent(f"""
        import os, signal, torch
        from ransform import codec, files
        TARGET = {str(target)!r}
        os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)   # dies with the data written
        {write}
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()
    assert target.read_bytes() == old
    if what == "checkpoint":
        assert load_checkpoint(target)["epoch"] == 1


def test_the_shipped_name_and_its_checkpoint_file_decode_each_others_files(image, tmp_path, capsys):
    from ransform import zoo
    weights = str(zoo.WEIGHTS_DIR / zoo.SHIPPED[("mbt2018-mean-small", 1)][1])  # gzip, as shipped
    by_name, by_file = tmp_path / "by-name.rfm", tmp_path / "by-file.rfm"
    assert cli.main(["compress", str(image), "-o", str(by_name), "--model", "mbt2018-mean-small", "--quality", "1",
                     "--no-psnr"]) == 0
    assert cli.main(["compress", str(image), "-o", str(by_file), "--checkpoint", weights, "--no-psnr"]) == 0
    decoded = {}
    for source in (by_name, by_file):
        for how in ([], ["--checkpoint", weights]):
            out = tmp_path / f"{source.stem}-{len(how)}.png"
            assert cli.main(["decompress", str(source), "-o", str(out), *how]) == 0, capsys.readouterr().err
            decoded[out.name] = codec.read_image(out)
    first = next(iter(decoded.values()))
    assert all(torch.equal(first, x) for x in decoded.values())  # one model, one reconstruction
    # Other weights of the same architecture are still refused, by name.
    other = str(zoo.WEIGHTS_DIR / zoo.SHIPPED[("mbt2018-mean-small", 2)][1])
    assert cli.main(["decompress", str(by_name), "-o", str(tmp_path / "x.png"), "--checkpoint", other]) == 2
    assert "other weights of mbt2018-mean-small" in capsys.readouterr().err
    model = codec.load_model(checkpoint=other)
    rfm = tmp_path / "q2-file.rfm"
    rfm.write_bytes(codec.compress(model, codec.read_image(image)))
    assert cli.main(["decompress", str(rfm), "-o", str(tmp_path / "y.png")]) == 0  # the shipped q2: found
    model.net.g_s[0].weight.data.mul_(1.01)  # a fine-tuned mbt2018-mean quality 2: not shipped
    model._fingerprints.clear()
    rfm.write_bytes(codec.compress(model, codec.read_image(image)))
    assert cli.main(["decompress", str(rfm), "-o", str(tmp_path / "z.png")]) == 2
    assert "not the shipped mbt2018-mean-small q2" in capsys.readouterr().err


def test_written_files_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        write_atomic(tmp_path / "new.bin", b"x")
        assert (tmp_path / "new.bin").stat().st_mode & 0o777 == 0o644  # as open() would make it, not 0600
        (tmp_path / "kept.bin").write_bytes(b"old")
        os.chmod(tmp_path / "kept.bin", 0o640)
        write_atomic(tmp_path / "kept.bin", b"new")
        assert (tmp_path / "kept.bin").stat().st_mode & 0o777 == 0o640  # a replaced file keeps its mode
    finally:
        os.umask(old)
