"""Label Studio's data formats: its brush RLE and its percent coordinates.

Ground floor: the service's Label Studio backend (``pixlink.serve.labelstudio``) answers with
these, and the reverse-annotation pipeline (``pixlink.annotate``) writes Label Studio tasks with
pre-annotations in the same form, so an annotation team can import and correct them.

A region result in Label Studio is ``{"id", "from_name", "to_name", "type", "value",
"original_width", "original_height", "image_rotation"}``; a ``rectanglelabels`` value holds
``x``, ``y``, ``width``, ``height`` in **percent** of the image's width / height (top-left
corner), a ``brushlabels`` value ``{"format": "rle", "rle": [...]}`` in the brush RLE below.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import Errors, InputError

RLE_SIZES = (3, 4, 8, 16)
"""Bit widths of run lengths (Label Studio's encoder uses the same four)."""
WORD_SIZE = 8


class _Bits:
    """An append-only bit string packed into bytes at the end."""

    def __init__(self) -> None:
        self.values: list[int] = []
        self.widths: list[int] = []

    def put(self, value: int, width: int) -> None:
        self.values.append(int(value))
        self.widths.append(width)

    def to_bytes(self) -> list[int]:
        total = sum(self.widths)
        bits = np.zeros(total + (-total) % 8, dtype=np.uint8)
        pos = 0
        for v, w in zip(self.values, self.widths):
            if w:
                bits[pos:pos + w] = (v >> np.arange(w - 1, -1, -1)) & 1
            pos += w
        return np.packbits(bits).tolist()


def brush_rle(mask: np.ndarray) -> list[int]:
    """Label Studio's brush RLE of an ``(H, W)`` mask (non-zero = inside).

    The format of ``label_studio_sdk.converter.brush``: the mask as 0/255 RGBA (4 bytes a
    pixel, flattened), then bit-packed — a 32-bit value count, a 5-bit word size (minus 1), four
    4-bit run-length widths (minus 1), then runs: a flag bit (1 = a repeated value, 0 = literal
    values), 2 bits choosing the width, the run length minus 1 in that width, and the value(s).
    Returns the bytes as a list of ints (what a ``brushlabels`` result's ``value.rle`` holds).
    Decode with ``label_studio_sdk.converter.brush.decode_rle(rle).reshape(H, W, 4)[:, :, 3]``.
    """
    m = np.asarray(mask)
    if m.ndim != 2 or m.size == 0:
        raise InputError(Errors.E010.format(what="mask", value=m.shape, reason="expected a non-empty (H, W) array"))
    flat = np.where(m.ravel() != 0, 255, 0).astype(np.uint8)
    # runs over pixels; every pixel is 4 equal bytes, so a run of n pixels is 4n values
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate(([0], change))
    lengths = np.diff(np.concatenate((starts, [flat.size]))) * 4
    bits = _Bits()
    bits.put(flat.size * 4, 32)
    bits.put(WORD_SIZE - 1, 5)
    for s in RLE_SIZES:
        bits.put(s - 1, 4)
    longest = 1 << RLE_SIZES[-1]
    for start, n in zip(starts.tolist(), lengths.tolist()):
        value = int(flat[start])
        while n > 0:
            run = min(n, longest)
            idx = next(i for i, s in enumerate(RLE_SIZES) if run <= 1 << s)
            bits.put(1, 1)
            bits.put(idx, 2)
            bits.put(run - 1, RLE_SIZES[idx])
            bits.put(value, WORD_SIZE)
            n -= run
    return bits.to_bytes()


def percent_box(box: Any, w: int, h: int) -> dict[str, float]:
    """An XYXY pixel box of a ``w`` x ``h`` image as Label Studio's percent ``x, y, width, height``."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return {"x": 100.0 * x1 / w, "y": 100.0 * y1 / h, "width": 100.0 * (x2 - x1) / w, "height": 100.0 * (y2 - y1) / h,
            "rotation": 0}


def result_base(region_id: str, to_name: str, size: tuple[int, int]) -> dict[str, Any]:
    """What every result of one region shares: its ``id`` (the box, the mask and the entity id
    of a region carry the same one), the image tag and the image's size ``(H, W)``."""
    h, w = size
    return {"id": region_id, "to_name": to_name, "original_width": int(w), "original_height": int(h),
            "image_rotation": 0}


def rectangle_result(base: dict[str, Any], from_name: str, box: Any, labels: list[str], **extra: Any) -> dict[str, Any]:
    """A ``rectanglelabels`` result of an XYXY pixel box (percent coordinates)."""
    value = {**percent_box(box, base["original_width"], base["original_height"]), "rectanglelabels": labels}
    return {**base, "from_name": from_name, "type": "rectanglelabels", "value": value, **extra}


def brush_result(base: dict[str, Any], from_name: str, mask: np.ndarray, labels: list[str], **extra: Any) -> dict[str, Any]:
    """A ``brushlabels`` result of an ``(H, W)`` mask (:func:`brush_rle`)."""
    return {**base, "from_name": from_name, "type": "brushlabels", **extra,
            "value": {"format": "rle", "rle": brush_rle(mask), "brushlabels": labels}}
