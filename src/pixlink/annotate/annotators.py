"""Annotators: each a path from what is known about an item to candidate masks (proposals).

* :class:`TextAnnotator` — each text reference (label, intension, extension, question, mention)
  is grounded by the ``detect`` role and cut by the ``segment`` role (:class:`pixlink.grounding.Grounder`:
  Grounding DINO / OWLv2 + SAM with the hub; NanoDet-g for COCO things, faces for people and the
  classical proposals offline). A person's candidate boxes are told apart by face.
* :class:`FaceAnnotator` — for a person with reference faces in the KB: the faces of the image
  are matched against the entity's own (dlib offline), and the best match's person box
  (the detector's person box holding the face, else the face grown to an upper body) is cut.
  This needs no text at all.
* :class:`InstanceAnnotator` — for a thing with its own image in the KB (a logo, a flag, an
  artwork): the reference detector (:func:`pixlink.link.signals.local.locate`: local features,
  geometric verification) maps the entity's reference into the image; its box is cut by the
  ``segment`` role (the warped reference's support when no segmenter runs). Needs the KB's
  local-feature store (``pixlink kb embed KBDIR --signals local``).

A proposal says which annotator and reference made it, its score and its region.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..grounding import Grounder, GroundingConfig, Target, typed_phrase
from ..grounding.grounder import role_or_note
from ..models import roles as R
from ..regions import SegmenterSession, image_key
from ..types import Region
from .references import TextReference


@dataclass
class Proposal:
    """A candidate region for the item's entity.

    Attributes:
        annotator: ``text``, ``face``, ``instance``...
        reference: the text reference grounded (None for face / instance).
        region: box (XYXY original pixels) + mask ``(H, W)`` bool.
        score: the annotator's confidence in [0, 1] (detection score, face cosine...).
        source: which backend made the box (``coco``, ``fallback:faces->upper_body``, ``dlib``...).
        boxes, scores: every detection of the reference, best first (for correction / density rules).
    """

    annotator: str
    reference: TextReference | None
    region: Region
    score: float
    source: str = ""
    boxes: list[list[float]] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)

    def label(self) -> str:
        """MaskOVEN-Wiki's ``label`` entry: the phrase with its score, ``"a bird(0.44)"``."""
        what = self.reference.text if self.reference is not None else f"{self.annotator} match"
        return f"{what}({self.score:.2f})"

    def summary(self) -> dict[str, Any]:
        return {"annotator": self.annotator, "reference": self.reference.to_dict() if self.reference else None,
                "score": round(self.score, 4), "source": self.source,
                "box": [round(float(v), 1) for v in self.region.bbox]}


@dataclass
class ItemContext:
    """What annotators see of one item (made once per item by the pipeline)."""

    image: np.ndarray
    entity_id: str
    label: str
    coarse_type: str | None
    is_person: bool
    references: list[TextReference]
    notes: list[str]
    used: dict[str, str]


class _BoxCutter:
    """Cuts a proposal's box with the profile's ``segment`` role (one session, made on first use
    unless the pipeline shares its own)."""

    segmenters: SegmenterSession | None = None

    def cut(self, profile: Any, img: np.ndarray, region: Region, ctx: ItemContext) -> tuple[Region, str | None]:
        """``region``'s box cut into a mask, and the segmenter's name; ``(region, None)`` as it
        was when no segmenter that takes boxes can run (the note says why)."""
        seg = role_or_note(profile, R.SEGMENT, ctx.notes, ctx.used)
        if seg is None or "box" not in seg.prompt_kinds:
            return region, None
        if self.segmenters is None:
            self.segmenters = SegmenterSession([seg], cache_size=4)
        return self.segmenters.segment(img, region, key=image_key(img)).region, seg.name


class TextAnnotator:
    name = "text"

    def __init__(self, profile: Any, grounding: GroundingConfig, face_scores: Any = None,
                 segmenters: SegmenterSession | None = None, face_owners: Any = None) -> None:
        self.grounder = Grounder(profile, grounding, face_scores=face_scores, segmenters=segmenters,
                                 face_owners=face_owners)

    def propose(self, ctx: ItemContext) -> list[Proposal]:
        refs = [r for r in ctx.references]
        # the phrase carries the entity's coarse type as RiVEG asks its grounding model
        # ("Kit Harington (PER) - a person"): a detector then knows a name is a person's
        targets = [Target(phrase=typed_phrase(r.text, ctx.coarse_type), type=ctx.coarse_type, entity_id=ctx.entity_id,
                          name=r.text) for r in refs]
        grounded = self.grounder.ground(ctx.image, targets, notes=ctx.notes, used=ctx.used)
        out = []
        for ref, g in zip(refs, grounded):
            if g.groundable and g.region is not None:
                out.append(Proposal(self.name, ref, g.region, float(g.score), g.source, g.boxes, g.scores))
        return out


class FaceAnnotator(_BoxCutter):
    """A person's region found by their own face (see the module docstring)."""

    name = "face"

    def __init__(self, profile: Any, linker: Any, face_match_min: float = 0.82,
                 segmenters: SegmenterSession | None = None, detect_threshold: float = 0.2) -> None:
        self.profile = profile
        self.linker = linker
        self.face_match_min = float(face_match_min)
        self.detect_threshold = float(detect_threshold)
        self.segmenters = segmenters

    def propose(self, ctx: ItemContext) -> list[Proposal]:
        if not ctx.is_person:
            return []
        faces_model = role_or_note(self.profile, R.FACES, ctx.notes, ctx.used)
        if faces_model is None:
            return []
        img = ctx.image
        faces = faces_model.detect(img, upsample=1)
        if not faces:
            return []
        face_boxes = [[float(v) for v in f.box] for f in faces]
        scores = self.linker.face_scores(img, face_boxes, ctx.entity_id)
        found = [(s, b) for s, b in zip(scores, face_boxes) if s is not None]
        if not found:
            ctx.notes.append(f"face: {ctx.entity_id} has no reference face in the KB, or no face of the image could be read")
            return []
        s, fb = max(found, key=lambda p: p[0])
        if s < self.face_match_min:
            ctx.notes.append(f"face: no face of the image matches {ctx.entity_id} (best cosine {s:.2f} < {self.face_match_min})")
            return []
        h, w = img.shape[:2]
        box, source = self._person_box(img, fb, ctx)
        region = Region.from_box(box, image_size=(h, w), clip=True, source=f"face:{source}", score=float(s))
        region, _ = self.cut(self.profile, img, region, ctx)
        return [Proposal(self.name, None, region, float(s), source)]

    def _person_box(self, img: np.ndarray, face_box: Sequence[float], ctx: ItemContext) -> tuple[list[float], str]:
        """The detector's most confident person box that holds the face's centre; else the face
        grown to an upper body."""
        from ..models.backends.proposals_fallback import upper_body_box

        cx, cy = (face_box[0] + face_box[2]) / 2, (face_box[1] + face_box[3]) / 2
        det = role_or_note(self.profile, R.DETECT, ctx.notes, ctx.used)
        if det is not None:
            boxes = [d for d in det.detect(img, ["a person"], threshold=self.detect_threshold)
                     if d.box[0] <= cx <= d.box[2] and d.box[1] <= cy <= d.box[3] and not d.source.startswith("fallback")]
            if boxes:
                best = max(boxes, key=lambda d: d.score)
                return [float(v) for v in best.box], best.source or "detector"
        return [float(v) for v in upper_body_box(np.asarray(face_box), img.shape[:2])], "face->upper_body"


class InstanceAnnotator(_BoxCutter):
    """A thing found by its own KB image (see the module docstring).

    Args:
        linker: the :class:`~pixlink.link.Linker` over the KB (its profile's ``local_features``
            backend, the KB's store, the ``local`` options and calibration).
        segmenters: the session that cuts the found box (None: the warped reference is the mask).

    The proposal's score is the ``local`` signal's calibrated probability of its raw score (the
    verified match's effective inliers), from the linker's fusion.
    """

    name = "instance"

    def __init__(self, linker: Any, segmenters: SegmenterSession | None = None) -> None:
        self.linker = linker
        self.segmenters = segmenters
        self._no_store: str | None = None

    def propose(self, ctx: ItemContext) -> list[Proposal]:
        from ..errors import IndexError_, InputError, ModelUnavailableError
        from ..link.signals.local import instance_probability, locate

        if ctx.is_person or self._no_store is not None:
            if self._no_store is not None:
                ctx.notes.append(self._no_store)
            return []
        try:
            match = locate(self.linker, ctx.image, ctx.entity_id, with_mask=True)
        except (IndexError_, ModelUnavailableError) as exc:  # no store / no extractor: once per annotator
            self._no_store = f"instance: not run ({exc.code}: {exc})"
            ctx.notes.append(self._no_store)
            return []
        except InputError as exc:
            if exc.code != "E420":
                raise
            ctx.notes.append(f"instance: {ctx.entity_id} has no image with local features in the KB")
            return []
        backend = self.linker.profile.get(R.LOCAL_FEATURES)
        ctx.used.setdefault(R.LOCAL_FEATURES, backend.name)
        if match is None:
            ctx.notes.append(f"instance: no verified match of {ctx.entity_id}'s own image")
            return []
        score = instance_probability(match)
        h, w = ctx.image.shape[:2]
        region = Region(image_size=(h, w), mask=match.mask, source=f"instance:{backend.name}", score=score)
        source = f"local:{backend.name}"
        if match.box[2] > match.box[0] and match.box[3] > match.box[1]:
            boxed = Region.from_box(match.box, image_size=(h, w), clip=True, source=source, score=score)
            cut, seg_name = self.cut(self.linker.profile, ctx.image, boxed, ctx)
            if seg_name is not None and cut.mask is not None and cut.mask.any():
                region = cut
                source += f"+{seg_name}"
        return [Proposal(self.name, None, region, score, source, [list(match.box)], [score])]


def make_annotators(names: Sequence[str], profile: Any, linker: Any, grounding: GroundingConfig,
                    notes: list[str]) -> list[Any]:
    """The annotators asked for that can run (an unknown name is E713; one that cannot run
    here is left out with a note)."""
    from ..errors import Errors, InputError, ModelUnavailableError

    known = ("text", "face", "instance")
    out: list[Any] = []
    segmenters: SegmenterSession | None = None  # one session: an image is embedded once for all annotators
    try:
        seg = profile.get(R.SEGMENT)
        if "box" in seg.prompt_kinds:
            segmenters = SegmenterSession([seg], cache_size=4)
    except ModelUnavailableError as exc:
        notes.append(f"segment: not available ({exc}); proposals stay boxes")
    for n in names:
        if n not in known:
            raise InputError(Errors.E713.format(what="annotators", value=n, reason=f"known: {known}"))
        if n == "text":
            out.append(TextAnnotator(profile, grounding, face_scores=linker.face_scores if linker else None,
                                     segmenters=segmenters, face_owners=linker.face_owners if linker else None))
        elif n == "face":
            if linker is None:
                notes.append("annotator face: needs a linker over the KB; left out")
                continue
            out.append(FaceAnnotator(profile, linker, face_match_min=grounding.face_match_min, segmenters=segmenters))
        elif n == "instance":
            if linker is None:
                notes.append("annotator instance: needs a linker over the KB; left out")
                continue
            out.append(InstanceAnnotator(linker, segmenters=segmenters))
    return out
