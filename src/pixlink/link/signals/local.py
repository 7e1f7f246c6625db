"""``local`` — instance matching: is the region *that* logo, flag, artwork or landmark, by its
own KB image? Local features with geometric verification (the instance-retrieval line of work
before CLIP: SIFT/RootSIFT, nearest-neighbour voting over the whole collection, RANSAC
re-ranking).

* Role ``local_features`` (``sift`` = RootSIFT by default, ``orb`` the fast option); the KB
  side is a :class:`~pixlink.index.local.LocalFeatureStore` (``KBDIR/local_features/<model>/``,
  built by ``pixlink kb embed KBDIR --signals local`` through :meth:`LocalSignal.build_kb_side`:
  features per image capped and spread, on disk, resumable, bound to the KB build).
* Query side (:meth:`LocalSignal.prepare`): the region's box (with a margin, *not* masked: a
  segmenter's mask may cut the object) -> keypoints and descriptors.
* Recall (:meth:`LocalSignal.recall`): every query descriptor votes for the KB images among
  its nearest stored descriptors (one FAISS index over all of them); the ``verify_top``
  best-voted images are verified: tentative matches, RANSAC homography, sanity checks of the
  reference's outline, colour agreement of the inliers (:mod:`pixlink.index.local.verify`).
* Raw score of an entity: of its best verified image, the log-odds that it is the region's
  entity (:func:`verification_score`: the *effective inliers*, ``inliers x colour agreement``,
  with how much of the reference the inliers explain and how well its outline fills the
  region's box, weighed by a logistic fitted on the composite calibration split); with
  ``score="inliers"`` the effective inliers alone (~0-5 for chance, tens for the object itself).
  The detector's scores are always the effective inliers. Only verified
  entities get a score: no match is not evidence against an entity (a person, a 3-D object,
  another view), so the signal is left out for the others (fusion then uses the other signals).
* :meth:`LocalSignal.score` also verifies candidates that other signals recalled, when they
  got any votes (at most ``verify_extra`` of them).

The same machinery is a detector (:func:`locate`, :func:`find_instances`): the homography maps
the KB image's corners into the query image -> a box, and its support (the object's pixels,
from the image's alpha or its uniform background) warped -> a mask.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ...errors import Errors, IndexError_, InputError, KBError, PixlinkError
from ...log import get_logger
from ...models import roles as R
from ..fusion import SignalCalibration
from ..query import Query
from . import register_signal
from .base import Signal, check_range

log = get_logger("pixlink.link.local")

_FLOAT = {"vote_max_dist": 0.62, "vote_sigma": 0.4, "match_max_dist": 0.7}
_BINARY = {"vote_max_dist": 70.0, "vote_sigma": 45.0, "match_max_dist": 80.0}
"""Distance scales by descriptor kind: RootSIFT Euclidean (0..1.41) and ORB Hamming bits (0..256)."""


@dataclass(frozen=True)
class LocalOptions:
    """Knobs of the ``local`` signal (``LinkerConfig.signal_options["local"]``).

    Attributes:
        max_features: query-side features (strongest, spread over a grid), per polarity.
        polarity: ``"both"``: features of the view and of its negative (a dark logo on white in
            the KB, printed light on a dark wall in the photo: SIFT and ORB descriptors are not
            invariant to a reversal of contrast); ``"positive"``: the view only (half the cost).
        colour_layers: ``k`` >= 2: also the features of the view's ``k`` main colours, each as
            a black-on-white silhouette (:func:`pixlink.imaging.colour_layers`): a flat logo on
            a textured wall keeps an outline free of the wall's texture. 0 turns it off.
        view_margin: the region's box is grown by this fraction of its size on each side.
        neighbours: stored descriptors looked up per query descriptor.
        vote_max_dist, vote_sigma: a neighbour at distance ``d <= vote_max_dist`` votes
            ``exp(-(d / vote_sigma)^2)`` (None: by descriptor kind, RootSIFT or Hamming).
        burst: a descriptor voting for ``m`` images gives each ``1 / sqrt(m)`` (plain votes).
        spatial: rank the KB images for verification by the votes that agree on a pose
            (Lowe's Hough transform, :meth:`~pixlink.index.local.LocalFeatureStore.spatial_votes`)
            rather than by plain votes.
        nprobe: IVF lists visited (None: the store's default).
        verify_top: best-voted KB images verified per query.
        verify_extra: other signals' candidates (with votes) verified in :meth:`score`.
        ratio, match_max_dist, multi: tentative matches (see
            :func:`pixlink.index.local.match_features`).
        max_matches: at most this many tentative matches, nearest first (at least one per query
            feature: a whole photo's thousands of features keep their own matches).
        ransac_threshold: RANSAC reprojection threshold, as a fraction of the view's longer side
            (at least 2 px).
        min_inliers: fewer distinct inliers is no match.
        max_skew: the reference's outline may not be more distorted than this (side and aspect
            ratios).
        affine_fallback: when the homography fails its checks, fit an affine map to the same
            matches (:func:`pixlink.index.local.verify_homography`; the verification's
            ``model`` says which verified). Off: on the composite set's calibration split it
            verifies more gold logos (0.84 -> 0.90) and flags (0.53 -> 0.63) but as many wrong
            candidates, so Hits@1 barely moves (0.685 -> 0.694) and NIL accuracy at the same
            threshold falls (0.87 -> 0.81; refitting the learned score with an "affine" term:
            accuracy with NIL 0.684 -> 0.688, in-sample).
        colour: weigh the inliers by their colour agreement (a flag in other colours is
            another flag).
        score: the signal's raw score of a verified KB image: ``"learned"`` (default) the
            log-odds that it is the region's entity, ``w . [log(1 + effective inliers),
            ref_coverage, box_iou] + b`` (:func:`verification_score`), or ``"inliers"`` the
            effective inliers alone (:func:`effective_inliers`).
        score_weights: ``(w_inliers, w_coverage, w_box, b)`` of the learned score: a logistic
            regression (C = 10) fitted on the verified candidates of the composite set's
            CALIBRATION split (715 verifications of 250 queries, 155 right;
            ``benchmarks/diag_local.py``). Five-fold cross-validated there, against the
            inliers alone: logo Hits@1 0.76 -> 0.80, accuracy with NIL 0.63 -> 0.68, NIL
            accuracy 0.65 -> 0.79. It assumes the region is the object's box (a box drawn
            around it, a mask's box): a small object in a whole-image query scores low.
        kb_max_features: features kept per KB image (KB side; recorded in the store).
        kb_backgrounds: grey levels the reference's object is also put on, for more features
            (KB side, when the image has a support that is not the whole image): a logo drawn
            on white has edge features that see white; pasted on a dark wall the same edges
            look different. () turns it off.
        kb_small_sides: longer sides the reference is also shrunk to before extraction (KB side):
            a logo seen small and blurred in a photo keeps only its coarse features, which the
            sharp reference does not have. () turns it off. See :func:`reference_features`.
        thumb_side: longer side of the stored thumbnails (masks of the detector).
        part_size: KB images per committed part of the build (resume granularity).
        index_exact_max, index_nprobe, index_train_size: the store's FAISS index: exact up to
            this many descriptors, else IVF with 8-bit codes, ``index_nprobe`` lists visited by
            default, trained on ``index_train_size`` descriptors.
    """

    max_features: int = 1000
    polarity: str = "both"
    colour_layers: int = 3
    view_margin: float = 0.05
    neighbours: int = 20
    vote_max_dist: float | None = None
    vote_sigma: float | None = None
    burst: bool = True
    spatial: bool = True
    nprobe: int | None = None
    verify_top: int = 30
    verify_extra: int = 20
    ratio: float = 0.8
    match_max_dist: float | None = None
    multi: int = 3
    max_matches: int = 600
    ransac_threshold: float = 0.02
    min_inliers: int = 5
    max_skew: float = 4.0
    affine_fallback: bool = False
    colour: bool = True
    score: str = "learned"
    score_weights: tuple[float, ...] = (1.613, 9.291, 5.299, -9.25)
    kb_max_features: int = 1000
    kb_backgrounds: tuple[int, ...] = (0, 128)
    kb_small_sides: tuple[int, ...] = (64, 128)
    thumb_side: int = 64
    part_size: int = 256
    index_exact_max: int = 100_000
    index_nprobe: int = 16
    index_train_size: int = 100_000

    def __post_init__(self) -> None:
        for name, lo, hi in (("max_features", 16, 100_000), ("colour_layers", 0, 16), ("neighbours", 1, 100), ("verify_top", 1, 10_000),
                             ("verify_extra", 0, 10_000), ("multi", 1, 10), ("max_matches", 16, 100_000),
                             ("min_inliers", 4, 1000),
                             ("kb_max_features", 16, 100_000), ("thumb_side", 8, 512), ("part_size", 1, 100_000),
                             ("index_exact_max", 0, 10**9), ("index_nprobe", 1, 65536),
                             ("index_train_size", 1000, 10**8)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise InputError(Errors.E010.format(what=f"local {name}", value=v, reason="must be an integer"))
            check_range(f"local {name}", v, lo, hi)
        for name, lo, hi in (("kb_backgrounds", 0, 255), ("kb_small_sides", 16, 4096)):
            v = getattr(self, name)
            if isinstance(v, (str, bytes)) or not isinstance(v, (tuple, list)) or any(
                    isinstance(x, bool) or not isinstance(x, int) or not lo <= x <= hi for x in v):
                raise InputError(Errors.E010.format(what=f"local {name}", value=v,
                                                    reason=f"a list of integers in [{lo}, {hi}]"))
            object.__setattr__(self, name, tuple(v))
        check_range("local view_margin", self.view_margin, 0.0, 2.0)
        check_range("local ratio", self.ratio, 0.3, 1.0)
        check_range("local ransac_threshold", self.ransac_threshold, 0.001, 0.2)
        check_range("local max_skew", self.max_skew, 1.0, 100.0)
        for name in ("vote_max_dist", "vote_sigma", "match_max_dist"):
            v = getattr(self, name)
            if v is not None:
                check_range(f"local {name}", v, 1e-6, 256.0)
        if self.nprobe is not None:
            check_range("local nprobe", self.nprobe, 1, 65536)
        if self.colour_layers == 1:
            raise InputError(Errors.E010.format(what="local colour_layers", value=1, reason="0 (off) or 2-16 colours"))
        if self.score not in ("learned", "inliers"):
            raise InputError(Errors.E010.format(what="local score", value=self.score, reason="'learned' or 'inliers'"))
        w = self.score_weights
        if isinstance(w, (str, bytes)) or not isinstance(w, (tuple, list)) or len(w) != 4 or any(
                isinstance(x, bool) or not isinstance(x, (int, float)) or not np.isfinite(x) for x in w):
            raise InputError(Errors.E010.format(what="local score_weights", value=w,
                                                reason="four finite numbers (w_inliers, w_coverage, w_box, b)"))
        object.__setattr__(self, "score_weights", tuple(float(x) for x in w))
        if self.polarity not in ("both", "positive"):
            raise InputError(Errors.E010.format(what="local polarity", value=self.polarity, reason="'both' or 'positive'"))

    def score_of(self, v: Any) -> float:
        """The signal's raw score of a verification under these options (:func:`verification_score`)."""
        return verification_score(v, self)

    def scale(self, name: str, kind: str) -> float:
        """A distance knob (``vote_max_dist``...) for descriptors of ``kind``."""
        v = getattr(self, name)
        return float(v if v is not None else (_FLOAT if kind == "float" else _BINARY)[name])


# --------------------------------------------------------------------------------------------
# Opened stores, shared by the linkers of a process
# --------------------------------------------------------------------------------------------

_STORES: OrderedDict[tuple[str, str | None, float], Any] = OrderedDict()
_STORES_LOCK = threading.Lock()
_MAX_OPEN = 8


def open_store(kb_dir: str | Path, model_id: str, kb_build_id: str | None) -> Any | None:
    """The KB's local-feature store of ``model_id`` (opened once per process and shared), or
    None when the KB has none. E262/E263 when the store was made by another model or from
    another build of the KB."""
    from ...index.local import LocalFeatureStore, local_dir

    path = local_dir(kb_dir, model_id)
    meta = path / "meta.json"
    if not meta.is_file():
        return None
    key = (str(path), kb_build_id, meta.stat().st_mtime)
    with _STORES_LOCK:
        hit = _STORES.get(key)
        if hit is not None:
            _STORES.move_to_end(key)
            return hit
        store = LocalFeatureStore.open(path, expect_model_id=model_id, expect_kb_build_id=kb_build_id)
        _STORES[key] = store
        while len(_STORES) > _MAX_OPEN:
            _STORES.popitem(last=False)
        return store


# --------------------------------------------------------------------------------------------
# Matching
# --------------------------------------------------------------------------------------------


@dataclass
class LocalQuery:
    """The ``local`` signal's per-call state (in ``Query.scratch["local"]``).

    Attributes:
        features: the view's :class:`~pixlink.models.roles.LocalFeatures` (view pixels).
        offset: ``(x0, y0)`` of the view in the image (view pixel + offset = image pixel).
        view_hw: ``(h, w)`` of the view.
        view: the view itself ``(h, w, 3)`` uint8 (for the photometric check), when kept.
        region_box: the region's own box (without the margin) in view pixels.
        votes: ``(I,)`` ranking votes per KB image (None until recall; :func:`rank_images`).
        verified: KB image row -> its :class:`~pixlink.index.local.Verification`.
    """

    store: Any
    features: Any
    offset: tuple[float, float]
    view_hw: tuple[int, int]
    votes: np.ndarray | None = None
    verified: dict[int, Any] = field(default_factory=dict)
    view: np.ndarray | None = None
    region_box: tuple[float, float, float, float] | None = None

    @property
    def keypoints(self) -> np.ndarray:
        """``(Q, 4)`` float32 ``[x, y, size, angle]`` of the view's features."""
        f = self.features
        return np.c_[f.xy, f.size, f.angle].astype(np.float32)


def query_features(backend: Any, view: np.ndarray, max_features: int, polarity: str, layers: int = 0) -> Any:
    """The view's :class:`~pixlink.models.roles.LocalFeatures`; with ``polarity="both"`` those of
    its negative are added (their disc colours are the view's own); with ``layers`` >= 2 those
    of its main colours as silhouettes (:func:`pixlink.imaging.colour_layers`), their disc
    colours measured on the view (a silhouette's are black and white)."""
    parts = [backend.extract(view, max_features=max_features)]
    if polarity == "both":
        g = backend.extract(255 - view, max_features=max_features)
        parts.append(replace(g, colour=255 - g.colour))
    if layers >= 2:
        from ...imaging import colour_layers
        from ...models.backends.local_features import disc_colours

        for sil in colour_layers(view, layers):
            g = backend.extract(sil, max_features=max_features)
            if len(g):
                parts.append(replace(g, colour=disc_colours(view, g.xy, g.size)))
    return R.LocalFeatures.concat(parts)


def rank_images(store: Any, lq: "LocalQuery", o: "LocalOptions") -> np.ndarray:
    """``(I,)`` float32: how strongly each KB image is worth verifying (spatial or plain votes)."""
    f, kind = lq.features, store.kind
    if len(f) == 0:
        return np.zeros(store.n_images, np.float32)
    md, sg = o.scale("vote_max_dist", kind), o.scale("vote_sigma", kind)
    if o.spatial:
        return store.spatial_votes(lq.keypoints, f.descriptors, k=o.neighbours, max_dist=md, sigma=sg, nprobe=o.nprobe)[0]
    return store.vote(f.descriptors, k=o.neighbours, max_dist=md, sigma=sg, nprobe=o.nprobe, burst=o.burst)


def effective_inliers(v: Any, use_colour: bool) -> float:
    """The raw score of a verification: its inliers, times ``(1 + colour agreement) / 2`` when
    used. Colour halves a match at most: on the composite calibration split, one in ten right
    matches has a colour agreement of 0 (a logo printed in other colours, a plate's light), and
    a full product dropped Hits@1 of the logos from 0.51 to 0.38 while the half weight keeps it
    and still lowers wrong matches (benchmarks/bench_local.py, docs/instance-matching.md)."""
    if not v.ok:
        return 0.0
    c = v.colour if (use_colour and np.isfinite(v.colour)) else 1.0
    return float(v.inliers) * (0.5 + 0.5 * float(c))


def verification_score(v: Any, o: "LocalOptions") -> float:
    """The signal's raw score of a verification (``o.score``, see :class:`LocalOptions`):
    the log-odds ``w . [log(1 + effective inliers), ref_coverage, box_iou] + b`` that the
    verified image is the region's entity, or the effective inliers alone. Besides the inlier
    count, a right match explains much of its reference (a star shared by two flags explains
    little of either) and its outline fills the region's box. ``-inf`` for a failed one."""
    if not v.ok:
        return float("-inf")
    eff = effective_inliers(v, o.colour)
    if o.score == "inliers":
        return eff
    wi, wc, wb, b = o.score_weights
    x = v.extra or {}
    return float(wi * np.log1p(eff) + wc * x.get("ref_coverage", 0.0) + wb * x.get("box_iou", 0.0) + b)


def verify_image(store: Any, lq: LocalQuery, i: int, o: LocalOptions) -> Any:
    """Verify KB image row ``i`` against the query view (cached in ``lq.verified``)."""
    from ...index.local import Verification, match_features, verify_homography
    from ...index.local.verify import colour_agreement, corners, distinct_matches, photometric_agreement, project

    hit = lq.verified.get(i)
    if hit is not None:
        return hit
    f = lq.features
    row = store.image(i)
    v = Verification(image=int(i), entity_id=row.entity_id)
    r_kp, r_desc, r_col = store.features(i)
    qi, ri, d = match_features(f.descriptors, r_desc, store.kind, ratio=o.ratio,
                               max_dist=o.scale("match_max_dist", store.kind), multi=o.multi,
                               max_matches=max(o.max_matches, len(f)))
    v.matches = int(len(qi))
    thr = max(2.0, o.ransac_threshold * max(lq.view_hw))
    H, inl, why = verify_homography(lq.keypoints, r_kp, qi, ri, d, (row.height, row.width), threshold=thr,
                                    min_inliers=o.min_inliers, max_skew=o.max_skew, affine_fallback=o.affine_fallback)
    if H is None:
        v.reason = why
    else:
        v.model, v.reason = ("affine", why.removeprefix("affine: ")) if why else ("homography", "")
        v.homography = H
        uq = np.unique(qi[inl])
        v.inliers = distinct_matches(lq.keypoints[qi[inl], :2], r_kp[ri[inl], :2])
        v.quad = project(H, corners(row.height, row.width))
        v.inlier_xy = f.xy[uq]
        v.colour = (photometric_agreement(lq.view, store.thumb(i), H, (row.height, row.width)) if lq.view is not None
                    else colour_agreement(f.colour[qi[inl]], r_col[ri[inl]]))
        v.extra = verification_features(v, lq, r_kp, ri[inl], row)
    lq.verified[i] = v
    return v


def verification_features(v: Any, lq: "LocalQuery", r_kp: np.ndarray, r_inl: np.ndarray, row: Any) -> dict[str, float]:
    """What else a verified match says besides its inlier count:

    * ``ref_coverage``: the share of the KB image's keypoints that land inside the view and are
      inliers (a star shared by two flags explains little of either);
    * ``box_iou``: IoU of the reference's mapped outline (its box) with the region's box (the
      view without its margin): a box drawn around an object is that object's box;
    * ``inlier_ratio``: inliers over tentative matches.
    """
    from ...geometry import box_iou
    from ...index.local.verify import project

    h, w = lq.view_hw
    proj = project(v.homography, r_kp[:, :2])
    inside = 0 if proj is None else int(((proj[:, 0] >= 0) & (proj[:, 1] >= 0) & (proj[:, 0] < w) & (proj[:, 1] < h)).sum())
    cov = len(np.unique(r_inl)) / max(inside, 1)
    q = v.quad
    region = list(lq.region_box) if lq.region_box is not None else [0.0, 0.0, float(w), float(h)]
    iou = box_iou([float(q[:, 0].min()), float(q[:, 1].min()), float(q[:, 0].max()), float(q[:, 1].max())], region)
    return {"ref_coverage": float(min(cov, 1.0)), "box_iou": float(iou),
            "inlier_ratio": float(v.inliers / max(v.matches, 1))}


def best_by_entity(store: Any, verifications: Sequence[Any], use_colour: bool,
                   key: Callable[[Any], float] | None = None) -> dict[str, Any]:
    """entity id -> its best verification, for the verified ones: by ``key`` (default the
    effective inliers)."""
    key = key or (lambda v: effective_inliers(v, use_colour))
    out: dict[str, Any] = {}
    for v in verifications:
        if not v.ok:
            continue
        cur = out.get(v.entity_id)
        if cur is None or key(v) > key(cur):
            out[v.entity_id] = v
    return out


# --------------------------------------------------------------------------------------------
# The signal
# --------------------------------------------------------------------------------------------


@register_signal
class LocalSignal(Signal):
    name = "local"
    role = R.LOCAL_FEATURES
    space = "local_features"
    needs_image = True
    description = "the region <-> entities' own images, by local features and geometric verification"
    Options = LocalOptions

    def kb_has_vectors(self, kb_dir: Path, available: Sequence[Any]) -> bool:
        from ...index.local.store import DIRNAME

        return any((Path(kb_dir) / DIRNAME).glob("*/meta.json"))

    def store(self, ctx: Any, q: Query, backend: Any) -> Any | None:
        """The KB's store for ``backend``; None with a note (E405 when the signal was named)."""
        kb = ctx.kb
        store = open_store(kb.path, backend.model_id, getattr(kb, "build_id", None))
        if store is not None:
            return store
        if self.name in getattr(ctx.config, "required_signals", ()):
            raise KBError(Errors.E405.format(signal=self.name, space=self.space, expected=backend.model_id, found=""))
        ctx.note_missing(q, f"{self.name}: the KB has no local features for {backend.model_id}; the signal did not "
                            f"run (run `pixlink kb embed KBDIR --signals {self.name}`)")
        return None

    def view(self, q: Query) -> tuple[np.ndarray, tuple[float, float]]:
        """The region's box grown by ``view_margin``, cut from the image: ``(view, (x0, y0))``."""
        assert q.image is not None and q.region is not None
        return box_view(q.image, q.region.bbox, self.options.view_margin)

    def prepare(self, q: Query, ctx: Any) -> None:
        if not self.applies(q):
            return
        backend = ctx.backend(self.role, q)
        if backend is None:
            return
        store = self.store(ctx, q, backend)
        if store is None:
            return
        view, off = self.view(q)
        feats = query_features(backend, view, self.options.max_features, self.options.polarity,
                               self.options.colour_layers)
        q.scratch[self.name] = LocalQuery(store=store, features=feats, offset=off, view_hw=view.shape[:2], view=view,
                                          region_box=region_in_view(q.region.bbox, off, view.shape[:2]))
        q.signals[self.name] = q.roles.get(self.role) or str(getattr(backend, "name", ""))
        if len(feats) < self.options.min_inliers:
            q.note(f"local: {len(feats)} keypoints in the region; too few to match")

    def recall(self, q: Query, ctx: Any, k: int) -> dict[str, float] | None:
        lq = q.scratch.get(self.name)
        if lq is None:
            return None
        found = self._recall(lq)
        best = sorted(found.items(), key=lambda kv: -kv[1])[:k]
        return dict(best)

    def _votes(self, lq: LocalQuery) -> np.ndarray:
        if lq.votes is None:
            lq.votes = rank_images(lq.store, lq, self.options)
        return lq.votes

    def _recall(self, lq: LocalQuery) -> dict[str, float]:
        o = self.options
        if len(lq.features) < o.min_inliers:
            return {}
        votes = self._votes(lq)
        order = np.argsort(-votes, kind="stable")[: o.verify_top]
        order = order[votes[order] > 0]
        vs = [verify_image(lq.store, lq, int(i), o) for i in order]
        return {e: o.score_of(v) for e, v in best_by_entity(lq.store, vs, o.colour, o.score_of).items()}

    def score(self, q: Query, ctx: Any, ids: Sequence[str]) -> dict[str, float]:
        lq = q.scratch.get(self.name)
        if lq is None or not ids or len(lq.features) < self.options.min_inliers:
            return {}
        o, st = self.options, lq.store
        votes = self._votes(lq)
        extra = []
        for eid in ids:
            rows = [i for i in st.images_of(eid) if i not in lq.verified and votes[i] > 0]
            extra += [(float(votes[i]), i) for i in rows]
        for _, i in sorted(extra, reverse=True)[: o.verify_extra]:
            verify_image(st, lq, i, o)
        best = best_by_entity(st, list(lq.verified.values()), o.colour, o.score_of)
        return {e: o.score_of(best[e]) for e in ids if e in best}

    # -- KB side ---------------------------------------------------------------------------
    def build_kb_side(self, kb: Any, backend: Any, *, kb_dir: str | Path, progress: bool = True,
                      **_: Any) -> dict[str, Any]:
        """Extract and store the local features of every KB image (``pixlink kb embed``),
        resumably; returns the ``kb embed`` report entry of this signal."""
        import time

        from ...index.embed import image_items
        from ...index.local import LocalStoreWriter, local_dir
        from ...index.local.build import INDEX_DEFAULTS
        from ...progress import progress as make_progress

        o = self.options
        t0 = time.perf_counter()
        items = [(key.split("\t", 1)[0], ref) for key, ref in image_items(kb.entities_with_images(resolved_only=False))]
        model_id = backend.model_id
        entry: dict[str, Any] = {"space": self.space, "model_id": model_id, "items": len(items)}
        if not items:
            entry["skipped"] = "no entity has an image"
            return entry
        out = local_dir(kb_dir, model_id)
        params = {"kb_max_features": o.kb_max_features, "backend": backend.name,
                  "kb_backgrounds": list(o.kb_backgrounds), "kb_small_sides": list(o.kb_small_sides)}
        current = _up_to_date(out, model_id, getattr(kb, "build_id", None), params, o.thumb_side, items)
        if current is not None:
            entry.update({"vectors": current.n_features, "images": current.n_images, "entities": len(current.entities()),
                          "errors": [], "index": str(out), "resumed": 0, "extracted": 0, "up_to_date": True,
                          "seconds": round(time.perf_counter() - t0, 2), "faiss": current.meta["index"]})
            return entry
        writer = LocalStoreWriter(out, model_id=model_id, kind=backend.kind, dim=backend.dim,
                                  kb_build_id=getattr(kb, "build_id", None),
                                  params=params,
                                  part_size=o.part_size, thumb_side=o.thumb_side)
        done = writer.done()
        todo = [(e, r) for e, r in items if (e, r) not in done]
        t1 = time.perf_counter()
        with make_progress(disable=not progress) as bar:
            task = bar.add_task("local features", total=len(todo), rate="")
            for eid, ref in todo:
                try:
                    rgb, support = reference_image(ref)
                    feats = reference_features(backend, rgb, support, o)
                    writer.add(eid, ref, feats, thumbnail(rgb, support, o.thumb_side))
                except PixlinkError as exc:
                    writer.add_error(eid, ref, str(exc), getattr(exc, "code", None))
                bar.advance(task)
        extract_s = time.perf_counter() - t1
        index = {**INDEX_DEFAULTS, "exact_max": o.index_exact_max, "nprobe": o.index_nprobe,
                 "train_size": o.index_train_size}
        store = writer.finish(index, progress=progress)
        errors = [{"index": n, "item_id": f"{e['entity_id']}\t{e['ref']}", "error": e["error"], "code": e.get("code")}
                  for n, e in enumerate(writer.errors)]
        entry.update({"vectors": store.n_features, "images": store.n_images, "entities": len(store.entities()),
                      "errors": errors, "index": str(out), "resumed": writer.resumed, "extracted": len(todo),
                      "extract_s": round(extract_s, 2), "seconds": round(time.perf_counter() - t0, 2),
                      "faiss": store.meta["index"]})
        return entry


def _up_to_date(out: Path, model_id: str, kb_build_id: str | None, params: dict[str, Any], thumb_side: int,
                items: Sequence[tuple[str, str]]) -> Any | None:
    """The store at ``out`` when it was built by this model, from this KB build, with these
    settings, over exactly these ``(entity, image)`` items (then ``kb embed`` has nothing to do)."""
    import json

    from ...index.local import LocalFeatureStore

    meta = out / "meta.json"
    if not meta.is_file():
        return None
    try:
        m = json.loads(meta.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if m.get("model_id") != model_id or m.get("kb_build_id") != kb_build_id or m.get("params") != params \
            or m.get("thumb_side") != thumb_side:
        return None
    try:
        store = LocalFeatureStore.open(out, expect_model_id=model_id, expect_kb_build_id=kb_build_id)
    except IndexError_ as exc:
        log.warning("local features: the store at %s is rebuilt (%s)", out, exc)
        return None
    stored = store.items()
    errors_path = out / "errors.json"
    try:
        failed = {(e["entity_id"], e["ref"]) for e in json.loads(errors_path.read_text("utf-8"))} if errors_path.is_file() else set()
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
        return None
    return store if stored | failed == set(items) else None


# --------------------------------------------------------------------------------------------
# Views, reference images and their support
# --------------------------------------------------------------------------------------------


def box_view(image: np.ndarray, box: Any, margin: float) -> tuple[np.ndarray, tuple[float, float]]:
    """The XYXY ``box`` (original pixels) grown by ``margin`` x its size on each side, clipped,
    cut from ``image``: ``(view (h, w, 3), (x0, y0))``; the whole image when ``box`` is None."""
    H, W = image.shape[:2]
    if box is None:
        return image, (0.0, 0.0)
    x1, y1, x2, y2 = (float(v) for v in box)
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    a, b = int(max(np.floor(x1 - mx), 0)), int(max(np.floor(y1 - my), 0))
    c, d = int(min(np.ceil(x2 + mx), W)), int(min(np.ceil(y2 + my), H))
    if c - a < 2 or d - b < 2:
        a, b, c, d = 0, 0, W, H
    return np.ascontiguousarray(image[b:d, a:c]), (float(a), float(b))


def region_in_view(box: Any, offset: tuple[float, float], view_hw: tuple[int, int]) -> tuple[float, float, float, float]:
    """The XYXY ``box`` (original pixels) in the pixels of a view cut at ``offset``, clipped to it."""
    h, w = view_hw
    if box is None:
        return 0.0, 0.0, float(w), float(h)
    x1, y1, x2, y2 = (float(v) for v in box)
    x0, y0 = offset
    return (float(np.clip(x1 - x0, 0, w)), float(np.clip(y1 - y0, 0, h)), float(np.clip(x2 - x0, 0, w)),
            float(np.clip(y2 - y0, 0, h)))


def reference_image(ref: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A KB image and its *support* (the object's pixels): ``(rgb (H, W, 3) uint8, support
    (H, W) bool)``. The support is the image's alpha where it has one; else, when the image's
    border is one uniform colour (a logo on white), everything not connected to the border
    through that colour; else the whole image (a photo, a flag). E001 for an unreadable file."""
    from PIL import Image

    from ...io import load_image

    rgb = load_image(ref)
    alpha = None
    try:
        with Image.open(ref) as im:
            if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
                a = np.asarray(im.convert("RGBA"))[..., 3]
                if a.shape == rgb.shape[:2] and (a < 128).any():
                    alpha = a >= 128
    except OSError:
        alpha = None  # load_image read it: a format PIL opens only through its fallbacks
    if alpha is not None and alpha.any():
        return rgb, alpha
    return rgb, border_support(rgb)


def reference_features(backend: Any, rgb: np.ndarray, support: np.ndarray, o: LocalOptions) -> Any:
    """The KB side's features of one reference image, from several *views* of it, all in the
    reference's own pixels (KB image ``(H, W, 3)`` uint8 and its ``(H, W)`` bool support):

    * the image itself;
    * its object on each grey level of ``o.kb_backgrounds`` (when the support is not the whole
      image): SIFT's descriptors of an outline include the outside, which is white in the KB
      and anything in a photo;
    * the image shrunk to each longer side of ``o.kb_small_sides`` (smaller than the image):
      what a logo seen small and blurred still shows.

    Together at most ``o.kb_max_features`` (the extractor's spread selection per view, the cap
    shared by the views). On the composite calibration split, the gold logo verifies against
    its query for 58 % of the queries from the image alone and 70 % with these views
    (flags 44 % -> 52 %; benchmarks/bench_local.py, docs/instance-matching.md)."""
    import cv2

    views: list[tuple[np.ndarray, float]] = [(rgb, 1.0)]
    if not support.all():
        for g in o.kb_backgrounds:
            views.append((np.where(support[..., None], rgb, np.uint8(g)).astype(np.uint8), 1.0))
    h, w = rgb.shape[:2]
    for side in o.kb_small_sides:
        f = side / max(h, w)
        if f < 1.0:
            small = cv2.resize(rgb, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
            views.append((small, f))
    per = max(1, o.kb_max_features // len(views))
    parts = []
    for img, f in views:
        x = backend.extract(img, max_features=per)
        parts.append(x if f == 1.0 else replace(x, xy=(x.xy / f).astype(np.float32),
                                                 size=(x.size / f).astype(np.float32), image_size=(h, w)))
    return R.LocalFeatures.concat(parts)


def border_support(rgb: np.ndarray, tolerance: int = 24, uniform: float = 0.97) -> np.ndarray:
    """``(H, W)`` bool: the pixels not reachable from the image border through the border's
    colour (within ``tolerance`` per channel), when at least ``uniform`` of the border has that
    colour; else all True."""
    import cv2

    h, w = rgb.shape[:2]
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]]).astype(np.int16)
    med = np.median(border, axis=0)
    near_b = np.abs(border - med).max(axis=1) <= tolerance
    if near_b.mean() < uniform or h < 4 or w < 4:
        return np.ones((h, w), bool)
    near = (np.abs(rgb.astype(np.int16) - med).max(axis=2) <= tolerance).astype(np.uint8)
    n, lab = cv2.connectedComponents(near, connectivity=4)
    edge = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    background = np.isin(lab, edge[edge > 0]) & (near > 0)
    support = ~background
    if support.mean() < 0.005:  # a blank image: nothing stands out
        return np.ones((h, w), bool)
    return support


def thumbnail(rgb: np.ndarray, support: np.ndarray, side: int) -> np.ndarray:
    """``(th, tw, 4)`` uint8: ``rgb`` shrunk to a longer side of ``side`` and its support as alpha."""
    import cv2

    h, w = rgb.shape[:2]
    s = side / max(h, w)
    tw, th = max(1, round(w * s)), max(1, round(h * s))
    small = cv2.resize(rgb, (tw, th), interpolation=cv2.INTER_AREA)
    a = cv2.resize(support.astype(np.uint8) * 255, (tw, th), interpolation=cv2.INTER_AREA)
    return np.dstack([small, a]).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# The detector: where does an entity's own image appear?
# --------------------------------------------------------------------------------------------


@dataclass
class InstanceMatch:
    """An entity's KB image found in a query image.

    Attributes:
        entity_id: the entity; ``image_ref``: which of its images matched.
        score: effective inliers (:func:`effective_inliers`; instances are ranked by it);
            ``inliers``, ``colour``.
        signal_score: the ``local`` signal's raw score of the match (:func:`verification_score`,
            with the searched image or box as the region; a small instance in a whole image
            fills little of it, so it reads low). The detector's confidence is
            :func:`instance_probability` of ``score``.
        box: XYXY (original pixels) of the reference's outline, clipped to the image.
        quad: ``(4, 2)`` float32 the reference's corners (TL, TR, BR, BL) in original pixels
            (may lie outside the image: a partly visible object).
        mask: ``(H, W)`` bool, the reference's support warped into the image (None on request).
    """

    entity_id: str
    image_ref: str
    score: float
    inliers: int
    colour: float
    box: list[float]
    quad: np.ndarray
    mask: np.ndarray | None = None
    signal_score: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        from ...geometry import mask_to_rle

        return {"entity_id": self.entity_id, "image_ref": self.image_ref, "score": round(self.score, 4),
                "signal_score": None if not np.isfinite(self.signal_score) else round(self.signal_score, 4),
                "inliers": self.inliers, "colour": None if not np.isfinite(self.colour) else round(self.colour, 4),
                "box": [round(v, 2) for v in self.box], "quad": np.round(self.quad, 2).tolist(),
                "mask": None if self.mask is None else mask_to_rle(self.mask)}


DETECTOR_CALIBRATION = SignalCalibration(center=9.169, slope=0.129, weight=1.0)
"""The detector's confidence (:func:`instance_probability`): how often the
best verified KB image of a composite calibration query is right at a given count of effective
inliers (a logistic over the 206 calibration queries with a verified match; 15 % below 6, 41 % at
6-10, 63 % at 10-15, 96 % above). The linking signal's own calibration (the fusion files) reads
its learned score instead, which needs the region's box."""


def instance_probability(match: "InstanceMatch") -> float:
    """How likely a detected instance is its entity, from its effective inliers
    (:data:`DETECTOR_CALIBRATION`)."""
    return float(DETECTOR_CALIBRATION.prob(match.score))


def _instance(store: Any, lq: LocalQuery, v: Any, image_hw: tuple[int, int], with_mask: bool,
              o: LocalOptions) -> InstanceMatch:
    import cv2

    H_img, W_img = image_hw
    row = store.image(v.image)
    x0, y0 = lq.offset
    quad = v.quad + np.array([x0, y0], np.float32)
    x1, y1 = np.clip(quad.min(axis=0), 0, [W_img, H_img])
    x2, y2 = np.clip(quad.max(axis=0), 0, [W_img, H_img])
    mask = None
    if with_mask:
        th = store.thumb(v.image)
        S = np.diag([row.width / th.shape[1], row.height / th.shape[0], 1.0])
        T = np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1]], np.float64)
        M = T @ v.homography @ S
        warped = cv2.warpPerspective(th[..., 3], M, (W_img, H_img), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        mask = warped >= 128
    return InstanceMatch(entity_id=v.entity_id, image_ref=row.ref, score=effective_inliers(v, o.colour),
                         inliers=v.inliers, colour=float(v.colour), box=[float(x1), float(y1), float(x2), float(y2)],
                         quad=quad, mask=mask, signal_score=verification_score(v, o))


def _detector_parts(linker: Any) -> tuple[Any, Any, LocalOptions]:
    """The backend, the store and the options a linker's ``local`` signal uses (E260 when
    the KB has no store for the profile's extractor)."""
    sig = next((s for s in getattr(linker, "signals", []) if isinstance(s, LocalSignal)), None)
    opts = sig.options if sig is not None else LocalOptions()
    backend = linker.profile.get(R.LOCAL_FEATURES)
    store = open_store(linker.kb.path, backend.model_id, getattr(linker.kb, "build_id", None))
    if store is None:
        from ...index.local import local_dir

        raise IndexError_(Errors.E260.format(path=str(local_dir(linker.kb.path, backend.model_id)),
                                             reason="the KB has no local features for this extractor"))
    return backend, store, opts


def find_instances(linker: Any, image: Any, box: Any = None, k: int = 10, with_mask: bool = True,
                   max_features: int = 2000) -> list[InstanceMatch]:
    """Which KB entities' own images appear in ``image`` (inside ``box`` when given), with
    their boxes and masks: "which KB logos appear in this photo".

    Args:
        linker: a :class:`~pixlink.link.Linker` (its profile's ``local_features`` backend, its
            KB's store and its ``local`` options are used).
        image: path, bytes, PIL image or ``(H, W, 3)`` uint8 array.
        box: XYXY original pixels, or None for the whole image.
        k: at most this many entities, best first.
        max_features: query features (a whole photo needs more than a region).

    Returns:
        verified matches (one per entity), by decreasing score.
    """
    from ...io import load_image

    img = load_image(image)
    backend, store, o = _detector_parts(linker)
    view, off = box_view(img, box, 0.0 if box is None else o.view_margin)
    feats = query_features(backend, view, max_features, o.polarity)
    lq = LocalQuery(store=store, features=feats, offset=off, view_hw=view.shape[:2], view=view)
    if len(feats) < o.min_inliers:
        return []
    votes = rank_images(store, lq, o)
    order = np.argsort(-votes, kind="stable")[: max(o.verify_top, 2 * k)]
    vs = [verify_image(store, lq, int(i), o) for i in order if votes[i] > 0]
    best = best_by_entity(store, vs, o.colour)
    ranked = sorted(best.values(), key=lambda v: -effective_inliers(v, o.colour))[:k]
    return [_instance(store, lq, v, img.shape[:2], with_mask, o) for v in ranked]


def locate(linker: Any, image: Any, entity_id: str, box: Any = None, with_mask: bool = True,
           max_features: int = 2000) -> InstanceMatch | None:
    """Where entity ``entity_id``'s own KB image appears in ``image`` (inside ``box`` when
    given): the best verified match over its images, or None when none verifies. E420 when the
    entity has no image with local features in the KB's store."""
    from ...io import load_image

    img = load_image(image)
    backend, store, o = _detector_parts(linker)
    rows = store.images_of(entity_id)
    if not rows:
        raise InputError(Errors.E420.format(entity=entity_id, path=str(store.path)))
    view, off = box_view(img, box, 0.0 if box is None else o.view_margin)
    feats = query_features(backend, view, max_features, o.polarity)
    lq = LocalQuery(store=store, features=feats, offset=off, view_hw=view.shape[:2], view=view)
    if len(feats) < o.min_inliers:
        return None
    best = best_by_entity(store, [verify_image(store, lq, i, o) for i in rows], o.colour).get(entity_id)
    return None if best is None else _instance(store, lq, best, img.shape[:2], with_mask, o)


__all__ = ["InstanceMatch", "LocalOptions", "LocalQuery", "LocalSignal", "border_support", "box_view",
           "find_instances", "locate", "open_store", "reference_features", "reference_image", "thumbnail"]
