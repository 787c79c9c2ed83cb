"""CompressAI's published weights: download with hash check, conversion cache, offline use,
and one-line failures, against a server on 127.0.0.1 (tests never need the internet)."""
import functools
import hashlib
import http.server
import pathlib
import shutil
import threading

import pytest

torch = pytest.importorskip("torch")

from ransform import cli, published, zoo  # noqa: E402
from ransform.files import load_checkpoint  # noqa: E402

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "compressai" / "mbt2018-mean.pt"
PHOTO = pathlib.Path(__file__).resolve().parents[1] / "python" / "ransform" / "data" / "coffee.png"


class Server:
    """Serves a folder over HTTP on 127.0.0.1 and counts the requests."""

    def __init__(self, folder: pathlib.Path):
        self.requests = 0
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests += 1
                super().do_GET()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                     functools.partial(Handler, directory=str(folder)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/models"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def published_mbt(tmp_path, monkeypatch):
    """CompressAI's mbt2018-mean fixture checkpoint, published as quality 1 (its hash in the
    table), a server for it, and a fresh torch hub cache."""
    ref = torch.load(FIXTURE, weights_only=True)
    folder = tmp_path / "site" / "models"
    folder.mkdir(parents=True)
    staging = tmp_path / "checkpoint.pth.tar"
    torch.save(ref["state_dict"], staging)
    digest = hashlib.sha256(staging.read_bytes()).hexdigest()[:8]
    monkeypatch.setitem(published.FILES, ("mbt2018-mean", "mse"), ("mbt2018-mean", digest))
    shutil.copy(staging, folder / published.file_name("mbt2018-mean", "mse", 1))
    server = Server(folder.parent)
    monkeypatch.setenv(published.URL_ENV, server.url)
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    yield ref, server, folder
    server.close()


def test_download_check_convert_and_cache(published_mbt):
    ref, server, _ = published_mbt
    net = zoo.load("mbt2018-mean", 1, pretrained="compressai", progress=False)
    assert net.is_portable  # calibrated once at conversion: its files decode on any machine
    net.coding_mode = "float"  # CompressAI's networks, to compare with CompressAI's output
    with torch.no_grad():
        out = net(ref["x"])
    net.coding_mode = "portable"
    assert torch.allclose(out["x_hat"], ref["x_hat"], atol=1e-5, rtol=1e-4)
    downloaded = published.cache_dir() / published.file_name("mbt2018-mean", "mse", 1)
    assert downloaded.is_file() and server.requests == 1
    assert not list(downloaded.parent.glob("*.partial"))
    converted = list((downloaded.parent / "ransform").glob("*.ransform.pth"))
    assert len(converted) == 1 and load_checkpoint(converted[0])["model"] == "mbt2018-mean"
    again = zoo.load("compressai/mbt2018-mean", 1, progress=False)  # the name files record
    assert server.requests == 1  # from the cache
    for key, value in net.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key


def test_cache_works_offline_and_a_missing_network_is_one_line(published_mbt, capsys):
    _, server, _ = published_mbt
    zoo.load("mbt2018-mean", 1, pretrained="compressai", progress=False)
    server.close()
    zoo.load("mbt2018-mean", 1, pretrained="compressai", progress=False)  # nothing to fetch
    shutil.rmtree(published.cache_dir())
    with pytest.raises(published.DownloadError) as info:
        zoo.load("mbt2018-mean", 1, pretrained="compressai", progress=False)
    message = str(info.value)
    assert published.url("mbt2018-mean", "mse", 1) in message
    assert str(published.cache_dir() / published.file_name("mbt2018-mean", "mse", 1)) in message
    status = cli.main(["compress", str(PHOTO), "-o", str(published.cache_dir().parent / "x.rfm"),
                       "--model", "mbt2018-mean", "--quality", "1", "--pretrained", "compressai"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and err[0].startswith("ransform compress: error: could not download")


def test_a_file_that_is_not_the_published_one_is_refused_and_not_kept(published_mbt):
    _, server, folder = published_mbt
    (folder / published.file_name("mbt2018-mean", "mse", 1)).write_bytes(b"not the checkpoint")
    with pytest.raises(published.DownloadError, match="not the published"):
        zoo.load("mbt2018-mean", 1, pretrained="compressai", progress=False)
    assert not any(published.cache_dir().iterdir())
    # a damaged file in the cache is named, not used
    target = published.cache_dir() / published.file_name("mbt2018-mean", "mse", 1)
    target.write_bytes(b"damaged")
    with pytest.raises(published.DownloadError, match="delete it"):
        zoo.load("mbt2018-mean", 1, pretrained="compressai", progress=False)


def test_cli_compress_and_decompress_with_published_weights(published_mbt, tmp_path, capsys):
    out = tmp_path / "coffee.rfm"
    assert cli.main(["compress", str(PHOTO), "-o", str(out), "--model", "mbt2018-mean", "--quality", "1",
                     "--pretrained", "compressai", "--no-psnr"]) == 0
    assert b"compressai/mbt2018-mean" in out.read_bytes()[:64]
    assert "portable" in capsys.readouterr().out
    assert cli.main(["decompress", str(out), "-o", str(tmp_path / "coffee.png")]) == 0  # the file names its weights
    assert (tmp_path / "coffee.png").is_file()


@pytest.mark.parametrize("args, message", [
    (["--model", "mbt2018-mean", "--quality", "9"], "qualities 1..8"),
    (["--model", "bmshj2018-factorized-relu", "--quality", "1"], "publishes no mse weights"),
    (["--quality", "1"], "needs --model"),
    (["--model", "mbt2018-mean", "--quality", "1", "--checkpoint", "x.pth"], "not both"),
])
def test_cli_refuses_what_compressai_does_not_publish(args, message, tmp_path, capsys):
    status = cli.main(["compress", str(PHOTO), "-o", str(tmp_path / "x.rfm"), "--pretrained", "compressai", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and message in err[0], err


def test_every_published_name_resolves():
    for arch, metric, quality in published.available():
        assert published.parse(published.name(arch, metric)) == (arch, metric)
        assert zoo.architecture(published.name(arch, metric)) == arch
        assert published.url(arch, metric, quality).endswith(".pth.tar")
    for quality in (1, 8):  # one file for every rate of a variable-rate model
        assert published.file_name("mbt2018-mean-vbr", "mse", quality) == "mbt2018-mean-mse-vbr-45d095e9.pth.tar"
    with pytest.raises(ValueError, match="qualities 1..8"):
        published.file_name("mbt2018-mean-vbr", "mse", 9)
    assert len(published.available()) == 104  # 8 qualities x 8, 6 x 4 (cheng2020), 8 rates x 2 (one file each)

