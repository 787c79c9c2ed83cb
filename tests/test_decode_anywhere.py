"""Decode anywhere: a file written with the shipped models decodes to the same latent under
every decoder setting that differs the way other machines do (thread count, oneDNN, the
integer kernels' instruction set, the PyTorch reference backend, memory format), on every
Kodak image at every shipped quality; the pixels then differ by at most one level on at most
0.1 % of them (only the float synthesis transform may drift)."""
import contextlib
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("PIL")
pytestmark = pytest.mark.filterwarnings("ignore:TF32 acceleration")

from conftest import KODAK_IMAGES, decode_latent  # noqa: E402
from ransform import codec, zoo  # noqa: E402
from ransform.container import unpack  # noqa: E402
from ransform.portable import set_backend  # noqa: E402
from ransform.portable.ops import native_kernels  # noqa: E402

QUALITIES = [q for name, q in zoo.shipped() if name == "mbt2018-mean-small"]


@contextlib.contextmanager
def decoder_setting(name):
    threads = torch.get_num_threads()
    try:
        if name == "1 thread":
            torch.set_num_threads(1)
        elif name.endswith(" kernels"):
            set_backend("native", name.split()[0].lower())
        elif name == "PyTorch reference":
            set_backend("reference")
        with torch.backends.mkldnn.flags(enabled=name != "oneDNN off"):
            yield
    finally:
        set_backend("auto")
        torch.set_num_threads(threads)


# the integer kernels other than the one this CPU picks by default stand in for other CPUs
SETTINGS = ["1 thread", "oneDNN off", "PyTorch reference"] + [
    f"{k.upper() if k != 'scalar' else k} kernels" for k in native_kernels()]


def assert_pixels_close(a, b, label):
    diff = (codec.to_uint8(a).int() - codec.to_uint8(b).int()).abs()
    assert diff.max() <= 1 and (diff > 0).float().mean() <= 0.001, label


def test_shipped_models_are_portable_and_keep_their_float_fingerprints():
    # the float fingerprints of the earlier (float-only) shipped files: their .rfm files still decode
    earlier = {1: "38dc6aa2cb8ab1e4", 2: "9692e5f8c137ba1d", 3: "e2139adff1788042"}
    for q in QUALITIES:
        model = codec.load_model("mbt2018-mean-small", q)
        assert model.net.coding_mode == "portable"
        assert model.fingerprint_for(False).hex() == earlier[q]


@pytest.mark.skipif(len(KODAK_IMAGES) != 24, reason="Kodak is not at ../shared/data/kodak")
@pytest.mark.parametrize("quality", QUALITIES)
def test_every_kodak_file_decodes_under_every_decoder_setting(quality):
    model = codec.load_model("mbt2018-mean-small", quality)
    torch.set_num_threads(2)
    for path in KODAK_IMAGES:
        data = codec.compress(model, codec.read_image(path))
        assert unpack(data).portable
        y_ref, x_ref = decode_latent(model, data)
        for setting in SETTINGS:
            with decoder_setting(setting):
                y, x_hat = decode_latent(model, data)
            assert torch.equal(y, y_ref), (path.name, setting)
            assert_pixels_close(x_hat, x_ref, (path.name, setting))


def _cli(args, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    return subprocess.run([sys.executable, "-m", "ransform.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.skipif(len(KODAK_IMAGES) != 24, reason="Kodak is not at ../shared/data/kodak")
def test_a_file_written_with_two_threads_decodes_in_a_one_thread_process(tmp_path):
    """The failure that started it: OMP_NUM_THREADS=2 compress, OMP_NUM_THREADS=1 decompress."""
    src = KODAK_IMAGES[4]  # kodim05
    rfm, png = tmp_path / "k.rfm", tmp_path / "k.png"
    written = _cli(["compress", str(src), "-o", str(rfm), "--model", "mbt2018-mean-small", "--quality", "2",
                    "--no-psnr"], threads=2)
    assert written.returncode == 0, written.stderr
    read = _cli(["decompress", str(rfm), "-o", str(png)], threads=1)
    assert read.returncode == 0, read.stderr
    model = codec.load_model("mbt2018-mean-small", 2)
    assert_pixels_close(codec.read_image(png), codec.decompress(model, rfm.read_bytes()), "1 vs 2 threads")
