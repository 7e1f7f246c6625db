"""RiVEG's cascade for GMNER / SMNER, built from pixlink's parts, plus KB linking.

Given a post (text + image):

1. **MNER** — entities and types with the ``ner`` role (pixlink's trained tagger by default).
2. **Entity expansion expression** — ``Named Entity (TYPE) - expression``: the expression is
   the KB description when the entity's name matches a KB entity, else the ``generate`` role's
   short description, else a type template (:func:`expansion`).
3. **Groundability** (RiVEG's visual entailment) — is the entity in the image? The score is the
   grounding backend's best detection score for the expansion expression; the entity is
   groundable when it passes ``groundable_threshold`` (calibrate it with
   :func:`calibrate_threshold` on posts with gold boxes; :class:`GroundabilityClassifier` is the
   trainable alternative for users who have the GMNER images).
4. **Grounding** — the best box for the expression from the ``detect`` role (OWLv2 / Grounding
   DINO with the hub; offline, the honest fallback of proposals + faces, labelled as such).
5. **Segmentation** (SMNER) — box -> mask with the ``segment`` role.
6. **Linking** — each entity (its text, and its region when grounded) to the KB with the
   :class:`~pixlink.link.Linker`, NIL when absent (none of the papers does this step).

Token spans are ``[start, end)`` over the post's tokens; boxes XYXY in original pixels; masks
travel as COCO RLE.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ...errors import Errors, InputError, ModelUnavailableError, PixlinkError
from ...io import load_image
from ...log import get_logger
from ...models import Profile
from ...models import roles as R
from ...grounding import (GMNER_TRAIN_GROUNDABLE_RATE, TYPE_WORDS, Grounder, GroundingConfig, Target, expansion,
                          template_expression)
from ...grounding.grounder import role_or_note
from ...spans import rename_type
from ...types import BatchResult, ItemError, NamedEntity, Post

log = get_logger("pixlink.gmner")



@dataclass
class GMNERConfig:
    """Knobs of :class:`GMNERPipeline`.

    Attributes:
        label_scheme: ``"OTHER"`` (Twitter-2015, Twitter-GMNER) or ``"MISC"`` (Twitter-2017)
            for the fourth type.
        expansion_sources: where expansion expressions come from, in order: ``"kb"``,
            ``"generate"``, ``"template"``.
        segment: make masks (SMNER) for grounded entities.
        link: link each entity to the KB (needs a KB).
        max_chars: a longer post is refused (E554): the cascade is made for posts (a tweet is
            at most 280 characters; GMNER's longest is ~150 tokens), and every entity costs a
            grounding, a generation and a linking.
        max_tokens: longer posts are cut to this many tokens (a note says so).
        max_entities: at most this many entities of a post are expanded, grounded and linked
            (the first ones; a note says how many were left).
        groundable_threshold, detect_threshold, person_box_by_face, face_match_min,
        groundable_prior, fallback_min_prior: the grounding stage's knobs, see
            :class:`pixlink.grounding.GroundingConfig`.
    """

    label_scheme: str = "OTHER"
    expansion_sources: tuple[str, ...] = ("kb", "generate", "template")
    segment: bool = True
    link: bool = True
    max_chars: int = 4000
    max_tokens: int = 256
    max_entities: int = 32
    groundable_threshold: float = 0.2
    detect_threshold: float = 0.05
    person_box_by_face: bool = True
    face_match_min: float = 0.82
    groundable_prior: dict[str, float] | None = field(default_factory=lambda: dict(GMNER_TRAIN_GROUNDABLE_RATE))
    fallback_min_prior: float = 0.5

    def __post_init__(self) -> None:
        if self.label_scheme not in ("OTHER", "MISC"):
            raise InputError(Errors.E010.format(what="label_scheme", value=self.label_scheme, reason="OTHER or MISC"))
        bad = [s for s in self.expansion_sources if s not in ("kb", "generate", "template")]
        if bad:
            raise InputError(Errors.E010.format(what="expansion_sources", value=bad, reason="kb, generate, template"))
        for name in ("max_chars", "max_tokens", "max_entities"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(Errors.E010.format(what=name, value=v, reason="an integer >= 1"))
        self.grounding()  # validates the grounding knobs

    def grounding(self) -> GroundingConfig:
        return GroundingConfig(
            groundable_threshold=self.groundable_threshold, detect_threshold=self.detect_threshold, segment=self.segment,
            person_box_by_face=self.person_box_by_face, face_match_min=self.face_match_min,
            groundable_prior=self.groundable_prior, fallback_min_prior=self.fallback_min_prior)


@dataclass
class GMNERResult:
    entities: list[NamedEntity]
    tokens: list[str]
    notes: list[str] = field(default_factory=list)
    backends: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "entities": [e.to_dict() for e in self.entities], "notes": self.notes,
                "backends": self.backends, "timings": self.timings}


class GMNERPipeline:
    """The RiVEG cascade. ``run(image, text)`` or ``run_post(post)``; ``run_batch(posts)``.

    One pipeline serves many threads: what a call uses and notes is kept per call."""

    def __init__(self, profile: Profile | str = "auto", kb: Any = None, linker: Any = None,
                 config: GMNERConfig | None = None):
        self.profile = profile if isinstance(profile, Profile) else Profile(profile)
        self.kb = kb
        self.linker = linker
        self.config = config or GMNERConfig()
        self.grounder = Grounder(self.profile, self.config.grounding(),
                                 face_scores=linker.face_scores if linker is not None else None,
                                 face_owners=linker.face_owners if linker is not None else None)

    @classmethod
    def from_kb(cls, kb_dir: Any = None, profile: Profile | str = "auto", config: GMNERConfig | None = None
                ) -> "GMNERPipeline":
        prof = profile if isinstance(profile, Profile) else Profile(profile)
        if kb_dir is None:
            return cls(prof, None, None, config)
        from ...kb import KB
        from ...link import Linker, LinkerSpec

        # the linker shares the pipeline's profile (one set of models) and carries the spec that
        # rebuilds it in another process
        spec = LinkerSpec(kb=str(kb_dir), profile=prof.name, overrides=dict(prof.overrides),
                          options={k: dict(v) for k, v in prof.options.items()}, device=prof.device)
        linker = Linker(KB.open(kb_dir), prof, spec=spec)
        return cls(prof, linker.kb, linker, config)

    # ---------------------------------------------------------------------------------------
    def _role(self, role: str, notes: list[str], used: dict[str, str]) -> Any | None:
        return role_or_note(self.profile, role, notes, used)

    def run_post(self, post: Post) -> GMNERResult:
        return self.run(post.image, tokens=post.tokens)

    def run(self, image: Any, text: str | None = None, tokens: Sequence[str] | None = None,
            progress: bool = False) -> GMNERResult:
        """Entities of one post with types, groundability, boxes, masks and links.

        Args:
            image: path / array / PIL image (decoded once); ``None`` runs the text stages only.
            text: the post (whitespace-tokenised), or ``tokens`` already tokenised.
            progress: show a progress bar over the post's entities on stderr.
        """
        timings: dict[str, float] = {}
        notes: list[str] = []
        used: dict[str, str] = {}
        cfg = self.config
        if tokens is None:
            if text is None or not text.strip():
                raise InputError(Errors.E550.format(reason="the post text is empty"))
            if len(text) > cfg.max_chars:
                raise InputError(Errors.E554.format(n=len(text), limit=cfg.max_chars))
            tokens = text.split()
        tokens = [t for t in tokens]
        if not tokens:
            raise InputError(Errors.E550.format(reason="the post has no tokens"))
        n_chars = sum(len(t) + 1 for t in tokens)
        if n_chars > cfg.max_chars:
            raise InputError(Errors.E554.format(n=n_chars, limit=cfg.max_chars))
        if len(tokens) > cfg.max_tokens:
            notes.append(f"post cut from {len(tokens)} to {cfg.max_tokens} tokens")
            tokens = tokens[: cfg.max_tokens]
        img = None
        if image is not None:
            t0 = time.perf_counter()
            img = load_image(image)
            timings["load"] = time.perf_counter() - t0

        # 1. MNER
        t0 = time.perf_counter()
        tagger = self._role(R.NER, notes, used)
        if tagger is None:
            raise ModelUnavailableError(Errors.E551.format(reason="; ".join(notes)))
        spans = tagger.tag_tokens([tokens])[0]
        ents = [NamedEntity(start=s, end=e, type=self._scheme(typ), text=" ".join(tokens[s:e])) for s, e, typ in spans]
        timings["ner"] = time.perf_counter() - t0
        if len(ents) > cfg.max_entities:
            notes.append(f"{len(ents)} entities found; only the first {cfg.max_entities} are grounded and linked "
                         f"(max_entities)")
        work = ents[: cfg.max_entities]

        from ...progress import progress as make_progress

        with make_progress(disable=not progress) as bar:
            task = bar.add_task("entities", total=len(work) * (2 if self._linking() else 1), rate="")
            # 2. expansion expressions
            t0 = time.perf_counter()
            post_text = " ".join(tokens)
            for ent in work:
                ent.expansion = self._expansion(ent, post_text, notes, used)
                bar.advance(task)
            timings["expansion"] = time.perf_counter() - t0

            # 3-5. groundability, grounding, segmentation
            if img is not None and work:
                self._ground(img, work, notes, used, timings)
            elif img is None:
                notes.append("no image: groundability, grounding and segmentation did not run")

            # 6. linking
            if self._linking() and work:
                t0 = time.perf_counter()
                for ent in work:
                    try:
                        ent.link = self.linker.link(img if ent.region is not None else None, ent.region, text=post_text,
                                                    surface=ent.text, mention_type=ent.type, k=5)
                        used.update({r: b for r, b in ent.link.backends.items() if r != "fusion"})
                    except PixlinkError as exc:
                        notes.append(f"linking {ent.text!r} failed: {exc}")
                    bar.advance(task)
                timings["link"] = time.perf_counter() - t0
        return GMNERResult(ents, tokens, notes, dict(sorted(used.items())), {k: round(v, 4) for k, v in timings.items()})

    def run_batch(self, posts: Sequence[Post]) -> BatchResult[list[NamedEntity]]:
        out: BatchResult[list[NamedEntity]] = BatchResult()
        for i, p in enumerate(posts):
            try:
                out.results.append((i, self.run_post(p).entities))
            except PixlinkError as exc:
                out.errors.append(ItemError(index=i, item_id=p.id, error=str(exc), code=exc.code))
        return out

    # ---------------------------------------------------------------------------------------
    def _linking(self) -> bool:
        return self.config.link and self.linker is not None

    def _scheme(self, typ: str) -> str:
        return rename_type(typ, self.config.label_scheme)

    def _expansion(self, ent: NamedEntity, post_text: str, notes: list[str], used: dict[str, str]) -> str:
        for source in self.config.expansion_sources:
            if source == "kb" and self.kb is not None:
                hits = self.kb.by_name(ent.text)
                if hits and hits[0].description:
                    return expansion(ent.text, ent.type, hits[0].description)
            elif source == "generate":
                gen = self._role(R.GENERATE, notes, used)
                if gen is not None and getattr(gen, "name", "") != "template":
                    prompt = (f"Text: {post_text}\nIn this text, \"{ent.text}\" is a {TYPE_WORDS.get(ent.type, 'thing')}. "
                              f"Describe \"{ent.text}\" in a few words: {ent.text} is")
                    out = gen.generate(prompt, max_new_tokens=16).strip().split("\n")[0].strip(" .")
                    if out:
                        return expansion(ent.text, ent.type, out)
            elif source == "template":
                return expansion(ent.text, ent.type, template_expression(ent.type))
        return expansion(ent.text, ent.type, template_expression(ent.type))

    def _ground(self, img: np.ndarray, ents: list[NamedEntity], notes: list[str], used: dict[str, str],
                timings: dict[str, float]) -> None:
        targets = [Target(phrase=ent.expansion or ent.text, type=ent.type, name=ent.text) for ent in ents]

        def entity_by_name(t: Target) -> str | None:
            # a PER entity with several candidate person boxes: link its name to learn who it is
            try:
                by_name = self.linker.link(None, None, text=t.name, surface=t.name, mention_type="PER", k=1)
            except PixlinkError as exc:
                notes.append(f"{t.name!r}: linking by name to choose its box failed: {exc}")
                return None
            if by_name.nil or not by_name.candidates:
                return None
            return by_name.candidates[0].entity_id

        grounded = self.grounder.ground(img, targets, notes=notes, used=used, timings=timings,
                                        entity_of=entity_by_name if self.linker is not None else None)
        for ent, g in zip(ents, grounded):
            ent.groundable = g.groundable
            ent.region = g.region


def groundable_rates(posts: Sequence[Any]) -> dict[str, tuple[int, int]]:
    """``{type: (entities with a box, entities)}`` over labelled GMNER posts (each entity's
    ``groundable`` as the loaders set it from the VOC boxes)."""
    out: dict[str, list[int]] = {}
    for p in posts:
        for e in p.entities:
            c = out.setdefault(e.type, [0, 0])
            c[0] += bool(e.groundable)
            c[1] += 1
    return {t: (a, n) for t, (a, n) in out.items()}


def calibrate_threshold(scores: Sequence[float], groundable: Sequence[bool]) -> float:
    """The groundability threshold that maximises accuracy on entities with gold labels
    (``scores``: best detection score per entity; ``groundable``: gold has a box)."""
    s = np.asarray(scores, dtype=np.float64)
    g = np.asarray(groundable, dtype=bool)
    if len(s) == 0:
        raise InputError(Errors.E552.format(reason="no labelled entities"))
    cands = np.unique(np.concatenate([s, [0.0, 1.0 + 1e-9]]))
    accs = [float(np.mean((s >= t) == g)) for t in cands]
    return float(cands[int(np.argmax(accs))])


@dataclass
class GroundabilityClassifier:
    """Logistic regression on ``[best score, 2nd score, n detections, is PER, is LOC, is ORG,
    faces found]`` -> P(groundable); fit on posts with gold boxes (the GMNER train images)."""

    weights: np.ndarray | None = None
    bias: float = 0.0

    FEATURES = ("best", "second", "n_dets", "PER", "LOC", "ORG", "faces")

    @staticmethod
    def features(det_scores: Sequence[float], etype: str, n_faces: int) -> np.ndarray:
        s = sorted((float(x) for x in det_scores), reverse=True)
        return np.array([s[0] if s else 0.0, s[1] if len(s) > 1 else 0.0, min(len(s), 20) / 20.0,
                         etype == "PER", etype == "LOC", etype == "ORG", min(n_faces, 5) / 5.0], dtype=np.float64)

    def fit(self, X: np.ndarray, y: np.ndarray, l2: float = 1e-3, iters: int = 2000, lr: float = 0.5
            ) -> "GroundabilityClassifier":
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if X.ndim != 2 or len(X) != len(y) or len(y) == 0:
            raise InputError(Errors.E552.format(reason=f"X {X.shape} and y {y.shape} do not match"))
        w = np.zeros(X.shape[1])
        b = 0.0
        for _ in range(iters):
            p = 1 / (1 + np.exp(-(X @ w + b)))
            w -= lr * (X.T @ (p - y) / len(y) + l2 * w)
            b -= lr * float(np.mean(p - y))
        self.weights, self.bias = w, b
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if self.weights is None:
            raise InputError(Errors.E552.format(reason="the classifier is not fitted"))
        return 1 / (1 + np.exp(-(np.asarray(X, dtype=np.float64) @ self.weights + self.bias)))
