"""Reading images, masks and JSONL with clear errors.

Images come back as ``(H, W, 3)`` uint8 RGB arrays, EXIF orientation applied.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import orjson
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import Errors, InputError

ImageLike = "str | Path | bytes | np.ndarray | Image.Image"


def load_image(image: Any) -> np.ndarray:
    """Return ``image`` as an ``(H, W, 3)`` uint8 RGB array.

    Accepts a path, encoded bytes, a PIL image or an array (``(H, W)``, ``(H, W, 3)`` or
    ``(H, W, 4)``). Raises :class:`InputError` (E001) naming the file when it cannot be read.
    """
    if isinstance(image, np.ndarray):
        arr = image
        if arr.ndim == 2:
            arr = np.stack([arr] * 3, axis=-1)
        if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.shape[0] == 0 or arr.shape[1] == 0:
            raise InputError(Errors.E001.format(path="<array>", reason=f"array of shape {image.shape} is not an image"))
        if arr.dtype != np.uint8:
            raise InputError(Errors.E001.format(path="<array>", reason=f"dtype {arr.dtype}, expected uint8"))
        return np.ascontiguousarray(arr[..., :3])
    name = "<bytes>"
    try:
        if isinstance(image, Image.Image):
            pil = image
            name = "<PIL image>"
        elif isinstance(image, (bytes, bytearray)):
            pil = Image.open(io.BytesIO(image))
        else:
            name = str(image)
            pil = Image.open(image)
        pil = ImageOps.exif_transpose(pil)
        pil.load()
        return np.asarray(pil.convert("RGB"))
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise InputError(Errors.E001.format(path=name, reason=type(exc).__name__)) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InputError(Errors.E001.format(path=name, reason=f"not a readable image ({exc})")) from exc


def image_size(path: str | Path) -> tuple[int, int]:
    """``(H, W)`` of an image file without decoding its pixels (EXIF rotation applied)."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            orientation = im.getexif().get(0x0112, 1)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise InputError(Errors.E001.format(path=str(path), reason=type(exc).__name__)) from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(Errors.E001.format(path=str(path), reason=f"not a readable image ({exc})")) from exc
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


def load_mask_image(path: str | Path) -> np.ndarray:
    """Read a mask PNG (any non-zero pixel is foreground) as an ``(H, W)`` bool array."""
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("L"))
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise InputError(Errors.E012.format(path=str(path), reason=type(exc).__name__)) from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(Errors.E012.format(path=str(path), reason=str(exc))) from exc
    return arr > 0


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
