"""The .rfm container and the compress / decompress commands: exact round trips to the
model's own reconstruction, and clear errors for damaged, truncated or foreign files."""
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("PIL")

from ransform import cli, codec, models  # noqa: E402
from ransform.container import CompressedImage, ContainerError, pack, unpack  # noqa: E402
from ransform.image import pad  # noqa: E402


def item(**kw):
    base = dict(model="mbt2018-mean", quality=3, weights=bytes(range(8)), height=70, width=45,
                padding=(9, 10, 29, 29), latent_shape=(2, 1), streams=[b"abc", b"", bytes(300)])
    base.update(kw)
    return CompressedImage(**base)


def test_pack_unpack_round_trip():
    assert unpack(pack(item())) == item()
    assert unpack(pack(item(model="x" * 255, quality=0, height=2**40))) == item(model="x" * 255, quality=0,
                                                                               height=2**40)


@pytest.mark.parametrize("damage,message", [
    (lambda d: b"PNG" + d[3:], "wrong magic"),
    (lambda d: d[:4] + bytes([9]) + d[5:], "unsupported .rfm version 9"),
    (lambda d: d[:-1], "checksum mismatch"),
    (lambda d: d[:20], "checksum mismatch"),
    (lambda d: d[:6], "truncated"),
    (lambda d: d[:40] + bytes([d[40] ^ 1]) + d[41:], "checksum mismatch"),
    (lambda d: b"", "wrong magic"),
])
def test_damaged_containers_raise(damage, message):
    with pytest.raises(ContainerError, match=message):
        unpack(damage(pack(item())))


def test_every_truncation_and_bit_flip_is_refused():
    data = pack(item())
    for n in range(len(data)):
        with pytest.raises(ContainerError):
            unpack(data[:n])
    for i in range(len(data)):
        for bit in (0, 3, 7):
            flipped = bytearray(data)
            flipped[i] ^= 1 << bit
            with pytest.raises(ContainerError):
                unpack(bytes(flipped))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A small random-weight model saved the way `ransform train` saves it."""
    torch.manual_seed(0)
    net = models.MeanScaleHyperprior(16, 24)
    with torch.no_grad():
        net.g_a[-1].weight.mul_(8)
    path = tmp_path_factory.mktemp("ckpt") / "model.pth.tar"
    torch.save({"model": "mbt2018-mean", "quality": 2, "state_dict": net.state_dict()}, path)
    return path


def test_codec_round_trip_equals_forward(checkpoint):
    model = codec.load_model(checkpoint=str(checkpoint))
    assert (model.name, model.quality) == ("mbt2018-mean", 2)
    x = torch.rand(3, 70, 45)
    data = codec.compress(model, x)
    x_hat = codec.decompress(model, data)
    padded, padding = pad(x[None], 64)
    with torch.no_grad():
        expected = model.net(padded)["x_hat"].clamp(0, 1)[..., padding[2]:padding[2] + 70, padding[0]:padding[0] + 45]
    assert x_hat.shape == (3, 70, 45)
    assert torch.equal(x_hat, expected[0])


def test_other_weights_are_refused(checkpoint, tmp_path):
    model = codec.load_model(checkpoint=str(checkpoint))
    data = codec.compress(model, torch.rand(3, 64, 64))
    torch.manual_seed(1)
    other = tmp_path / "other.pth.tar"
    torch.save({"model": "mbt2018-mean", "quality": 2, "state_dict": models.MeanScaleHyperprior(16, 24).state_dict()},
               other)
    with pytest.raises(ContainerError, match="other weights"):
        codec.decompress(codec.load_model(checkpoint=str(other)), data)


def test_cli_compress_decompress(checkpoint, tmp_path, capsys):
    x = torch.rand(3, 50, 70)
    src = tmp_path / "in.png"
    codec.write_image(x, src)
    rfm, png = tmp_path / "in.rfm", tmp_path / "out.png"
    assert cli.main(["compress", str(src), "-o", str(rfm), "--checkpoint", str(checkpoint)]) == 0
    assert "bpp" in capsys.readouterr().out
    assert cli.main(["decompress", str(rfm), "-o", str(png), "--checkpoint", str(checkpoint),
                     "--original", str(src)]) == 0
    out = capsys.readouterr().out
    assert "PSNR" in out and "70x50" in out
    model = codec.load_model(checkpoint=str(checkpoint))
    expected = codec.to_uint8(codec.decompress(model, rfm.read_bytes()))
    assert torch.equal(codec.to_uint8(codec.read_image(png)), expected)
    # A damaged file: one clear line, exit status 2, no traceback.
    rfm.write_bytes(rfm.read_bytes()[:-10])
    assert cli.main(["decompress", str(rfm), "-o", str(tmp_path / "damaged.png"), "--checkpoint",
                     str(checkpoint)]) == 2
    assert "checksum mismatch" in capsys.readouterr().err
    assert not (tmp_path / "damaged.png").exists()
    assert cli.main(["compress", str(tmp_path / "missing.png"), "--checkpoint", str(checkpoint)]) == 2
    assert "cannot read image" in capsys.readouterr().err
    assert cli.main(["compress", str(src), "--model", "mbt2018-mean", "--quality", "3"]) == 2
    assert "no shipped weights" in capsys.readouterr().err


def test_version_2_records_the_coding_mode_and_version_1_files_still_read():
    for portable in (False, True):
        data = pack(item(portable=portable))
        assert data[4:6] == bytes([2, int(portable)])
        assert unpack(data).portable is portable
    v2 = pack(item())
    body = v2[:4] + bytes([1]) + v2[6:-4]   # version 1: no flags byte
    import struct
    import zlib
    v1 = body + struct.pack("<I", zlib.crc32(body))
    assert unpack(v1) == item(portable=False)


def test_unknown_flags_are_refused():
    import struct
    import zlib
    body = pack(item())[:-4]
    body = body[:5] + bytes([0x82]) + body[6:]
    with pytest.raises(ContainerError, match="unsupported .rfm flags 0x82"):
        unpack(body + struct.pack("<I", zlib.crc32(body)))


@pytest.fixture(scope="module")
def portable_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    net = models.MeanScaleHyperprior(16, 24).eval()
    net.update()
    float_path = tmp_path_factory.mktemp("ckpt") / "float.pth.tar"
    torch.save({"model": "mbt2018-mean", "quality": 2, "state_dict": net.state_dict()}, float_path)
    net.make_portable([torch.rand(3, 64, 64)])
    path = float_path.with_name("portable.pth.tar")
    torch.save({"model": "mbt2018-mean", "quality": 2, "state_dict": net.state_dict()}, path)
    return float_path, path


def test_portable_is_the_default_and_float_files_keep_their_fingerprint(portable_checkpoint):
    float_path, portable_path = portable_checkpoint
    converted, original = codec.load_model(checkpoint=str(portable_path)), codec.load_model(checkpoint=str(float_path))
    x = torch.rand(3, 40, 70)
    data = codec.compress(converted, x)
    assert unpack(data).portable
    float_data = codec.compress(converted, x, portable=False)
    assert not unpack(float_data).portable
    # a float file made before the conversion decodes with the converted model, and back
    old = codec.compress(original, x)
    assert not unpack(old).portable and unpack(old).weights == unpack(float_data).weights
    assert torch.equal(codec.decompress(converted, old), codec.decompress(original, old))
    assert torch.equal(codec.decompress(original, float_data), codec.decompress(converted, float_data))
    with pytest.raises(ContainerError, match="portable entropy parameters, and this mbt2018-mean has none"):
        codec.decompress(original, data)


def test_a_float_file_that_fails_says_why(portable_checkpoint):
    float_path, _ = portable_checkpoint
    model = codec.load_model(checkpoint=str(float_path))
    with torch.no_grad():
        model.net.g_a[-1].weight.mul_(5)   # many symbols, so wrong rows cannot go unnoticed
    data = codec.compress(model, torch.rand(3, 64, 128))
    # another machine: the float hyper-synthesis gives slightly different scales
    model.net.h_s.register_forward_hook(lambda m, args, out: out + 2.0)
    with pytest.raises(codec.FloatModeError, match="most likely written on another machine or with another thread"):
        codec.decompress(model, data)


def _with_sizes(data, height, width, latent):
    """The file with another image size (padding to match) and latent shape, CRC fixed."""
    import struct
    import zlib
    from ransform.image import padding_for
    item = unpack(data)
    item.height, item.width = height, width
    item.padding = padding_for(height, width, 64)
    item.latent_shape = latent
    body = pack(item)[:-4]
    return body + struct.pack("<I", zlib.crc32(body))


def test_a_decompression_bomb_is_refused_before_decoding(checkpoint):
    import time
    model = codec.load_model(checkpoint=str(checkpoint))
    data = codec.compress(model, torch.rand(3, 64, 64))
    for height, width, latent, message in [
            (64, 64, (4096, 4096), "latent shape"),                          # small image, huge latent
            (4096 * 64, 4096 * 64, (4096, 4096), "more than the limit"),      # huge image, consistent
            (64, 64, (2, 1), "latent shape")]:
        start = time.perf_counter()
        with pytest.raises(ContainerError, match=message):
            codec.decompress(model, _with_sizes(data, height, width, latent))
        assert time.perf_counter() - start < 1.0
    with pytest.raises(ContainerError, match="limit of 1000 pixels"):
        codec.decompress(model, data, max_pixels=1000)
