"""Classical "segment everything" (role ``segment_all``, kind ``classical``), no model.

Mean-shift colour smoothing + k-means colour clusters at several settings, plus regions
enclosed by Canny edges, split into connected components, deduplicated by mask IoU
(:func:`pixlink.models.cvops.mask_nms`) and ranked by how well each region's border follows
image edges and how much its colours differ from its surroundings.

Thread-safe: every call works on its own arrays; OpenCV's k-means generator is thread-local
and seeded per call.

Masks are ``(H, W)`` bool in original pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ...errors import Errors, InputError
from ...io import load_image
from ...log import get_logger
from .. import roles as R
from ..cvops import check_cv2, colour_separation, fill_holes, mask_nms, resize_max, upsample_mask
from ..registry import register_backend

log = get_logger("pixlink.models.classical_proposals")


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
            mb = fill_holes(m8 > 0)
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
        return 0.5 * edge_fit + 0.5 * colour_separation(img, mask, ring)

    def generate(self, image: np.ndarray, max_masks: int = 64) -> list[R.MaskPrediction]:
        """Up to ``max_masks`` masks ``(H, W)`` bool, best score first (see :meth:`score`);
        masks overlap (IoU up to ``dedup_iou``) and do not cover the image exhaustively."""
        import cv2

        if isinstance(max_masks, bool) or not isinstance(max_masks, (int, np.integer)) or max_masks < 1:
            raise InputError(Errors.E353.format(backend=self.name, what=f"max_masks {max_masks!r}", reason="must be an integer >= 1"))
        img0 = load_image(image)
        img, _ = resize_max(img0, self.max_side)
        cands, edges = self.candidates(img)
        near = cv2.dilate(edges.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        if not cands:
            return []
        scores = np.array([self.score(img, m, near) for m in cands])
        keep = mask_nms(np.stack(cands), scores, self.dedup_iou, limit=int(max_masks))
        H, W = img0.shape[:2]
        return [R.MaskPrediction(mask=upsample_mask(cands[i], (H, W)), score=float(scores[i])) for i in keep]


@register_backend(
    R.SEGMENT_ALL, "classical_proposals", "classical", check_cv2, default_model="OpenCV mean-shift + k-means + Canny",
    license="Apache-2.0",
    description="segment everything without weights: colour clusters and edge-enclosed regions",
    notes="regions of uniform colour, not objects: a person comes out as face, suit, shirt...",
)
def build_classical_proposals(max_side: int = 512, min_area: float = 0.005, max_area: float = 0.95,
                              dedup_iou: float = 0.8) -> ClassicalProposals:
    return ClassicalProposals(max_side=max_side, min_area=min_area, max_area=max_area, dedup_iou=dedup_iou)
