"""Boxes, masks and their COCO RLE form.

Conventions used everywhere in pixlink:

* An image is ``H x W`` (rows x columns); pixel arrays are ``(H, W, 3)`` uint8 RGB.
* A box is **XYXY in original-image pixels**, float: ``(x1, y1)`` the top-left corner,
  ``(x2, y2)`` the bottom-right corner, in continuous coordinates where pixel
  ``(row r, col c)`` covers ``[c, c+1) x [r, r+1)``. The whole image is ``[0, 0, W, H]``.
  A valid box has ``x2 > x1`` and ``y2 > y1``.
* A mask is an ``(H, W)`` bool array. On the wire and on disk a mask is COCO RLE,
  ``{"size": [H, W], "counts": "<str>"}`` (pycocotools' compressed form, column-major).
* Points are ``(N, 2)`` float arrays of ``(x, y)``, same coordinates as boxes.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from pycocotools import mask as _coco

from .errors import Errors, InputError


def as_box(box: Sequence[float] | np.ndarray) -> np.ndarray:
    """Validate and return a box as a ``(4,)`` float64 XYXY array.

    Raises :class:`InputError` (E002) when it does not have 4 finite numbers with
    ``x2 > x1`` and ``y2 > y1``.
    """
    try:
        arr = np.asarray(box, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise InputError(Errors.E002.format(box=box, reason=f"not numbers ({exc})")) from exc
    if arr.shape != (4,):
        raise InputError(Errors.E002.format(box=box, reason=f"expected 4 numbers, got {arr.size}"))
    if not np.all(np.isfinite(arr)):
        raise InputError(Errors.E002.format(box=box, reason="contains NaN or infinity"))
    if arr[2] <= arr[0] or arr[3] <= arr[1]:
        raise InputError(Errors.E002.format(box=box, reason="needs x2 > x1 and y2 > y1"))
    return arr


def clip_box(box: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Clip an XYXY box to ``[0, W] x [0, H]``; raise E003 if nothing of it is inside."""
    h, w = image_size
    b = np.asarray(box, dtype=np.float64)
    clipped = np.array([max(b[0], 0.0), max(b[1], 0.0), min(b[2], w), min(b[3], h)])
    if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
        raise InputError(Errors.E003.format(box=b.tolist(), height=h, width=w))
    return clipped


def box_inside(box: np.ndarray, image_size: tuple[int, int], tol: float = 0.5) -> bool:
    """True when the box lies within the image, allowing ``tol`` pixels of rounding."""
    h, w = image_size
    return bool(box[0] >= -tol and box[1] >= -tol and box[2] <= w + tol and box[3] <= h + tol)


def as_mask(mask: Any, image_size: tuple[int, int] | None = None) -> np.ndarray:
    """Return an ``(H, W)`` bool mask from bool / 0-1 / 0-255 arrays.

    Raises E005 when ``image_size`` is given and differs, E004 when the mask is empty.
    """
    arr = np.asarray(mask)
    if arr.ndim == 3 and arr.shape[2] in (1, 3, 4):
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise InputError(
            Errors.E005.format(
                shape=arr.shape,
                height=image_size[0] if image_size else "?",
                width=image_size[1] if image_size else "?",
            )
        )
    if image_size is not None and tuple(arr.shape) != tuple(image_size):
        raise InputError(Errors.E005.format(shape=arr.shape, height=image_size[0], width=image_size[1]))
    out = arr.astype(bool) if arr.dtype != bool else arr
    if not out.any():
        raise InputError(Errors.E004)
    return out


def mask_to_box(mask: np.ndarray) -> np.ndarray:
    """Tight XYXY box of an ``(H, W)`` bool mask (continuous coordinates, so a one-pixel
    mask at row r, col c gives ``[c, r, c+1, r+1]``)."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        raise InputError(Errors.E004)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64)


def box_to_mask(box: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Rasterise an XYXY box into an ``(H, W)`` bool mask (pixels whose centre is inside)."""
    h, w = image_size
    x1, y1, x2, y2 = box
    c0, c1 = int(np.ceil(x1 - 0.5)), int(np.ceil(x2 - 0.5))
    r0, r1 = int(np.ceil(y1 - 0.5)), int(np.ceil(y2 - 0.5))
    m = np.zeros((h, w), dtype=bool)
    m[max(r0, 0) : max(min(r1, h), 0), max(c0, 0) : max(min(c1, w), 0)] = True
    return m


def mask_to_rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO RLE of an ``(H, W)`` bool mask: ``{"size": [H, W], "counts": str}``."""
    rle = _coco.encode(np.asfortranarray(mask.astype(np.uint8)))
    counts = rle["counts"]
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": counts.decode("ascii")}


def rle_to_mask(rle: dict[str, Any]) -> np.ndarray:
    """Decode COCO RLE (compressed string counts or uncompressed list counts) to ``(H, W)`` bool."""
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise InputError(Errors.E007.format(reason="needs keys 'size' and 'counts'"))
    size = rle["size"]
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(int(s) > 0 for s in size)):
        raise InputError(Errors.E007.format(reason=f"size {size!r} is not [h, w]"))
    h, w = int(size[0]), int(size[1])
    counts = rle["counts"]
    try:
        if isinstance(counts, list):
            if sum(counts) != h * w:
                raise InputError(
                    Errors.E007.format(reason=f"counts sum to {sum(counts)}, expected h*w = {h * w}")
                )
            obj = _coco.frPyObjects({"size": [h, w], "counts": counts}, h, w)
        elif isinstance(counts, (str, bytes)):
            obj = {"size": [h, w], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
        else:
            raise InputError(Errors.E007.format(reason=f"counts of type {type(counts).__name__}"))
        return _coco.decode(obj).astype(bool)
    except InputError:
        raise
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        raise InputError(Errors.E007.format(reason=str(exc))) from exc


def box_area(box: np.ndarray) -> float:
    return float(max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0))


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two XYXY boxes (continuous coordinates; boxes that only touch give 0)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = box_area(a) + box_area(b) - inter
    return float(inter / union) if union > 0 else 0.0


def box_iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of ``(N, 4)`` and ``(M, 4)`` XYXY boxes -> ``(N, M)``."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two ``(H, W)`` bool masks of the same shape (0 when both are empty)."""
    if a.shape != b.shape:
        raise InputError(Errors.E005.format(shape=b.shape, height=a.shape[0], width=a.shape[1]))
    union = np.logical_or(a, b).sum()
    if union == 0:
        return 0.0
    return float(np.logical_and(a, b).sum() / union)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy non-maximum suppression of XYXY boxes.

    Args:
        boxes: ``(N, 4)`` XYXY (any consistent pixel frame).
        scores: ``(N,)``; higher is better. Ties keep the input order (a stable sort), so with
            equal scores the earlier box wins.
        iou: a box whose IoU with an already kept box is **greater** than this is dropped.

    Returns:
        ``(K,)`` int64 indices into ``boxes`` of the kept boxes, best score first.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(b) != len(s):
        raise InputError(Errors.E010.format(what="nms scores", value=s.shape,
                                            reason=f"{len(s)} scores for {len(b)} boxes"))
    order = np.argsort(-s, kind="stable")
    keep: list[int] = []
    while len(order):
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        if not len(rest):
            break
        order = rest[box_iou_matrix(b[i][None], b[rest])[0] <= iou]
    return np.asarray(keep, dtype=np.int64)
