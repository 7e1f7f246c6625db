"""Prompt -> region: a click or a box becomes a mask through the promptable segmenter.

* The image embedding is computed once per image and reused for every prompt on it
  (:class:`SegmenterSession` keeps the handles of recent images, keyed by image content).
* A given mask is used as it is; a box with no segmenter stays a box.
* When the segmenter cannot take the prompt kind (LiteMedSAM takes boxes only), the region
  falls back to the next segmenter that can (GrabCut takes points) — logged, and recorded in
  the returned notes — or stays a prompt without a mask, also recorded.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..errors import ModelUnavailableError
from ..log import get_logger
from ..types import Region

log = get_logger("pixlink.regions")


def image_key(image: np.ndarray) -> str:
    """A content key for an ``(H, W, 3)`` image (shape + BLAKE2 of the pixels)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(str(image.shape).encode())
    h.update(np.ascontiguousarray(image).data)
    return h.hexdigest()


@dataclass
class SegmentResult:
    region: Region
    notes: list[str] = field(default_factory=list)
    segmenter: str | None = None
    embedded: bool = False  # True when this call computed the image embedding


def approx_nbytes(obj: Any, _depth: int = 0) -> int:
    """Rough memory of a segmenter's image handle: the bytes of the arrays / tensors it holds
    (numpy arrays, torch tensors, and those inside dataclasses, dicts, lists and tuples)."""
    if _depth > 4 or obj is None:
        return 0
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    if hasattr(obj, "element_size") and hasattr(obj, "nelement"):  # a torch tensor
        return int(obj.element_size() * obj.nelement())
    if isinstance(obj, dict):
        return sum(approx_nbytes(v, _depth + 1) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(approx_nbytes(v, _depth + 1) for v in obj)
    if hasattr(obj, "__dict__"):
        return sum(approx_nbytes(v, _depth + 1) for v in vars(obj).values())
    return 0


class SegmenterSession:
    """Promptable segmentation over a chain of segmenters, caching image embeddings.

    Thread-safe: many threads may segment through one session; an image's embedding is
    computed once even when several threads ask for it at the same time (the others wait).

    Args:
        segmenters: backends implementing :class:`~pixlink.models.roles.PromptSegmenter`,
            in order of preference (e.g. ``[litemedsam, grabcut]``).
        cache_size: how many images' embeddings to keep (an LRU, keyed by image content).
        max_bytes: and at most this many bytes of them (the oldest go first; one embedding
            larger than this is used and not kept).
    """

    def __init__(self, segmenters: Sequence[Any], cache_size: int = 8, max_bytes: int = 512 * 2**20):
        self.segmenters = list(segmenters)
        self.cache_size = int(cache_size)
        self.max_bytes = int(max_bytes)
        self._cache: OrderedDict[tuple[str, str], tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._computing: dict[tuple[str, str], threading.Lock] = {}
        self.embed_calls = 0
        self.hits = 0

    @property
    def cached_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._cache)

    def _lookup(self, ck: tuple[str, str]) -> Any | None:
        with self._lock:
            if ck in self._cache:
                self._cache.move_to_end(ck)
                self.hits += 1
                return self._cache[ck][0]
        return None

    def _handle(self, seg: Any, image: np.ndarray, key: str) -> tuple[Any, bool]:
        ck = (seg.name, key)
        hit = self._lookup(ck)
        if hit is not None:
            return hit, False
        with self._lock:
            gate = self._computing.setdefault(ck, threading.Lock())
        with gate:  # one thread computes an image's embedding; the others wait for it
            hit = self._lookup(ck)
            if hit is not None:
                return hit, False
            handle = seg.embed_image(image)
            size = approx_nbytes(handle)
            with self._lock:
                self.embed_calls += 1
                self._computing.pop(ck, None)
                if size <= self.max_bytes:
                    self._cache[ck] = (handle, size)
                    self._bytes += size
                    while self._cache and (len(self._cache) > self.cache_size or self._bytes > self.max_bytes):
                        _, (_, old) = self._cache.popitem(last=False)
                        self._bytes -= old
        return handle, True

    def embedding(self, seg: Any, image: np.ndarray, key: str | None = None) -> Any:
        """``seg``'s handle for ``image`` (its image embedding), computed once and cached."""
        return self._handle(seg, image, key or image_key(image))[0]

    def segment(self, image: np.ndarray, prompt: Region, key: str | None = None) -> SegmentResult:
        """Return ``prompt`` with a mask (best of the segmenter's candidates).

        A mask prompt is returned as is. With no segmenter able to take the prompt, the
        region is returned unchanged and a note says why.
        """
        if prompt.mask is not None:
            return SegmentResult(prompt, segmenter=None)
        kind = "box" if prompt.box is not None else "points"
        notes: list[str] = []
        key = key or image_key(image)
        for seg in self.segmenters:
            if kind not in seg.prompt_kinds:
                notes.append(f"segmenter {seg.name} does not take {kind} prompts")
                continue
            try:
                handle, embedded = self._handle(seg, image, key)
                preds = seg.predict(
                    handle, box=prompt.box, points=prompt.points, point_labels=prompt.point_labels, multimask=False
                )
            except ModelUnavailableError as exc:
                notes.append(f"segmenter {seg.name}: {exc}")
                continue
            preds = [p for p in preds if p.mask.any()]
            if not preds:
                notes.append(f"segmenter {seg.name} returned an empty mask")
                continue
            best = max(preds, key=lambda p: p.score)
            if notes:
                log.warning("prompt fell back to segmenter %s: %s", seg.name, "; ".join(notes))
                notes = [f"fallback to {seg.name}: " + "; ".join(notes)]
            return SegmentResult(prompt.with_mask(best.mask, source=seg.name, score=float(best.score)), notes, seg.name,
                                 embedded)
        if self.segmenters:
            log.warning("no segmenter produced a mask (%s); the region stays a %s", "; ".join(notes), kind)
            notes.append(f"no mask: the region stays a {kind}")
        return SegmentResult(prompt, notes, None)
