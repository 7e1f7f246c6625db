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
from ...types import BatchResult, ItemError, NamedEntity, Post, Region

log = get_logger("pixlink.gmner")

GMNER_TRAIN_GROUNDABLE_RATE: dict[str, float] = {"PER": 2340 / 3598, "ORG": 622 / 2201, "OTHER": 320 / 1309,
                                                  "MISC": 320 / 1309, "LOC": 122 / 1305}
"""P(an entity has a box | its type) in Twitter-GMNER's training split (``gmner/train.txt`` +
``xml/``: PER 2340/3598, ORG 622/2201, OTHER 320/1309, LOC 122/1305), as counted by
:func:`groundable_rates`; MISC takes OTHER's rate."""

TYPE_WORDS = {"PER": "person", "LOC": "location", "ORG": "organization", "MISC": "thing", "OTHER": "thing"}


@dataclass
class GMNERConfig:
    """Knobs of :class:`GMNERPipeline`.

    Attributes:
        label_scheme: ``"OTHER"`` (Twitter-2015, Twitter-GMNER) or ``"MISC"`` (Twitter-2017)
            for the fourth type.
        expansion_sources: where expansion expressions come from, in order: ``"kb"``,
            ``"generate"``, ``"template"``.
        groundable_threshold: minimum detection score for an entity to count as in the image.
        detect_threshold: detections below this are not considered at all.
        segment: make masks (SMNER) for grounded entities.
        link: link each entity to the KB (needs a KB).
        max_tokens: longer posts are cut to this many tokens (a note says so).
        person_box_by_face: when a PER entity has several candidate boxes and a linker is
            given, link the entity by its name and take the box whose face best matches the
            linked entity's reference faces (at least ``face_match_min`` cosine).
        face_match_min: the cosine a face must reach to choose a box (dlib's same-person
            rule, L2 < 0.6 between unit 128-d vectors, is cosine > 0.82).
        groundable_prior: P(groundable | type), default :data:`GMNER_TRAIN_GROUNDABLE_RATE`
            (from Twitter-GMNER's training annotations; :func:`groundable_rates` recomputes it
            from any labelled posts). ``None`` turns the rule below off.
        fallback_min_prior: a box found only by a *fallback* detector (source
            ``fallback:...``: proposals scored with ConSE, faces grown to upper bodies) makes
            its entity groundable only when the entity type's prior reaches this; a real
            detector's box (COCO, OWLv2, Grounding DINO) is trusted on its score alone.
    """

    label_scheme: str = "OTHER"
    expansion_sources: tuple[str, ...] = ("kb", "generate", "template")
    groundable_threshold: float = 0.2
    detect_threshold: float = 0.05
    segment: bool = True
    link: bool = True
    max_tokens: int = 256
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


def expansion(text: str, etype: str, expression: str) -> str:
    """RiVEG's entity expansion expression: ``Named Entity (TYPE) - expression``."""
    return f"{text} ({etype}) - {expression}"


def template_expression(etype: str) -> str:
    """The type template used when neither the KB nor a generator gives an expression."""
    word = TYPE_WORDS.get(etype, "thing")
    return f"a {word}" if word != "organization" else "an organization"


class GMNERPipeline:
    """The RiVEG cascade. ``run(image, text)`` or ``run_post(post)``; ``run_batch(posts)``."""

    def __init__(self, profile: Profile | str = "auto", kb: Any = None, linker: Any = None,
                 config: GMNERConfig | None = None):
        self.profile = profile if isinstance(profile, Profile) else Profile(profile)
        self.kb = kb
        self.linker = linker
        self.config = config or GMNERConfig()
        self._used: set[str] = set()

    @classmethod
    def from_kb(cls, kb_dir: Any = None, profile: Profile | str = "auto", config: GMNERConfig | None = None
                ) -> "GMNERPipeline":
        prof = profile if isinstance(profile, Profile) else Profile(profile)
        if kb_dir is None:
            return cls(prof, None, None, config)
        from ...link import Linker

        linker = Linker.from_kb(kb_dir, profile=prof)
        return cls(prof, linker.kb, linker, config)

    # ---------------------------------------------------------------------------------------
    def _role(self, role: str, notes: list[str]) -> Any | None:
        try:
            inst = self.profile.get(role)
        except ModelUnavailableError as exc:
            msg = f"{role}: not available ({exc})"
            if msg not in notes:
                notes.append(msg)
                log.warning(msg)
            return None
        self._used.add(role)
        return inst

    def run_post(self, post: Post) -> GMNERResult:
        return self.run(post.image, tokens=post.tokens)

    def run(self, image: Any, text: str | None = None, tokens: Sequence[str] | None = None) -> GMNERResult:
        """Entities of one post with types, groundability, boxes, masks and links.

        Args:
            image: path / array / PIL image; ``None`` runs the text stages only.
            text: the post (whitespace-tokenised), or ``tokens`` already tokenised.
        """
        timings: dict[str, float] = {}
        notes: list[str] = []
        if tokens is None:
            if text is None or not text.strip():
                raise InputError(Errors.E550.format(reason="the post text is empty"))
            tokens = text.split()
        tokens = [t for t in tokens]
        if not tokens:
            raise InputError(Errors.E550.format(reason="the post has no tokens"))
        if len(tokens) > self.config.max_tokens:
            notes.append(f"post cut from {len(tokens)} to {self.config.max_tokens} tokens")
            tokens = tokens[: self.config.max_tokens]
        img = None
        if image is not None:
            t0 = time.perf_counter()
            img = load_image(image)
            timings["load"] = time.perf_counter() - t0

        # 1. MNER
        t0 = time.perf_counter()
        tagger = self._role(R.NER, notes)
        if tagger is None:
            raise ModelUnavailableError(Errors.E551.format(reason="; ".join(notes)))
        spans = tagger.tag_tokens([tokens])[0]
        ents = []
        for s, e, typ in spans:
            typ = self._scheme(typ)
            ents.append(NamedEntity(start=s, end=e, type=typ, text=" ".join(tokens[s:e])))
        timings["ner"] = time.perf_counter() - t0

        # 2. expansion expressions
        t0 = time.perf_counter()
        for ent in ents:
            ent.expansion = self._expansion(ent, " ".join(tokens), notes)
        timings["expansion"] = time.perf_counter() - t0

        # 3-5. groundability, grounding, segmentation
        if img is not None and ents:
            self._ground(img, ents, notes, timings)
        elif img is None:
            notes.append("no image: groundability, grounding and segmentation did not run")

        # 6. linking
        if self.config.link and self.linker is not None and ents:
            t0 = time.perf_counter()
            post_text = " ".join(tokens)
            for ent in ents:
                try:
                    ent.link = self.linker.link(img if ent.region is not None else None,
                                                ent.region if ent.region is not None else None,
                                                text=post_text, surface=ent.text, k=5)
                except PixlinkError as exc:
                    notes.append(f"linking {ent.text!r} failed: {exc}")
            timings["link"] = time.perf_counter() - t0
        desc = self.profile.describe()
        backends = {r: str(desc[r]["backend"]) for r in sorted(self._used) if r in desc}
        return GMNERResult(ents, tokens, notes, backends, {k: round(v, 4) for k, v in timings.items()})

    def run_batch(self, posts: Sequence[Post]) -> BatchResult[list[NamedEntity]]:
        out: BatchResult[list[NamedEntity]] = BatchResult()
        for i, p in enumerate(posts):
            try:
                out.results.append((i, self.run_post(p).entities))
            except PixlinkError as exc:
                out.errors.append(ItemError(index=i, item_id=p.id, error=str(exc), code=exc.code))
        return out

    # ---------------------------------------------------------------------------------------
    def _scheme(self, typ: str) -> str:
        if typ in ("MISC", "OTHER"):
            return self.config.label_scheme
        return typ

    def _expansion(self, ent: NamedEntity, post_text: str, notes: list[str]) -> str:
        for source in self.config.expansion_sources:
            if source == "kb" and self.kb is not None:
                hits = self.kb.by_name(ent.text)
                if hits and hits[0].description:
                    return expansion(ent.text, ent.type, hits[0].description)
            elif source == "generate":
                gen = self._role(R.GENERATE, notes)
                if gen is not None and getattr(gen, "name", "") != "template":
                    prompt = (f"Text: {post_text}\nIn this text, \"{ent.text}\" is a {TYPE_WORDS.get(ent.type, 'thing')}. "
                              f"Describe \"{ent.text}\" in a few words: {ent.text} is")
                    out = gen.generate(prompt, max_new_tokens=16).strip().split("\n")[0].strip(" .")
                    if out:
                        return expansion(ent.text, ent.type, out)
            elif source == "template":
                return expansion(ent.text, ent.type, template_expression(ent.type))
        return expansion(ent.text, ent.type, template_expression(ent.type))

    def _ground(self, img: np.ndarray, ents: list[NamedEntity], notes: list[str], timings: dict[str, float]) -> None:
        t0 = time.perf_counter()
        detector = self._role(R.DETECT, notes)
        if detector is None:
            for ent in ents:
                ent.groundable = None
            notes.append("no detector: groundability not decided")
            timings["ground"] = time.perf_counter() - t0
            return
        phrases = [ent.expansion or ent.text for ent in ents]
        dets = detector.detect(img, phrases, threshold=self.config.detect_threshold)
        src = {d.source for d in dets if d.source.startswith("fallback")}
        if src:
            notes.append(f"grounding used the offline fallback detector ({', '.join(sorted(src))}); boxes are weak")
        h, w = img.shape[:2]
        for ent, phrase in zip(ents, phrases):
            mine = [d for d in dets if d.phrase == phrase]
            best = max(mine, key=lambda d: d.score) if mine else None
            if best is None or best.score < self.config.groundable_threshold:
                ent.groundable = False
                ent.region = None
                continue
            prior = (self.config.groundable_prior or {}).get(ent.type)
            if (best.source.startswith("fallback") and prior is not None
                    and prior < self.config.fallback_min_prior):
                # a weak detector's box for a type that is mostly not in the picture: no
                ent.groundable = False
                ent.region = None
                notes.append(f"{ent.text!r} ({ent.type}): only the fallback detector answered "
                             f"({best.source}, {best.score:.2f}) and P(groundable | {ent.type}) = {prior:.2f} "
                             f"< {self.config.fallback_min_prior}: not groundable")
                continue
            ent.groundable = True
            if ent.type == "PER" and self.config.person_box_by_face and self.linker is not None:
                best = self._person_box_by_face(img, ent, mine, best, notes)
            ent.region = Region.from_box(best.box, image_size=(h, w), clip=True, source=f"detect:{best.source or 'detector'}",
                                         score=float(best.score))
        timings["ground"] = time.perf_counter() - t0
        if self.config.segment and any(e.region is not None for e in ents):
            t0 = time.perf_counter()
            seg = self._role(R.SEGMENT, notes)
            if seg is not None and "box" in seg.prompt_kinds:
                from ...regions import SegmenterSession

                sess = SegmenterSession([seg], cache_size=1)
                for ent in ents:
                    if ent.region is not None:
                        res = sess.segment(img, ent.region)
                        ent.region = res.region
                        notes.extend(res.notes)
            timings["segment"] = time.perf_counter() - t0

    def _person_box_by_face(self, img: np.ndarray, ent: NamedEntity, dets: list[Any], best: Any,
                            notes: list[str]) -> Any:
        """Among a PER entity's candidate boxes, the one whose face matches the KB entity its
        name links to (see ``GMNERConfig.person_box_by_face``); ``best`` when none decides."""
        cands = sorted((d for d in dets if d.score >= self.config.groundable_threshold), key=lambda d: -d.score)[:4]
        if len(cands) < 2:
            return best
        try:
            by_name = self.linker.link(None, None, text=ent.text, surface=ent.text, k=1)
        except PixlinkError as exc:
            notes.append(f"{ent.text!r}: linking by name to choose its box failed: {exc}")
            return best
        if by_name.nil or not by_name.candidates:
            return best
        eid = by_name.candidates[0].entity_id
        scores = self.linker.face_scores(img, [d.box for d in cands], eid)
        found = [(s, d) for s, d in zip(scores, cands) if s is not None]
        if not found:
            return best
        s, d = max(found, key=lambda t: t[0])
        if s < self.config.face_match_min:
            notes.append(f"{ent.text!r}: no face in its {len(cands)} candidate boxes matches {eid} "
                         f"(best cosine {s:.2f} < {self.config.face_match_min}); kept the detector's best box")
            return best
        if d is not best:
            notes.append(f"{ent.text!r}: box chosen by its face (cosine {s:.2f} with {eid}'s reference faces) "
                         f"over the detector's best")
        return d


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
