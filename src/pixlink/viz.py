"""Pictures a person would rather look at: masks, boxes and answers drawn on the image.

Every writer takes ``out_path`` with one of :data:`OVERLAY_EXTENSIONS` (the format follows the
extension) in a directory that exists: nothing is created that the caller did not ask for
(:func:`check_out_path`, E703 / E704). Images are ``(H, W, 3)`` uint8 RGB; boxes XYXY in
original pixels; masks ``(H, W)`` bool.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .errors import Errors, InputError
from .types import Link, NamedEntity, Region

OVERLAY_EXTENSIONS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP",
                      ".tif": "TIFF", ".tiff": "TIFF"}
"""File extensions the overlay writers take (lower case), and the Pillow format each writes."""

PALETTE = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
           (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128)]


def check_writable(out_path: str | Path, what: str = "output") -> Path:
    """``out_path`` as a :class:`Path` if a file can be written there: it is not a directory and
    its directory exists (else E704; nothing is created that the caller did not ask for)."""
    path = Path(out_path)
    if path.is_dir():
        raise InputError(Errors.E704.format(what=what, path=str(path), reason="it is a directory"))
    if not path.parent.is_dir():
        raise InputError(Errors.E704.format(
            what=what, path=str(path),
            reason=f"the directory {str(path.parent)!r} does not exist (nothing is created that you did not ask "
                   "for: create it first)"))
    return path


def check_out_path(out_path: str | Path, what: str = "overlay") -> Path:
    """``out_path`` as a :class:`Path` if a picture can be written there: its extension is one of
    :data:`OVERLAY_EXTENSIONS` (else E703) and :func:`check_writable` holds (else E704). Call it
    before long work, so that a bad path fails before the answer is lost."""
    path = Path(out_path)
    ext = path.suffix.lower()
    if ext not in OVERLAY_EXTENSIONS:
        raise InputError(Errors.E703.format(what=what, path=str(path), ext=ext or "(no extension)",
                                            exts=", ".join(OVERLAY_EXTENSIONS)))
    return check_writable(path, what)


def _save(img: Image.Image, out_path: str | Path) -> Path:
    path = check_out_path(out_path)
    img.convert("RGB").save(path, format=OVERLAY_EXTENSIONS[path.suffix.lower()])
    return path


def _font(size: int) -> ImageFont.ImageFont:
    """DejaVu Sans from matplotlib's data (always installed with pixlink), else PIL's default."""
    try:
        import matplotlib

        path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        return ImageFont.truetype(str(path), size)
    except (ImportError, OSError):
        return ImageFont.load_default()


def draw_region(img: Image.Image, region: Region, color: tuple[int, int, int], alpha: float = 0.45) -> Image.Image:
    """Mask as a translucent fill with its outline, box as a rectangle, clicks as dots."""
    out = img.convert("RGBA")
    if region.mask is not None:
        layer = np.zeros((*region.mask.shape, 4), np.uint8)
        layer[region.mask] = (*color, int(255 * alpha))
        out = Image.alpha_composite(out, Image.fromarray(layer, "RGBA"))
    d = ImageDraw.Draw(out)
    w = max(2, round(max(img.size) / 250))
    x1, y1, x2, y2 = (float(v) for v in region.bbox)
    d.rectangle([x1, y1, x2 - 1, y2 - 1], outline=(*color, 255), width=w)
    if region.points is not None:
        for (px, py), lab in zip(region.points, region.point_labels if region.point_labels is not None else []):
            r = 2 * w + 2
            d.ellipse([px - r, py - r, px + r, py + r], fill=(0, 255, 0, 255) if lab else (255, 0, 0, 255),
                      outline=(255, 255, 255, 255))
    return out


def _label(d: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, color: tuple[int, int, int], size: int) -> None:
    font = _font(size)
    x, y = xy
    l, t, r, b = d.textbbox((x, y), text, font=font)
    d.rectangle([l - 3, t - 2, r + 3, b + 2], fill=(*color, 220))
    d.text((x, y), text, fill=(255, 255, 255, 255), font=font)


def link_overlay(image: np.ndarray, links: Sequence[Link], out_path: str | Path, top: int = 3) -> Path:
    """Draw each link's region and its top answers (or NIL) on the image; write a PNG/JPEG."""
    img = Image.fromarray(image)
    size = max(12, round(max(img.size) / 45))
    for i, link in enumerate(links):
        color = PALETTE[i % len(PALETTE)]
        if link.region is None:
            continue
        img = draw_region(img, link.region, color)
        d = ImageDraw.Draw(img)
        x1, y1, _, y2 = (float(v) for v in link.region.bbox)
        lines = ["NIL (not in the KB)"] if link.nil else []
        for c in link.candidates[:top]:
            lines.append(f"{c.label or c.entity_id} ({c.entity_id}) {c.score:.2f}")
        y = y2 + 4 if y2 + 4 + len(lines) * (size + 6) < img.size[1] else max(y1 - len(lines) * (size + 6) - 4, 0)
        for j, line in enumerate(lines):
            _label(d, (x1 + 2, y + j * (size + 6)), line, color if j == 0 else (60, 60, 60), size if j == 0 else
                   int(size * 0.8))
    return _save(img, out_path)


def entities_overlay(image: np.ndarray, entities: Sequence[NamedEntity], out_path: str | Path) -> Path:
    """GMNER/SMNER picture: each grounded entity's box (and mask) with ``text (TYPE)``."""
    img = Image.fromarray(image)
    size = max(12, round(max(img.size) / 45))
    for i, ent in enumerate(entities):
        if ent.region is None:
            continue
        color = PALETTE[i % len(PALETTE)]
        img = draw_region(img, ent.region, color)
        d = ImageDraw.Draw(img)
        x1, y1 = (float(v) for v in ent.region.bbox[:2])
        linked = ""
        if ent.link is not None and ent.link.prediction:
            linked = f" -> {ent.link.candidates[0].label or ent.link.prediction}"
        _label(d, (x1 + 2, max(y1 - size - 8, 0)), f"{ent.text} ({ent.type}){linked}", color, size)
    return _save(img, out_path)


def detections_overlay(image: np.ndarray, detections: Sequence[Any], out_path: str | Path) -> Path:
    """Boxes of :class:`~pixlink.models.roles.Detection` objects with ``label score`` (and the
    phrase when there is one); ``image`` ``(H, W, 3)`` uint8 RGB, boxes XYXY original pixels."""
    img = Image.fromarray(image).convert("RGBA")
    size = max(12, round(max(img.size) / 50))
    d = ImageDraw.Draw(img)
    for i, det in enumerate(detections):
        color = PALETTE[i % len(PALETTE)]
        x1, y1, x2, y2 = (float(v) for v in det.box)
        d.rectangle([x1, y1, x2, y2], outline=(*color, 255), width=max(2, size // 5))
        text = f"{det.label} {det.score:.2f}" + (f" <- {det.phrase}" if det.phrase else "")
        _label(d, (x1 + 2, max(y1 - size - 6, 0) if y1 > size + 6 else y1 + 2), text, color, size)
    return _save(img, out_path)


def instances_overlay(image: np.ndarray, matches: Sequence[Any], labels: Sequence[str], out_path: str | Path) -> Path:
    """Instances found in a whole image (``pixlink link instances``): each match's mask and box
    (``.box`` XYXY original pixels, ``.mask`` ``(H, W)`` bool or None) with its label line."""
    img = Image.fromarray(image)
    size = max(12, round(max(img.size) / 45))
    h, w = image.shape[:2]
    for i, (m, text) in enumerate(zip(matches, labels)):
        color = PALETTE[i % len(PALETTE)]
        region = Region(image_size=(h, w), box=np.asarray(m.box, dtype=np.float64), mask=m.mask)
        img = draw_region(img, region, color)
        x1, y1 = (float(v) for v in m.box[:2])
        _label(ImageDraw.Draw(img), (x1 + 2, max(y1 - size - 8, 0)), text, color, size)
    return _save(img, out_path)
