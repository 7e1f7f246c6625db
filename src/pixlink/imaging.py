"""Drawing and cropping primitives shared by every layer: a box's pixel bounds, crops, and the
red-box visual prompt.

They sit on the ground floor so that a model backend (which knows no task) and the region
views (:mod:`pixlink.regions.views`) draw and crop the same way.

Images are ``(H, W, 3)`` uint8 RGB; boxes XYXY in original pixels (continuous coordinates,
see :mod:`pixlink.geometry`); masks ``(H, W)`` bool. OpenCV is imported inside the functions.
"""

from __future__ import annotations

import numpy as np

from .errors import Errors, InputError

RED = (255, 0, 0)


def pixel_box(box: np.ndarray, image_size: tuple[int, int], margin: float = 0.0) -> tuple[int, int, int, int]:
    """Integer pixel bounds ``(x1, y1, x2, y2)`` (x2, y2 exclusive) covering the XYXY ``box``
    grown by ``margin`` x its width/height on each side, clipped to the ``(H, W)`` image.

    Raises E003 when nothing of the box lies inside the image."""
    h, w = image_size
    x1, y1, x2, y2 = (float(v) for v in box)
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    a = max(int(np.floor(x1 - mx)), 0)
    b = max(int(np.floor(y1 - my)), 0)
    c = min(int(np.ceil(x2 + mx)), w)
    d = min(int(np.ceil(y2 + my)), h)
    if c <= a or d <= b:
        raise InputError(Errors.E003.format(box=list(box), height=h, width=w))
    return a, b, c, d


def crop_box(image: np.ndarray, box: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """The pixels of ``box`` (XYXY, grown by ``margin``; see :func:`pixel_box`) cut from an
    ``(H, W, 3)`` image: a C-contiguous ``(h, w, 3)`` array (E003 when the box is outside)."""
    x1, y1, x2, y2 = pixel_box(box, image.shape[:2], margin)
    return np.ascontiguousarray(image[y1:y2, x1:x2])


def red_box(image: np.ndarray, box: np.ndarray, thickness: int | None = None) -> np.ndarray:
    """The whole image with ``box`` (XYXY) drawn as a red rectangle (VP-MEL's visual prompt).

    ``thickness`` defaults to ~0.6% of the longer side (at least 2 px), about what VPWiki's
    rendered prompts use. Returns a new ``(H, W, 3)`` uint8 array.
    """
    import cv2

    h, w = image.shape[:2]
    t = thickness if thickness is not None else max(2, int(round(max(h, w) * 0.006)))
    x1, y1, x2, y2 = pixel_box(box, (h, w))
    out = np.ascontiguousarray(image.copy())
    cv2.rectangle(out, (x1, y1), (max(x2 - 1, x1), max(y2 - 1, y1)), RED, t)
    return out


def colour_layers(image: np.ndarray, k: int, *, min_share: float = 0.03, max_share: float = 0.8,
                  sample: int = 4096, seed: int = 0) -> list[np.ndarray]:
    """The image's main colours, each as a black-on-white silhouette: ``(H, W, 3)`` uint8 images.

    ``image`` ``(H, W, 3)`` uint8 RGB is clustered into ``k`` colours (k-means in CIE Lab on a
    sample of ``sample`` pixels, then every pixel to its nearest centre); each cluster covering
    ``min_share``-``max_share`` of the pixels becomes one image, its pixels black (0) and the
    rest white (255), smoothed by a 3x3 Gaussian (a printed edge is not a staircase). A logo
    of one flat colour pasted on a textured wall, or blended into it, is a clean silhouette in
    one of them: its outline no longer carries the wall's texture.
    """
    import cv2

    if image.ndim != 3 or image.shape[2] != 3 or k < 2:
        return []
    lab = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(np.float32)
    rng = np.random.default_rng(seed)
    pick = lab if len(lab) <= sample else lab[rng.choice(len(lab), sample, replace=False)]
    if len(pick) < k:
        return []
    cv2.setRNGSeed(seed)
    _, _, centres = cv2.kmeans(pick, k, None, (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5), 2,
                               cv2.KMEANS_PP_CENTERS)
    d = ((lab[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    label = d.argmin(1).reshape(image.shape[:2])
    out = []
    for c in range(k):
        on = label == c
        share = float(on.mean())
        if not min_share <= share <= max_share:
            continue
        sil = np.where(on, 0, 255).astype(np.uint8)
        sil = cv2.GaussianBlur(sil, (3, 3), 0)
        out.append(np.repeat(sil[..., None], 3, axis=2))
    return out
