"""GrabCut (role ``segment``, kind ``classical``): box and/or click prompts -> one mask.

``cv2.grabCut`` (Rother et al. 2004), no weights. Deterministic: OpenCV's random generator
(thread-local) is seeded before each call. The mask is cut to the box (or to the working window
of a click-only prompt), holes are filled, and only the connected component(s) holding the
foreground clicks are kept (the largest component when there are no clicks).

One instance may be shared by threads: a handle is read-only and every call works on its own
arrays.

Masks are ``(H, W)`` bool in original pixels; boxes XYXY in original pixels; points ``(x, y)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ... import geometry as geo
from ...errors import Errors, InputError
from ...io import load_image
from ...log import get_logger
from ...types import Region
from .. import roles as R
from ..cvops import check_cv2, colour_separation, fill_holes, resize_max, upsample_mask
from ..registry import register_backend

log = get_logger("pixlink.models.grabcut")


@dataclass
class GrabCutHandle:
    """``embed_image`` result: the working copy of the image (longer side <= ``max_side``).

    Attributes:
        backend: ``"grabcut"``.
        image: ``(h, w, 3)`` uint8 RGB working copy.
        scale: working pixels per original pixel.
        image_size: original ``(H, W)``.
    """

    backend: str
    image: np.ndarray
    scale: float
    image_size: tuple[int, int]


class GrabCutSegmenter:
    """Box / click prompted segmentation with ``cv2.grabCut``.

    Args:
        iterations: GrabCut iterations.
        max_side: the image is segmented at this longer side (speed), the mask upsampled back.
        click_radius: radius (working pixels) of the sure-foreground / sure-background disk
            drawn at each click.
        min_side: smallest box side (working pixels) GrabCut is run on; smaller boxes raise E370.
    """

    name = "grabcut"
    model_id = "opencv-grabcut"
    prompt_kinds = frozenset({"box", "points"})

    def __init__(self, iterations: int = 5, max_side: int = 640, click_radius: int = 5, min_side: int = 4) -> None:
        import cv2

        for what, v, lo in (("iterations", iterations, 1), ("max_side", max_side, 32),
                            ("click_radius", click_radius, 1), ("min_side", min_side, 2)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise InputError(Errors.E353.format(backend=self.name, what=f"{what} {v!r}", reason=f"must be an integer >= {lo}"))
        self.iterations = int(iterations)
        self.max_side = int(max_side)
        self.click_radius = int(click_radius)
        self.min_side = int(min_side)
        self.model_id = f"opencv-grabcut {cv2.__version__} (iterations={iterations}, max_side={max_side})"

    def embed_image(self, image: np.ndarray) -> GrabCutHandle:
        """Keep a working copy of an ``(H, W, 3)`` uint8 RGB image (no model to run)."""
        img = load_image(image)
        work, s = resize_max(img, self.max_side)
        return GrabCutHandle(self.name, np.ascontiguousarray(work), s, (img.shape[0], img.shape[1]))

    def predict(
        self, handle: GrabCutHandle, box: np.ndarray | None = None, points: np.ndarray | None = None,
        point_labels: np.ndarray | None = None, multimask: bool = False,
    ) -> list[R.MaskPrediction]:
        """One mask for a box and/or clicks.

        Args:
            handle: from :meth:`embed_image`.
            box: ``(4,)`` XYXY original pixels (clipped to the image; E003 when outside).
            points: ``(N, 2)`` ``(x, y)`` original pixels; ``point_labels`` ``(N,)`` 1 fg / 0 bg
                (default all 1). Without a box, GrabCut runs in a window around the
                foreground clicks (a square of side >= 0.4 x the shorter image side).
            multimask: ignored (GrabCut gives one mask).

        Returns:
            ``[MaskPrediction]``: ``mask`` ``(H, W)`` bool inside the box (or window);
            ``score`` the colour separation of mask and surroundings (Bhattacharyya distance
            of HSV histograms, 0..1). An empty mask is logged at WARNING and returned as is.
        """
        import cv2

        if not isinstance(handle, GrabCutHandle) or handle.backend != self.name:
            raise InputError(Errors.E362.format(backend=self.name, other=getattr(handle, "backend", type(handle).__name__)))
        if box is None and points is None:
            raise InputError(Errors.E361.format(backend=self.name))
        H, W = handle.image_size
        if box is not None:
            box = geo.clip_box(geo.as_box(box), (H, W))
        region = Region(image_size=(H, W), box=box, points=points, point_labels=point_labels)
        img, s = handle.image, handle.scale
        h, w = img.shape[:2]
        fg_pts = bg_pts = np.zeros((0, 2))
        if region.points is not None:
            fg_pts = region.points[region.point_labels == 1] * s
            bg_pts = region.points[region.point_labels == 0] * s
        if box is not None:
            win = box * s
        else:
            if len(fg_pts) == 0:
                raise InputError(Errors.E006.format(points=region.points.tolist(),
                                                    reason="a click-only prompt needs at least one foreground click (label 1)"))
            c = fg_pts.mean(axis=0)
            half = max(0.2 * min(h, w), 0.75 * float(np.ptp(fg_pts, axis=0).max()) + self.click_radius * 4)
            win = np.array([c[0] - half, c[1] - half, c[0] + half, c[1] + half])
        x1, y1 = int(max(0, math.floor(win[0]))), int(max(0, math.floor(win[1])))
        x2, y2 = int(min(w, math.ceil(win[2]))), int(min(h, math.ceil(win[3])))
        if x2 - x1 < self.min_side or y2 - y1 < self.min_side:
            raise InputError(Errors.E370.format(backend=self.name, box=(win / s).round(1).tolist(), min_side=self.min_side))
        gc = np.full((h, w), cv2.GC_BGD, np.uint8)
        gc[y1:y2, x1:x2] = cv2.GC_PR_FGD if box is not None else cv2.GC_PR_BGD
        r = self.click_radius
        for x, y in fg_pts:
            if box is None:
                cv2.circle(gc, (int(x), int(y)), 4 * r, int(cv2.GC_PR_FGD), -1)
        for x, y in fg_pts:
            cv2.circle(gc, (int(x), int(y)), r, int(cv2.GC_FGD), -1)
        for x, y in bg_pts:
            cv2.circle(gc, (int(x), int(y)), r, int(cv2.GC_BGD), -1)
        outside = np.ones((h, w), bool)
        outside[y1:y2, x1:x2] = False
        gc[outside] = cv2.GC_BGD
        if not ((gc == cv2.GC_BGD) | (gc == cv2.GC_PR_BGD)).any():
            # a box over the whole image leaves GrabCut no background to learn from (it cannot
            # fit its two colour models): the image's outer frame becomes *probable* background
            f = max(1, int(round(0.02 * min(h, w))))
            frame = np.zeros((h, w), bool)
            frame[:f, :] = frame[-f:, :] = True
            frame[:, :f] = frame[:, -f:] = True
            gc[frame & (gc == cv2.GC_PR_FGD)] = cv2.GC_PR_BGD
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.setRNGSeed(0)
        bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
        try:
            cv2.grabCut(bgr, gc, None, bgd, fgd, self.iterations, cv2.GC_INIT_WITH_MASK)
        except cv2.error as exc:  # e.g. all pixels of one label: GrabCut cannot fit two GMMs
            raise InputError(Errors.E353.format(backend=self.name, what="prompt",
                                                reason=f"GrabCut could not run on it ({str(exc).strip()[:160]})")) from exc
        fg = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
        fg = self._keep_components(fg, fg_pts)
        fg = fill_holes(fg) if fg.any() else fg
        inside = np.zeros((h, w), bool)
        inside[y1:y2, x1:x2] = True
        score = colour_separation(img, fg, inside & ~fg)
        mask = upsample_mask(fg, (H, W))
        keep = geo.box_to_mask(box, (H, W)) if box is not None else upsample_mask(inside, (H, W))
        mask &= keep
        if not mask.any():
            log.warning("grabcut: empty mask for prompt box=%s points=%s", None if box is None else box.round(1).tolist(),
                        None if points is None else np.asarray(points).tolist())
        return [R.MaskPrediction(mask=mask, score=score)]

    @staticmethod
    def _keep_components(fg: np.ndarray, fg_pts: np.ndarray) -> np.ndarray:
        """The components holding foreground clicks, else the largest component."""
        import cv2

        n, lab, stats, _ = cv2.connectedComponentsWithStats(fg.astype(np.uint8), connectivity=8)
        if n <= 1:
            return fg
        keep: set[int] = set()
        for x, y in fg_pts:
            yi, xi = min(int(y), fg.shape[0] - 1), min(int(x), fg.shape[1] - 1)
            if lab[yi, xi] > 0:
                keep.add(int(lab[yi, xi]))
        if not keep:
            keep = {1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))}
        return np.isin(lab, sorted(keep))


@register_backend(
    R.SEGMENT, "grabcut", "classical", check_cv2, default_model="OpenCV GrabCut", license="Apache-2.0",
    description="GrabCut: box and/or clicks -> one mask (deterministic, no weights)",
    notes="colour-model segmentation: fails where object and background share colours",
)
def build_grabcut(iterations: int = 5, max_side: int = 640, click_radius: int = 5, min_side: int = 4) -> GrabCutSegmenter:
    return GrabCutSegmenter(iterations=iterations, max_side=max_side, click_radius=click_radius, min_side=min_side)
