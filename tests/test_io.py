"""pixlink.io on real photos: every mode a photo can come in decodes close to the photo, 16-bit
and float images are scaled (not clipped to white), transparency is composited on white, EXIF
rotation is applied, and images above the pixel limit are refused from their header (bombs are
small headers claiming huge sizes: nothing is allocated)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from pixlink.errors import InputError
from pixlink.io import (
    DEFAULT_MAX_PIXELS, downscale, image_size, load_image, load_mask_image, pixel_limit, to_uint8,
)


@pytest.fixture(scope="module")
def photo(shared_data):
    """obama.jpg at half size, RGB (H, W, 3) uint8: the reference every encoding is compared to."""
    with Image.open(shared_data("photos", "obama.jpg")) as im:
        im = im.convert("RGB")
        return np.asarray(im.resize((im.width // 2, im.height // 2), Image.Resampling.BOX))


def _gray(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).convert("L"))


def _encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int32) - b.astype(np.int32)).mean())


def _as_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=2)


# ------------------------------------------------------------------------------------------
# every mode a photo can come in
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode,fmt,max_diff", [
    ("RGB", "PNG", 0.0), ("L", "PNG", 0.0), ("CMYK", "TIFF", 0.0), ("CMYK", "JPEG", 4.0),
    ("YCbCr", "TIFF", 3.0), ("YCbCr", "JPEG", 4.0), ("P", "PNG", 8.0), ("P", "GIF", 8.0),
])
def test_colour_and_gray_modes_decode_close_to_the_photo(photo, mode, fmt, max_diff):
    im = Image.fromarray(photo).convert(mode) if mode != "P" else Image.fromarray(photo).quantize(256)
    data = _encode(im, fmt)
    with Image.open(io.BytesIO(data)) as check:
        assert check.mode == (mode if fmt != "JPEG" or mode != "YCbCr" else "RGB")
    out = load_image(data)
    want = _as_rgb(_gray(photo)) if mode == "L" else photo
    assert out.shape == photo.shape and out.dtype == np.uint8
    assert _diff(out, want) <= max_diff


def test_bilevel_keeps_the_photo_light_and_dark(photo):
    gray = _gray(photo)
    out = load_image(_encode(Image.fromarray(photo).convert("1"), "PNG"))
    assert set(np.unique(out)) <= {0, 255}
    # dithering keeps local brightness: 8x8 block means stay near the photo's
    h, w = (gray.shape[0] // 8) * 8, (gray.shape[1] // 8) * 8
    blocks = lambda a: a[:h, :w].reshape(h // 8, 8, w // 8, 8).mean(axis=(1, 3))  # noqa: E731
    assert np.abs(blocks(out[..., 0].astype(float)) - blocks(gray.astype(float))).mean() < 25


@pytest.mark.parametrize("mode,fmt", [("I;16", "PNG"), ("I;16", "TIFF"), ("I;16B", "TIFF")])
def test_16_bit_gray_is_scaled_by_its_bit_depth(photo, mode, fmt):
    """Issue #11: convert('RGB') clipped 16-bit values at 255 and the photo came back 99.6 % white."""
    gray = _gray(photo)
    g16 = gray.astype(np.uint16) * 257
    im = Image.frombytes(mode, (gray.shape[1], gray.shape[0]), g16.astype("<u2" if mode == "I;16" else ">u2").tobytes())
    data = _encode(im, fmt)
    with Image.open(io.BytesIO(data)) as check:
        assert check.mode.startswith("I;16")
    out = load_image(data)
    assert np.array_equal(out, _as_rgb(gray))
    assert (out == 255).mean() < 0.05
    # the same rule for an in-memory image
    assert np.array_equal(load_image(im), _as_rgb(gray))


def test_32_bit_integer_gray_uses_the_smallest_depth_that_holds_it(photo):
    gray = _gray(photo)
    for values in (gray.astype(np.int32) * 257, gray.astype(np.int32)):  # 16-bit data, 8-bit data
        data = _encode(Image.fromarray(values), "TIFF")
        with Image.open(io.BytesIO(data)) as check:
            assert check.mode == "I"
        assert np.array_equal(load_image(data), _as_rgb(gray))
    # data no standard depth holds (negative) is stretched over its actual range
    signed = gray.astype(np.int32) * 1000 - 100_000
    out = load_image(_encode(Image.fromarray(signed), "TIFF"))[..., 0]
    want = np.floor((gray - gray.min()) * (255.0 / (int(gray.max()) - int(gray.min()))) + 0.5)
    assert np.abs(out.astype(float) - want).max() <= 1


def test_float_gray_in_0_1_and_out_of_range(photo):
    gray = _gray(photo)
    data = _encode(Image.fromarray(gray.astype(np.float32) / 255.0), "TIFF")
    with Image.open(io.BytesIO(data)) as check:
        assert check.mode == "F"
    assert np.abs(load_image(data).astype(int) - _as_rgb(gray).astype(int)).max() <= 1
    # a depth map in metres: its own range
    depth = gray.astype(np.float32) * 0.05 - 3.0
    out = load_image(_encode(Image.fromarray(depth), "TIFF"))[..., 0]
    assert out.min() == 0 and out.max() == 255
    assert np.corrcoef(out.ravel(), gray.ravel())[0, 1] > 0.999
    # NaN and inf do not poison the scale
    odd = depth.copy()
    odd[0, 0], odd[0, 1] = np.nan, np.inf
    assert to_uint8(odd)[1:].tolist() == out[1:].tolist()


def test_transparency_is_composited_on_white(photo):
    h, w = photo.shape[:2]
    alpha = np.full((h, w), 255, np.uint8)
    alpha[: h // 4] = 0  # top quarter transparent
    alpha[h // 4 : h // 2] = 128  # second quarter half transparent
    rgba = np.dstack([photo, alpha])
    out = load_image(_encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert np.array_equal(out[h // 2 :], photo[h // 2 :])  # opaque: unchanged
    assert (out[: h // 4] == 255).all()  # transparent: white, whatever colour lay under it
    half = (photo[h // 4 : h // 2].astype(int) * 128 + 255 * 127 + 127) // 255
    assert np.abs(out[h // 4 : h // 2].astype(int) - half).max() <= 1
    # LA: the same on gray
    gray = _gray(photo)
    out = load_image(_encode(Image.fromarray(np.dstack([gray, alpha]), "LA"), "PNG"))
    assert np.array_equal(out[h // 2 :, :, 0], gray[h // 2 :]) and (out[: h // 4] == 255).all()
    # an opaque RGBA photo (like lin-manuel-miranda.png) is the photo
    assert np.array_equal(load_image(_encode(Image.fromarray(np.dstack([photo, np.full((h, w), 255, np.uint8)])),
                                             "PNG")), photo)


def test_palette_with_a_transparent_index(photo):
    pal = Image.fromarray(photo).quantize(64)
    idx = np.asarray(pal)
    clear = int(np.bincount(idx.ravel()).argmax())  # the commonest colour is the transparent one
    data = _encode(pal, "PNG", transparency=clear)
    with Image.open(io.BytesIO(data)) as check:
        assert check.mode == "P" and check.info.get("transparency") == clear
    out = load_image(data)
    assert (out[idx == clear] == 255).all()
    assert _diff(out[idx != clear], photo[idx != clear]) < 10


@pytest.mark.parametrize("orientation,rotate", [(3, 180), (6, 270), (8, 90)])
def test_exif_rotation_is_applied(photo, orientation, rotate):
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _encode(Image.fromarray(photo), "JPEG", quality=95, exif=exif.tobytes())
    want = np.asarray(Image.fromarray(photo).rotate(rotate, expand=True))
    out = load_image(data)
    assert out.shape == want.shape
    assert _diff(out, want) < 3
    path = io.BytesIO(data)
    assert image_size(path) == want.shape[:2]


# ------------------------------------------------------------------------------------------
# the pixel limit
# ------------------------------------------------------------------------------------------


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` RGB pixels, with almost no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


@pytest.fixture
def no_env_limit(monkeypatch):
    monkeypatch.delenv("PIXLINK_MAX_PIXELS", raising=False)


def test_a_bomb_is_refused_from_its_header_by_every_reader(tmp_path, no_env_limit):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header(20_000, 20_000))  # 400 MP, a few bytes on disk
    for call in (lambda: load_image(str(bomb)), lambda: load_image(bomb.read_bytes()),
                 lambda: image_size(bomb), lambda: load_mask_image(bomb)):
        with pytest.raises(InputError, match="E016") as exc:
            call()
        msg = str(exc.value)
        assert "20000 x 20000" in msg and "400,000,000" in msg and f"{DEFAULT_MAX_PIXELS:,}" in msg


def test_the_limit_is_pixlinks_own_not_pillows(tmp_path, no_env_limit):
    """195 MP is above Pillow's own error (179 MP) and below pixlink's default: the header reads."""
    big = tmp_path / "big.png"
    big.write_bytes(_png_header(15_000, 13_000))
    assert image_size(big) == (13_000, 15_000)
    assert image_size(big, max_pixels=0) == (13_000, 15_000)
    twelve_k = tmp_path / "12k.png"
    twelve_k.write_bytes(_png_header(12_000, 12_000))
    assert image_size(twelve_k) == (12_000, 12_000)
    with pytest.raises(InputError, match="E016.*100,000,000"):
        image_size(big, max_pixels=100_000_000)


def test_the_limit_comes_from_the_environment(tmp_path, monkeypatch):
    big = tmp_path / "big.png"
    big.write_bytes(_png_header(15_000, 13_000))
    monkeypatch.setenv("PIXLINK_MAX_PIXELS", "150_000_000")
    assert pixel_limit() == 150_000_000
    with pytest.raises(InputError, match="E016.*150,000,000"):
        load_image(big)
    assert image_size(big, max_pixels=300_000_000) == (13_000, 15_000)  # an argument wins
    monkeypatch.setenv("PIXLINK_MAX_PIXELS", "0")
    assert pixel_limit() is None and image_size(big) == (13_000, 15_000)
    monkeypatch.setenv("PIXLINK_MAX_PIXELS", "lots")
    with pytest.raises(InputError, match="E010.*PIXLINK_MAX_PIXELS"):
        image_size(big)
    with pytest.raises(InputError, match="E010"):
        pixel_limit(-5)


def test_pillows_own_bomb_check_never_raises_through(photo, monkeypatch, no_env_limit):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    data = _encode(Image.fromarray(photo), "PNG")
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(data))  # what a plain Pillow caller gets
    assert np.array_equal(load_image(data), photo)
    assert Image.MAX_IMAGE_PIXELS == 1000  # pixlink restored Pillow's setting

    def boom(self, *a, **k):
        raise Image.DecompressionBombError("Image size (123 pixels) exceeds limit")

    monkeypatch.setattr(Image.Image, "load", boom)
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", boom)
    with pytest.raises(InputError, match="E016"):
        load_image(data)


def test_a_mask_of_any_depth(tmp_path, no_env_limit):
    m = np.zeros((40, 60), bool)
    m[10:20, 5:30] = True
    for arr in (m.astype(np.uint8) * 255, m.astype(np.uint16) * 1000, m.astype(np.uint16)):
        p = tmp_path / f"m{arr.dtype}{int(arr.max())}.png"
        Image.fromarray(arr).save(p)
        assert np.array_equal(load_mask_image(p), m)
    with pytest.raises(InputError, match="E012"):
        load_mask_image(tmp_path / "absent.png")


# ------------------------------------------------------------------------------------------
# capping work on huge images
# ------------------------------------------------------------------------------------------


def test_downscale_and_max_side(photo, shared_data):
    small, scale = downscale(photo, 200)
    assert max(small.shape[:2]) == 200 and scale == pytest.approx(200 / max(photo.shape[:2]))
    assert small.shape[1] == round(photo.shape[1] * scale)
    same, one = downscale(photo, 5000)
    assert same is photo and one == 1.0
    # the picture is the same picture: block means of the photo match the small image
    ref = np.asarray(Image.fromarray(photo).resize(small.shape[1::-1], Image.Resampling.BOX))
    assert _diff(small, ref) < 1
    # load_image(max_side) decodes a JPEG at reduced scale and gives the same picture
    path = shared_data("photos", "obama.jpg")
    fast = load_image(path, max_side=300)
    full = load_image(path)
    assert max(fast.shape[:2]) == 300
    assert fast.shape == downscale(full, 300)[0].shape
    assert _diff(fast, downscale(full, 300)[0]) < 4
    for bad in (0, -3, 2.5, True):
        with pytest.raises(InputError, match="E010"):
            downscale(photo, bad)


@pytest.mark.slow
def test_a_16_bit_face_photo_still_has_its_face(photo):
    """The case of issue #11: a 16-bit grayscale copy of a face photo gave no face (NIL)."""
    from helpers import need_backend

    faces = need_backend("faces", "dlib")
    gray = _gray(photo)
    data = _encode(Image.frombytes("I;16", gray.shape[::-1], (gray.astype(np.uint16) * 257).astype("<u2").tobytes()),
                   "PNG")
    found = faces.detect(load_image(data))
    want = faces.detect(_as_rgb(gray))
    assert len(found) == len(want) == 1
    assert np.abs(np.asarray(found[0].box) - np.asarray(want[0].box)).max() < 2
