"""Reading images, masks and JSONL with clear errors.

Images come back as ``(H, W, 3)`` uint8 RGB arrays (original pixels, EXIF orientation applied),
whatever mode the file holds:

* ``1``, ``L``, ``P``, ``RGB``, ``CMYK``, ``YCbCr`` ...: Pillow's conversion to RGB.
* With transparency (``RGBA``, ``LA``, ``PA``, ``P`` or ``L``/``RGB`` with a transparent
  colour): composited over white, as a page shows it; opaque pixels are unchanged. (Dropping
  alpha would show whatever colour the encoder left under transparent pixels, often black.)
* High bit depth, gray (``I;16``, ``I;16B``, ``I;16L``, ``I;16N``, ``I``, ``F``): scaled to 8 bits
  by the file's **bit depth** when it has one, and by the **actual range** only when no standard
  scale holds the values (:func:`to_uint8`). By bit depth, because that is how the file defines
  white (65535 in a 16-bit PNG): a photo keeps the brightness every viewer shows, and the same
  value is the same gray in every photo; stretching each image to its own range would brighten a
  dark photo and its noise. (Pillow's own ``convert("RGB")`` clips 16-bit values at 255, which
  turned a 16-bit photo 99.6 % white.)

Pixel limit: a file's size is read from its header and an image of more than
:func:`pixel_limit` pixels (default :data:`DEFAULT_MAX_PIXELS`, 200 MP: a 12,000 x 12,000 photo
passes; ``PIXLINK_MAX_PIXELS`` or ``max_pixels=`` change it, 0 = no limit) is refused with E016
naming its size and the limit, before anything is decoded. Pillow's own decompression-bomb
check (which errors above 179 MP, whatever pixlink's limit) is switched off while pixlink reads
a header, under a lock, and a ``DecompressionBombError`` raised later is turned into E016 too: no
PIL exception reaches the caller. :func:`load_image`, :func:`image_size` and
:func:`load_mask_image` all apply it.

Huge images: ``load_image(..., max_side=N)`` decodes JPEGs at a reduced scale where it can
(Pillow's draft mode) and returns an image whose longer side is at most N;
:func:`downscale` does the same to an array and returns the scale.
"""

from __future__ import annotations

import io
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import orjson
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import Errors, InputError, PixlinkError

ImageLike = "str | Path | bytes | np.ndarray | Image.Image"

DEFAULT_MAX_PIXELS = 200_000_000
"""Pixels an image may have by default (200 MP; a 12,000 x 12,000 photo is 144 MP)."""

_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_HEADER_LOCK = threading.Lock()


def pixel_limit(limit: int | None = None) -> int | None:
    """The pixel limit in force: ``limit`` when given, else ``PIXLINK_MAX_PIXELS``, else
    :data:`DEFAULT_MAX_PIXELS`. ``0`` means no limit (returns None). E010 for a value that is
    not a non-negative integer."""
    what = "max_pixels"
    value: Any = limit
    if limit is None:
        env = os.environ.get("PIXLINK_MAX_PIXELS", "").strip()
        if not env:
            return DEFAULT_MAX_PIXELS
        what, value = "PIXLINK_MAX_PIXELS", env
        try:
            limit = int(env.replace("_", ""))
        except ValueError as exc:
            raise InputError(Errors.E010.format(what=what, value=env, reason="expected a whole number of pixels "
                                                "(0 = no limit)")) from exc
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 0:
        raise InputError(Errors.E010.format(what=what, value=value, reason="expected a whole number of pixels >= 0 "
                                            "(0 = no limit)"))
    return int(limit) or None


def _check_pixels(size: tuple[int, int], name: str, limit: int | None) -> None:
    """E016 when ``size`` (W, H) has more pixels than ``limit`` (None: no limit)."""
    w, h = int(size[0]), int(size[1])
    if limit is not None and w * h > limit:
        raise InputError(Errors.E016.format(path=name, width=w, height=h, pixels=w * h, limit=limit))


@contextmanager
def _header_unchecked() -> Iterator[None]:
    """Pillow's decompression-bomb check off while a header is read (pixlink checks its own
    limit right after). Under a lock, so pixlink threads never restore each other's setting."""
    with _HEADER_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _open(source: Any) -> Image.Image:
    with _header_unchecked():
        return Image.open(source)


def _bomb(pil: Image.Image | None, name: str, limit: int | None) -> InputError:
    """E016 for a ``DecompressionBombError`` Pillow raised while decoding (e.g. a GIF frame)."""
    w, h = pil.size if pil is not None else (0, 0)
    if limit is None or limit > 2 * (Image.MAX_IMAGE_PIXELS or 0):  # Pillow's own limit stopped it
        limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
    return InputError(Errors.E016.format(path=name, width=w, height=h, pixels=w * h, limit=limit))


def to_uint8(values: np.ndarray) -> np.ndarray:
    """One channel of high bit depth -> ``(H, W)`` uint8, by bit depth where one applies.

    * unsigned integers (``I;16*``: uint16): ``v * 255 / 65535`` (the type's full scale);
    * signed integers (``I``: int32, the container Pillow uses for 16- and 32-bit data): the
      smallest standard depth that holds the values, 8 bits (unchanged) or 16 bits (as above);
      the actual range ``[min, max] -> [0, 255]`` when they are negative or above 65535;
    * floats (``F``): ``[0, 1]`` (the float convention) -> ``[0, 255]``; values within
      ``[0, 255]`` unchanged; else the actual range. NaN counts as the minimum, +-inf as the
      extremes of the finite values.
    """
    a = np.asarray(values)
    if a.dtype == np.uint8:
        return a
    if a.dtype.kind == "u":
        full = float(np.iinfo(a.dtype).max)
        return np.floor(a.astype(np.float64) * (255.0 / full) + 0.5).astype(np.uint8)
    if a.dtype.kind == "i":
        lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
        if lo >= 0 and hi <= 255:
            return a.astype(np.uint8)
        if lo >= 0 and hi <= 65535:
            return np.floor(a.astype(np.float64) * (255.0 / 65535.0) + 0.5).astype(np.uint8)
        return _stretch(a.astype(np.float64), float(lo), float(hi))
    if a.dtype.kind == "f":
        f = a.astype(np.float64)
        finite = f[np.isfinite(f)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        f = np.nan_to_num(f, nan=lo, posinf=hi, neginf=lo)
        if lo >= 0.0 and hi <= 1.0:
            return np.floor(f * 255.0 + 0.5).astype(np.uint8)
        if lo >= 0.0 and hi <= 255.0:
            return np.floor(f + 0.5).astype(np.uint8)
        return _stretch(f, lo, hi)
    raise InputError(Errors.E001.format(path="<array>", reason=f"pixel type {a.dtype} is not an image"))


def _stretch(f: np.ndarray, lo: float, hi: float) -> np.ndarray:
    if hi <= lo:
        return np.zeros(f.shape, dtype=np.uint8)
    return np.floor((f - lo) * (255.0 / (hi - lo)) + 0.5).astype(np.uint8)


def _to_rgb(pil: Image.Image) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of a decoded image of any mode (see the module doc)."""
    mode = pil.mode
    if mode in ("I", "F") or mode.startswith("I;"):
        gray = to_uint8(np.asarray(pil))
        return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=2))
    if mode in _ALPHA_MODES or "transparency" in pil.info:
        rgba = np.asarray(pil.convert("RGBA"), dtype=np.uint16)
        a = rgba[..., 3:4]
        return ((rgba[..., :3] * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)
    return np.asarray(pil.convert("RGB"))


def load_image(image: Any, max_pixels: int | None = None, max_side: int | None = None) -> np.ndarray:
    """Return ``image`` as an ``(H, W, 3)`` uint8 RGB array (any mode, see the module doc).

    Args:
        image: a path, encoded bytes, a PIL image or an array (``(H, W)``, ``(H, W, 3)`` or
            ``(H, W, 4)`` uint8; arrays are taken as they are).
        max_pixels: refuse (E016) an image of more pixels, read from the header before
            decoding; None = :func:`pixel_limit` (``PIXLINK_MAX_PIXELS``, default 200 MP), 0 = no limit.
        max_side: when given, the longer side of the result is at most this many pixels
            (smaller images are unchanged); JPEGs are decoded at a reduced scale where possible.
            Coordinates on the result are original coordinates x ``max_side / max(H, W)``
            (:func:`downscale`); :func:`image_size` gives the original size.

    Raises:
        InputError: E001 naming the file when it cannot be read; E016 above the pixel limit;
            E010 for a bad ``max_pixels`` / ``max_side``.
    """
    if max_side is not None:
        _check_side(max_side)
    if isinstance(image, np.ndarray):
        arr = image
        if arr.ndim == 2:
            arr = np.stack([arr] * 3, axis=-1)
        if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.shape[0] == 0 or arr.shape[1] == 0:
            raise InputError(Errors.E001.format(path="<array>", reason=f"array of shape {image.shape} is not an image"))
        if arr.dtype != np.uint8:
            raise InputError(Errors.E001.format(path="<array>", reason=f"dtype {arr.dtype}, expected uint8"))
        out = np.ascontiguousarray(arr[..., :3])
        return downscale(out, max_side)[0] if max_side is not None else out
    limit = pixel_limit(max_pixels)
    name = "<bytes>"
    pil: Image.Image | None = None
    opened: Image.Image | None = None  # closed here (its file handle) once decoded
    try:
        if isinstance(image, Image.Image):
            pil = image
            name = "<PIL image>"
        elif isinstance(image, (bytes, bytearray)):
            pil = opened = _open(io.BytesIO(image))
        else:
            name = str(image)
            pil = opened = _open(image)
        _check_pixels(pil.size, name, limit)
        if max_side is not None and max(pil.size) > max_side:
            s = max_side / max(pil.size)
            pil.draft(pil.mode, (max(1, int(pil.size[0] * s)), max(1, int(pil.size[1] * s))))
        pil = ImageOps.exif_transpose(pil)
        pil.load()
        out = _to_rgb(pil)
    except PixlinkError:
        raise
    except Image.DecompressionBombError as exc:
        raise _bomb(pil, name, limit) from exc
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise InputError(Errors.E001.format(path=name, reason=type(exc).__name__)) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InputError(Errors.E001.format(path=name, reason=f"not a readable image ({exc})")) from exc
    finally:
        if opened is not None:
            opened.close()
    return downscale(out, max_side)[0] if max_side is not None else out


def _check_side(max_side: Any) -> int:
    if isinstance(max_side, bool) or not isinstance(max_side, (int, np.integer)) or max_side < 1:
        raise InputError(Errors.E010.format(what="max_side", value=max_side, reason="expected a whole number >= 1"))
    return int(max_side)


def downscale(image: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float]:
    """``(image, scale)``: ``image`` (``(H, W)`` or ``(H, W, C)`` uint8) shrunk so that its longer
    side is at most ``max_side`` (area-averaging resampling), and ``scale = max_side / max(H, W)``
    (1.0 when it already fits, or ``max_side`` is None). A coordinate on the result is the
    original coordinate x scale (each side rounded to whole pixels)."""
    if max_side is None:
        return image, 1.0
    side = _check_side(max_side)
    h, w = image.shape[:2]
    if max(h, w) <= side:
        return image, 1.0
    scale = side / max(h, w)
    size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
    out = Image.fromarray(np.ascontiguousarray(image)).resize(size, Image.Resampling.BOX)
    return np.asarray(out), scale


def image_size(path: str | Path, max_pixels: int | None = None) -> tuple[int, int]:
    """``(H, W)`` of an image file without decoding its pixels (EXIF rotation applied).

    E001 when it cannot be read; E016 when it has more pixels than the limit (see
    :func:`load_image`), as every pixlink image reader refuses it."""
    limit = pixel_limit(max_pixels)
    try:
        with _open(path) as im:
            w, h = im.size
            # Image.getexif reads what the header holds; PngImageFile.getexif would decode the
            # whole image to look for an eXIf chunk after the pixels
            orientation = Image.Image.getexif(im).get(0x0112, 1)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise InputError(Errors.E001.format(path=str(path), reason=type(exc).__name__)) from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(Errors.E001.format(path=str(path), reason=f"not a readable image ({exc})")) from exc
    _check_pixels((w, h), str(path), limit)
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


def load_mask_image(path: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """Read a mask image (any non-zero pixel is foreground) as an ``(H, W)`` bool array.

    Gray masks of any bit depth (``1``, ``L``, ``I;16``, ``I``, ``F``) are read as they are
    stored; colour and palette masks by their luminance. E012 when it cannot be read; E016 above
    the pixel limit (see :func:`load_image`)."""
    limit = pixel_limit(max_pixels)
    im: Image.Image | None = None
    try:
        with _open(path) as im:
            _check_pixels(im.size, str(path), limit)
            if im.mode in ("1", "L", "I", "F") or im.mode.startswith("I;"):
                arr = np.asarray(im) != 0
            else:
                arr = np.asarray(im.convert("L")) > 0
    except PixlinkError:
        raise
    except Image.DecompressionBombError as exc:
        raise _bomb(im, str(path), limit) from exc
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise InputError(Errors.E012.format(path=str(path), reason=type(exc).__name__)) from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InputError(Errors.E012.format(path=str(path), reason=str(exc))) from exc
    return np.ascontiguousarray(arr)


def iter_jsonl(path: str | Path, strict: bool = True) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSONL file.

    With ``strict`` a malformed line raises E011 naming the file and line; otherwise the
    caller gets ``(line_number, InputError)`` in place of the object and decides.
    """
    with open(path, "rb") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield n, orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                err = InputError(Errors.E011.format(line=n, path=str(path), reason=str(exc)))
                if strict:
                    raise err from exc
                yield n, err


def write_jsonl(path: str | Path, rows: Iterable[Any], append: bool = False) -> int:
    """Write rows as JSONL (numpy arrays allowed); return how many were written."""
    n = 0
    with open(path, "ab" if append else "wb") as fh:
        for row in rows:
            fh.write(orjson.dumps(row, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
            n += 1
    return n


def dumps(obj: Any, indent: bool = False) -> str:
    opt = orjson.OPT_SERIALIZE_NUMPY | (orjson.OPT_INDENT_2 if indent else 0)
    return orjson.dumps(obj, option=opt).decode()
