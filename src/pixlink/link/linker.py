"""The linker: a region of an image (+ optional caption) -> ranked KB entities, or NIL.

One engine for the linking side of three papers:

* **PL-VEL** (mask prompts): the region is a pixel mask; image encoders see the masked crop.
* **VP-MEL / IIER** (box prompt + caption): the region is a box, optionally shown as a red
  box on the whole image (``image_view="red_box"``); the caption feeds the text signals; a
  trained IIER head (:mod:`pixlink.link.iier`) re-ranks the fused candidates
  (``config.reranker``, :mod:`pixlink.link.rerank`).
* **VNEL** (person box): faces and image<->image/text signals, and recall-then-rerank
  (``mode="rerank"``).

Stages: prompt -> region (segmenter, embedding reused per image) -> each signal's query side
-> recall per signal from the KB's dense/lexical indexes -> every signal's scores for the
union of candidates -> fusion -> (a trained head re-ranks the best, when ``config.reranker``
names one) -> NIL decision. The signals are the modules of
:mod:`pixlink.link.signals`; the linker only iterates over them.

One linker serves many threads: everything a call learns lives in its own
:class:`~pixlink.link.query.Query`, the shared parts (KB connections per thread, indexes,
backends, the segmenter's bounded per-image cache) are thread-safe, and the :class:`Fusion`
is immutable. To run a linker in another process (a worker, a Ray actor) send its
:class:`~pixlink.link.spec.LinkerSpec`; pickling a linker sends exactly that.
"""

from __future__ import annotations

import threading
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import Errors, InputError, KBError, ModelUnavailableError, PixlinkError
from ..io import load_image
from ..log import get_logger
from ..models import Profile
from ..models import roles as R
from ..regions import SegmenterSession, crop, masked_crop, red_box
from ..regions import image_key as _image_key
from ..types import BatchResult, Candidate, ItemError, Link, Mention, Region
from .config import LinkerConfig
from .fusion import Fusion
from .imagecache import ImageCache
from .kbhead import head_fusion, use_kb_head
from .query import Query
from .signals import make_signal
from .signals.face import FaceSignal, face_vector
from .vectors import KBVectors

log = get_logger("pixlink.link")


class Linker:
    """Link image regions (and captions) to entities of one KB.

    Build it with :meth:`from_kb` or from a :class:`~pixlink.link.spec.LinkerSpec`. The models
    come from a :class:`~pixlink.models.Profile` (``offline``, ``hub`` or ``auto``); the KB must
    hold vectors made by those same models (``pixlink kb embed``) for the dense signals, else
    those signals are skipped with a note (or, when named in ``config.signals``, the call fails
    with E405) — vectors made by another model are never used in their place.

    Args:
        kb: an open :class:`~pixlink.kb.KB`.
        profile: the model profile.
        config: the linker's knobs (:class:`LinkerConfig`).
        fusion: fusion parameters; ``None`` = ``config.fusion_path`` or the shipped parameters
            for the backends the profile chooses. Never modified (``config.nil_threshold``
            makes a copy).
        spec: the spec this linker was built from (set by :meth:`LinkerSpec.build`).
    """

    def __init__(self, kb: Any, profile: Profile, config: LinkerConfig | None = None, fusion: Fusion | None = None,
                 spec: Any = None):
        self.kb = kb
        self.profile = profile
        self.config = config or LinkerConfig()
        self.spec = spec
        cfg = self.config
        names = cfg.active_signals if cfg.mode == "fusion" else tuple(dict.fromkeys((cfg.recall_signal, cfg.rerank_signal)))
        self.signals = [make_signal(n, cfg.signal_options.get(n)) for n in names]
        # notes a signal adds to every query it runs for (the KB's own instance head)
        self._signal_notes: dict[str, list[str]] = {}
        head = use_kb_head(kb.path, profile) if "instance" in names else None
        given = fusion is not None or cfg.fusion_path is not None
        if fusion is None:
            fusion = Fusion.load(cfg.fusion_path) if cfg.fusion_path else Fusion.for_backends(self._chosen_backends())
        if head is not None:
            fusion, note = head_fusion(fusion, head, "given" if given else cfg.kb_head_calibration)
            self._signal_notes["instance"] = [note]
        if cfg.nil_threshold is not None:
            fusion = fusion.with_nil_threshold(cfg.nil_threshold)
        self.fusion = fusion
        # a signal the fusion has no calibration for adds nothing to a score: said, not silent
        self.uncalibrated = tuple(n for n in names if cfg.mode == "fusion" and not fusion.calibrates(n))
        if self.uncalibrated:
            log.warning("fusion %r has no calibration for %s: their scores are ignored (fit one with "
                        "`pixlink link calibrate`, docs/linking.md)", fusion.name, ", ".join(self.uncalibrated))
        self.vectors = KBVectors(Path(kb.path), getattr(kb, "build_id", None))
        self._check_required()
        self._segmenters: SegmenterSession | None = None
        self._segment_notes: list[str] = []
        self._segment_cache = (8, 512 * 2**20)  # SegmenterSession bounds: images, bytes
        self.image_cache: ImageCache | None = None
        self._lock = threading.Lock()
        self._warned: set[str] = set()

    @cached_property
    def kb_entities(self) -> int:
        """The KB's entity count (a NIL class's threshold may depend on it); read once."""
        return len(self.kb)

    @classmethod
    def from_kb(
        cls, kb_dir: str | Path, profile: str | Profile = "auto", config: LinkerConfig | None = None,
        fusion: Fusion | None = None, device: str | None = None,
    ) -> "Linker":
        """A linker over the KB directory ``kb_dir`` (see :class:`Linker` for the arguments;
        ``device``: ``auto``/``cpu``/``cuda[:N]`` for the torch backends of a profile given by name).

        With a profile given by name, the linker carries a :class:`LinkerSpec` and can be sent
        to other processes."""
        from .spec import LinkerSpec

        if isinstance(profile, Profile):
            from ..kb import KB

            return cls(KB.open(kb_dir), profile, config, fusion)
        spec = LinkerSpec(kb=str(kb_dir), profile=profile, config=(config or LinkerConfig()).to_dict(),
                          fusion=fusion.to_dict() if fusion is not None else None, device=device)
        return spec.build()

    def __reduce__(self) -> tuple[Any, ...]:
        if self.spec is None:
            raise TypeError("this Linker was not built from a LinkerSpec; build it with LinkerSpec(...).build() "
                            "(or Linker.from_kb with a profile name) to send it to another process")
        from .spec import _build_from_dict

        return (_build_from_dict, (self.spec.to_dict(),))

    def _chosen_backends(self) -> dict[str, str]:
        """signal -> the backend the profile chooses for its role (without loading it)."""
        out = {}
        for sig in self.signals:
            if sig.role is not None and sig.space is not None:
                choice = self.profile.choose(sig.role)
                if choice.backend:
                    out[sig.name] = choice.backend
        return out

    def _check_required(self) -> None:
        """E405 now for a named signal whose KB side no model made: not at the first query that
        reaches it (a face found by chance in item 217 of a job). Vectors made by another model
        than the one this linker runs are found at the first query (that needs the model)."""
        required = [s for s in self.signals if s.name in self.config.required_signals and s.space is not None]
        if not required:
            return
        available = self.vectors.available()
        for sig in required:
            if not sig.kb_has_vectors(self.vectors.kb_dir, available):
                choice = self.profile.choose(sig.role).backend if sig.role else None
                raise KBError(Errors.E405.format(signal=sig.name, space=sig.space, expected=choice or "any model",
                                                 found="; it has none of any model"))

    # ---------------------------------------------------------------------------------------
    # public API
    # ---------------------------------------------------------------------------------------
    def link(
        self, image: Any = None, prompt: Region | dict[str, Any] | None = None, text: str | None = None,
        k: int = 10, mention_id: str | None = None, surface: str | None = None, mention_type: str | None = None,
        image_key: str | None = None,
    ) -> Link:
        """Link one region.

        Args:
            image: path, bytes, PIL image or ``(H, W, 3)`` uint8 array; ``None`` for a
                text-only mention.
            prompt: a :class:`Region` or a dict with one of ``box`` (XYXY, original pixels),
                ``points`` (``[[x, y], ...]``, optional ``labels``) or ``mask`` (``(H, W)`` bool
                array or COCO RLE). ``None`` means the whole image.
            text: the caption that came with the image.
            k: how many candidates to return.
            surface: the mention's words, when known (dataset items, GMNER entities).
            mention_type: the mention's type when known (PER/LOC/ORG/MISC, from NER or the
                caller): entities of an incompatible KB class are gated down.
            image_key: :func:`pixlink.regions.image_key` of ``image`` when the caller has it
                (a service keeps it with the upload), so that it is not hashed again.

        Returns:
            a :class:`Link` with the top-``k`` candidates (id, label, description, fused score,
            per-signal raw scores), the NIL decision, the region (mask RLE + box), the backends
            and signals that ran *in this call*, timings and notes.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InputError(Errors.E010.format(what="k", value=k, reason="must be an integer >= 1"))
        q = Query(text=(text or None), surface=(surface or None), mention_type=mention_type)
        with q.timed("load"):
            if image is not None:
                q.image = load_image(image)
                q.region = as_region(prompt, q.image.shape[:2])
                if self.image_cache is not None or image_key is not None:
                    q.image_key = image_key or _image_key(q.image)
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
        if self.config.reranker:
            from .rerank import rerank

            with q.timed("rerank"):
                cands = rerank(self, q, cands)
        cands = cands[:k]
        self._attach_entities(cands)
        top = cands[0].score if cands else 0.0
        threshold = self.fusion.nil_threshold_for(q.signals, self.kb_entities)
        nil = (not cands) or top < threshold
        return Link(
            candidates=cands, nil=nil, nil_threshold=threshold, mention_id=mention_id,
            region=q.region, backends=self._backends(q), timings={s: round(t, 4) for s, t in q.timings.items()},
            notes=q.notes, signals=dict(q.signals),
        )

    def _box_faces(self, image: Any, boxes: Sequence[Sequence[float]]) -> tuple[Any, list[np.ndarray | None]]:
        """The KB's face index (None without face vectors or a face backend) and, per XYXY box,
        the descriptor of the face the face signal's rule chooses in it (None: no face)."""
        img = load_image(image)
        sig = next((s for s in self.signals if isinstance(s, FaceSignal)), None) or FaceSignal()
        q = Query(image=img)
        backend = self.backend(R.FACES, q)
        index = self.index(sig, q) if backend is not None else None
        if index is None:
            return None, [None for _ in boxes]
        vecs = [face_vector(backend, img, as_region({"box": [float(v) for v in box]}, img.shape[:2]).bbox, sig.options)
                for box in boxes]
        return index, vecs

    def face_scores(self, image: Any, boxes: Sequence[Sequence[float]], entity_id: str) -> list[float | None]:
        """Face similarity of each box to entity ``entity_id``'s reference faces in the KB.

        Args:
            image: path, PIL image or ``(H, W, 3)`` uint8 array.
            boxes: XYXY boxes in original pixels (e.g. person boxes of a detector).
            entity_id: a KB entity.

        Returns:
            per box, the cosine of the face chosen in it (the face signal's rule) against the
            entity's closest face vector, or None when the box holds no face, the KB has no
            face vectors, or the entity has no face photo.
        """
        index, vecs = self._box_faces(image, boxes)
        out: list[float | None] = []
        for vec in vecs:
            if vec is None:
                out.append(None)
                continue
            scores, ids = index.search_subset(vec[None, :], [entity_id], k=1)
            out.append(float(scores[0][0]) if ids[0] else None)
        return out

    def face_owners(self, image: Any, boxes: Sequence[Sequence[float]]) -> list[tuple[str, float] | None]:
        """Whose face each box holds: per box, the KB entity whose reference face is closest to
        the face chosen in the box (the face signal's rule) and the cosine, or None when the box
        holds no face or the KB has no face vectors.

        Args:
            image: path, PIL image or ``(H, W, 3)`` uint8 array.
            boxes: XYXY boxes in original pixels.
        """
        index, vecs = self._box_faces(image, boxes)
        out: list[tuple[str, float] | None] = []
        for vec in vecs:
            if vec is None:
                out.append(None)
                continue
            scores, ids = index.search(vec[None, :], k=1)
            out.append((ids[0][0], float(scores[0][0])) if ids[0] else None)
        return out

    def link_mention(self, mention: Mention, k: int = 10) -> Link:
        return self.link(mention.image, mention.region, mention.text, k=k, mention_id=mention.id,
                         surface=mention.surface, mention_type=mention.type)

    def link_batch(self, mentions: Sequence[Mention], k: int = 10, progress: bool = False) -> BatchResult[Link]:
        """Link many mentions; a bad item is reported in ``errors`` and the rest go on.

        Mentions on the same image reuse its segmenter embedding (the session caches by image
        content), so sort by image for speed.
        """
        from ..progress import progress as make_progress

        out: BatchResult[Link] = BatchResult()
        with make_progress(disable=not progress) as bar:
            task = bar.add_task("linking", total=len(mentions), rate="")
            for i, m in enumerate(mentions):
                try:
                    out.results.append((i, self.link_mention(m, k=k)))
                except PixlinkError as exc:
                    out.errors.append(ItemError(index=i, item_id=m.id, error=str(exc), code=exc.code))
                bar.advance(task)
        return out

    def use_image_cache(self, max_images: int = 32, max_bytes: int = 256 * 2**20,
                        segment_images: int | None = None, segment_bytes: int | None = None) -> ImageCache:
        """Keep the per-image work (face scan and descriptors) of recent images for the prompts
        that follow on them (see :mod:`pixlink.link.imagecache`), and size the segmenter's cache
        of image embeddings (``segment_images`` / ``segment_bytes``, default the same bounds).
        For services that answer many prompts per image; returns the cache (for its stats)."""
        cache = ImageCache(max_images, max_bytes)
        with self._lock:
            self.image_cache = cache
            self._segment_cache = (segment_images or max_images, segment_bytes or max_bytes)
            if self._segmenters is not None:
                self._segmenters.resize(*self._segment_cache)
        return cache

    def use_segmenters(self, segmenters: Sequence[Any]) -> None:
        """Segment prompts with these :class:`~pixlink.models.roles.PromptSegmenter` backends, in
        order of preference (a prompt kind one cannot take falls to the next), instead of the
        profile's ``segment`` backend and its GrabCut fallback for clicks. A service uses it to
        choose a faster click segmenter."""
        with self._lock:
            self._segmenters = SegmenterSession(list(segmenters), *self._segment_cache)
            self._segment_notes = []

    def prepare_image(self, image: Any, box_prompts: bool = True, image_key: str | None = None) -> str:
        """Do the per-image work now, before the prompts: with an image cache, every signal's
        per-image work (the face scan), then the segmenter's image embedding (of the segmenter
        that takes boxes when ``box_prompts``, else of the one that takes clicks). Returns the
        image's key (:func:`pixlink.regions.image_key`; pass it as ``image_key`` when known)."""
        q = Query(image=load_image(image))
        assert q.image is not None
        q.image_key = image_key or _image_key(q.image)
        if self.image_cache is not None:  # first: every prompt needs it, clicks and boxes alike
            for sig in self.signals:
                warm = getattr(sig, "warm_image", None)
                if warm is not None:
                    warm(q, self)
        if self.config.segment:
            session = self._segmenter_session(q)
            kind = "box" if box_prompts else "points"
            seg = next((s for s in session.segmenters if kind in s.prompt_kinds), None)
            if seg is not None:
                session.embedding(seg, q.image, q.image_key)
        return q.image_key

    def cache_stats(self) -> dict[str, int]:
        """Sizes and lookups of the per-image caches (for a service's metrics): the segmenter's
        image embeddings (``segment_*``) and, when on, the image cache (``image_*``)."""
        out: dict[str, int] = {}
        seg = self._segmenters
        if seg is not None:
            out.update(segment_images=len(seg), segment_bytes=seg.cached_bytes, segment_hits=seg.hits,
                       segment_embeddings=seg.embed_calls)
        if self.image_cache is not None:
            out.update({f"image_{k}": v for k, v in self.image_cache.stats().items()})
        return out

    def close(self) -> None:
        """Close the indexes and this thread's KB connection."""
        self.vectors.close()
        self.kb.close()

    # ---------------------------------------------------------------------------------------
    # what signals see (``ctx``)
    # ---------------------------------------------------------------------------------------
    def backend(self, role: str, q: Query) -> Any | None:
        """The backend of ``role``, recorded as used by this call; None with a note when none
        can run."""
        try:
            inst = self.profile.get(role)
        except ModelUnavailableError as exc:
            q.note(f"{role}: not available ({exc})")
            return None
        q.roles[role] = str(self.profile.choose(role).backend or getattr(inst, "name", ""))
        return inst

    def index(self, signal: Any, q: Query) -> Any | None:
        """The KB index of ``signal``'s space made by the model this linker runs for it; None
        with a note (and one warning per process) when the KB has none — E405 when the signal
        was named in ``config.signals``."""
        backend = self.profile.get(signal.role)
        model_id = signal.model_id(backend)
        index = self.vectors.get(signal.space, model_id)
        if index is not None:
            return index
        others = self.vectors.others(signal.space, model_id)
        found = f"; it has vectors of {', '.join(others)}" if others else ""
        if signal.name in self.config.required_signals:
            raise KBError(Errors.E405.format(signal=signal.name, space=signal.space, expected=model_id, found=found))
        self.note_missing(q, f"{signal.name}: the KB has no {signal.space} vectors for {model_id}{found}; the signal "
                             f"did not run (run `pixlink kb embed KBDIR --signals {signal.name}`)")
        return None

    def note_missing(self, q: Query, note: str) -> None:
        """Say in the answer (every call) and in the log (once per linker) that something a
        signal needs is missing from the KB."""
        q.note(note)
        with self._lock:
            first = note not in self._warned
            self._warned.add(note)
        if first:
            log.warning(note)

    def view(self, q: Query) -> np.ndarray:
        """The region as image encoders see it (``config.image_view``): ``(h, w, 3)`` uint8."""
        assert q.image is not None and q.region is not None
        view = self.config.image_view
        if view == "red_box":
            return red_box(q.image, q.region.bbox)
        if view == "masked_crop" and q.region.mask is not None:
            return masked_crop(q.image, q.region, self.config.crop_margin)
        return crop(q.image, q.region, self.config.crop_margin)

    # ---------------------------------------------------------------------------------------
    # stages
    # ---------------------------------------------------------------------------------------
    def _segmenter_session(self, q: Query) -> SegmenterSession:
        with self._lock:
            if self._segmenters is not None:
                return self._segmenters
        segs = []
        notes = []
        try:
            primary = self.profile.get(R.SEGMENT)
            segs.append(primary)
        except ModelUnavailableError as exc:
            notes.append(f"{R.SEGMENT}: not available ({exc})")
            primary = None
        if primary is None or "points" not in primary.prompt_kinds:
            from ..models.registry import get_spec

            spec = get_spec(R.SEGMENT, "grabcut")
            if spec.availability() is None and (primary is None or primary.name != "grabcut"):
                segs.append(spec.factory())
        with self._lock:
            if self._segmenters is None:
                self._segmenters = SegmenterSession(segs, *self._segment_cache)
                self._segment_notes = notes
            return self._segmenters

    def _segment(self, q: Query) -> None:
        assert q.image is not None and q.region is not None
        session = self._segmenter_session(q)
        for n in self._segment_notes:
            q.note(n)
        res = session.segment(q.image, q.region, key=q.image_key or _image_key(q.image))
        q.region = res.region
        for n in res.notes:
            q.note(n)
        if res.segmenter:
            primary = self.profile.describe().get(R.SEGMENT, {}).get("backend")
            q.roles[R.SEGMENT] = res.segmenter + ("" if res.segmenter == primary else " (fallback)")

    def _recall(self, q: Query) -> None:
        cfg = self.config
        for sig in self.signals:
            if not sig.applies(q):
                continue
            with q.timed(sig.name):
                for n in self._signal_notes.get(sig.name, ()):
                    q.note(n)
                sig.prepare(q, self)
                if cfg.mode == "rerank" and sig.name != cfg.recall_signal:
                    continue  # the re-rank signal only scores the recalled candidates
                found = sig.recall(q, self, cfg.recall_k)
                if found is not None:
                    q.recalled[sig.name] = found

    def _score(self, q: Query) -> list[Candidate]:
        cfg = self.config
        if cfg.mode == "rerank":
            return self._score_rerank(q)
        # union of candidates, best-ranked first per signal, capped
        order: dict[str, int] = {}
        for found in q.recalled.values():
            for rank, eid in enumerate(sorted(found, key=found.get, reverse=True)):
                order[eid] = min(order.get(eid, rank), rank)
        ids = sorted(order, key=order.get)[: cfg.max_candidates]
        if not ids:
            return []
        table: dict[str, dict[str, float]] = {}
        for sig in self.signals:
            scores = sig.score(q, self, ids)
            if scores:
                table[sig.name] = scores
        # what the answer reports as "ran": the signals that recalled or scored candidates
        q.signals = {name: b for name, b in q.signals.items() if name in table or name in q.recalled}
        ran = [name for name in q.vectors if name in table]
        cands = []
        for eid in ids:
            sigs = {name: vals[eid] for name, vals in table.items() if eid in vals}
            fused, _ = self.fusion.fuse(sigs, unverified=[s for s in ran if s not in sigs], backends=q.signals)
            cands.append(Candidate(entity_id=eid, score=round(fused, 6), signals={s: round(v, 6) for s, v in sigs.items()}))
        cands.sort(key=lambda c: (-c.score, c.entity_id))
        return cands

    def _score_rerank(self, q: Query) -> list[Candidate]:
        cfg = self.config
        recalled = q.recalled.get(cfg.recall_signal, {})
        if not recalled:
            q.note(f"rerank: the recall signal {cfg.recall_signal} found no candidates")
            return []
        ids = sorted(recalled, key=recalled.get, reverse=True)[: cfg.max_candidates]
        rer_sig = next(s for s in self.signals if s.name == cfg.rerank_signal)
        rer = rer_sig.score(q, self, ids) if rer_sig.applies(q) else {}
        if not rer:
            q.note(f"rerank: {cfg.rerank_signal} did not score the candidates; order is the recall order")
        cands = []
        for eid in ids:
            sigs = {cfg.recall_signal: recalled[eid]}
            if eid in rer:
                sigs[cfg.rerank_signal] = rer[eid]
                score, _ = self.fusion.fuse({cfg.rerank_signal: rer[eid]}, backends=q.signals)
            else:
                score, _ = self.fusion.fuse(sigs, backends=q.signals)
                score *= cfg.rerank_unscored_factor
            cands.append(Candidate(entity_id=eid, score=round(score, 6), signals={s: round(v, 6) for s, v in sigs.items()}))
        cands.sort(key=lambda c: (-c.score, -c.signals.get(cfg.recall_signal, 0.0), c.entity_id))
        return cands

    def _attach_entities(self, cands: list[Candidate]) -> None:
        ents = {e.id: e for e in self.kb.get_many([c.entity_id for c in cands])}
        for c in cands:
            e = ents.get(c.entity_id)
            if e is not None:
                c.label, c.description = e.label, e.description

    def _backends(self, q: Query) -> dict[str, str]:
        """role -> backend for the roles this call used (+ " (fallback)"), and the fusion set."""
        desc = self.profile.describe()
        out = {}
        for role, name in sorted(q.roles.items()):
            fb = desc.get(role, {}).get("fallback") and "(fallback)" not in name
            out[role] = name + (" (fallback)" if fb else "")
        out["fusion"] = self.fusion.name
        if self.uncalibrated:
            out["uncalibrated"] = ", ".join(self.uncalibrated)
        return out


def as_region(prompt: Region | dict[str, Any] | None, size: tuple[int, int]) -> Region:
    """Validate a prompt against the image size ``(H, W)``; ``None`` -> the whole image."""
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
