"""Linker configuration: which signals run, how many candidates each recalls, how they fuse."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import Errors, InputError

SIGNALS = ("face", "v2v", "v2t", "lexical", "dense_text")
"""Candidate signals:

* ``face``       — faces in the region <-> entity face vectors (person regions).
* ``v2v``        — region image <-> entity images (``image_embed`` role).
* ``v2t``        — region image <-> entity text in a joint space (``image_text`` role).
* ``lexical``    — names in the caption/OCR/mention <-> entity labels and aliases (BM25).
* ``dense_text`` — caption <-> entity text (``text_embed`` role).
"""

VIEWS = ("crop", "masked_crop", "red_box")


@dataclass
class LinkerConfig:
    """Knobs of :class:`~pixlink.link.Linker`; every one can come from a JSON file or the CLI.

    Attributes:
        signals: which signals may run (each also needs its model and KB vectors).
        recall_k: candidates each signal recalls before fusion.
        max_candidates: cap on the union of recalled candidates that get fully scored.
        mode: ``"fusion"`` (all signals scored and fused) or ``"rerank"`` (VNEL: recall with
            ``recall_signal`` only, order by ``rerank_signal``, ties by the recall score).
        recall_signal, rerank_signal: used by ``mode="rerank"``.
        image_view: view of the region given to image encoders: ``"crop"``,
            ``"masked_crop"`` (default when a mask exists) or ``"red_box"`` (VP-MEL).
        crop_margin: context margin of crops, as a fraction of the box size.
        segment: turn box/click prompts into masks with the promptable segmenter.
        ner_mentions: find names in the caption with the ``ner`` role for the lexical signal
            (else the whole caption is searched).
        gazetteer: also look up capitalised n-grams of the caption as KB labels/aliases
            (names the tagger missed).
        ocr: read text inside the region with the ``ocr`` role and add it to the lexical query.
        face_min_overlap: a face counts for the region when this fraction of its box lies
            inside the region's box.
        person_types: P31 ids that mean "a person" (Wikidata human, Q5): when a face is found
            in the region, entities typed as something else get ``type`` = 0 (a penalty).
        fusion_path: JSON with learned fusion parameters (:class:`~pixlink.link.fusion.Fusion`).
        nil_threshold: overrides the fusion's NIL threshold when set.
    """

    signals: tuple[str, ...] = SIGNALS
    recall_k: int = 50
    max_candidates: int = 200
    mode: str = "fusion"
    recall_signal: str = "v2t"
    rerank_signal: str = "face"
    image_view: str = "masked_crop"
    crop_margin: float = 0.1
    segment: bool = True
    ner_mentions: bool = True
    gazetteer: bool = True
    ocr: bool = False
    face_min_overlap: float = 0.5
    person_types: tuple[str, ...] = ("Q5",)
    fusion_path: str | None = None
    nil_threshold: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.signals = tuple(self.signals)
        self.person_types = tuple(self.person_types)
        bad = [s for s in self.signals if s not in SIGNALS]
        if bad:
            raise InputError(Errors.E010.format(what="signals", value=bad, reason=f"known signals: {SIGNALS}"))
        if self.mode not in ("fusion", "rerank"):
            raise InputError(Errors.E010.format(what="mode", value=self.mode, reason="use 'fusion' or 'rerank'"))
        for name in (self.recall_signal, self.rerank_signal):
            if name not in SIGNALS:
                raise InputError(Errors.E010.format(what="rerank signal", value=name, reason=f"known: {SIGNALS}"))
        if self.image_view not in VIEWS:
            raise InputError(Errors.E010.format(what="image_view", value=self.image_view, reason=f"use one of {VIEWS}"))
        if self.recall_k < 1 or self.max_candidates < 1:
            raise InputError(Errors.E010.format(what="recall_k/max_candidates", value=(self.recall_k,
                             self.max_candidates), reason="must be >= 1"))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["signals"] = list(self.signals)
        return d
