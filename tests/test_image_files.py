"""Real image files through compress / decompress: 16-bit, gray, palette, alpha, EXIF rotation,
colour profiles. What a file holds comes back in the same form, or a note says what was not kept."""
import pathlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")

from ransform import cli, codec, imagefile  # noqa: E402

PHOTO = pathlib.Path(codec.__file__).parent / "data" / "coffee.png"
SHIPPED = ["--model", "mbt2018-mean-small", "--quality", "2"]


@pytest.fixture(scope="module")
def photo():
    """(H, W, 3) float64 in [0, 255]: a real photograph, cropped to keep the tests quick."""
    return np.asarray(Image.open(PHOTO), dtype=np.float64)[:192, :256]


def round_trip(tmp_path, source: pathlib.Path, capsys, output="out.png"):
    """compress then decompress through the CLI; returns (decoded PIL image, stderr of both)."""
    rfm = tmp_path / (source.name + ".rfm")
    assert cli.main(["compress", str(source), "-o", str(rfm), *SHIPPED]) == 0
    err = capsys.readouterr().err
    assert cli.main(["decompress", str(rfm), "-o", str(tmp_path / output), "--original", str(source)]) == 0
    captured = capsys.readouterr()
    return Image.open(tmp_path / output), err + captured.err, captured.out


def psnr(a, b, peak):
    return 10 * np.log10(peak ** 2 / np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))


def test_16_bit_gray_png_round_trips_as_16_bit_gray(tmp_path, capsys, photo):
    # Real content at 16 bits: the photo's luma scaled to 0..65535 with sub-8-bit detail.
    gray = photo.mean(2) * 257 + np.random.default_rng(0).uniform(-128, 128, photo.shape[:2])
    truth = gray.clip(0, 65535).round().astype(np.uint16)
    source = tmp_path / "gray16.png"
    Image.fromarray(truth).save(source)
    # Read scaled, not clipped (Pillow's convert("RGB") turned ~99 % of such an image white).
    picture = imagefile.read(source)
    assert picture.gray and picture.bits == 16
    assert torch.allclose(picture.pixels[0], torch.from_numpy(truth / 65535).float(), atol=1e-6)
    assert (picture.pixels == 1).float().mean() < 0.01
    decoded, err, out = round_trip(tmp_path, source, capsys)
    assert decoded.mode == "I;16" and decoded.size == (256, 192)
    samples = np.asarray(decoded)
    assert len(np.unique(samples)) > 1000  # 16-bit output, not 8-bit samples spread out
    measured = psnr(samples, truth, 65535)
    assert measured >= 20
    assert f"PSNR {measured:.2f} dB" in out  # the CLI measures against the real content too
    assert "note" not in err


def test_8_bit_gray_decodes_to_gray(tmp_path, capsys, photo):
    source = tmp_path / "gray.png"
    Image.fromarray(photo.mean(2).round().astype(np.uint8)).save(source)
    decoded, err, _ = round_trip(tmp_path, source, capsys)
    assert decoded.mode == "L" and "note" not in err
    assert psnr(decoded, Image.open(source), 255) > 25


def test_alpha_is_carried_exactly(tmp_path, capsys, photo):
    alpha = (np.arange(192 * 256).reshape(192, 256) * 7 % 256).astype(np.uint8)
    source = tmp_path / "rgba.png"
    Image.fromarray(np.dstack([photo.astype(np.uint8), alpha])).save(source)
    decoded, err, _ = round_trip(tmp_path, source, capsys)
    assert decoded.mode == "RGBA" and "note" not in err
    assert np.array_equal(np.asarray(decoded)[..., 3], alpha)
    assert psnr(np.asarray(decoded)[..., :3], photo.astype(np.uint8), 255) > 25
    # An opaque alpha channel holds nothing: no plane is stored, and the decode is plain RGB.
    Image.fromarray(np.dstack([photo.astype(np.uint8), np.full((192, 256), 255, np.uint8)])).save(source)
    assert imagefile.read(source).alpha is None
    # A format without transparency says so in one line.
    Image.fromarray(np.dstack([photo.astype(np.uint8), alpha])).save(source)
    rfm = tmp_path / "a.rfm"
    assert cli.main(["compress", str(source), "-o", str(rfm), "--no-psnr", *SHIPPED]) == 0
    assert cli.main(["decompress", str(rfm), "-o", str(tmp_path / "out.jpg")]) == 0
    assert capsys.readouterr().err.count("note: JPEG holds no transparency") == 1


def test_palette_with_transparency_keeps_its_colours_and_alpha(tmp_path, capsys, photo):
    source = tmp_path / "palette.png"
    im = Image.fromarray(photo.astype(np.uint8)).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    im.info["transparency"] = 0
    im.save(source, transparency=0)
    picture = imagefile.read(source)
    expected = np.asarray(Image.open(source).convert("RGBA"))
    assert np.array_equal(picture.samples, expected[..., :3])
    assert np.array_equal(picture.alpha, expected[..., 3])
    decoded, _, _ = round_trip(tmp_path, source, capsys)
    assert decoded.mode == "RGBA" and np.array_equal(np.asarray(decoded)[..., 3], expected[..., 3])


@pytest.mark.parametrize("orientation,turn", [(3, Image.Transpose.ROTATE_180), (6, Image.Transpose.ROTATE_270),
                                              (8, Image.Transpose.ROTATE_90)])
def test_exif_rotated_photos_are_read_upright(tmp_path, orientation, turn, photo):
    stored = Image.fromarray(photo.astype(np.uint8))
    exif = Image.Exif()
    exif[0x0112] = orientation
    source = tmp_path / "camera.png"
    stored.save(source, exif=exif)
    picture = imagefile.read(source)
    assert np.array_equal(picture.samples, np.asarray(stored.transpose(turn)))
    assert picture.notes == ()  # orientation alone is applied, nothing else was dropped
    exif[0x010F] = "Camera maker"
    stored.save(source, exif=exif)
    assert imagefile.read(source).notes == ("EXIF metadata is not kept (the image is stored upright)",)


def test_colour_profile_is_carried_to_the_decoded_file(tmp_path, capsys, photo):
    from PIL import ImageCms
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    source = tmp_path / "tagged.png"
    Image.fromarray(photo.astype(np.uint8)).save(source, icc_profile=profile)
    decoded, err, _ = round_trip(tmp_path, source, capsys)
    assert decoded.info.get("icc_profile") == profile and "note" not in err


def test_16_bit_colour_is_scaled_and_reported(tmp_path, photo):
    # Pillow opens 16-bit colour PNGs at 8 bits: the samples must be the scaled ones, not clipped, and a note says so.
    import struct
    import zlib
    high = (photo * 257).astype(">u2")
    rows = b"".join(b"\0" + row.tobytes() for row in high)
    chunk = lambda kind, body: struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))  # noqa: E731
    source = tmp_path / "rgb16.png"
    source.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 256, 192, 16, 2, 0, 0, 0))
                       + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    picture = imagefile.read(source)
    assert np.array_equal(picture.samples, photo.astype(np.uint8))
    assert len(picture.notes) == 1 and "16-bit colour" in picture.notes[0]


def test_writing_16_bits_where_the_format_cannot_says_so(tmp_path):
    picture = imagefile.Picture(torch.full((3, 4, 5), 0.5), gray=True, bits=16)
    assert imagefile.write(picture, tmp_path / "x.png") == []
    assert Image.open(tmp_path / "x.png").mode == "I;16"
    notes = imagefile.write(picture, tmp_path / "x.jpg")
    assert notes == ["JPEG holds 8 bits per sample: the 16-bit image is written at 8 bits"]
    assert Image.open(tmp_path / "x.jpg").mode == "L"


def test_cmyk_is_converted_and_float_samples_refused(tmp_path, photo):
    source = tmp_path / "print.jpg"
    Image.fromarray(photo.astype(np.uint8)).convert("CMYK").save(source, quality=95)
    picture = imagefile.read(source)
    assert not picture.gray and psnr(picture.samples, photo, 255) > 25
    Image.fromarray(np.zeros((8, 8), np.float32)).save(tmp_path / "f.tif")
    with pytest.raises(ValueError, match="32-bit"):
        imagefile.read(tmp_path / "f.tif")
    with pytest.raises(ValueError, match="cannot read image"):
        imagefile.read(PHOTO.with_suffix(".missing"))
