"""Geometric verification: is a KB image's object *in* the query view, and where?

1. :func:`match_features` — tentative correspondences between the query's descriptors and one
   KB image's descriptors: the nearest neighbour when it passes Lowe's ratio test, or — for
   repeated structure (a flag's stars, a wordmark's letters), where the ratio test rejects
   true matches — up to ``multi`` neighbours that are all about as near (within the ratio band
   of the nearest) and below ``max_dist``. RANSAC sorts them out.
2. :func:`verify_homography` — the matches that agree on one similarity transform (each
   match proposes one from its keypoints' scales and orientations: 1-point RANSAC), then a
   RANSAC homography from the KB image to the query view fitted to those
   (``cv2.findHomography``; deterministic), sanity checks on the reference's outline mapped
   into the query (a convex quadrilateral, not mirrored, no extreme perspective, not
   vanishingly small), and the inliers counted as *distinct* query keypoints (a query
   keypoint matched to two reference keypoints counts once).
3. :func:`colour_agreement` — the inliers' disc colours under a per-channel gain (the von
   Kries model of a change of light): 1 when the query's colours are the reference's under
   some light, lower when they are not (a blue-white-red flag against a green-white-red one).

Coordinates: ``(x, y)`` pixels of the query view and of the KB image; the homography maps KB
image pixels to query pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .store import hamming, rootsift


@dataclass
class Verification:
    """The outcome of verifying one KB image against a query view.

    Attributes:
        image: the KB image's row in the store; ``entity_id`` its entity.
        matches: tentative correspondences; ``inliers``: distinct query keypoints consistent
            with the homography (0 when none passed the checks).
        homography: ``(3, 3)`` float64 KB-image pixels -> query pixels, or None.
        quad: ``(4, 2)`` float32: the KB image's corners (TL, TR, BR, BL) in query pixels, or None.
        colour: agreement of the inliers' colours in [0, 1] (1 = the same colours under some
            light; NaN when not computed).
        reason: why there is no homography (too few matches, RANSAC failed, a check failed);
            with ``model == "affine"``, why the homography was not kept.
        model: the map that verified: ``"homography"``, ``"affine"`` (the fallback of
            :func:`verify_homography`), or ``""`` (none).
        inlier_xy: ``(n, 2)`` query-pixel positions of the inliers.
    """

    image: int
    entity_id: str
    matches: int = 0
    inliers: int = 0
    homography: np.ndarray | None = None
    quad: np.ndarray | None = None
    colour: float = float("nan")
    reason: str = ""
    model: str = ""
    inlier_xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.homography is not None and self.inliers > 0

    def to_dict(self) -> dict[str, Any]:
        return {"image": self.image, "entity_id": self.entity_id, "matches": self.matches, "inliers": self.inliers,
                "colour": None if np.isnan(self.colour) else round(float(self.colour), 4),
                "quad": None if self.quad is None else np.round(self.quad, 2).tolist(), "reason": self.reason,
                "model": self.model}


def distances(q_desc: np.ndarray, r_desc: np.ndarray, kind: str) -> np.ndarray:
    """``(Q, R)`` distances: Euclidean between RootSIFT vectors (``float``) or Hamming bits (``binary``)."""
    if kind == "float":
        a, b = rootsift(q_desc), rootsift(r_desc)
        return np.sqrt(np.maximum(2.0 - 2.0 * (a @ b.T), 0.0)).astype(np.float32)
    return hamming(np.asarray(q_desc, np.uint8), np.asarray(r_desc, np.uint8)).astype(np.float32)


def nearest(q_desc: np.ndarray, r_desc: np.ndarray, kind: str, m: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``m`` nearest reference descriptors of each query descriptor, nearest first:
    ``(Q, m)`` int64 indices into ``r_desc`` and ``(Q, m)`` float32 distances (as
    :func:`distances`). RootSIFT goes through FAISS's exact k-NN (BLAS and a heap, several times
    faster than sorting the whole ``(Q, R)`` matrix, which is what binary descriptors get)."""
    if kind == "float":
        import faiss

        d2, nn = faiss.knn(rootsift(q_desc), rootsift(r_desc), m)
        return nn.astype(np.int64), np.sqrt(np.maximum(d2, 0.0)).astype(np.float32)
    D = distances(q_desc, r_desc, kind)
    nn = np.argpartition(D, m - 1, axis=1)[:, :m] if D.shape[1] > m else np.tile(np.arange(D.shape[1]), (len(D), 1))
    nd = np.take_along_axis(D, nn, axis=1)
    o = np.argsort(nd, axis=1, kind="stable")
    return np.take_along_axis(nn, o, axis=1).astype(np.int64), np.take_along_axis(nd, o, axis=1)


def match_features(q_desc: np.ndarray, r_desc: np.ndarray, kind: str, *, ratio: float = 0.8, max_dist: float,
                   multi: int = 3, max_matches: int = 600) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tentative matches ``(query index, reference index, distance)`` (see the module docstring).

    Args:
        q_desc, r_desc: ``(Q, D)``, ``(R, D)`` uint8 descriptors of one kind.
        kind: ``"float"`` (SIFT, compared as RootSIFT) or ``"binary"`` (ORB).
        ratio: Lowe's ratio (nearest / second nearest) below which a match is distinctive.
        max_dist: no match is farther than this.
        multi: at most this many hypotheses per query descriptor when the ratio test fails.
        max_matches: the nearest this many matches are kept.
    """
    if len(q_desc) == 0 or len(r_desc) == 0:
        z = np.zeros(0, np.int64)
        return z, z, np.zeros(0, np.float32)
    nn, nd = nearest(q_desc, r_desc, kind, min(max(multi, 2), len(r_desc)))
    d0 = nd[:, :1]
    if nd.shape[1] > 1:
        band = np.minimum(d0 / max(ratio, 1e-6), max_dist)
        keep = (nd <= band) & (nd <= max_dist)
        distinct = nd[:, 1] * ratio > nd[:, 0]
        keep[distinct, 1:] = False  # the ratio test passed: only the nearest
        keep[:, multi:] = False
    else:
        keep = nd <= max_dist
    qi, j = np.nonzero(keep)
    ri, dd = nn[qi, j], nd[qi, j]
    if len(qi) > max_matches:
        o = np.argsort(dd, kind="stable")[:max_matches]
        qi, ri, dd = qi[o], ri[o], dd[o]
    return qi.astype(np.int64), ri.astype(np.int64), dd.astype(np.float32)


DISTINCT_PX = 2.0
"""Keypoints closer than about this (pixels of their image) are one point when inliers are
counted: a view and its negative (``polarity="both"``) give keypoints at the same places, and
so do the KB side's views of one reference (:func:`pixlink.link.signals.local.reference_features`)."""


def n_distinct(xy: np.ndarray, tol: float = DISTINCT_PX) -> int:
    """How many distinct places the ``(n, 2)`` points ``xy`` occupy (on a grid of ``tol`` px)."""
    if len(xy) == 0:
        return 0
    g = np.round(np.asarray(xy, np.float64) / tol).astype(np.int64)
    return int(len(np.unique((g[:, 0] << 32) + g[:, 1])))


def distinct_matches(q_xy: np.ndarray, r_xy: np.ndarray) -> int:
    """How many matches ``q_xy[j] <-> r_xy[j]`` (``(n, 2)`` each) count as distinct: the fewer of
    the distinct places on either side (:func:`n_distinct`); a query point matched to three
    views of one reference place is one inlier."""
    return min(n_distinct(q_xy), n_distinct(r_xy))


def corners(h: int, w: int) -> np.ndarray:
    """``(4, 2)`` float32 corners TL, TR, BR, BL of an ``h`` x ``w`` image (pixel edges)."""
    return np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)


def project(H: np.ndarray, pts: np.ndarray) -> np.ndarray | None:
    """``pts`` ``(n, 2)`` mapped by ``H``; None when a point falls behind the camera (w <= 0)."""
    p = np.c_[pts.astype(np.float64), np.ones(len(pts))] @ H.T
    if np.any(p[:, 2] <= 1e-9):
        return None
    return (p[:, :2] / p[:, 2:3]).astype(np.float32)


def quad_problem(quad: np.ndarray, ref_hw: tuple[int, int], min_side: float, max_skew: float) -> str:
    """Why the reference's outline ``quad`` (TL, TR, BR, BL in query pixels) is not a plausible
    view of a flat object ('' when it is): self-crossing or concave, mirrored, a side shorter
    than ``min_side`` px, opposite sides whose length ratio exceeds ``max_skew``, or an aspect
    ratio changed by more than ``max_skew`` times."""
    v = np.roll(quad, -1, axis=0) - quad
    cross = v[:, 0] * np.roll(v, -1, axis=0)[:, 1] - v[:, 1] * np.roll(v, -1, axis=0)[:, 0]
    if not (np.all(cross > 0) or np.all(cross < 0)):
        return "the outline is not convex"
    if np.all(cross < 0):
        return "the outline is mirrored"
    sides = np.linalg.norm(v, axis=1)
    if sides.min() < min_side:
        return f"the outline is too small ({sides.min():.1f} px side)"
    if max(sides[0] / sides[2], sides[2] / sides[0], sides[1] / sides[3], sides[3] / sides[1]) > max_skew:
        return "extreme perspective"
    h, w = ref_hw
    aspect_ref = w / max(h, 1)
    aspect = (sides[0] + sides[2]) / max(sides[1] + sides[3], 1e-6)
    if max(aspect / aspect_ref, aspect_ref / aspect) > max_skew:
        return "the aspect ratio changed too much"
    return ""


def similarity_inliers(q_kp: np.ndarray, r_kp: np.ndarray, qi: np.ndarray, ri: np.ndarray, d: np.ndarray, *,
                       threshold: float, max_hypotheses: int = 100, scale_tol: float = 1.5,
                       angle_tol: float = 25.0, reach: float = 0.05) -> np.ndarray:
    """Matches consistent with the best *similarity* hypothesis (bool over the matches).

    Each match, with its two keypoints' scales and orientations, proposes a similarity
    transform (scale ``s = size_q / size_r``, rotation ``angle_q - angle_r``, translation);
    the ``max_hypotheses`` nearest matches are tried, and the one that the most matches agree
    with wins (1-point RANSAC, as in Lowe's Hough clustering and Philbin et al.'s fast spatial
    matching): a match agrees when its own scale and rotation are within ``scale_tol`` times
    and ``angle_tol`` degrees of the hypothesis' and its query point lies within
    ``threshold + reach x`` (its mapped distance from the hypothesis' keypoint) of the
    predicted point (perspective bends a similarity more far from its anchor). Fast, and
    robust when most matches are wrong (repeated structure gives many)."""
    n = len(qi)
    if n == 0:
        return np.zeros(0, bool)
    qx, rx = q_kp[qi, :2].astype(np.float64), r_kp[ri, :2].astype(np.float64)
    s = q_kp[qi, 2].astype(np.float64) / np.maximum(r_kp[ri, 2].astype(np.float64), 1e-6)
    qa = np.where(q_kp[qi, 3] < 0, 0.0, q_kp[qi, 3]).astype(np.float64)
    ra = np.where(r_kp[ri, 3] < 0, 0.0, r_kp[ri, 3]).astype(np.float64)
    th = np.deg2rad(qa - ra)
    hyp = np.argsort(d, kind="stable")[:max_hypotheses]
    c, sn, ls = np.cos(th), np.sin(th), np.log(np.maximum(s, 1e-300))
    hs, hc, hsn = s[hyp], c[hyp], sn[hyp]
    # scale and rotation first (cheap, and few random matches pass both), the points then
    # only for the pairs left: |angle difference| <= angle_tol <=> cos(difference) >= cos(angle_tol)
    sa = np.abs(ls[None, :] - ls[hyp][:, None]) <= np.log(scale_tol)
    sa &= c[None, :] * hc[:, None] + sn[None, :] * hsn[:, None] >= np.cos(np.deg2rad(angle_tol))
    hh, jj = np.nonzero(sa)
    # translation of each hypothesis: q_h - s_h R_h r_h
    tx = qx[hyp, 0] - hs * (hc * rx[hyp, 0] - hsn * rx[hyp, 1])
    ty = qx[hyp, 1] - hs * (hsn * rx[hyp, 0] + hc * rx[hyp, 1])
    px = hs[hh] * (hc[hh] * rx[jj, 0] - hsn[hh] * rx[jj, 1]) + tx[hh]
    py = hs[hh] * (hsn[hh] * rx[jj, 0] + hc[hh] * rx[jj, 1]) + ty[hh]
    err = np.hypot(px - qx[jj, 0], py - qx[jj, 1])
    far = hs[hh] * np.hypot(rx[jj, 0] - rx[hyp[hh], 0], rx[jj, 1] - rx[hyp[hh], 1])
    agree = err <= threshold + reach * far
    ok = np.zeros((len(hyp), n), bool)
    ok[hh[agree], jj[agree]] = True
    # distinct query points agreeing with each hypothesis
    best, best_n = 0, -1
    for h in np.argsort(-ok.sum(axis=1), kind="stable")[:5]:
        m = n_distinct(q_kp[qi[ok[h]], :2])
        if m > best_n:
            best, best_n = h, m
    return ok[best]


def verify_homography(q_kp: np.ndarray, r_kp: np.ndarray, qi: np.ndarray, ri: np.ndarray, d: np.ndarray,
                      ref_hw: tuple[int, int], *, threshold: float, min_inliers: int = 6, max_skew: float = 4.0,
                      min_side: float = 8.0, max_iters: int = 500, confidence: float = 0.995,
                      affine_fallback: bool = False) -> tuple[np.ndarray | None, np.ndarray, str]:
    """The homography from KB-image pixels to query pixels over the matches ``(qi, ri)``.

    Two stages: the matches consistent with the best similarity hypothesis
    (:func:`similarity_inliers`), then a RANSAC homography (``cv2.findHomography``,
    deterministic) fitted to those, whose inliers are then counted over *all* matches within
    ``threshold``; then the sanity checks of the reference's outline (:func:`quad_problem`).
    When the homography fails a check (a few agreeing matches on a small or occluded object
    leave its perspective terms free: it folds the reference, or throws its outline behind
    the camera) and ``affine_fallback`` is set, a RANSAC *affine* map
    (``cv2.estimateAffine2D``) is fitted to the same matches and checked the same way; the
    reason then starts with ``"affine: "`` (it is the model that verified, not a failure).

    Args:
        q_kp, r_kp: ``(Q, 4)``, ``(R, 4)`` keypoints ``[x, y, size, angle]`` (query view, KB image).
        qi, ri, d: the matches (indices into them) and their descriptor distances.
        ref_hw: ``(H, W)`` of the KB image.
        threshold: reprojection threshold, query pixels.
        min_inliers: fewer distinct inliers (:func:`distinct_matches`) is no homography.
        affine_fallback: fit an affine map when the homography fails its checks.

    Returns:
        ``(H or None, inlier mask over the matches (bool), reason)``: ``reason`` is ``""`` for
        a homography, ``"affine: <why the homography failed>"`` for the affine fallback, and
        why nothing verified otherwise.
    """
    import cv2

    none = np.zeros(len(qi), bool)
    need = max(min_inliers, 4)
    n_matched = n_distinct(q_kp[qi, :2])
    if n_matched < need:
        return None, none, f"{n_matched} matched query keypoints (< {need})"
    sim = similarity_inliers(q_kp, r_kp, qi, ri, d, threshold=threshold)
    n_sim = distinct_matches(q_kp[qi[sim], :2], r_kp[ri[sim], :2])
    if n_sim < need:
        return None, none, f"{n_sim} matches agree on a similarity (< {need})"
    src = r_kp[ri[sim], :2].astype(np.float32)
    dst = q_kp[qi[sim], :2].astype(np.float32)

    def checked(H: np.ndarray | None, what: str) -> tuple[np.ndarray | None, np.ndarray, str]:
        if H is None:
            return None, none, f"no {what} fits the agreeing matches"
        proj = project(H, r_kp[ri, :2])
        if proj is None:
            return None, none, f"the {what} folds the reference"
        inl = np.hypot(*(proj - q_kp[qi, :2]).T) <= threshold
        n_inl = distinct_matches(q_kp[qi[inl], :2], r_kp[ri[inl], :2])
        if n_inl < min_inliers:
            return None, none, f"{n_inl} distinct inliers (< {min_inliers})"
        quad = project(H, corners(*ref_hw))
        if quad is None:
            return None, none, "the outline falls behind the camera"
        why = quad_problem(quad, ref_hw, min_side, max_skew)
        return (None, none, why) if why else (H, inl, "")

    H, _ = cv2.findHomography(src, dst, cv2.RANSAC, float(threshold), maxIters=int(max_iters),
                              confidence=float(confidence))
    H, inl, why = checked(H, "homography")
    if H is not None or not affine_fallback:
        return H, inl, why
    A, _ = cv2.estimateAffine2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=float(threshold),
                                maxIters=int(max_iters), confidence=float(confidence))
    Ha, inl, why_a = checked(None if A is None else np.vstack([A, [0.0, 0.0, 1.0]]), "affine map")
    return (Ha, inl, f"affine: {why}") if Ha is not None else (None, none, why)


def colour_agreement(q_col: np.ndarray, r_col: np.ndarray, max_gain_ratio: float = 2.5) -> float:
    """How well ``q_col ≈ diag(g) r_col`` holds over matched keypoints (``(n, 3)`` uint8 RGB
    means): 1 - the relative residual of the least-squares per-channel gain ``g``, in [0, 1].
    Gains whose ratio across channels exceeds ``max_gain_ratio`` (a light can tint, not turn
    blue into green) are clipped to that band around their geometric mean first. NaN for fewer
    than 3 matches."""
    q = np.asarray(q_col, np.float64) + 1.0
    r = np.asarray(r_col, np.float64) + 1.0
    if len(q) < 3:
        return float("nan")
    g = (q * r).sum(0) / np.maximum((r * r).sum(0), 1e-9)
    gm = float(np.exp(np.log(np.maximum(g, 1e-9)).mean()))
    band = np.sqrt(max_gain_ratio)
    g = np.clip(g, gm / band, gm * band)
    res = np.sqrt(((q - r * g) ** 2).sum(1))
    ref = np.sqrt((q ** 2).sum(1))
    return float(np.clip(1.0 - np.median(res / np.maximum(ref, 1e-9)) * 2.0, 0.0, 1.0))


def photometric_agreement(view: np.ndarray, thumb: np.ndarray, H: np.ndarray, ref_hw: tuple[int, int],
                          max_gain_ratio: float = 2.5, min_pixels: int = 12) -> float:
    """Do the query's pixels under the reference's *support* (the object's own pixels, from its
    thumbnail's alpha, eroded by one pixel) have the reference's colours under some light?

    The thumbnail ``(th, tw, 4)`` (RGB + support) is mapped into the query ``view`` ``(h, w, 3)``
    by ``H`` (KB-image pixels -> view pixels; ``ref_hw`` the KB image's ``(H, W)``); the view is
    sampled at each support pixel's centre, and :func:`colour_agreement` compares the two sets
    of colours. Unlike a keypoint's disc, which mixes the object with whatever is around it (a
    logo's white margin in the KB, a wall in the photo), these are the object's pixels only.
    NaN when fewer than ``min_pixels`` support pixels land inside the view."""
    import cv2

    th, tw = thumb.shape[:2]
    alpha = thumb[..., 3] >= 128
    inner = cv2.erode(alpha.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    if inner.sum() >= min_pixels:
        alpha = inner
    ys, xs = np.nonzero(alpha)
    if len(xs) < min_pixels:
        return float("nan")
    rh, rw = ref_hw
    pts = np.c_[(xs + 0.5) * rw / tw, (ys + 0.5) * rh / th]
    proj = project(H, pts)
    if proj is None:
        return float("nan")
    h, w = view.shape[:2]
    inside = (proj[:, 0] >= 0) & (proj[:, 1] >= 0) & (proj[:, 0] <= w - 1) & (proj[:, 1] <= h - 1)
    if inside.sum() < min_pixels:
        return float("nan")
    px = np.round(proj[inside]).astype(np.int64)
    q = view[px[:, 1], px[:, 0]]
    r = thumb[ys[inside], xs[inside], :3]
    return colour_agreement(q, r, max_gain_ratio)
