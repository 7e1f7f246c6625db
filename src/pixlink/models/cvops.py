"""Image and mask operations shared by the classical backends (``grabcut``,
``classical_proposals``, ``proposals_fallback``) and SAM's automatic masks.

Images are ``(H, W, 3)`` uint8 RGB, masks ``(H, W)`` bool. OpenCV is imported inside the
functions (``import pixlink`` stays light).
"""

from __future__ import annotations

import importlib.util

import numpy as np


def check_cv2() -> str | None:
    """A registry ``check``: ``None`` when OpenCV can be imported here, else why not."""
    if importlib.util.find_spec("cv2") is None:
        return "missing package: opencv-python-headless"
    return None


def resize_max(img: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Downscale (area interpolation) so that the longer side is at most ``max_side``.

    Returns ``(image, scale)``; ``scale`` = working pixels per original pixel (1.0 unchanged)."""
    import cv2

    h, w = img.shape[:2]
    s = min(1.0, max_side / max(h, w))
    if s >= 1.0:
        return img, 1.0
    return cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA), s


def upsample_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bool mask -> ``size`` ``(H, W)`` bool (bilinear on 0/1, then threshold 0.5)."""
    import cv2

    if mask.shape == tuple(size):
        return mask
    up = cv2.resize(mask.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return up >= 0.5


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """The bool mask with its holes (background regions not touching the border) filled."""
    import cv2

    inv = (~mask).astype(np.uint8)
    n, lab, _, _ = cv2.connectedComponentsWithStats(inv, connectivity=4)
    if n <= 1:
        return mask
    border = set(np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])).tolist())
    holes = np.isin(lab, [i for i in range(1, n) if i not in border])
    return mask | holes


def colour_separation(img: np.ndarray, fg: np.ndarray, bg: np.ndarray) -> float:
    """Bhattacharyya distance in [0, 1] between the HSV histograms (hue x saturation, 16 x 8
    bins) of the ``fg`` and ``bg`` pixels (``(h, w)`` bool masks of ``img``): 0 = same
    colours, 1 = disjoint colours; 0 when either has fewer than 4 pixels."""
    import cv2

    if fg.sum() < 4 or bg.sum() < 4:
        return 0.0
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
    hf = cv2.calcHist([hsv], [0, 1], fg.astype(np.uint8), [16, 8], [0, 180, 0, 256])
    hb = cv2.calcHist([hsv], [0, 1], bg.astype(np.uint8), [16, 8], [0, 180, 0, 256])
    cv2.normalize(hf, hf, 1.0, 0.0, cv2.NORM_L1)
    cv2.normalize(hb, hb, 1.0, 0.0, cv2.NORM_L1)
    return float(np.clip(cv2.compareHist(hf, hb, cv2.HISTCMP_BHATTACHARYYA), 0.0, 1.0))


def mask_nms(masks: np.ndarray, scores: np.ndarray, iou: float, limit: int | None = None) -> list[int]:
    """Greedy non-maximum suppression of masks (the mask counterpart of
    :func:`pixlink.geometry.nms`).

    Args:
        masks: ``(K, h, w)`` bool (or a list of ``(h, w)`` bool masks of one shape).
        scores: ``(K,)``, higher is better; ties keep the input order.
        iou: a mask whose IoU with an already kept mask is greater than this is dropped.
        limit: stop once this many masks are kept (``None``: no limit).

    Returns:
        Indices of the kept masks, best score first. Empty masks are never kept.
    """
    m = np.asarray(masks, dtype=bool)
    if len(m) == 0:
        return []
    flat = m.reshape(len(m), -1)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    areas = np.count_nonzero(flat, axis=1)
    cap = len(m) if limit is None else max(0, min(int(limit), len(m)))
    kept_rows = np.zeros((cap, flat.shape[1]), dtype=bool)  # the kept masks, filled in order
    keep: list[int] = []
    for i in order:
        if len(keep) >= cap:
            break
        if areas[i] == 0:
            continue
        n = len(keep)
        if n:
            inter = np.count_nonzero(kept_rows[:n] & flat[i], axis=1)
            union = areas[keep] + areas[i] - inter
            if np.any(inter / np.maximum(union, 1) > iou):
                continue
        kept_rows[n] = flat[i]
        keep.append(int(i))
    return keep
