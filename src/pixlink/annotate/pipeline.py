"""The reverse annotator: (image, entity[, question]) -> the entity's region, with the reasons.

:class:`ReverseAnnotator` annotates one item (:meth:`annotate`) or a whole set into an output
folder (:meth:`run`, resumable). PL-VEL's pipeline (``mode="maskoven"``): text references ->
several annotators -> agreement, correction and filter rules (:mod:`.rules`) -> one mask, then
(beyond the paper) the mask is linked back against the whole KB and flagged when another entity
wins. VP-MEL's (``mode="vpwiki"``): see :mod:`.vpwiki`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import Errors, InputError, KBError
from ..io import load_image
from ..log import get_logger
from ..models import Profile
from ..types import Region
from .annotators import ItemContext, Proposal, make_annotators
from .items import AnnotationItem
from .references import (TextReference, extension_reference, hypernyms, intension_references, load_templates,
                         text_prompt)
from .rules import (AnnotateConfig, agreement, correction_box, is_dense, load_rules, open_and_count,
                    touches_all_borders)

log = get_logger("pixlink.annotate")


@dataclass
class AnnotationResult:
    """The outcome for one item.

    Attributes:
        status: ``accepted`` or ``rejected`` (``error`` records are written by :meth:`ReverseAnnotator.run`).
        rule: the rule that decided a rejection, or a special acceptance (``location_whole_image``).
        flags: things a reviewer should look at (``disagreement``, ``corrected``, ``inverted``,
            ``links_elsewhere``...).
        figures: the numbers behind the decision (scores, IoUs, counts).
        region: the final region (box XYXY original pixels + mask), for accepted items.
        proposals: a summary of every annotator proposal.
        labels: MaskOVEN-Wiki's ``label`` strings (``"a bird(0.44)"``), best first.
    """

    item: AnnotationItem
    status: str
    rule: str | None = None
    flags: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    region: Region | None = None
    references: list[TextReference] = field(default_factory=list)
    proposals: list[dict[str, Any]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    text_prompt: str = ""
    entity_label: str = ""
    image_size: tuple[int, int] | None = None
    notes: list[str] = field(default_factory=list)
    backends: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    verify: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        """One JSON line of the run's report (the mask as COCO RLE)."""
        return {
            "id": self.item.id, "digest": self.item.digest, "item": self.item.to_dict(), "status": self.status,
            "rule": self.rule, "flags": self.flags, "figures": self.figures,
            "region": self.region.to_dict() if self.region is not None else None,
            "references": [r.to_dict() for r in self.references], "proposals": self.proposals, "labels": self.labels,
            "text_prompt": self.text_prompt, "entity_label": self.entity_label,
            "image_size": list(self.image_size) if self.image_size else None, "notes": self.notes,
            "backends": self.backends, "timings": self.timings, "verify": self.verify, **self.extra,
        }


class ReverseAnnotator:
    """Reverse region-entity annotation over one KB.

    Args:
        kb: an open :class:`~pixlink.kb.KB`.
        profile: the model profile (shared with the linker).
        config: :class:`AnnotateConfig`.
        linker: a :class:`~pixlink.link.Linker` over the same KB (faces of people, verification);
            made from the KB and profile when None.
    """

    def __init__(self, kb: Any, profile: Profile, config: AnnotateConfig | None = None, linker: Any = None) -> None:
        from ..grounding import GroundingConfig
        from ..link.signals.type import load_type_classes

        self.kb = kb
        self.profile = profile
        self.config = config or AnnotateConfig()
        if linker is None:
            from ..link import Linker, LinkerConfig

            linker = Linker(kb, profile, LinkerConfig())
        self.linker = linker
        self.rules = load_rules(self.config.rules_file)
        self.templates = load_templates(self.config.templates_file)
        self.types = load_type_classes()
        # no GMNER type prior here: the entity is known to be in the image
        self.grounding = GroundingConfig(groundable_threshold=self.config.min_score, groundable_prior=None, segment=True)
        self.notes: list[str] = []
        self.annotators = make_annotators(self.config.annotators, profile, linker, self.grounding, self.notes)
        self._generator: Any = None

    @classmethod
    def from_kb(cls, kb_dir: Any, profile: str | Profile = "auto", config: AnnotateConfig | None = None) -> "ReverseAnnotator":
        from ..kb import KB

        prof = profile if isinstance(profile, Profile) else Profile(profile)
        return cls(KB.open(kb_dir), prof, config)

    # ---------------------------------------------------------------------------------------
    def _classes(self, eid: str) -> set[str]:
        return {t for _, t, _, _ in self.kb.hypernyms(eid, max_depth=self.config.hypernym_depth)}

    def _coarse(self, classes: set[str]) -> str | None:
        for t in ("PER", "LOC", "ORG", "MISC"):
            if classes & self.types["classes"][t]:
                return t
        return None

    def _extension(self, question: str | None, notes: list[str], used: dict[str, str]) -> TextReference | None:
        """PL-VEL asks an LLM for the relational expression: the ``generate`` role when it is a
        hub model; the packaged LMs (Gemma 270M) copy the prompt's examples instead of reading the
        question, so offline the rule-based extractor runs, and a note says so."""
        from ..models import roles as R

        gen = None
        if self.config.extension_generator and question:
            choice = self.profile.choose(R.GENERATE)
            if choice.kind == "hub":
                from ..grounding.grounder import role_or_note

                gen = role_or_note(self.profile, R.GENERATE, notes, used)
            else:
                notes.append(f"extension reference by rule: the generate role here is {choice.backend} "
                             f"({choice.kind}), not a hub LLM")
        ref = extension_reference(question, gen)
        if ref is not None and gen is not None and not ref.source.startswith("generate"):
            notes.append(f"extension reference made by rule ({ref.source}), not by the generator")
        return ref

    def references(self, item: AnnotationItem, label: str, hypers: list[str], notes: list[str],
                   used: dict[str, str]) -> list[TextReference]:
        refs: list[TextReference] = []
        want = self.config.references
        if "mention" in want and item.mention:
            refs.append(TextReference("mention", item.mention, "item"))
        if "label" in want and label:
            refs.append(TextReference("label", label, "kb"))
        if "intension" in want:
            refs.extend(intension_references(label, hypers, self.templates))
        if "extension" in want:
            ext = self._extension(item.question, notes, used)
            if ext is not None:
                refs.append(ext)
        if "question" in want and item.question:
            refs.append(TextReference("question", item.question, "item"))
        seen: set[str] = set()
        return [r for r in refs if not (r.text.lower() in seen or seen.add(r.text.lower()))]  # type: ignore[func-returns-value]

    def vpwiki_type(self, classes: set[str]) -> str:
        """VP-MEL's seven types (``annotate/data/templates.json``): Person, Organization, Location,
        Country, Event, Works, Misc."""
        extra = self.templates["vpwiki_type_classes"]
        if classes & self.types["classes"]["PER"]:
            return "Person"
        for name in ("Country", "Event", "Works"):
            if classes & set(extra[name]):
                return name
        if classes & self.types["classes"]["ORG"]:
            return "Organization"
        if classes & self.types["classes"]["LOC"]:
            return "Location"
        return "Misc"

    def annotate(self, item: AnnotationItem, image: np.ndarray | None = None) -> AnnotationResult:
        """Annotate one item (``image``: the decoded image, when the caller has it)."""
        if self.config.mode == "vpwiki":
            return self.annotate_vpwiki(item, image)
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        notes: list[str] = list(self.notes)
        used: dict[str, str] = {}
        ent = self.kb.get(item.entity)
        if ent is None:
            raise KBError(Errors.E712.format(entity=item.entity, item=item.id))
        img = load_image(image if image is not None else item.image)
        h, w = img.shape[:2]
        timings["load"] = time.perf_counter() - t0
        classes = self._classes(ent.id)
        hypers = hypernyms(self.kb, ent.id, max_depth=self.config.hypernym_depth)
        res = AnnotationResult(item=item, status="rejected", entity_label=ent.label, image_size=(h, w),
                               text_prompt=text_prompt(ent.label, hypers, self.templates), notes=notes, backends=used,
                               timings=timings)
        nonvisual = sorted(classes & self.rules["non_visual"])
        if nonvisual:
            res.rule = "non_visual"
            res.figures["classes"] = nonvisual
            return self._finish(res, t0)
        coarse = self._coarse(classes)
        is_location = bool(classes & self.rules["location"])
        refs = self.references(item, ent.label, hypers, notes, used)
        res.references = refs
        ctx = ItemContext(image=img, entity_id=ent.id, label=ent.label, coarse_type=coarse,
                          is_person=bool(classes & self.types["classes"]["PER"]), references=refs, notes=notes, used=used)
        t1 = time.perf_counter()
        proposals: list[Proposal] = []
        for ann in self.annotators:
            proposals.extend(p for p in ann.propose(ctx) if p.score >= self.config.min_score)
        timings["annotate"] = time.perf_counter() - t1
        order = {"face": 0, "instance": 1, "text": 2}
        proposals.sort(key=lambda p: (order.get(p.annotator, 5), -p.score))
        res.proposals = [p.summary() for p in proposals]
        res.labels = [p.label() for p in sorted(proposals, key=lambda p: -p.score)]
        best_score = max((p.score for p in proposals), default=0.0)
        res.figures["best_score"] = round(best_score, 4)
        if is_location and best_score < self.config.location_min_score:
            res.status, res.rule = "accepted", "location_whole_image"
            res.region = Region(image_size=(h, w), mask=np.ones((h, w), bool), source="rule:location_whole_image")
            return self._verify_and_finish(res, img, t0)
        if not proposals:
            res.rule = "not_found"
            return self._finish(res, t0)
        chosen = proposals[0]
        mask = chosen.region.mask if chosen.region.mask is not None else chosen.region.as_mask()
        res.figures["chosen"] = chosen.summary()
        # agreement with the other annotators' / references' masks
        others = [p.region.mask if p.region.mask is not None else p.region.as_mask() for p in proposals[1:]]
        agree = agreement(mask, others)
        res.figures["agreement_iou"] = None if agree is None else round(agree, 4)
        if agree is not None and agree < self.config.agree_iou:
            res.flags.append("disagreement")
        # correction: the most confident detector box that intersects the mask
        boxes = [b for p in proposals for b in p.boxes]
        scores = [s for p in proposals for s in p.scores]
        corr = correction_box(mask, boxes, scores)
        if corr is not None and chosen.annotator == "text":
            from ..geometry import box_iou, mask_to_box

            cbox, cscore = corr
            iou = box_iou(mask_to_box(mask), cbox)
            res.figures["correction"] = {"box": [round(v, 1) for v in cbox], "score": round(cscore, 4), "iou": round(iou, 4)}
            if iou < self.config.agree_iou:
                mask = self._segment_box(img, cbox, notes, used)
                res.flags.append("corrected")
        # dense scenes: many confident boxes of the chosen phrase from a real detector (a fallback
        # detector's proposals are not "same-type objects")
        if not chosen.source.startswith("fallback") and is_dense(chosen.boxes, chosen.scores, (h, w), self.config):
            opened, n = open_and_count(mask, self.config.dense_kernel)
            res.figures["dense_components"] = n
            if n > self.config.dense_max_components:
                res.rule = "dense_fragmented"
                return self._finish(res, t0)
            if opened.any():
                mask = opened
        # inversion
        area = float(mask.mean())
        if area > self.config.inversion_min_area and touches_all_borders(mask):
            mask = ~mask
            res.flags.append("inverted")
            res.figures["inverted_from_area"] = round(area, 4)
        res.figures["area"] = round(float(mask.mean()), 6)
        if mask.mean() < self.config.min_area:
            res.rule = "inverted_empty" if "inverted" in res.flags else "too_small"
            return self._finish(res, t0)
        res.status = "accepted"
        res.region = Region(image_size=(h, w), mask=mask, source=f"annotate:{chosen.annotator}", score=chosen.score)
        return self._verify_and_finish(res, img, t0)

    def _segment_box(self, img: np.ndarray, box: list[float], notes: list[str], used: dict[str, str]) -> np.ndarray:
        from ..grounding.grounder import role_or_note
        from ..models import roles as R
        from ..regions import SegmenterSession

        h, w = img.shape[:2]
        region = Region.from_box(box, image_size=(h, w), clip=True)
        seg = role_or_note(self.profile, R.SEGMENT, notes, used)
        if seg is not None and "box" in seg.prompt_kinds:
            out = SegmenterSession([seg], cache_size=1).segment(img, region).region
            if out.mask is not None:
                return out.mask
        return region.as_mask()

    def _verify_and_finish(self, res: AnnotationResult, img: np.ndarray, t0: float) -> AnnotationResult:
        if self.config.verify and res.region is not None:
            t1 = time.perf_counter()
            text = res.item.question or res.item.caption
            link = self.linker.link(img, res.region, text=text, k=5)
            target = next((c for c in link.candidates if c.entity_id == res.item.entity), None)
            top = link.candidates[0] if link.candidates else None
            v: dict[str, Any] = {"top": top.entity_id if top else None, "top_score": top.score if top else None,
                                 "target_score": target.score if target else None, "signals": link.signals}
            if top is None or not link.signals:
                v["status"] = "unverifiable"
            elif link.nil and target is None:
                v["status"] = "nil"  # the region links to nothing of the KB, so to nobody else either
            elif top.entity_id == res.item.entity:
                v["status"] = "agrees"
            elif target is None or top.score > target.score + self.config.verify_margin:
                v["status"] = "links_elsewhere"
                res.flags.append("links_elsewhere")
            else:
                v["status"] = "agrees"
            res.verify = v
            res.timings["verify"] = time.perf_counter() - t1
        return self._finish(res, t0)

    @staticmethod
    def _finish(res: AnnotationResult, t0: float) -> AnnotationResult:
        res.timings["total"] = time.perf_counter() - t0
        res.timings = {k: round(v, 4) for k, v in res.timings.items()}
        return res

    # ---------------------------------------------------------------------------------------
    def annotate_vpwiki(self, item: AnnotationItem, image: np.ndarray | None = None) -> AnnotationResult:
        """VP-MEL's VPWiki construction for one (image, caption, mention, entity) item.

        Visual entailment: is the mention in the image at all (its words grounded above
        ``min_score``)? Visual grounding: its box, from two paths — the mention's words and the
        entity's label (for a person, the face of the entity when the KB has one) — which must
        agree (box IoU >= ``agree_iou``, VP-MEL's 0.5). The accepted box is the visual prompt (a
        red box drawn into a copy of the image by :func:`~pixlink.annotate.run_annotation`).
        """
        from ..geometry import box_iou
        from .annotators import FaceAnnotator

        t0 = time.perf_counter()
        if not item.mention or not item.caption:
            raise InputError(Errors.E710.format(item=item.id, reason="VPWiki mode needs 'mention' and 'caption'"))
        ent = self.kb.get(item.entity)
        if ent is None:
            raise KBError(Errors.E712.format(entity=item.entity, item=item.id))
        img = load_image(image if image is not None else item.image)
        h, w = img.shape[:2]
        notes: list[str] = list(self.notes)
        used: dict[str, str] = {}
        classes = self._classes(ent.id)
        vtype = self.vpwiki_type(classes)
        res = AnnotationResult(item=item, status="rejected", entity_label=ent.label, image_size=(h, w), notes=notes,
                               backends=used, timings={"load": time.perf_counter() - t0})
        refs = [TextReference("mention", item.mention, "item"), TextReference("label", ent.label, "kb")]
        res.references = refs
        coarse = self._coarse(classes)
        ctx = ItemContext(image=img, entity_id=ent.id, label=ent.label, coarse_type=coarse,
                          is_person=bool(classes & self.types["classes"]["PER"]), references=refs, notes=notes, used=used)
        text = next(a for a in self.annotators if a.name == "text") if any(a.name == "text" for a in self.annotators) else None
        if text is None:
            raise InputError(Errors.E713.format(what="annotators", value=self.config.annotators,
                                                reason="VPWiki mode needs the text annotator"))
        props = {p.reference.kind: p for p in text.propose(ctx) if p.score >= self.config.min_score and p.reference}
        if ctx.is_person:
            face = next((a for a in self.annotators if isinstance(a, FaceAnnotator)), None)
            found = face.propose(ctx) if face is not None else []
            if found:
                props["label"] = found[0]
        res.proposals = [p.summary() for p in props.values()]
        res.labels = [p.label() for p in props.values()]
        ve = props.get("mention")
        res.figures["entailment_score"] = round(ve.score, 4) if ve else 0.0
        if ve is None:
            res.rule = "not_visible"
            return self._finish(res, t0)
        other = props.get("label")
        if other is None:
            res.rule = "single_path"
            return self._finish(res, t0)
        iou = box_iou(ve.region.bbox, other.region.bbox)
        res.figures["paths_iou"] = round(iou, 4)
        if iou < self.config.agree_iou:
            res.rule = "grounding_disagreement"
            return self._finish(res, t0)
        res.status = "accepted"
        res.region = ve.region
        res.extra["vpwiki"] = {"sentence": item.caption, "mentions": item.mention, "entities": ent.label,
                               "answer": ent.id, "type": vtype}
        return self._finish(res, t0)
