"""The linker: a region of an image (+ optional caption) -> ranked KB entities, or NIL.

One engine for the linking side of three papers:

* **PL-VEL** (mask prompts): the region is a pixel mask; image encoders see the masked crop.
* **VP-MEL / IIER** (box prompt + caption): the region is a box, optionally shown as a red
  box on the whole image (``image_view="red_box"``); the caption feeds the text signals; the
  IIER interaction units (:mod:`pixlink.link.iier`) plug in as a trainable re-ranker.
* **VNEL** (person box): faces and image<->image/text signals, and recall-then-rerank
  (``mode="rerank"``).

Stages: prompt -> region (segmenter, embedding reused per image) -> query features per signal
-> recall per signal from the KB's dense/lexical indexes -> exact scores of the union of
candidates for every signal -> fusion -> NIL decision. Every stage is timed, every fallback is
recorded in ``Link.notes``, and ``Link.backends`` says which models ran.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import Errors, InputError, ModelUnavailableError, PixlinkError
from ..io import load_image
from ..log import get_logger
from ..models import Profile
from ..models import roles as R
from ..regions import SegmenterSession, crop, image_key, masked_crop, red_box
from ..types import BatchResult, Candidate, ItemError, Link, Mention, Region
from .config import LinkerConfig
from .fusion import Fusion
from .vectors import SPACE_FOR_SIGNAL, ROLE_FOR_SIGNAL, KBVectors

log = get_logger("pixlink.link")


@dataclass
class _Query:
    """Per-mention working state."""

    image: np.ndarray | None
    region: Region | None
    text: str | None
    surface: str | None
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    # signal -> (entity id -> raw score) for recalled candidates
    recalled: dict[str, dict[str, float]] = field(default_factory=dict)
    # signal -> query vector (for exact re-scoring of other signals' candidates)
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    # signal -> backend name that produced it (for backend-specific calibration)
    backends: dict[str, str] = field(default_factory=dict)
    face_found: bool = False

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - t0


class Linker:
    """Link image regions (and captions) to entities of one KB.

    Build it with :meth:`from_kb`. The models come from a :class:`~pixlink.models.Profile`
    (``offline``, ``hub`` or ``auto``); the KB must hold vectors made by those same models
    (``pixlink kb embed``) for the dense signals, else those signals are skipped with a note —
    and vectors made by *another* model are an error (E402), never silently re-used.
    """

    def __init__(self, kb: Any, profile: Profile, config: LinkerConfig | None = None, fusion: Fusion | None = None):
        self.kb = kb
        self.profile = profile
        self.config = config or LinkerConfig()
        if fusion is None:
            fusion = Fusion.load(self.config.fusion_path) if self.config.fusion_path else Fusion()
        if self.config.nil_threshold is not None:
            fusion.nil_threshold = float(self.config.nil_threshold)
        self.fusion = fusion
        self.vectors = KBVectors(Path(kb.path))
        self._segmenters: SegmenterSession | None = None
        self._used_roles: set[str] = set()

    @classmethod
    def from_kb(
        cls, kb_dir: str | Path, profile: str | Profile = "auto", config: LinkerConfig | None = None,
        fusion: Fusion | None = None,
    ) -> "Linker":
        from ..kb import KB

        prof = profile if isinstance(profile, Profile) else Profile(profile)
        return cls(KB.open(kb_dir), prof, config, fusion)

    # ---------------------------------------------------------------------------------------
    # public API
    # ---------------------------------------------------------------------------------------
    def link(
        self, image: Any = None, prompt: Region | dict[str, Any] | None = None, text: str | None = None,
        k: int = 10, mention_id: str | None = None, surface: str | None = None,
    ) -> Link:
        """Link one region.

        Args:
            image: path, bytes, PIL image or ``(H, W, 3)`` uint8 array; ``None`` for a
                text-only mention.
            prompt: a :class:`Region` or a dict with one of ``box`` (XYXY), ``points``
                (``[[x, y], ...]``, optional ``labels``) or ``mask`` (``(H, W)`` bool array or
                COCO RLE). ``None`` means the whole image.
            text: the caption that came with the image.
            k: how many candidates to return.
            surface: the mention's words, when known (dataset items).

        Returns:
            a :class:`Link` with the top-``k`` candidates (id, label, description, fused score,
            per-signal scores), the NIL decision, the region (mask RLE + box), backends, timings
            and notes.
        """
        if k < 1:
            raise InputError(Errors.E010.format(what="k", value=k, reason="must be >= 1"))
        q = _Query(image=None, region=None, text=(text or None), surface=surface)
        with q.timed("load"):
            if image is not None:
                q.image = load_image(image)
                q.region = _as_region(prompt, q.image.shape[:2])
            elif prompt is not None:
                raise InputError(Errors.E401)
            if q.image is None and not q.text and not q.surface:
                raise InputError(Errors.E400)
        if q.image is not None and q.region is not None and self.config.segment and q.region.mask is None:
            with q.timed("segment"):
                self._segment(q)
        self._recall(q)
        with q.timed("fuse"):
            cands = self._score(q)
        cands = cands[:k]
        self._attach_entities(cands)
        top = cands[0].score if cands else 0.0
        nil = (not cands) or top < self.fusion.nil_threshold
        return Link(
            candidates=cands, nil=nil, nil_threshold=self.fusion.nil_threshold, mention_id=mention_id,
            region=q.region, backends=self._backends(), timings={s: round(t, 4) for s, t in q.timings.items()},
            notes=q.notes,
        )

    def face_scores(self, image: Any, boxes: Sequence[Sequence[float]], entity_id: str) -> list[float | None]:
        """Face similarity of each box to entity ``entity_id``'s reference faces in the KB.

        Args:
            image: path, PIL image or ``(H, W, 3)`` uint8 array.
            boxes: XYXY boxes in original pixels (e.g. person boxes of a detector).
            entity_id: a KB entity.

        Returns:
            per box, the cosine of the largest face found in it against the entity's closest
            face vector, or None when the box holds no face, the KB has no face vectors, or
            the entity has no face photo.
        """
        img = load_image(image)
        q = _Query(image=img, region=None, text=None, surface=None)
        index = self._index("face", q)
        if index is None:
            return [None for _ in boxes]
        out: list[float | None] = []
        for box in boxes:
            q.region = _as_region({"box": [float(v) for v in box]}, img.shape[:2])
            vec = self._face_vector(q)
            if vec is None:
                out.append(None)
                continue
            scores, ids = index.search_subset(vec[None, :], [entity_id], k=1)
            out.append(float(scores[0][0]) if ids[0] else None)
        return out

    def link_mention(self, mention: Mention, k: int = 10) -> Link:
        return self.link(mention.image, mention.region, mention.text, k=k, mention_id=mention.id,
                         surface=mention.surface)

    def link_batch(self, mentions: Sequence[Mention], k: int = 10, progress: bool = False) -> BatchResult[Link]:
        """Link many mentions; a bad item is reported in ``errors`` and the rest go on.

        Mentions on the same image reuse its segmenter embedding (the session caches by image
        content), so sort by image for speed.
        """
        out: BatchResult[Link] = BatchResult()
        from ..progress import progress as make_progress

        with make_progress(disable=not progress) as bar:
            task = bar.add_task("linking", total=len(mentions), rate="")
            for i, m in enumerate(mentions):
                try:
                    out.results.append((i, self.link_mention(m, k=k)))
                except PixlinkError as exc:
                    out.errors.append(ItemError(index=i, item_id=m.id, error=str(exc), code=exc.code))
                bar.advance(task)
        return out

    # ---------------------------------------------------------------------------------------
    # stages
    # ---------------------------------------------------------------------------------------
    def _get(self, role: str, q: _Query) -> Any | None:
        """The backend of ``role``, or None with a note when none can run."""
        try:
            inst = self.profile.get(role)
        except ModelUnavailableError as exc:
            note = f"{role}: not available ({exc})"
            if note not in q.notes:
                q.notes.append(note)
            return None
        self._used_roles.add(role)
        return inst

    def _segment(self, q: _Query) -> None:
        if self._segmenters is None:
            segs = []
            primary = self._get(R.SEGMENT, q)
            if primary is not None:
                segs.append(primary)
            if primary is None or "points" not in primary.prompt_kinds:
                from ..models.registry import list_backends

                spec = next((s for s in list_backends(R.SEGMENT) if s.name == "grabcut"), None)
                if spec is not None and spec.availability() is None and (primary is None or primary.name != "grabcut"):
                    segs.append(spec.factory())
            self._segmenters = SegmenterSession(segs)
        assert q.image is not None and q.region is not None
        res = self._segmenters.segment(q.image, q.region, key=image_key(q.image))
        q.region = res.region
        q.notes.extend(res.notes)

    def _view(self, q: _Query) -> np.ndarray:
        assert q.image is not None and q.region is not None
        view = self.config.image_view
        if view == "red_box":
            return red_box(q.image, q.region.bbox)
        if view == "masked_crop" and q.region.mask is not None:
            return masked_crop(q.image, q.region, self.config.crop_margin)
        return crop(q.image, q.region, self.config.crop_margin)

    def _recall(self, q: _Query) -> None:
        cfg = self.config
        active = cfg.signals if cfg.mode == "fusion" else (cfg.recall_signal, cfg.rerank_signal)
        for sig in active:
            if sig not in cfg.signals:
                continue
            with q.timed(sig):
                if sig == "lexical":
                    self._lexical(q)
                    continue
                vec = self._query_vector(sig, q)
                if vec is None:
                    continue
                q.vectors[sig] = vec
                q.backends[sig] = str(getattr(self.profile.get(ROLE_FOR_SIGNAL[sig]), "name", ""))
                if cfg.mode == "rerank" and sig != cfg.recall_signal:
                    continue  # the re-rank signal only scores the recalled candidates
                index = self._index(sig, q)
                if index is None:
                    continue
                scores, ids = index.search(vec[None, :], k=cfg.recall_k)
                q.recalled[sig] = {e: float(s) for e, s in zip(ids[0], scores[0])}

    def _index(self, sig: str, q: _Query) -> Any | None:
        backend = self.profile.get(ROLE_FOR_SIGNAL[sig])
        index = self.vectors.get(SPACE_FOR_SIGNAL[sig], _text_side_model_id(backend, sig))
        if index is None:
            note = (f"{sig}: the KB has no {SPACE_FOR_SIGNAL[sig]} vectors for {_text_side_model_id(backend, sig)};"
                    f" run `pixlink kb embed`")
            if note not in q.notes:
                q.notes.append(note)
        return index

    def _query_vector(self, sig: str, q: _Query) -> np.ndarray | None:
        if sig in ("face", "v2v", "v2t") and (q.image is None or q.region is None):
            return None
        if sig == "face":
            return self._face_vector(q)
        if sig == "v2v":
            enc = self._get(R.IMAGE_EMBED, q)
            return None if enc is None else _unit(enc.encode_images([self._view(q)]).embeds[0])
        if sig == "v2t":
            enc = self._get(R.IMAGE_TEXT, q)
            return None if enc is None else _unit(enc.encode_images([self._view(q)]).embeds[0])
        if sig == "dense_text":
            if not q.text:
                return None
            enc = self._get(R.TEXT_EMBED, q)
            return None if enc is None else _unit(enc.encode([q.text], query=True)[0])
        raise InputError(Errors.E010.format(what="signal", value=sig, reason="has no query vector"))

    def _face_vector(self, q: _Query) -> np.ndarray | None:
        faces_model = self._get(R.FACES, q)
        if faces_model is None:
            return None
        assert q.image is not None and q.region is not None
        rb = q.region.bbox
        # detect inside the region (with margin), so small faces in big images are found
        h, w = q.image.shape[:2]
        mx, my = (rb[2] - rb[0]) * 0.3, (rb[3] - rb[1]) * 0.3
        x1, y1 = int(max(rb[0] - mx, 0)), int(max(rb[1] - my, 0))
        x2, y2 = int(min(rb[2] + mx, w)), int(min(rb[3] + my, h))
        sub = np.ascontiguousarray(q.image[y1:y2, x1:x2])
        faces = faces_model.detect(sub, upsample=1)
        if not faces and max(sub.shape[:2]) < 400:
            faces = faces_model.detect(sub, upsample=2)
        best = None
        best_area = 0.0
        for f in faces:
            fb = np.asarray(f.box, dtype=np.float64) + np.array([x1, y1, x1, y1])
            inter_w = max(min(fb[2], rb[2]) - max(fb[0], rb[0]), 0.0)
            inter_h = max(min(fb[3], rb[3]) - max(fb[1], rb[1]), 0.0)
            area = (fb[2] - fb[0]) * (fb[3] - fb[1])
            if area <= 0 or inter_w * inter_h / area < self.config.face_min_overlap:
                continue
            if area > best_area:
                best, best_area = f, area
        if best is None:
            q.notes.append("face: no face found in the region; the face signal did not run")
            return None
        vec = faces_model.embed(sub, [best])[0]
        q.face_found = True
        return _unit(vec)

    def _lexical(self, q: _Query) -> None:
        queries: list[tuple[str, float]] = []  # (string, scale)
        if q.surface:
            queries.append((q.surface, 1.0))
        # the caption's names are candidates for a region only when the mention's own words are
        # unknown: with a surface, the caption's other names belong to other mentions (a post
        # naming "Joe Biden" must not make "White House" link to him)
        names_from_text = bool(q.text) and not q.surface
        if names_from_text and self.config.ner_mentions:
            tagger = self._get(R.NER, q)
            if tagger is not None:
                for span in tagger.tag([q.text])[0]:
                    queries.append((span.text, 1.0))
        if q.text and self.config.ocr and q.image is not None:
            reader = self._get(R.OCR, q)
            if reader is not None and q.region is not None:
                for line in reader.read(crop(q.image, q.region, 0.0)):
                    queries.append((line.text, 0.8))
        if names_from_text and self.config.gazetteer:
            # names the tagger missed: capitalised n-grams that are a KB label or alias
            seen = {m for m, _ in queries}
            for gram in _name_ngrams(q.text):
                if gram not in seen and self.kb.by_name(gram):
                    queries.append((gram, 0.9))
                    seen.add(gram)
        if q.text and not queries:
            queries.append((q.text, 0.6))  # no names found: the caption itself, as weaker evidence
        if not queries:
            return
        found: dict[str, float] = {}
        for s, scale in queries:
            for ent in self.kb.by_name(s):
                found[ent.id] = max(found.get(ent.id, 0.0), 1.0 * scale)
            hits = self.kb.search(s, k=self.config.recall_k)
            if hits:
                top = max(score for _, score in hits) or 1.0
                for ent, score in hits:
                    found[ent.id] = max(found.get(ent.id, 0.0), 0.8 * scale * float(score) / top)
        q.recalled["lexical"] = found

    def _score(self, q: _Query) -> list[Candidate]:
        cfg = self.config
        if cfg.mode == "rerank":
            return self._score_rerank(q)
        # union of candidates, best-ranked first per signal, capped
        order: dict[str, int] = {}
        for sig, found in q.recalled.items():
            for rank, eid in enumerate(sorted(found, key=found.get, reverse=True)):
                order[eid] = min(order.get(eid, rank), rank)
        ids = sorted(order, key=order.get)[: cfg.max_candidates]
        if not ids:
            return []
        # exact scores of every candidate for every dense signal that ran
        table: dict[str, dict[str, float]] = {sig: dict(found) for sig, found in q.recalled.items()}
        for sig, vec in q.vectors.items():
            index = self._index(sig, q)
            if index is None:
                continue
            scores, got = index.search_subset(vec[None, :], ids)
            table.setdefault(sig, {}).update({e: float(s) for e, s in zip(got[0], scores[0])})
        if q.face_found and cfg.person_types:
            # a face in the region: entities typed as something other than a person are
            # penalised (negative evidence only: being a person proves nothing by itself)
            person = set(cfg.person_types)
            fit: dict[str, float] = {}
            for ent in self.kb.get_many(ids):
                if ent.types and not person.intersection(ent.types):
                    fit[ent.id] = 0.0  # typed, and not a person: it cannot be this face
            table["type"] = fit
        if q.surface and "lexical" in q.recalled:
            # a named mention: an entity whose names do not match the mention's words at all
            # (found only through the caption's meaning or the image) has lexical score 0
            lex = table.setdefault("lexical", {})
            for eid in ids:
                lex.setdefault(eid, 0.0)
        ran = [sig for sig in q.vectors if sig in table]
        cands = []
        for eid in ids:
            sigs = {sig: vals[eid] for sig, vals in table.items() if eid in vals}
            fused, _ = self.fusion.fuse(sigs, unverified=[s for s in ran if s not in sigs], backends=q.backends)
            cands.append(Candidate(entity_id=eid, score=round(fused, 6), signals={s: round(v, 6) for s, v in sigs.items()}))
        cands.sort(key=lambda c: (-c.score, c.entity_id))
        return cands

    def _score_rerank(self, q: _Query) -> list[Candidate]:
        cfg = self.config
        recalled = q.recalled.get(cfg.recall_signal, {})
        if not recalled:
            q.notes.append(f"rerank: the recall signal {cfg.recall_signal} found no candidates")
            return []
        ids = sorted(recalled, key=recalled.get, reverse=True)[: cfg.max_candidates]
        rer: dict[str, float] = {}
        vec = q.vectors.get(cfg.rerank_signal)
        index = self._index(cfg.rerank_signal, q) if vec is not None else None
        if vec is not None and index is not None:
            scores, got = index.search_subset(vec[None, :], ids)
            rer = {e: float(s) for e, s in zip(got[0], scores[0])}
        else:
            q.notes.append(f"rerank: {cfg.rerank_signal} did not run; order is the recall order")
        cands = []
        for eid in ids:
            sigs = {cfg.recall_signal: recalled[eid]}
            if eid in rer:
                sigs[cfg.rerank_signal] = rer[eid]
                score, _ = self.fusion.fuse({cfg.rerank_signal: rer[eid]}, backends=q.backends)
            else:
                score, _ = self.fusion.fuse(sigs, backends=q.backends)
                score *= 0.5  # entities the re-ranker cannot score rank below those it can
            cands.append(Candidate(entity_id=eid, score=round(score, 6), signals={s: round(v, 6) for s, v in sigs.items()}))
        cands.sort(key=lambda c: (-c.score, -c.signals.get(cfg.recall_signal, 0.0), c.entity_id))
        return cands

    def _attach_entities(self, cands: list[Candidate]) -> None:
        ents = {e.id: e for e in self.kb.get_many([c.entity_id for c in cands])}
        for c in cands:
            e = ents.get(c.entity_id)
            if e is not None:
                c.label, c.description = e.label, e.description

    def _backends(self) -> dict[str, str]:
        desc = self.profile.describe()
        return {r: str(desc[r]["backend"]) + (" (fallback)" if desc[r].get("fallback") else "")
                for r in sorted(self._used_roles) if r in desc}


_STOP = frozenset("a an the of in on at to for and or with by from as is are was were be this that these those "
                  "it its his her their our my your".split())


def _name_ngrams(text: str, max_n: int = 4) -> list[str]:
    """Word n-grams of ``text`` (up to ``max_n`` words) that could be names: they contain a
    capitalised word or a number after the first word, and neither start nor end with a stop
    word. Longest first."""
    import re

    words = re.findall(r"[\w][\w'.&-]*", text)
    out: list[str] = []
    for n in range(max_n, 0, -1):
        for i in range(len(words) - n + 1):
            gram = words[i : i + n]
            if gram[0].lower() in _STOP or gram[-1].lower() in _STOP:
                continue
            if not any(w[:1].isupper() or w[:1].isdigit() for w in gram):
                continue
            if n == 1 and not (gram[0][:1].isupper() and len(gram[0]) >= 3):
                continue  # a lone number or short word is too ambiguous to be a name
            out.append(" ".join(gram).rstrip("."))
    return out


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32).reshape(-1)
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def _text_side_model_id(backend: Any, sig: str) -> str:
    """The model id the KB vectors of ``sig`` must carry: for v2t, the joint model's text
    side (a backend may expose ``text_model_id``), else the backend's ``model_id``."""
    if sig == "v2t":
        return str(getattr(backend, "text_model_id", backend.model_id))
    return str(backend.model_id)


def _as_region(prompt: Region | dict[str, Any] | None, size: tuple[int, int]) -> Region:
    """Validate a prompt against the image size; ``None`` -> the whole image."""
    h, w = size
    if prompt is None:
        return Region(image_size=size, box=[0, 0, w, h], source="image")
    if isinstance(prompt, Region):
        if prompt.image_size is not None and prompt.image_size != (h, w):
            if prompt.mask is not None:
                raise InputError(Errors.E005.format(shape=prompt.mask.shape, height=h, width=w))
            raise InputError(Errors.E403.format(size=prompt.image_size, height=h, width=w))
        return Region(image_size=size, box=prompt.box, points=prompt.points, point_labels=prompt.point_labels,
                      mask=prompt.mask, source=prompt.source)
    if not isinstance(prompt, dict):
        raise InputError(Errors.E010.format(what="prompt", value=type(prompt).__name__,
                                            reason="expected a Region or a dict with box/points/mask"))
    if prompt.get("mask") is not None:
        m = prompt["mask"]
        if isinstance(m, dict):
            from ..geometry import rle_to_mask

            m = rle_to_mask(m)
        return Region(image_size=size, mask=np.asarray(m), source="mask")
    if prompt.get("box") is not None:
        return Region(image_size=size, box=prompt["box"], source="box")
    if prompt.get("points") is not None:
        return Region(image_size=size, points=prompt["points"], point_labels=prompt.get("labels"), source="points")
    raise InputError(Errors.E008)
