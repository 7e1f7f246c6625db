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
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..errors import ModelUnavailableError
from ..log import get_logger
from ..lru import BoundedLRU
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
        self._cache: BoundedLRU[tuple[str, str], Any] = BoundedLRU(cache_size, max_bytes, what="segmenter session")

    @property
    def cache_size(self) -> int:
        return self._cache.max_items

    @property
    def max_bytes(self) -> int:
        return self._cache.max_bytes

    def resize(self, cache_size: int | None = None, max_bytes: int | None = None) -> None:
        """New bounds (None keeps one); embeddings that no longer fit are dropped at once."""
        self._cache.resize(max_items=cache_size, max_bytes=max_bytes)

    @property
    def cached_bytes(self) -> int:
        return self._cache.cached_bytes

    @property
    def hits(self) -> int:
        """Embeddings answered from the cache."""
        return self._cache.hits

    @property
    def embed_calls(self) -> int:
        """Embeddings computed."""
        return self._cache.computed

    def __len__(self) -> int:
        return len(self._cache)

    def _handle(self, seg: Any, image: np.ndarray, key: str) -> tuple[Any, bool]:
        """``(seg's handle of the image, computed by this call)``: one thread computes an
        image's embedding, the others wait for it."""
        return self._cache.get_or_compute((seg.name, key), lambda: seg.embed_image(image))

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
