"""Local features (role ``local_features``, kind ``classical``): keypoints and descriptors
for instance matching, from OpenCV (no weights).

* ``sift`` — SIFT (Lowe 2004) keypoints and 128-bin descriptors, compared as **RootSIFT**
  (Arandjelovic & Zisserman 2012: L1-normalise, then square root; Euclidean distance between
  RootSIFT vectors is the Hellinger kernel on the SIFT histograms). The default.
* ``orb`` — ORB (Rublee et al. 2011) FAST keypoints and 256-bit rBRIEF descriptors, compared by
  Hamming distance: about 5-10x faster to extract, and less discriminative.

Both give :class:`~pixlink.models.roles.LocalFeatures`: keypoint centres ``(x, y)`` in the
pixels of the image given, sizes, angles, responses, the raw descriptors as uint8 (SIFT's 128
bins, or ORB's 32 packed bytes), and the mean RGB of each keypoint's disc (for the photometric
check of a match).

Working scale: the image is resized so that its longer side lies in ``[min_side, max_side]``
(small regions are enlarged: SIFT finds few features below ~300 px), and padded by replicating
its border (SIFT and ORB ignore a band along the edges; a flag's or a crop's edge features
would be lost). Coordinates are mapped back to the input pixels.

Choosing features: all are detected, then at most ``max_features`` are kept, strongest first
*within each cell of a grid* (``grid`` x ``grid``), cell after cell, so that one textured corner
does not take the whole budget ("capped and spread").

One instance can be shared by threads: every thread gets its own OpenCV detector.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from ...errors import Errors, InputError
from .. import roles as R
from ..cvops import check_cv2
from ..registry import register_backend


def spread_select(xy: np.ndarray, response: np.ndarray, size_hw: tuple[int, int], k: int, grid: int) -> np.ndarray:
    """Indices of at most ``k`` keypoints: the strongest of each grid cell first, then the second
    strongest of each cell, and so on (ties by response). ``xy`` ``(N, 2)``; ``size_hw`` ``(H, W)``."""
    n = len(response)
    if n <= k:
        return np.argsort(-response, kind="stable")
    h, w = size_hw
    cx = np.clip((xy[:, 0] * grid / max(w, 1)).astype(np.int64), 0, grid - 1)
    cy = np.clip((xy[:, 1] * grid / max(h, 1)).astype(np.int64), 0, grid - 1)
    cell = cy * grid + cx
    order = np.lexsort((-response, cell))  # by cell, strongest first inside a cell
    sorted_cells = cell[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_cells)) + 1]
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    pick = np.lexsort((-response, rank))[:k]
    return pick


def disc_colours(rgb: np.ndarray, xy: np.ndarray, size: np.ndarray) -> np.ndarray:
    """``(N, 3)`` uint8 mean RGB of a square of side ~0.7 x the keypoint diameter around each
    keypoint (at least 3 px), from an integral image (``rgb`` ``(H, W, 3)`` uint8)."""
    import cv2

    h, w = rgb.shape[:2]
    if len(xy) == 0:
        return np.zeros((0, 3), np.uint8)
    ii = cv2.integral(rgb.astype(np.uint8), sdepth=cv2.CV_64F)  # (h+1, w+1, 3)
    r = np.maximum(size * 0.35, 1.5)
    x1 = np.clip(np.floor(xy[:, 0] - r), 0, w - 1).astype(np.int64)
    y1 = np.clip(np.floor(xy[:, 1] - r), 0, h - 1).astype(np.int64)
    x2 = np.clip(np.ceil(xy[:, 0] + r) + 1, x1 + 1, w).astype(np.int64)
    y2 = np.clip(np.ceil(xy[:, 1] + r) + 1, y1 + 1, h).astype(np.int64)
    s = ii[y2, x2] - ii[y1, x2] - ii[y2, x1] + ii[y1, x1]
    area = ((x2 - x1) * (y2 - y1)).astype(np.float64)[:, None]
    return np.clip(np.round(s / area), 0, 255).astype(np.uint8)


class _Extractor:
    """What SIFT and ORB share: working scale, padding, mask, spread selection, colours."""

    name = ""
    kind = "float"
    dim = 0

    def __init__(self, max_features: int, min_side: int, max_side: int, pad: int, grid: int) -> None:
        for what, v, lo in (("max_features", max_features, 1), ("min_side", min_side, 16), ("max_side", max_side, 32),
                            ("pad", pad, 0), ("grid", grid, 1)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise InputError(Errors.E353.format(backend=self.name, what=f"{what} {v!r}", reason=f"must be an integer >= {lo}"))
        if min_side > max_side:
            raise InputError(Errors.E353.format(backend=self.name, what=f"min_side {min_side}",
                                                reason=f"must not exceed max_side {max_side}"))
        self.max_features = int(max_features)
        self.min_side = int(min_side)
        self.max_side = int(max_side)
        self.pad = int(pad)
        self.grid = int(grid)
        self._local = threading.local()

    def _detector(self) -> Any:
        det = getattr(self._local, "det", None)
        if det is None:
            det = self._local.det = self._make()
        return det

    def _make(self) -> Any:  # pragma: no cover - subclasses
        raise NotImplementedError

    def _post(self, desc: np.ndarray) -> np.ndarray:
        return desc

    def extract(self, image: np.ndarray, mask: np.ndarray | None = None, max_features: int | None = None
                ) -> R.LocalFeatures:
        """Features of an ``(H, W, 3)`` uint8 RGB image (see the module docstring).

        Args:
            image: ``(H, W, 3)`` uint8 RGB.
            mask: optional ``(H, W)`` bool: keypoints only where True.
            max_features: cap (default: the backend's ``max_features``).

        Returns:
            :class:`~pixlink.models.roles.LocalFeatures` in the pixels of ``image``.
        """
        import cv2

        img = np.asarray(image)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8 or min(img.shape[:2]) < 1:
            raise InputError(Errors.E353.format(backend=self.name, what=f"image of shape {img.shape} and dtype {img.dtype}",
                                                reason="expected an (H, W, 3) uint8 RGB array"))
        H, W = img.shape[:2]
        cap = self.max_features if max_features is None else int(max_features)
        longer = max(H, W)
        s = 1.0
        if longer > self.max_side:
            s = self.max_side / longer
        elif longer < self.min_side:
            s = self.min_side / longer
        work = img
        if s != 1.0:
            work = cv2.resize(img, (max(1, round(W * s)), max(1, round(H * s))),
                              interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
        h, w = work.shape[:2]
        p = self.pad
        padded = cv2.copyMakeBorder(work, p, p, p, p, cv2.BORDER_REPLICATE) if p else work
        gray = cv2.cvtColor(padded, cv2.COLOR_RGB2GRAY)
        m8 = None
        if mask is not None:
            mk = np.asarray(mask, bool)
            if mk.shape != (H, W):
                raise InputError(Errors.E005.format(shape=mk.shape, height=H, width=W))
            if s != 1.0:
                mk = cv2.resize(mk.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
            m8 = np.zeros(gray.shape, np.uint8)
            m8[p:p + h, p:p + w] = mk.astype(np.uint8) * 255
        kps, desc = self._detector().detectAndCompute(gray, m8)
        empty = R.LocalFeatures(
            xy=np.zeros((0, 2), np.float32), size=np.zeros(0, np.float32), angle=np.zeros(0, np.float32),
            response=np.zeros(0, np.float32), descriptors=np.zeros((0, self.dim), np.uint8),
            colour=np.zeros((0, 3), np.uint8), kind=self.kind, image_size=(H, W))
        if desc is None or not kps:
            return empty
        xy = np.array([k.pt for k in kps], np.float32) - p
        size = np.array([k.size for k in kps], np.float32)
        angle = np.array([k.angle for k in kps], np.float32)
        resp = np.array([k.response for k in kps], np.float32)
        inside = (xy[:, 0] >= -0.5) & (xy[:, 1] >= -0.5) & (xy[:, 0] <= w - 0.5) & (xy[:, 1] <= h - 0.5)
        keep = np.flatnonzero(inside)
        keep = keep[spread_select(xy[keep], resp[keep], (h, w), cap, self.grid)]
        xy, size, angle, resp, desc = xy[keep], size[keep], angle[keep], resp[keep], desc[keep]
        colour = disc_colours(work, xy, size)
        return R.LocalFeatures(
            xy=(xy / s).astype(np.float32), size=(size / s).astype(np.float32), angle=angle, response=resp,
            descriptors=np.ascontiguousarray(self._post(desc)), colour=colour, kind=self.kind, image_size=(H, W))


class SiftExtractor(_Extractor):
    """SIFT keypoints, 128-bin descriptors as uint8 (compared as RootSIFT).

    Args:
        max_features: default cap per image (strongest, spread over a grid).
        contrast_threshold: SIFT's DoG contrast threshold (OpenCV's default 0.04; lower finds
            more features in blurred or low-contrast regions).
        edge_threshold: SIFT's edge-response threshold.
        n_octave_layers: scales per octave.
        min_side, max_side: the image's longer side is brought into this range first.
        pad: border (working pixels) replicated around the image before detection.
        grid: the spread of the selection (``grid`` x ``grid`` cells).
    """

    name = "sift"
    kind = "float"
    dim = 128

    def __init__(self, max_features: int = 1000, contrast_threshold: float = 0.03, edge_threshold: float = 10.0,
                 n_octave_layers: int = 3, min_side: int = 320, max_side: int = 1024, pad: int = 12,
                 grid: int = 4) -> None:
        super().__init__(max_features, min_side, max_side, pad, grid)
        for what, v in (("contrast_threshold", contrast_threshold), ("edge_threshold", edge_threshold)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise InputError(Errors.E353.format(backend=self.name, what=f"{what} {v!r}", reason="must be a number > 0"))
        self.contrast_threshold = float(contrast_threshold)
        self.edge_threshold = float(edge_threshold)
        self.n_octave_layers = int(n_octave_layers)
        self.model_id = (f"opencv-sift/rootsift (contrast={self.contrast_threshold:g}, edge={self.edge_threshold:g}, "
                         f"layers={self.n_octave_layers})")

    def _make(self) -> Any:
        import cv2

        return cv2.SIFT_create(nfeatures=0, nOctaveLayers=self.n_octave_layers,
                               contrastThreshold=self.contrast_threshold, edgeThreshold=self.edge_threshold)

    def _post(self, desc: np.ndarray) -> np.ndarray:
        # OpenCV's float SIFT bins are integers in [0, 255] (512 x the normalised, clipped histogram)
        return np.clip(np.round(desc), 0, 255).astype(np.uint8)


class OrbExtractor(_Extractor):
    """ORB keypoints and 256-bit rBRIEF descriptors (32 packed bytes, compared by Hamming).

    Args:
        max_features: default cap per image.
        scale_factor, n_levels: ORB's image pyramid.
        fast_threshold: FAST corner threshold.
        min_side, max_side, pad, grid: as :class:`SiftExtractor`.
    """

    name = "orb"
    kind = "binary"
    dim = 32

    def __init__(self, max_features: int = 1000, scale_factor: float = 1.2, n_levels: int = 8, fast_threshold: int = 12,
                 min_side: int = 320, max_side: int = 1024, pad: int = 32, grid: int = 4) -> None:
        super().__init__(max_features, min_side, max_side, pad, grid)
        self.scale_factor = float(scale_factor)
        self.n_levels = int(n_levels)
        self.fast_threshold = int(fast_threshold)
        self.model_id = f"opencv-orb (scale={self.scale_factor:g}, levels={self.n_levels}, fast={self.fast_threshold})"

    def _make(self) -> Any:
        import cv2

        # detect generously; extract() keeps max_features spread over the grid
        return cv2.ORB_create(nfeatures=max(4 * self.max_features, 2000), scaleFactor=self.scale_factor,
                              nlevels=self.n_levels, edgeThreshold=15, patchSize=31, fastThreshold=self.fast_threshold)


@register_backend(
    R.LOCAL_FEATURES, "sift", "classical", check_cv2, default_model="OpenCV SIFT (RootSIFT)", license="Apache-2.0",
    description="SIFT keypoints + descriptors compared as RootSIFT (instance matching; no weights)",
    notes="matches flat, textured, rigid things (logos, artworks, landmarks); not faces or object categories",
)
def build_sift(max_features: int = 1000, contrast_threshold: float = 0.03, edge_threshold: float = 10.0,
               n_octave_layers: int = 3, min_side: int = 320, max_side: int = 1024, pad: int = 12,
               grid: int = 4) -> SiftExtractor:
    return SiftExtractor(max_features=max_features, contrast_threshold=contrast_threshold,
                         edge_threshold=edge_threshold, n_octave_layers=n_octave_layers, min_side=min_side,
                         max_side=max_side, pad=pad, grid=grid)


@register_backend(
    R.LOCAL_FEATURES, "orb", "classical", check_cv2, default_model="OpenCV ORB", license="Apache-2.0",
    description="ORB keypoints + binary descriptors (fast instance matching; no weights)",
    notes="faster than SIFT, fewer correct matches under blur and scale change",
)
def build_orb(max_features: int = 1000, scale_factor: float = 1.2, n_levels: int = 8, fast_threshold: int = 12,
              min_side: int = 320, max_side: int = 1024, pad: int = 32, grid: int = 4) -> OrbExtractor:
    return OrbExtractor(max_features=max_features, scale_factor=scale_factor, n_levels=n_levels,
                        fast_threshold=fast_threshold, min_side=min_side, max_side=max_side, pad=pad, grid=grid)
