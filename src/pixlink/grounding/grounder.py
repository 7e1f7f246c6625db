"""The grounder: targets (phrase + type [+ entity]) -> boxes, groundability, masks.

Boxes are XYXY in original pixels; masks ``(H, W)`` bool; the image is an ``(H, W, 3)`` uint8
array decoded once by the caller. Every decision that drops a box says why (``reason``), and
every fallback is a note.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import Errors, InputError, ModelUnavailableError
from ..log import get_logger
from ..models import roles as R
from ..regions import SegmenterSession
from ..types import Region

log = get_logger("pixlink.grounding")

GMNER_TRAIN_GROUNDABLE_RATE: dict[str, float] = {"PER": 2340 / 3598, "ORG": 622 / 2201, "OTHER": 320 / 1309,
                                                  "MISC": 320 / 1309, "LOC": 122 / 1305}
"""P(an entity has a box | its type) in Twitter-GMNER's training split (``gmner/train.txt`` +
``xml/``: PER 2340/3598, ORG 622/2201, OTHER 320/1309, LOC 122/1305), as counted by
:func:`pixlink.ner.gmner.groundable_rates`; MISC takes OTHER's rate."""


TYPE_WORDS = {"PER": "person", "LOC": "location", "ORG": "organization", "MISC": "thing", "OTHER": "thing"}
"""The word a type template uses for each coarse type."""


def expansion(text: str, etype: str, expression: str) -> str:
    """RiVEG's entity expansion expression: ``Named Entity (TYPE) - expression``."""
    return f"{text} ({etype}) - {expression}"


def template_expression(etype: str) -> str:
    """The type template used when neither the KB nor a generator gives an expression."""
    word = TYPE_WORDS.get(etype, "thing")
    return f"a {word}" if word != "organization" else "an organization"


def typed_phrase(text: str, etype: str | None) -> str:
    """A phrase with its type spelled out the way RiVEG asks its grounding model
    (``"Kit Harington (PER) - a person"``), or the text alone when the type is unknown."""
    return expansion(text, etype, template_expression(etype)) if etype else text


@dataclass
class GroundingConfig:
    """Knobs of :class:`Grounder`.

    Attributes:
        groundable_threshold: minimum detection score for a target to count as in the image.
        detect_threshold: detections below this are not considered at all.
        segment: cut a mask for each grounded target (SMNER).
        person_box_by_face: when a PER target has several candidate boxes and its KB entity
            is known, take the box whose face best matches the entity's reference faces
            (at least ``face_match_min`` cosine).
        face_match_min: the cosine a face must reach to choose a box (dlib's same-person rule,
            L2 < 0.6 between unit 128-d vectors, is cosine > 0.82).
        max_person_boxes: how many of a PER target's best boxes are compared by face.
        groundable_prior: P(groundable | type), default :data:`GMNER_TRAIN_GROUNDABLE_RATE`.
            ``None`` turns the rule below off.
        fallback_min_prior: a box found only by a *fallback* detector (source ``fallback:...``)
            makes its target groundable only when the type's prior reaches this; a real
            detector's box (COCO, OWLv2, Grounding DINO) is trusted on its score alone.
    """

    groundable_threshold: float = 0.2
    detect_threshold: float = 0.05
    segment: bool = True
    person_box_by_face: bool = True
    face_match_min: float = 0.82
    max_person_boxes: int = 4
    groundable_prior: dict[str, float] | None = field(default_factory=lambda: dict(GMNER_TRAIN_GROUNDABLE_RATE))
    fallback_min_prior: float = 0.5

    def __post_init__(self) -> None:
        for name in ("groundable_threshold", "detect_threshold", "face_match_min", "fallback_min_prior"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0.0 <= v <= 1.0:
                raise InputError(Errors.E010.format(what=name, value=v, reason="a number in [0, 1]"))
        if int(self.max_person_boxes) < 1:
            raise InputError(Errors.E010.format(what="max_person_boxes", value=self.max_person_boxes, reason=">= 1"))


@dataclass
class Target:
    """What to ground.

    Attributes:
        phrase: the text the detector is asked for (RiVEG's expansion expression, a label, a
            hypernym...).
        type: the coarse type (PER / LOC / ORG / MISC / OTHER), or None.
        entity_id: the KB entity it is, when known (decides among person boxes by face).
        name: how notes name it (the entity's words); the phrase when None.
    """

    phrase: str
    type: str | None = None
    entity_id: str | None = None
    name: str | None = None

    @property
    def label(self) -> str:
        return self.name or self.phrase


@dataclass
class Grounded:
    """The grounding of one target.

    Attributes:
        groundable: it is in the image (``None``: not decided, no detector ran).
        region: its box (+ mask when segmented) when groundable.
        score: the best detection score for its phrase (0 when none).
        source: which detector found the box (``"coco"``, ``"fallback:proposals+conse"``...).
        reason: why it is not groundable, or how its box was chosen, when that needs saying.
        scores: every detection score for the phrase, best first (for calibration).
        boxes: every detection box for the phrase (XYXY, original pixels), in the order of
            ``scores`` (the reverse annotator's correction and dense-scene rules read them).
    """

    target: Target
    groundable: bool | None
    region: Region | None = None
    score: float = 0.0
    source: str = ""
    reason: str | None = None
    scores: list[float] = field(default_factory=list)
    boxes: list[list[float]] = field(default_factory=list)


def role_or_note(profile: Any, role: str, notes: list[str], used: dict[str, str]) -> Any | None:
    """``profile``'s backend for ``role``, recorded in the call's ``used`` (role -> backend);
    ``None`` with a note (and a warning) when none can run."""
    try:
        inst = profile.get(role)
    except ModelUnavailableError as exc:
        msg = f"{role}: not available ({exc})"
        if msg not in notes:
            notes.append(msg)
            log.warning(msg)
        return None
    used[role] = str(profile.choose(role).backend or getattr(inst, "name", ""))
    return inst


FaceScorer = Callable[[np.ndarray, Sequence[Sequence[float]], str], list[float | None]]
"""``(image, boxes XYXY, entity id) -> per box, the face cosine with the entity (None: no face)``;
:meth:`pixlink.link.Linker.face_scores` is one."""

FaceOwners = Callable[[np.ndarray, Sequence[Sequence[float]]], list["tuple[str, float] | None"]]
"""``(image, boxes XYXY) -> per box, (the KB entity whose face it holds, cosine) or None``;
:meth:`pixlink.link.Linker.face_owners` is one."""


class Grounder:
    """Ground targets in an image with the profile's ``detect`` and ``segment`` roles.

    Args:
        profile: a :class:`~pixlink.models.Profile`.
        config: :class:`GroundingConfig`.
        face_scores: chooses among person boxes when a PER target's entity is known.
        segmenters: a shared :class:`~pixlink.regions.SegmenterSession` (made on first use
            when not given), so the image embedding is computed once per image.

    Thread-safe: per-call state lives in the call; the segmenter session is thread-safe.
    """

    def __init__(self, profile: Any, config: GroundingConfig | None = None, face_scores: FaceScorer | None = None,
                 segmenters: SegmenterSession | None = None, face_owners: FaceOwners | None = None) -> None:
        self.profile = profile
        self.config = config or GroundingConfig()
        self.face_scores = face_scores
        self.face_owners = face_owners
        self._segmenters = segmenters

    def _role(self, role: str, notes: list[str], used: dict[str, str]) -> Any | None:
        return role_or_note(self.profile, role, notes, used)

    def ground(self, image: np.ndarray, targets: Sequence[Target], *, notes: list[str] | None = None,
               used: dict[str, str] | None = None, timings: dict[str, float] | None = None,
               entity_of: Callable[[Target], str | None] | None = None) -> list[Grounded]:
        """Ground every target in ``image`` (``(H, W, 3)`` uint8).

        Args:
            notes, used, timings: the caller's per-call records, appended to (notes), filled
                with role -> backend (used) and stage -> seconds (timings).
            entity_of: called for a PER target without ``entity_id`` that has several candidate
                boxes, to learn its entity lazily (GMNER links the name only then).

        Returns:
            one :class:`Grounded` per target, in order.
        """
        notes = notes if notes is not None else []
        used = used if used is not None else {}
        timings = timings if timings is not None else {}
        cfg = self.config
        t0 = time.perf_counter()
        detector = self._role(R.DETECT, notes, used)
        if detector is None:
            notes.append("no detector: groundability not decided")
            timings["ground"] = time.perf_counter() - t0
            return [Grounded(t, None) for t in targets]
        phrases = list(dict.fromkeys(t.phrase for t in targets))
        dets = detector.detect(image, phrases, threshold=cfg.detect_threshold)
        src = {d.source for d in dets if d.source.startswith("fallback")}
        if src:
            notes.append(f"grounding used the offline fallback detector ({', '.join(sorted(src))}); boxes are weak")
        h, w = image.shape[:2]
        out: list[Grounded] = []
        for t in targets:
            mine = sorted((d for d in dets if d.phrase == t.phrase), key=lambda d: -d.score)
            best = mine[0] if mine else None
            g = Grounded(t, False, score=float(best.score) if best else 0.0, source=best.source if best else "",
                         scores=[float(d.score) for d in mine], boxes=[[float(v) for v in d.box] for d in mine])
            out.append(g)
            if best is None or best.score < cfg.groundable_threshold:
                g.reason = f"best detection score {g.score:.2f} < {cfg.groundable_threshold}"
                continue
            prior = (cfg.groundable_prior or {}).get(t.type or "")
            if best.source.startswith("fallback") and prior is not None and prior < cfg.fallback_min_prior:
                # a weak detector's box for a type that is mostly not in the picture: no
                g.reason = (f"only the fallback detector answered ({best.source}, {best.score:.2f}) and "
                            f"P(groundable | {t.type}) = {prior:.2f} < {cfg.fallback_min_prior}: not groundable")
                notes.append(f"{t.label!r} ({t.type}): {g.reason}")
                continue
            g.groundable = True
            chosen = best
            if t.type == "PER" and cfg.person_box_by_face and self.face_scores is not None:
                chosen = self._person_box_by_face(image, t, mine, best, notes, entity_of)
            g.source = chosen.source
            g.region = Region.from_box(chosen.box, image_size=(h, w), clip=True,
                                       source=f"detect:{chosen.source or 'detector'}", score=float(chosen.score))
        timings["ground"] = timings.get("ground", 0.0) + time.perf_counter() - t0
        if cfg.segment and any(g.region is not None for g in out):
            t0 = time.perf_counter()
            self._segment(image, out, notes, used)
            timings["segment"] = timings.get("segment", 0.0) + time.perf_counter() - t0
        return out

    def _segment(self, image: np.ndarray, out: list[Grounded], notes: list[str], used: dict[str, str]) -> None:
        seg = self._role(R.SEGMENT, notes, used)
        if seg is None or "box" not in seg.prompt_kinds:
            if seg is not None:
                notes.append(f"segmenter {seg.name} takes no boxes: no masks")
            return
        if self._segmenters is None:
            self._segmenters = SegmenterSession([seg], cache_size=4)
        from ..regions import image_key

        key = image_key(image)
        for g in out:
            if g.region is not None:
                res = self._segmenters.segment(image, g.region, key=key)
                g.region = res.region
                notes.extend(n for n in res.notes if n not in notes)

    def _person_box_by_face(self, image: np.ndarray, t: Target, dets: list[Any], best: Any, notes: list[str],
                            entity_of: Callable[[Target], str | None] | None) -> Any:
        """Among a PER target's candidate boxes, the one whose face matches its KB entity's
        reference faces; ``best`` when none decides."""
        cfg = self.config
        cands = [d for d in dets if d.score >= cfg.groundable_threshold][: cfg.max_person_boxes]
        if len(cands) < 2:
            return best
        eid = t.entity_id or (entity_of(t) if entity_of is not None else None)
        if eid is None:
            return best
        assert self.face_scores is not None
        scores = self.face_scores(image, [d.box for d in cands], eid)
        found = [(s, d) for s, d in zip(scores, cands) if s is not None]
        if not found:
            return self._not_someone_else(image, t, eid, cands, best, notes)
        s, d = max(found, key=lambda p: p[0])
        if s < cfg.face_match_min:
            notes.append(f"{t.label!r}: no face in its {len(cands)} candidate boxes matches {eid} "
                         f"(best cosine {s:.2f} < {cfg.face_match_min}); kept the detector's best box")
            return best
        if d is not best:
            notes.append(f"{t.label!r}: box chosen by its face (cosine {s:.2f} with {eid}'s reference faces) "
                         f"over the detector's best")
        return d

    def _not_someone_else(self, image: np.ndarray, t: Target, eid: str, cands: list[Any], best: Any,
                          notes: list[str]) -> Any:
        """The entity has no reference face: leave out the boxes whose face is another KB
        entity's (at least ``face_match_min``); the best of the rest, or ``best`` with a note."""
        if self.face_owners is None:
            return best
        cfg = self.config
        owners = self.face_owners(image, [d.box for d in cands])
        others = {i for i, o in enumerate(owners) if o is not None and o[0] != eid and o[1] >= cfg.face_match_min}
        rest = [d for i, d in enumerate(cands) if i not in others]
        if not others:
            return best
        if not rest:
            notes.append(f"{t.label!r}: every candidate box holds another KB entity's face; kept the detector's best")
            return best
        names = ", ".join(sorted({owners[i][0] for i in others}))  # type: ignore[index]
        notes.append(f"{t.label!r}: {eid} has no reference face; {len(others)} box(es) holding the face of "
                     f"{names} left out")
        return rest[0]
