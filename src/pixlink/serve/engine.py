"""The engine of one worker process: one linker (and one GMNER pipeline) shared by its threads.

Built once at start-up from a :class:`~pixlink.link.LinkerSpec`; the models are loaded and run
once on a small image before ``/ready`` answers 200, so the first request pays no loading.
Uploads are kept by :class:`~pixlink.serve.store.ImageStore`; the per-image work of the linker
(segmenter embedding, face scan) is kept by the linker's caches under the same content key and
started in the background when an image is uploaded.

Everything here is synchronous and thread-safe; the routes call it through
:class:`~pixlink.serve.limits.Runner`.
"""

from __future__ import annotations

import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..errors import Errors, InputError, KBError, PixlinkError
from ..log import get_logger
from ..lru import BoundedLRU
from ..types import Link
from .settings import ServeSettings
from .store import ImageStore, StoredImage

log = get_logger("pixlink.serve")


class Engine:
    """The linker, the GMNER pipeline, the uploads and the readiness of one worker.

    Attributes:
        ready: True once the models are loaded and have run once.
        error: why loading failed (the worker stays up, ``/ready`` answers 503 with it).
    """

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.store = ImageStore(settings.images, settings.image_bytes)
        self.linker: Any = None
        self.gmner: Any = None
        self.annotators: dict[str, Any] = {}
        self.kb: Any = None
        self.kb_info: dict[str, Any] = {}
        self.image_cache: Any = None
        self.ready = False
        self.error: str | None = None
        self.load_seconds: float | None = None
        self._precompute = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pixlink-precompute")
        self._precomputing: set[str] = set()
        self._lock = threading.Lock()
        self._thumbs: BoundedLRU[tuple[str, int], bytes] = BoundedLRU(256, 64 * 2**20, what="thumbnail cache")
        self.precomputed = 0
        self.precompute_skipped = 0

    def with_settings(self, settings: ServeSettings) -> "Engine":
        """An engine with other limits that shares this one's loaded models and caches (its
        uploads included): for apps that differ only in their limits (tests)."""
        other = Engine.__new__(Engine)
        other.__dict__.update(self.__dict__)
        other.settings = settings
        return other

    # -- start-up -------------------------------------------------------------------------------
    def start(self) -> None:
        """Build the linker (and GMNER pipeline) and run each once; sets :attr:`ready` or
        :attr:`error`. Never raises: a worker that cannot load reports why on ``/ready``."""
        t0 = time.perf_counter()
        try:
            self._build()
            self._warm()
        except PixlinkError as exc:
            self.error = str(exc)
            log.error("the service could not load its models: %s", exc)
            return
        self.load_seconds = time.perf_counter() - t0
        self.ready = True
        log.info("ready in %.1f s", self.load_seconds)

    def _build(self) -> None:
        from ..link import LinkerConfig, LinkerSpec

        s = self.settings
        if s.torch_threads is not None:
            import torch

            torch.set_num_threads(s.torch_threads)
        cfg = dict(s.config or {})
        if s.face_scan_side is not None:
            opts = {k: dict(v) for k, v in (cfg.get("signal_options") or {}).items()}
            opts.setdefault("face", {}).setdefault("scan_max_side", s.face_scan_side)
            names = cfg.get("signals")
            if names is None or "face" in names:
                cfg["signal_options"] = opts
        LinkerConfig.from_dict(cfg, where="serve config")  # E010 now, naming the bad key
        spec = LinkerSpec(kb=s.kb, profile=s.profile, config=cfg, fusion=s.fusion, device=s.device)
        linker = spec.build()
        self.image_cache = linker.use_image_cache(s.cache_images, s.cache_bytes)
        if s.click_segmenter is not None and linker.config.segment:
            self._use_click_segmenter(linker, dict(s.click_segmenter))
        self.linker = linker
        self.kb = linker.kb
        info = linker.kb.info()
        self.kb_info = {"name": info.get("name"), "build_id": info.get("build_id"),
                        "entities": len(linker.kb), "created": info.get("created")}
        if s.gmner:
            from ..ner.gmner.pipeline import GMNERPipeline

            self.gmner = GMNERPipeline(linker.profile, linker.kb, linker)
        if s.annotate:
            from ..annotate import AnnotateConfig, ReverseAnnotator

            # both modes share the linker (its models, caches and face vectors)
            self.annotators = {mode: ReverseAnnotator(linker.kb, linker.profile, AnnotateConfig(mode=mode), linker=linker)
                               for mode in ("maskoven", "vpwiki")}

    @staticmethod
    def _use_click_segmenter(linker: Any, options: dict[str, int]) -> None:
        """The profile's segmenter for boxes, GrabCut with the service's settings for clicks (and
        for boxes too when the profile's segmenter is GrabCut, the offline default)."""
        from ..errors import ModelUnavailableError
        from ..models import roles as R
        from ..models.registry import get_spec

        segs = []
        try:
            primary = linker.profile.get(R.SEGMENT)
            segs.append(primary)
        except ModelUnavailableError as exc:
            log.warning("segment: not available (%s); boxes and clicks are segmented by GrabCut", exc)
        spec = get_spec(R.SEGMENT, "grabcut")
        if spec.availability() is None:
            fast = spec.factory(**options)
            # the profile's segmenter is GrabCut itself (the offline default): the service's
            # settings serve boxes too, instead of a slower copy that would take every prompt
            segs = [s for s in segs if getattr(s, "name", "") != "grabcut"] + [fast]
        if segs:
            linker.use_segmenters(segs)

    def _warm(self) -> None:
        """Run every model once on a small synthetic image so that the first request does not
        load anything (torch's first call, dlib's models, the NER tagger)."""
        rng = np.random.default_rng(0)
        img = (rng.random((96, 128, 3)) * 255).astype(np.uint8)
        self.linker.link(img, {"box": [16, 16, 112, 80]}, text="warm-up", k=1)
        self.linker.link(img, {"points": [[64, 48]]}, k=1)
        if self.gmner is not None:
            self.gmner.run(img, text="Barack Obama visited Paris")

    def close(self) -> None:
        self._precompute.shutdown(wait=False, cancel_futures=True)

    # -- uploads ----------------------------------------------------------------------------------
    def upload(self, data: bytes) -> tuple[StoredImage, bool]:
        """Keep an upload (E001 not an image, E016 too many pixels) and start its per-image work."""
        img, known = self.store.add(data, self.settings.max_pixels)
        if self.settings.precompute:
            self.precompute(img)
        return img, known

    def precompute(self, img: StoredImage) -> None:
        """Start the linker's per-image work for ``img`` in the background (once at a time per
        image); a prompt that arrives meanwhile waits for the part it needs."""
        with self._lock:
            if img.id in self._precomputing:
                return
            if len(self._precomputing) >= self.settings.precompute_queue:
                self.precompute_skipped += 1
                log.info("precompute queue full: image %s is prepared by its first prompt", img.id)
                return
            self._precomputing.add(img.id)

        def work() -> None:
            try:
                self.linker.prepare_image(img.pixels, box_prompts=self.settings.precompute_boxes, image_key=img.id)
                self.precomputed += 1
            except PixlinkError as exc:  # the prompt will meet the same error and report it
                log.warning("precomputing image %s failed: %s", img.id, exc)
            finally:
                with self._lock:
                    self._precomputing.discard(img.id)

        self._precompute.submit(work)

    # -- linking ------------------------------------------------------------------------------------
    def link(self, img: StoredImage, prompt: dict[str, Any] | None, text: str | None, k: int,
             surface: str | None = None, mention_type: str | None = None) -> Link:
        return self.linker.link(img.pixels, prompt, text=text, k=k, surface=surface, mention_type=mention_type,
                                image_key=img.id)

    def person_boxes(self, img: StoredImage) -> list[list[float]]:
        """Head boxes of the faces in an upload (:func:`head_boxes`)."""
        return head_boxes(self.linker, img.pixels, img.id)

    def gmner_run(self, img: StoredImage | None, text: str) -> Any:
        if self.gmner is None:
            raise InputError(Errors.E739.format(what="POST /v1/gmner", reason="the server was started with --no-gmner"))
        return self.gmner.run(img.pixels if img is not None else None, text=text)

    def annotate(self, img: StoredImage, entity: str, question: str | None = None, mode: str = "maskoven",
                 mention: str | None = None, caption: str | None = None) -> Any:
        """Reverse annotation of one uploaded image: the region of KB entity ``entity``
        (:class:`pixlink.annotate.AnnotationResult`; E712 for an entity not in the KB)."""
        from ..annotate import AnnotationItem

        if not self.annotators:
            raise InputError(Errors.E739.format(what="POST /v1/annotate", reason="the server was started with --no-annotate"))
        item = AnnotationItem(id=img.id, image=f"upload:{img.id}", entity=entity, question=question, mention=mention,
                              caption=caption)
        return self.annotators[mode].annotate(item, image=img.pixels)

    # -- the KB ---------------------------------------------------------------------------------------
    def entity(self, eid: str) -> Any:
        e = self.kb.get(eid)
        if e is None:
            raise KBError(Errors.E730.format(what=f"entity {eid!r} is not in this KB"))
        return e

    def has_image(self, eid: str) -> bool:
        return any(path for _, path in self.kb.image_refs(eid))

    def thumbnail(self, eid: str, index: int = 0) -> bytes:
        """JPEG of the entity's ``index``-th local image, longer side <= ``thumbnail_side``
        (kept in a small LRU). E730 when the entity has no such image."""
        from PIL import Image

        from ..io import downscale, load_image

        side = self.settings.thumbnail_side
        key = (eid, index)
        hit = self._thumbs.get(key)
        if hit is not None:
            return hit
        self.entity(eid)
        paths = [p for _, p in self.kb.image_refs(eid) if p]
        if not 0 <= index < len(paths):
            raise KBError(Errors.E730.format(what=f"entity {eid!r} has no local image {index}"))
        try:
            arr = load_image(paths[index], max_pixels=self.settings.max_pixels, max_side=side)
        except InputError as exc:
            log.warning("thumbnail of %s: %s", eid, exc)
            raise KBError(Errors.E730.format(what=f"entity {eid!r}'s image {index} cannot be read")) from exc
        arr, _ = downscale(arr, side)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=85)
        data = buf.getvalue()
        self._thumbs.put(key, data, size=len(data))
        return data

    # -- metrics ---------------------------------------------------------------------------------------
    def gauges(self) -> list[tuple[str, str, dict[str, str], float]]:
        from .metrics import rss_bytes

        uploads = self.store.stats()
        out: list[tuple[str, str, dict[str, str], float]] = [
            ("pixlink_ready", "gauge", {}, float(self.ready)),
            ("pixlink_process_resident_bytes", "gauge", {}, float(rss_bytes())),
            ("pixlink_uploads_cached", "gauge", {}, float(uploads["items"])),
            ("pixlink_uploads_cached_bytes", "gauge", {}, float(uploads["bytes"])),
            ("pixlink_upload_lookups_total", "counter", {"result": "hit"}, float(uploads["hits"])),
            ("pixlink_upload_lookups_total", "counter", {"result": "miss"}, float(uploads["misses"])),
            ("pixlink_uploads_evicted_total", "counter", {}, float(uploads["evictions"])),
            ("pixlink_images_precomputed_total", "counter", {}, float(self.precomputed)),
            ("pixlink_images_precompute_skipped_total", "counter", {}, float(self.precompute_skipped)),
        ]
        st = self.linker.cache_stats() if self.linker is not None else {}
        if "image_images" in st:
            out += [("pixlink_image_cache_images", "gauge", {}, float(st["image_images"])),
                    ("pixlink_image_cache_bytes", "gauge", {}, float(st["image_bytes"])),
                    ("pixlink_image_cache_lookups_total", "counter", {"result": "hit"}, float(st["image_hits"])),
                    ("pixlink_image_cache_lookups_total", "counter", {"result": "miss"}, float(st["image_misses"]))]
        if "segment_images" in st:
            out += [("pixlink_segmenter_embeddings_cached", "gauge", {}, float(st["segment_images"])),
                    ("pixlink_segmenter_embeddings_cached_bytes", "gauge", {}, float(st["segment_bytes"])),
                    ("pixlink_segmenter_embedding_lookups_total", "counter", {"result": "hit"}, float(st["segment_hits"])),
                    ("pixlink_segmenter_embedding_lookups_total", "counter", {"result": "miss"},
                     float(st["segment_embeddings"]))]
        return out


def head_boxes(linker: Any, image: np.ndarray, key: str) -> list[list[float]]:
    """Head boxes (XYXY, original pixels) of the faces in ``image``, largest first: each face box
    grown by the face rule's margin on each side. The face scan is the linker's, kept in its image
    cache under ``key`` (a cache is made for the linker when it has none)."""
    from ..errors import ModelUnavailableError
    from ..link.signals.face import FaceRule, image_faces
    from ..models import roles as R

    sig = next((x for x in linker.signals if x.name == "face"), None)
    rule = sig.options if sig is not None else FaceRule()
    try:
        backend = linker.profile.get(R.FACES)
    except ModelUnavailableError as exc:
        log.warning("no face backend (%s): no face regions", exc)
        return []
    cache = linker.image_cache or linker.use_image_cache()
    scan = image_faces(cache, key, backend, image, rule)
    h, w = image.shape[:2]
    out = []
    for f in sorted(scan.faces, key=lambda f: -float((f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))):
        x1, y1, x2, y2 = (float(v) for v in f.box)
        mx, my = (x2 - x1) * rule.margin, (y2 - y1) * rule.margin
        out.append([max(0.0, x1 - mx), max(0.0, y1 - my), min(float(w), x2 + mx), min(float(h), y2 + my)])
    return out
