"""Careless command lines (issue 11): each one ends with exit status 2 and one line on stderr
that starts with "ransform" and says what is wrong: no traceback, no usage dump, and no code a
checkpoint carries ever runs.

Most rows run in process (``cli.main(argv)``, fast); a few run as real processes, which is the
only way to see what a user sees for Ctrl-C, a closed pipe, or anything printed at exit."""
import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")

from conftest import KODAK_IMAGES, write_images  # noqa: E402
from ransform import cli, models  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "compressai")


class Payload:
    """Unpickling this runs code: it creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _png(path, height, width, seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Every careless input the table names, as {name: path}."""
    root = tmp_path_factory.mktemp("careless")
    f = {key: str(root / name) for key, name in (
        ("photo", "photo.png"), ("other", "other.png"), ("notes", "notes.txt"), ("empty", "empty.png"),
        ("empty_pth", "empty.pth"), ("empty_rfm", "empty.rfm"), ("archive", "archive.pth"),
        ("truncated", "truncated.png"))}
    _png(f["photo"], 40, 60)
    _png(f["other"], 24, 32, seed=1)
    with open(f["notes"], "w") as out:
        out.write("hello, I am not an image\n")
    for key in ("empty", "empty_pth", "empty_rfm"):
        open(f[key], "wb").close()
    with zipfile.ZipFile(f["archive"], "w") as z:  # a zip, like a torch file, but not one
        z.writestr("notes.txt", "not a checkpoint")
    with open(f["photo"], "rb") as src, open(f["truncated"], "wb") as out:
        out.write(src.read()[:400])
    f["images"] = str(root / "images")  # one small image, e.g. for eval
    os.mkdir(f["images"])
    _png(os.path.join(f["images"], "a.png"), 40, 60)
    f["nothing"] = str(root / "nothing")  # an empty folder
    os.mkdir(f["nothing"])

    f["marker"] = str(root / "payload-ran")
    f["evil"] = str(root / "evil.pth.tar")
    torch.save({"model": "mbt2018-mean", "quality": 1, "state_dict": {"x": Payload(f["marker"])}}, f["evil"])
    for name, obj in (("tensor", torch.zeros(3)), ("list", [1, 2, 3]), ("nodict", {"state_dict": "text"})):
        f[name] = str(root / f"{name}.pth")
        torch.save(obj, f[name])
    f["factorized"] = os.path.join(FIXTURES, "bmshj2018-factorized.pt")
    for name, seed in (("tiny", 0), ("tiny2", 1)):  # a small mbt2018-mean, not a shipped one
        torch.manual_seed(seed)
        net = models.MeanScaleHyperprior(8, 12).eval()
        net.update()
        f[name] = str(root / f"{name}.pth.tar")
        torch.save({"model": "mbt2018-mean", "quality": 1, "state_dict": net.state_dict()}, f[name])

    f["rfm"] = str(root / "photo.rfm")
    assert cli.main(["compress", f["photo"], "-o", f["rfm"], "--checkpoint", f["tiny"], "--no-psnr"]) == 0
    with open(f["rfm"], "rb") as src:
        data = bytearray(src.read())
    f["rfm_cut"], f["rfm_flip"] = str(root / "cut.rfm"), str(root / "flip.rfm")
    with open(f["rfm_cut"], "wb") as out:
        out.write(data[: len(data) * 2 // 3])
    data[len(data) // 2] ^= 0x10
    with open(f["rfm_flip"], "wb") as out:
        out.write(data)

    for name, h, w in (("train", 64, 80), ("trainbad", 64, 80)):
        f[name] = str(root / name)
        os.mkdir(f[name])
        write_images(root / name, 3, h, w)
    with open(os.path.join(f["trainbad"], "x.png"), "w") as out:  # named like an image, holds text
        out.write("not a PNG")

    for name, content in (("notjson", "{'results': oops"),
                          ("list", json.dumps([1, 2, 3])),
                          ("nopsnr", json.dumps({"name": "x", "results": {"bpp": [0.1, 0.2]}})),
                          ("strings", json.dumps({"name": "x", "results": {"bpp": ["a", "b"], "psnr-rgb": [30, 31]}})),
                          ("short", json.dumps({"name": "x", "results": {"bpp": [0.1, 0.2], "psnr-rgb": [30]}}))):
        f[f"json_{name}"] = str(root / f"{name}.json")
        with open(f[f"json_{name}"], "w") as out:
            out.write(content)

    f["readonly"] = str(root / "readonly")
    os.mkdir(f["readonly"])
    os.chmod(f["readonly"], 0o555)
    yield f
    os.chmod(f["readonly"], 0o755)


def _read_only_is_writable():
    """Root writes into a read-only folder anyway: the row is skipped there."""
    return os.geteuid() == 0


COMPRESS = "compress {photo} -o {out}/a.rfm"
DECOMPRESS = "decompress {rfm} -o {out}/d.png --checkpoint {tiny}"
TRAIN = "train --model mbt2018-mean --quality 1 --data {train} --out {out}/run --patch 64 --channels 8,12"
SHIPPED = "--model mbt2018-mean-small --quality 1"

# (argv, regular expression the error line must match (case-insensitive)); {name} -> files[name],
# {out} -> the test's own empty folder.
ROWS = [
    # checkpoints that are not what they claim, or not checkpoints at all
    pytest.param(COMPRESS + " --model mbt2018-mean --checkpoint {factorized}", "bmshj2018-factorized",
                 id="checkpoint-of-another-architecture"),
    pytest.param("bitmap {photo} -o {out}/b.png --model mbt2018-mean --checkpoint {factorized}",
                 "bmshj2018-factorized", id="bitmap-checkpoint-of-another-architecture"),
    pytest.param("decompress {rfm} -o {out}/d.png --checkpoint {factorized}", "bmshj2018-factorized",
                 id="decompress-checkpoint-of-another-architecture"),
    pytest.param("decompress {rfm} -o {out}/d.png --checkpoint {tiny2}", "other weights",
                 id="decompress-checkpoint-with-other-weights"),
    pytest.param(COMPRESS + " --checkpoint {notes}", "not a PyTorch checkpoint", id="checkpoint-text-file"),
    pytest.param(COMPRESS + " --checkpoint {photo}", "not a PyTorch checkpoint", id="checkpoint-png"),
    pytest.param(COMPRESS + " --checkpoint {empty_pth}", "empty.pth.*(empty|not a PyTorch checkpoint)",
                 id="checkpoint-empty-file"),
    pytest.param(COMPRESS + " --checkpoint {archive}", "not a PyTorch checkpoint", id="checkpoint-zip-not-torch"),
    pytest.param(COMPRESS + " --checkpoint {evil}", "not a plain checkpoint", id="checkpoint-pickle-payload"),
    pytest.param(COMPRESS + " --checkpoint {images}", "is a directory", id="checkpoint-directory"),
    pytest.param(COMPRESS + " --checkpoint {out}/nope.pth", "no such checkpoint", id="checkpoint-missing"),
    pytest.param(COMPRESS + " --model mbt2018-mean --checkpoint {tensor}", "not a .*checkpoint|state dict",
                 id="checkpoint-holding-a-tensor"),
    pytest.param(COMPRESS + " --model mbt2018-mean --checkpoint {list}", "not a .*checkpoint|state dict",
                 id="checkpoint-holding-a-list"),
    pytest.param(COMPRESS + " --model mbt2018-mean --checkpoint {nodict}", "not a mbt2018-mean|state dict",
                 id="checkpoint-holding-text"),
    pytest.param("eval {images} --checkpoint {notes} --quiet", "not a PyTorch checkpoint", id="eval-checkpoint-text"),
    pytest.param("convert {notes} -o {out}/c.pth", "not a PyTorch checkpoint", id="convert-text-file"),
    pytest.param("convert {images} -o {out}/c.pth", "is a directory", id="convert-directory"),
    pytest.param("convert {evil} -o {out}/c.pth", "not a plain checkpoint", id="convert-pickle-payload"),
    pytest.param(TRAIN + " --init {notes}", "not a PyTorch checkpoint", id="train-init-text-file"),
    pytest.param("demo --checkpoint {notes} --output-dir {out}/demo", "not a PyTorch checkpoint",
                 id="demo-checkpoint-text-file"),
    # images that are not images, and places that are not files
    pytest.param("compress {out}/nope.png -o {out}/a.rfm --checkpoint {tiny}", "nope.png", id="input-missing"),
    pytest.param("compress {images} -o {out}/a.rfm --checkpoint {tiny}", r"a\.rfm is none.*a\.rfm/ to create it",
                 id="input-directory"),
    pytest.param("compress {photo} {other} -o {notes} --checkpoint {tiny}", "notes.txt is a file.*FOLDER/",
                 id="several-inputs-output-file"),
    pytest.param("compress {photo} {photo} -o {out}/ --checkpoint {tiny}", "would both be written",
                 id="several-inputs-one-output"),
    pytest.param("compress {nothing} -o {out}/ --checkpoint {tiny}", "no .png.* files in .*nothing.*--recursive",
                 id="input-folder-without-images"),
    pytest.param(COMPRESS + " --checkpoint {tiny} --device gpu0", "--device gpu0", id="compress-device-unknown"),
    pytest.param(COMPRESS + " --checkpoint {tiny} --device cuda", "--device cuda", id="compress-device-cuda-without-cuda",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
    pytest.param("compress {empty} -o {out}/a.rfm --checkpoint {tiny}", "empty.png", id="input-empty-file"),
    pytest.param("compress {notes} -o {out}/a.rfm --checkpoint {tiny}", "notes.txt", id="input-text-file"),
    pytest.param("compress {truncated} -o {out}/a.rfm --checkpoint {tiny}", "truncated.png", id="input-truncated-png"),
    pytest.param("bitmap {truncated} -o {out}/b.png --checkpoint {tiny}", "truncated.png",
                 id="bitmap-input-truncated-png"),
    pytest.param("demo --image {notes} --output-dir {out}/demo", "notes.txt", id="demo-image-text-file"),
    pytest.param("compress {photo} -o {notes}/a.rfm --checkpoint {tiny}", "not a folder",
                 id="output-under-a-file"),
    pytest.param("compress {photo} -o {readonly}/a.rfm --checkpoint {tiny}", "not writable|permission",
                 id="output-in-read-only-folder",
                 marks=pytest.mark.skipif(_read_only_is_writable(), reason="root writes into read-only folders")),
    pytest.param("decompress {out}/nope.rfm -o {out}/d.png", "nope.rfm", id="rfm-missing"),
    pytest.param("decompress {images} -o {out}/", "no .rfm files in .*images", id="rfm-directory"),
    pytest.param("decompress {rfm} {rfm_cut} -o {out}/ --original {photo}", "--original goes with a single",
                 id="decompress-several-with-original"),
    pytest.param("decompress {empty_rfm} -o {out}/d.png", "not a ransform .rfm file", id="rfm-empty"),
    pytest.param("decompress {photo} -o {out}/d.png", "not a ransform .rfm file", id="rfm-png"),
    pytest.param("decompress {rfm_cut} -o {out}/d.png", "truncated|damaged", id="rfm-truncated"),
    pytest.param("decompress {rfm_flip} -o {out}/d.png", "damaged|corrupted|altered", id="rfm-flipped-byte"),
    pytest.param("decompress {rfm} -o {out}/d.png", "--checkpoint", id="rfm-of-a-custom-model-no-checkpoint"),
    pytest.param(DECOMPRESS + " --original {other}", "size", id="original-of-another-size"),
    pytest.param(DECOMPRESS + " --original {out}/nope.png", "nope.png", id="original-missing"),
    # models and qualities
    pytest.param(COMPRESS + " --model mbt2018-mean-small --quality 0", "--quality.*at least 1", id="quality-0"),
    pytest.param(COMPRESS + " --model mbt2018-mean-small --quality 99", "quality 99", id="quality-99"),
    pytest.param(COMPRESS + " --model mbt2018-mean-small --quality high", "--quality.*whole number",
                 id="quality-not-a-number"),
    pytest.param(COMPRESS + " --model foo --quality 1", "foo", id="compress-model-foo"),
    pytest.param(COMPRESS + " --model foo --checkpoint {tiny}", "unknown model 'foo'",
                 id="compress-model-foo-with-checkpoint"),
    pytest.param(COMPRESS + " --quality 1", "--model", id="model-missing"),
    pytest.param("compress {photo} --model", "--model.*expected one argument", id="model-without-value"),
    pytest.param("bitmap {photo} -o {out}/b.png --model mbt2018-mean-small --quality 0", "--quality",
                 id="bitmap-quality-0"),
    # eval, bench-codecs, plot
    pytest.param("eval {images} --checkpoint {tiny},{tiny2} --quality 1 --quiet", "2 checkpoints for 1 qualit",
                 id="eval-checkpoint-quality-count-mismatch"),
    pytest.param("eval {nothing} " + SHIPPED + " --quiet", "no images", id="eval-empty-folder"),
    pytest.param("eval {out}/nope " + SHIPPED + " --quiet", "no such directory", id="eval-missing-folder"),
    pytest.param("eval {photo} " + SHIPPED + " --quiet", "not a folder", id="eval-file-instead-of-folder"),
    pytest.param("eval {images} --model mbt2018-mean-small --quality 1,x --quiet", "--quality.*whole number",
                 id="eval-quality-list-junk"),
    pytest.param("eval {images} --model mbt2018-mean-small --quality 0 --quiet", "--quality.*at least 1",
                 id="eval-quality-0"),
    pytest.param("eval {images} --quiet", "--quality|--checkpoint", id="eval-no-model"),
    pytest.param("eval {images} " + SHIPPED + " --quiet -o {out}", "is a directory", id="eval-output-directory"),
    pytest.param("bench-codecs {images} --codecs foo -o {out}/r --quiet", "unknown codec 'foo'",
                 id="bench-codecs-foo"),
    pytest.param("bench-codecs {nothing} --codecs jpeg -o {out}/r --quiet", "no images",
                 id="bench-codecs-empty-folder"),
    pytest.param("bench-codecs {images} --codecs jpeg -o {notes} --quiet", "not a folder",
                 id="bench-codecs-output-is-a-file"),
    pytest.param("plot {json_notjson} -o {out}/rd.png", "notjson.json.*JSON", id="plot-not-json"),
    pytest.param("plot {photo} -o {out}/rd.png", "photo.png", id="plot-png"),
    pytest.param("plot {json_list} -o {out}/rd.png", "not a results file", id="plot-wrong-schema-list"),
    pytest.param("plot {json_nopsnr} -o {out}/rd.png", "psnr-rgb", id="plot-wrong-schema-no-psnr"),
    pytest.param("plot {json_strings} -o {out}/rd.png", "numbers", id="plot-wrong-schema-strings"),
    pytest.param("plot {json_short} -o {out}/rd.png", "psnr-rgb", id="plot-wrong-schema-lengths"),
    pytest.param("plot {out}/nope.json -o {out}/rd.png", "nope.json", id="plot-missing-file"),
    pytest.param("plot {images} -o {out}/rd.png", "is a directory", id="plot-directory"),
    # train
    pytest.param(TRAIN.replace("mbt2018-mean", "foo"), "unknown model 'foo'", id="train-model-foo"),
    pytest.param(TRAIN.replace("--quality 1", "--quality 99"), "qualities 1..8", id="train-quality-99"),
    pytest.param(TRAIN.replace("--quality 1", "--quality 0"), "--quality.*at least 1", id="train-quality-0"),
    pytest.param(TRAIN.replace("{train}", "{trainbad}"), "x.png", id="train-data-non-image-named-png"),
    pytest.param(TRAIN.replace("{train}", "{nothing}"), "no images", id="train-data-without-images"),
    pytest.param(TRAIN.replace("{train}", "{out}/nope"), "no such directory", id="train-data-missing"),
    pytest.param(TRAIN.replace("--patch 64", "--patch 128"), "smaller than", id="train-images-smaller-than-patch"),
    pytest.param(TRAIN.replace("--patch 64", "--patch 100"), "multiple of 64", id="train-patch-not-a-multiple"),
    pytest.param(TRAIN + " --device cuda", "cuda", id="train-device-cuda-without-cuda",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
    pytest.param(TRAIN + " --device gpu0", "device", id="train-device-unknown"),
    pytest.param(TRAIN + " --epochs -1", "--epochs.*at least 1", id="train-epochs-negative"),
    pytest.param(TRAIN + " --batch-size 0", "--batch-size.*at least 1", id="train-batch-size-0"),
    pytest.param(TRAIN + " --batch-size 1000", "no batch", id="train-batch-larger-than-the-data"),
    pytest.param(TRAIN.replace("--patch 64", "--patch 0"), "--patch.*at least 1", id="train-patch-0"),
    pytest.param(TRAIN + " --crops-per-image 0", "--crops-per-image", id="train-crops-0"),
    pytest.param(TRAIN + " --lr -0.001", "--lr.*above 0", id="train-lr-negative"),
    pytest.param(TRAIN + " --lr nan", "--lr", id="train-lr-nan"),
    pytest.param(TRAIN.replace("8,12", "8,x"), "--channels", id="train-channels-junk"),
    pytest.param(TRAIN.replace("{out}/run", "{notes}"), "notes.txt.*not a folder", id="train-out-is-a-file"),
    # the coder bench and the command line itself
    pytest.param("bench --threads -5", "--threads.*at least 0", id="bench-threads-negative"),
    pytest.param("", "required", id="no-command"),
    pytest.param("frobnicate", "invalid choice", id="unknown-command"),
    pytest.param("compress", "required", id="compress-without-image"),
    pytest.param("compress {photo} --qualty 1", "unrecognized arguments", id="misspelt-option"),
]


def run_main(argv, capsys):
    """cli.main in process: (exit status, stderr). argparse's usage errors exit through SystemExit."""
    try:
        status = cli.main(argv)
    except SystemExit as exc:
        status = exc.code
    return status, capsys.readouterr().err


def expand(template, files, out):
    return [part.format(out=out, **files) for part in template.split()]


def assert_one_line(status, err, pattern):
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2, (status, err)
    assert len(lines) == 1, err
    assert lines[0].startswith("ransform"), err
    assert "RANSFORM_DEBUG" not in lines[0], f"an internal error, not a diagnosis: {err}"
    assert re.search(pattern, lines[0], re.IGNORECASE), f"{pattern!r} not in {lines[0]!r}"


@pytest.mark.parametrize("template, pattern", ROWS)
def test_careless_invocation(template, pattern, files, tmp_path, capsys):
    status, err = run_main(expand(template, files, tmp_path), capsys)
    assert_one_line(status, err, pattern)
    assert not os.path.exists(files["marker"]), "the pickle payload ran"


def _child(args, **kwargs):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("RANSFORM_DEBUG", None)
    return subprocess.Popen([sys.executable, "-m", "ransform.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kwargs)


@pytest.mark.parametrize("row", ["input-directory", "checkpoint-pickle-payload", "quality-0", "rfm-flipped-byte"])
def test_a_real_process_prints_one_line(row, files, tmp_path):
    """What a user sees: nothing else on stderr (warnings, messages at exit), the exit status."""
    template, pattern = next(p.values for p in ROWS if p.id == row)
    child = _child(expand(template, files, tmp_path))
    _, err = child.communicate(timeout=120)
    assert_one_line(child.returncode, err, pattern)
    assert not os.path.exists(files["marker"])


@pytest.mark.parametrize("args", [["compress", "{missing}.png", "--model", "mbt2018-mean-small", "--quality", "1"],
                                  ["compress", "{folder}", "--model", "mbt2018-mean-small", "--quality", "1"],
                                  ["decompress", "{missing}.rfm"],
                                  ["decompress", "{folder}"]])
def test_a_missing_input_is_refused_before_torch_loads(args, tmp_path):
    """The commonest mistakes answer at once: torch (about a second to import) is not loaded."""
    args = [a.format(missing=tmp_path / "nope", folder=tmp_path) for a in args]
    assert str(tmp_path) in _refused_without_torch(args)


def _refused_without_torch(args) -> str:
    """The one line of a CLI call that exits 2 without importing torch."""
    probe = ("import sys\nfrom ransform import cli\nstatus = cli.main(sys.argv[1:])\n"
             "print(status, 'torch' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=120)
    assert run.stdout.split() == ["2", "False"], run.stdout + run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    return run.stderr


@pytest.mark.parametrize("args,message", [
    (["compress", "{image}"], "give --model and --quality"),
    (["compress", "{image}", "--model", "nope", "--quality", "3"], "no shipped weights for nope quality 3"),
    (["compress", "{image}", "--model", "mbt2018-mean-small", "--quality", "99"], "quality 99"),
    (["compress", "{image}", "--checkpoint", "{missing}.pt"], "no such checkpoint"),
    (["compress", "{image}", "--checkpoint", "{folder}"], "is a directory, not a checkpoint"),
    (["compress", "{image}", "--model", "compressai/mbt2018-mean", "--quality", "9"], "qualities 1..8, got 9"),
    (["decompress", "{image}"], "not a ransform .rfm file"),
    (["eval", "{folder}", "--model", "nope", "--quality", "1"], "no shipped weights for nope"),
    (["eval", "{folder}", "--model", "mbt2018-mean-small"], "give --quality"),
    (["bitmap", "{image}", "-o", "{folder}/bits.png", "--model", "nope", "--quality", "1"], "no shipped weights"),
])
def test_a_wrong_model_choice_is_refused_before_torch_loads(args, message, tmp_path):
    image = tmp_path / "photo.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n")  # read only by the commands that get past the checks
    args = [a.format(image=image, missing=tmp_path / "nope", folder=tmp_path) for a in args]
    assert message in _refused_without_torch(args)


def test_ctrl_c_is_one_line(tmp_path):
    folder = KODAK_IMAGES[0].parent if KODAK_IMAGES else tmp_path
    if not KODAK_IMAGES:
        write_images(tmp_path, 24, 512, 768)
    child = _child(["eval", str(folder), "--model", "mbt2018-mean-small", "--quality", "1", "--quiet"])
    time.sleep(3)
    assert child.poll() is None, "eval ended before Ctrl-C"
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert_one_line(child.returncode, err, r"^ransform eval: interrupted$")


def test_a_closed_pipe_is_one_line():
    """`ransform bench | head -1`: the reader leaves after the first line."""
    child = subprocess.Popen([sys.executable, "-u", "-m", "ransform.cli", "bench"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    assert child.stdout.readline().startswith("table:")
    child.stdout.close()
    err = child.stderr.read()
    assert_one_line(child.wait(timeout=120), err, "broken pipe")


def test_a_read_only_folder_is_named(files, tmp_path, monkeypatch, capsys):
    """The read-only row, where root may write anywhere: the folder as the file system would
    see it for another user, refused before the work; and a write that fails anyway names
    the file asked for, not the temporary one next to it."""
    import tempfile

    from ransform import files as files_module

    readonly = tmp_path / "ro"
    monkeypatch.setattr(files_module.os, "access", lambda path, mode: os.path.realpath(path) != str(readonly))
    readonly.mkdir()
    argv = ["compress", files["photo"], "-o", str(readonly / "a.rfm"), "--checkpoint", files["tiny"]]
    assert_one_line(*run_main(argv, capsys), "ro is not writable")
    monkeypatch.undo()

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied", os.path.join(kwargs["dir"], ".a.rfm.x.tmp"))

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    assert_one_line(*run_main(argv, capsys), r"ro/a\.rfm: Permission denied$")


def test_ransform_debug_shows_the_traceback(files, tmp_path, monkeypatch):
    monkeypatch.setenv("RANSFORM_DEBUG", "1")
    with pytest.raises(FileNotFoundError):
        cli.main(["decompress", str(tmp_path / "nope.rfm"), "-o", str(tmp_path / "d.png")])


def test_a_bug_is_one_line_that_asks_for_the_traceback(monkeypatch, capsys):
    def bench(args):
        raise TypeError("a bug\nover two lines")

    monkeypatch.setattr(cli, "bench", bench)
    assert cli.main(["bench"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("ransform bench: internal error: TypeError: a bug over two lines")
    assert "RANSFORM_DEBUG=1" in err


def test_the_table_is_large_enough():
    assert len(ROWS) >= 45
    assert len({p.id for p in ROWS}) == len(ROWS)
