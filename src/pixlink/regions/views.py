"""Region views: the ways the papers show a region to an encoder.

Each view is a choice one of the papers made:

* :func:`crop` — the region's box cut out, with a context margin (VNEL's person crops,
  PL-VEL's region crops).
* :func:`masked_crop` — the crop with everything outside the mask replaced by a flat fill,
  so that a global encoder sees only the object (PL-VEL's mask-aware view).
* :func:`red_box` — the whole image with the region marked by a red rectangle: VP-MEL's
  *visual prompt* (the box is drawn into the image, and IIER's Detective-VLM is asked about
  "the entity in the red box").
* :func:`mask_pool` — mask-pooled patch tokens (Osprey-style): the average of an encoder's
  patch tokens weighted by how much of each patch the mask covers.

Images are ``(H, W, 3)`` uint8 RGB; boxes XYXY in original pixels; masks ``(H, W)`` bool.
"""

from __future__ import annotations

import numpy as np

from ..errors import Errors, InputError
from ..imaging import pixel_box, red_box  # red_box lives on the ground floor (model backends draw it too)
from ..types import Region

__all__ = ["crop", "mask_pool", "masked_crop", "red_box"]


def crop(image: np.ndarray, region: Region, margin: float = 0.1) -> np.ndarray:
    """The region's box (grown by ``margin`` of its width/height on each side) cut from
    ``image``; returns ``(h, w, 3)`` uint8."""
    x1, y1, x2, y2 = pixel_box(region.bbox, image.shape[:2], margin)
    return np.ascontiguousarray(image[y1:y2, x1:x2])


def masked_crop(image: np.ndarray, region: Region, margin: float = 0.1, fill: int | None = None) -> np.ndarray:
    """Like :func:`crop`, with the pixels outside the region's mask set to ``fill`` (default:
    the image's mean grey, which is neutral for ImageNet/CLIP normalisation). A region with no
    mask gives the plain crop."""
    if region.mask is None:
        return crop(image, region, margin)
    x1, y1, x2, y2 = pixel_box(region.bbox, image.shape[:2], margin)
    out = image[y1:y2, x1:x2].copy()
    keep = region.mask[y1:y2, x1:x2]
    value = int(image.mean()) if fill is None else int(fill)
    out[~keep] = value
    return out


def mask_pool(patch_tokens: np.ndarray, grid: tuple[int, int], mask: np.ndarray) -> np.ndarray:
    """Mask-pooled region feature from patch tokens (Osprey-style).

    Args:
        patch_tokens: ``(P, C)`` (one image) or ``(N, P, C)`` patch tokens, row-major over
            the patch grid.
        grid: ``(gh, gw)`` with ``gh * gw == P``; the grid covers the image the encoder saw.
        mask: ``(H, W)`` bool mask in the coordinates of that same image (resize the mask
            the way the image was resized before calling).

    Returns:
        ``(C,)`` (or ``(N, C)``): tokens averaged with weights = the fraction of each patch
        covered by the mask. Raises E004 if the mask covers no patch at all.
    """
    import cv2

    gh, gw = grid
    tokens = np.asarray(patch_tokens, dtype=np.float32)
    if tokens.shape[-2] != gh * gw:
        raise InputError(
            Errors.E010.format(what="patch grid", value=grid, reason=f"tokens have P={tokens.shape[-2]} != gh*gw")
        )
    weights = cv2.resize(mask.astype(np.float32), (gw, gh), interpolation=cv2.INTER_AREA).reshape(-1)
    total = weights.sum()
    if total <= 0:
        raise InputError(Errors.E004)
    weights = weights / total
    return np.tensordot(weights, tokens, axes=([0], [-2])) if tokens.ndim == 2 else np.einsum(
        "p,npc->nc", weights, tokens
    )
