"""Classical (weight-free) vision backends built on OpenCV, and the weak offline detector.

* ``grabcut`` (role ``segment``, kind ``classical``): box and/or click prompts -> one mask with
  ``cv2.grabCut`` (Rother et al. 2004). Deterministic (OpenCV's RNG is seeded before each call);
  the mask is cut to the box (or to the working window of a click-only prompt), holes are
  filled, and only the connected component(s) holding the foreground clicks are kept (the
  largest component when there are no clicks).
* ``classical_proposals`` (role ``segment_all``, kind ``classical``): "segment everything"
  without a model: mean-shift colour smoothing + k-means colour clusters at several settings,
  plus regions enclosed by Canny edges, split into connected components, deduplicated by mask
  IoU and ranked by how well each region's border follows image edges and how much its colours
  differ from its surroundings.
* ``proposals_fallback`` (role ``detect``, kind ``classical``): a **weak fallback** for
  phrase grounding with no detector weights: boxes of the classical proposals plus a few sliding
  windows are scored against the phrase with the ConSE bridge (``conse_efficientnet``), and
  person-like phrases are answered with face boxes (role ``faces``) grown to upper bodies. Every
  :class:`~pixlink.models.roles.Detection` says where it came from in ``source``
  (``"fallback:proposals+conse"``, ``"fallback:faces->upper_body"``). See
  docs/models-offline-vision.md for how weak it is.

All masks are ``(H, W)`` bool in original pixels; boxes XYXY in original pixels.
"""

from __future__ import annotations

import importlib.util
import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ... import geometry as geo
from ...errors import Errors, InputError
from ...io import load_image
from ...log import get_logger
from ...types import Region
from .. import roles as R
from ..registry import Profile, register_backend

log = get_logger("pixlink.models.classical")


def _check_cv2() -> str | None:
    if importlib.util.find_spec("cv2") is None:
        return "missing package: opencv-python-headless"
    return None


def _resize_max(img: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Downscale so that the longer side is at most ``max_side``; returns (image, scale)."""
    import cv2

    h, w = img.shape[:2]
    s = min(1.0, max_side / max(h, w))
    if s >= 1.0:
        return img, 1.0
    return cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA), s


def _upsample_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bool mask -> ``size`` ``(H, W)`` bool (bilinear on 0/1 then threshold 0.5)."""
    import cv2

    if mask.shape == tuple(size):
        return mask
    up = cv2.resize(mask.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return up >= 0.5


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill background regions of a bool mask that do not touch the border."""
    import cv2

    inv = (~mask).astype(np.uint8)
    n, lab, _, _ = cv2.connectedComponentsWithStats(inv, connectivity=4)
    if n <= 1:
        return mask
    border = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    holes = np.isin(lab, [i for i in range(1, n) if i not in set(border.tolist())])
    return mask | holes


def _colour_separation(img: np.ndarray, fg: np.ndarray, bg: np.ndarray) -> float:
    """Bhattacharyya distance in [0, 1] between the HSV histograms (hue x saturation, 16 x 8
    bins) of the ``fg`` and ``bg`` pixels: 0 = same colours, 1 = disjoint colours."""
    import cv2

    if fg.sum() < 4 or bg.sum() < 4:
        return 0.0
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
    hf = cv2.calcHist([hsv], [0, 1], fg.astype(np.uint8), [16, 8], [0, 180, 0, 256])
    hb = cv2.calcHist([hsv], [0, 1], bg.astype(np.uint8), [16, 8], [0, 180, 0, 256])
    cv2.normalize(hf, hf, 1.0, 0.0, cv2.NORM_L1)
    cv2.normalize(hb, hb, 1.0, 0.0, cv2.NORM_L1)
    return float(np.clip(cv2.compareHist(hf, hb, cv2.HISTCMP_BHATTACHARYYA), 0.0, 1.0))


# =============================================================================================
# GrabCut
# =============================================================================================


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
        work, s = _resize_max(img, self.max_side)
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
        fg = _fill_holes(fg) if fg.any() else fg
        inside = np.zeros((h, w), bool)
        inside[y1:y2, x1:x2] = True
        score = _colour_separation(img, fg, inside & ~fg)
        mask = _upsample_mask(fg, (H, W))
        keep = geo.box_to_mask(box, (H, W)) if box is not None else _upsample_mask(inside, (H, W))
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
    R.SEGMENT, "grabcut", "classical", _check_cv2, default_model="OpenCV GrabCut", license="Apache-2.0",
    description="GrabCut: box and/or clicks -> one mask (deterministic, no weights)",
    notes="colour-model segmentation: fails where object and background share colours",
)
def build_grabcut(iterations: int = 5, max_side: int = 640, click_radius: int = 5, min_side: int = 4) -> GrabCutSegmenter:
    return GrabCutSegmenter(iterations=iterations, max_side=max_side, click_radius=click_radius, min_side=min_side)


# =============================================================================================
# Classical "segment everything"
# =============================================================================================


@dataclass(frozen=True)
class ColourSetting:
    """One colour-clustering pass: mean-shift spatial radius ``sp``, colour radius ``sr``,
    ``k`` k-means clusters in Lab."""

    sp: int
    sr: int
    k: int


DEFAULT_SETTINGS = (ColourSetting(8, 16, 8), ColourSetting(12, 24, 5), ColourSetting(16, 32, 3))


class ClassicalProposals:
    """Automatic masks without a model (role ``segment_all``).

    Args:
        max_side: working resolution (longer side).
        settings: colour-clustering passes (see :class:`ColourSetting`).
        canny: ``(low, high)`` Canny thresholds for the edge-enclosed regions and the border score.
        min_area, max_area: kept region sizes as fractions of the image.
        dedup_iou: a mask whose IoU with a better-ranked mask exceeds this is dropped.
    """

    name = "classical_proposals"

    def __init__(self, max_side: int = 512, settings: Sequence[ColourSetting] = DEFAULT_SETTINGS,
                 canny: tuple[int, int] = (50, 150), min_area: float = 0.005, max_area: float = 0.95,
                 dedup_iou: float = 0.8) -> None:
        import cv2

        if not (0.0 <= min_area < max_area <= 1.0):
            raise InputError(Errors.E353.format(backend=self.name, what=f"min_area/max_area {min_area}/{max_area}",
                                                reason="need 0 <= min_area < max_area <= 1"))
        if not 0.0 < dedup_iou <= 1.0:
            raise InputError(Errors.E353.format(backend=self.name, what=f"dedup_iou {dedup_iou}", reason="must be in (0, 1]"))
        self.max_side = int(max_side)
        self.settings = tuple(settings)
        self.canny = (int(canny[0]), int(canny[1]))
        self.min_area, self.max_area = float(min_area), float(max_area)
        self.dedup_iou = float(dedup_iou)
        self.model_id = (f"opencv {cv2.__version__} meanshift+kmeans{[(c.sp, c.sr, c.k) for c in self.settings]}"
                         f"+canny{self.canny} max_side={self.max_side}")

    # -- candidate regions -------------------------------------------------------------------
    def _components(self, labels: np.ndarray, edges: np.ndarray | None, out: list[np.ndarray]) -> None:
        import cv2

        h, w = labels.shape
        lo, hi = self.min_area * h * w, self.max_area * h * w
        for lab in np.unique(labels):
            m = (labels == lab).astype(np.uint8)
            if edges is not None:
                m[edges] = 0
            n, cc, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=4)
            for i in range(1, n):
                if lo <= stats[i, cv2.CC_STAT_AREA] <= hi:
                    out.append(cc == i)

    def candidates(self, img: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """Candidate masks at working resolution and the Canny edge map used to score them."""
        import cv2

        cands: list[np.ndarray] = []
        bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
        gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        edges = cv2.Canny(cv2.GaussianBlur(gray, (5, 5), 0), *self.canny) > 0
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
        for st in self.settings:
            smooth = cv2.pyrMeanShiftFiltering(bgr, st.sp, st.sr)
            lab = cv2.cvtColor(smooth, cv2.COLOR_BGR2LAB).reshape(-1, 3).astype(np.float32)
            cv2.setRNGSeed(0)
            crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 1.0)
            _, labels, _ = cv2.kmeans(lab, st.k, None, crit, 1, cv2.KMEANS_PP_CENTERS)
            labels = cv2.medianBlur(labels.reshape(gray.shape).astype(np.uint8), 5)
            self._components(labels, None, cands)
        thick = cv2.dilate(edges.astype(np.uint8), kernel) > 0
        self._components(np.zeros(gray.shape, np.uint8), thick, cands)
        cleaned = []
        for m in cands:
            m8 = cv2.morphologyEx(m.astype(np.uint8), cv2.MORPH_OPEN, kernel)
            m8 = cv2.morphologyEx(m8, cv2.MORPH_CLOSE, kernel)
            mb = _fill_holes(m8 > 0)
            if mb.sum() >= self.min_area * mb.size:
                cleaned.append(mb)
        return cleaned, edges

    def score(self, img: np.ndarray, mask: np.ndarray, edges_near: np.ndarray) -> float:
        """Mean of (a) the fraction of the mask's border (away from the image frame) that lies
        within 2 px of a Canny edge and (b) the colour separation from a 10-px ring around it."""
        import cv2

        m8 = mask.astype(np.uint8)
        border = (m8 - cv2.erode(m8, np.ones((3, 3), np.uint8))) > 0
        border[0, :] = border[-1, :] = False
        border[:, 0] = border[:, -1] = False
        edge_fit = float(edges_near[border].mean()) if border.any() else 0.0
        ring = (cv2.dilate(m8, np.ones((21, 21), np.uint8)) > 0) & ~mask
        return 0.5 * edge_fit + 0.5 * _colour_separation(img, mask, ring)

    def generate(self, image: np.ndarray, max_masks: int = 64) -> list[R.MaskPrediction]:
        """Up to ``max_masks`` masks ``(H, W)`` bool, best score first (see :meth:`score`);
        masks overlap (IoU up to ``dedup_iou``) and do not cover the image exhaustively."""
        import cv2

        if isinstance(max_masks, bool) or not isinstance(max_masks, (int, np.integer)) or max_masks < 1:
            raise InputError(Errors.E353.format(backend=self.name, what=f"max_masks {max_masks!r}", reason="must be an integer >= 1"))
        img0 = load_image(image)
        img, _ = _resize_max(img0, self.max_side)
        cands, edges = self.candidates(img)
        near = cv2.dilate(edges.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        scored = sorted(((self.score(img, m, near), i) for i, m in enumerate(cands)), key=lambda t: (-t[0], t[1]))
        kept: list[tuple[float, np.ndarray]] = []
        for sc, i in scored:
            m = cands[i]
            area = m.sum()
            dup = False
            for _, k in kept:
                inter = np.logical_and(m, k).sum()
                if inter and inter / (area + k.sum() - inter) > self.dedup_iou:
                    dup = True
                    break
            if not dup:
                kept.append((sc, m))
            if len(kept) >= max_masks:
                break
        H, W = img0.shape[:2]
        return [R.MaskPrediction(mask=_upsample_mask(m, (H, W)), score=float(sc)) for sc, m in kept]


@register_backend(
    R.SEGMENT_ALL, "classical_proposals", "classical", _check_cv2, default_model="OpenCV mean-shift + k-means + Canny",
    license="Apache-2.0",
    description="segment everything without weights: colour clusters and edge-enclosed regions",
    notes="regions of uniform colour, not objects: a person comes out as face, suit, shirt...",
)
def build_classical_proposals(max_side: int = 512, min_area: float = 0.005, max_area: float = 0.95,
                              dedup_iou: float = 0.8) -> ClassicalProposals:
    return ClassicalProposals(max_side=max_side, min_area=min_area, max_area=max_area, dedup_iou=dedup_iou)


# =============================================================================================
# Weak offline phrase detector
# =============================================================================================

PERSON_WORDS = frozenset("""
person persons people man men woman women boy boys girl girls child children kid kids baby guy guys
lady ladies gentleman player players face faces crowd someone somebody he she they him her
actor actress singer politician president athlete human humans fan fans couple family team
""".split())


def is_person_phrase(phrase: str, extra: frozenset[str] = frozenset()) -> bool:
    """True when a word of ``phrase`` (lower-cased) is in :data:`PERSON_WORDS` or ``extra``.
    Entity names are not recognised: callers with a PER entity pass e.g. ``"Obama person"``."""
    words = set(re.findall(r"[a-z]+", phrase.lower()))
    return bool(words & (PERSON_WORDS | extra))


def upper_body_box(face_box: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Grow a face box ``(4,)`` XYXY to an upper-body box: 3 face widths wide, from 0.3 face
    heights above the face to 2.5 below it, clipped to the ``(H, W)`` image."""
    x1, y1, x2, y2 = np.asarray(face_box, dtype=np.float64)
    fw, fh = x2 - x1, y2 - y1
    cx = (x1 + x2) / 2
    return geo.clip_box(np.array([cx - 1.5 * fw, y1 - 0.3 * fh, cx + 1.5 * fw, y2 + 2.5 * fh]), image_size)


def check_phrase_list(phrases: Any, backend: str) -> list[str]:
    """The phrases as a list; E353 for a bare string, E380 for an empty phrase."""
    if isinstance(phrases, str):
        raise InputError(Errors.E353.format(backend=backend, what="phrases",
                                            reason="expected a list of strings, got a single string; wrap it in a list"))
    phrases = list(phrases)
    for i, p in enumerate(phrases):
        if not isinstance(p, str) or not p.strip():
            raise InputError(Errors.E380.format(backend=backend, index=i))
    return phrases


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    order = list(np.argsort(-scores, kind="stable"))
    keep: list[int] = []
    while order:
        i = order.pop(0)
        keep.append(int(i))
        if order:
            ious = geo.box_iou_matrix(boxes[i][None], boxes[order])[0]
            order = [j for j, v in zip(order, ious) if v <= iou]
    return keep


@dataclass
class _Proposals:
    boxes: np.ndarray  # (P, 4) XYXY
    kinds: list[str]
    embeds: np.ndarray  # (P, D) ConSE
    labels: list[str]  # top ImageNet class (clean name) of each crop


class ProposalsFallbackDetector:
    """The weak offline :class:`~pixlink.models.roles.PhraseDetector`.

    Args:
        conse: a ConSE encoder (``image_text``); default: built with :func:`.conse.build_conse`.
        faces: a :class:`~pixlink.models.roles.FaceModel`; default: the offline profile's
            ``faces`` backend when it can run, else none (person phrases are then scored with
            ConSE like any phrase, logged at WARNING and marked in ``source``).
        proposals: a :class:`ClassicalProposals`; default settings.
        max_region_boxes: classical region boxes kept (best scored first).
        window_scales: sliding-window sides as fractions of the image side (stride half a window).
        max_per_phrase: detections returned per phrase (after NMS at IoU 0.5).
    """

    name = "proposals_fallback"

    def __init__(self, conse: Any = None, faces: Any = None, proposals: ClassicalProposals | None = None,
                 max_region_boxes: int = 24, window_scales: Sequence[float] = (1.0, 0.5), max_per_phrase: int = 5,
                 use_faces: bool = True) -> None:
        from .conse import build_conse

        self.conse = conse if conse is not None else build_conse()
        self.faces = faces
        self.faces_note = ""
        if self.faces is None and use_faces:
            prof = Profile("offline")
            choice = prof.choose(R.FACES)
            if choice.backend is not None:
                self.faces = prof.get(R.FACES)
            else:
                self.faces_note = f"no faces backend ({choice.reason})"
                log.warning("proposals_fallback: %s; person phrases are scored with ConSE, which cannot see people",
                            self.faces_note)
        self.proposals = proposals or ClassicalProposals()
        self.max_region_boxes = int(max_region_boxes)
        self.window_scales = tuple(float(s) for s in window_scales)
        self.max_per_phrase = int(max_per_phrase)
        self.model_id = (f"proposals_fallback[{self.proposals.model_id}; windows={self.window_scales}] scored by "
                         f"[{self.conse.model_id}]; faces=[{getattr(self.faces, 'model_id', 'none')}]")

    def windows(self, image_size: tuple[int, int]) -> list[np.ndarray]:
        """Sliding windows (XYXY): for each scale s, windows of s x W by s x H at stride s / 2."""
        H, W = image_size
        out = []
        for s in self.window_scales:
            ww, wh = W * s, H * s
            nx = max(1, int(round((W - ww) / (ww / 2))) + 1)
            ny = max(1, int(round((H - wh) / (wh / 2))) + 1)
            for iy in range(ny):
                for ix in range(nx):
                    x1 = 0.0 if nx == 1 else ix * (W - ww) / (nx - 1)
                    y1 = 0.0 if ny == 1 else iy * (H - wh) / (ny - 1)
                    out.append(np.array([x1, y1, x1 + ww, y1 + wh]))
        return out

    def propose(self, image: np.ndarray) -> _Proposals:
        """Region boxes (from :class:`ClassicalProposals`) + windows, deduplicated at box IoU
        0.9, with the ConSE embedding of each crop."""
        img = load_image(image)
        H, W = img.shape[:2]
        boxes: list[np.ndarray] = []
        kinds: list[str] = []
        for mp in self.proposals.generate(img, max_masks=self.max_region_boxes):
            boxes.append(geo.mask_to_box(mp.mask))
            kinds.append("region")
        for b in self.windows((H, W)):
            boxes.append(b)
            kinds.append("window")
        arr = np.stack(boxes)
        keep: list[int] = []
        for i in range(len(arr)):
            if not keep or geo.box_iou_matrix(arr[i][None], arr[keep])[0].max() <= 0.9:
                keep.append(i)
        arr = arr[keep]
        kinds = [kinds[i] for i in keep]
        crops = []
        for b in arr:
            x1, y1 = int(math.floor(b[0])), int(math.floor(b[1]))
            x2, y2 = max(int(math.ceil(b[2])), x1 + 1), max(int(math.ceil(b[3])), y1 + 1)
            crops.append(np.ascontiguousarray(img[y1:y2, x1:x2]))
        logits = self.conse.image_encoder.encode_images(crops).logits
        names = self.conse.image_encoder.class_names
        return _Proposals(arr, kinds, self.conse.mix_logits(logits), [names[int(i)] for i in logits.argmax(axis=1)])

    def detect(self, image: np.ndarray, phrases: Sequence[str], threshold: float = 0.1) -> list[R.Detection]:
        """Boxes for each phrase.

        Args:
            image: ``(H, W, 3)`` uint8 RGB.
            phrases: non-empty strings (E380 for an empty one).
            threshold: minimum score (ConSE cosine, clipped to [0, 1]; for face boxes the
                sigmoid of the face detector's score).

        Returns:
            Detections, per phrase best first (at most ``max_per_phrase`` each, NMS at IoU 0.5).
            ``label`` is the top ImageNet class of the box for ConSE boxes, ``"face->upper body"``
            for face boxes; ``source`` starts with ``"fallback:"``.
        """
        phrases = check_phrase_list(phrases, self.name)
        img = load_image(image)
        H, W = img.shape[:2]
        out: list[R.Detection] = []
        props: _Proposals | None = None
        faces: list[R.Face] | None = None
        for phrase in phrases:
            if is_person_phrase(phrase) and self.faces is not None:
                if faces is None:
                    faces = self.faces.detect(img)
                dets = []
                for f in faces:
                    sc = 0.5 if f.score is None else 1.0 / (1.0 + math.exp(-float(f.score)))
                    if sc >= threshold:
                        dets.append(R.Detection(box=upper_body_box(f.box, (H, W)), score=float(sc), phrase=phrase,
                                                label="face->upper body", source="fallback:faces->upper_body"))
                dets.sort(key=lambda d: -d.score)
                out.extend(dets[: self.max_per_phrase])
                continue
            if props is None:
                props = self.propose(img)
            t = self.conse.encode_texts([phrase])[0]
            sims = np.clip(props.embeds @ t, 0.0, 1.0)
            cand = np.nonzero(sims >= threshold)[0]
            if not len(cand):
                continue
            keep = [int(cand[j]) for j in _nms(props.boxes[cand], sims[cand], 0.5)][: self.max_per_phrase]
            src = "fallback:proposals+conse" + (f" ({self.faces_note})" if is_person_phrase(phrase) else "")
            for k in keep:
                out.append(R.Detection(box=props.boxes[k].copy(), score=float(sims[k]), phrase=phrase,
                                       label=props.labels[k], source=src))
        return out


def _check_fallback() -> str | None:
    why = _check_cv2()
    if why is not None:
        return why
    from .conse import _check as _check_conse

    why = _check_conse()
    return None if why is None else f"conse_efficientnet: {why}"


@register_backend(
    R.DETECT, "proposals_fallback", "classical", _check_fallback,
    default_model="classical proposals + sliding windows scored by conse_efficientnet; faces -> upper bodies",
    license="Apache-2.0",
    description="WEAK fallback detector: region proposals scored against the phrase with ConSE",
    notes="no detector weights ship offline; person phrases use face boxes; expect low recall and loose boxes",
)
def build_proposals_fallback(conse: Any = None, faces: Any = None, max_region_boxes: int = 24,
                             window_scales: Sequence[float] = (1.0, 0.5), max_per_phrase: int = 5,
                             use_faces: bool = True) -> ProposalsFallbackDetector:
    return ProposalsFallbackDetector(conse=conse, faces=faces, max_region_boxes=max_region_boxes,
                                     window_scales=window_scales, max_per_phrase=max_per_phrase, use_faces=use_faces)
