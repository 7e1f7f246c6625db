"""Per-image work of a linker, done once per image and shared by every prompt on it.

A page sends one prompt per click on the same image. What depends only on the image (the face
scan of the whole image, each face's descriptor) is computed on the first prompt — or ahead of
it by :meth:`pixlink.link.Linker.prepare_image` — and kept here, keyed by the image's content
(:func:`pixlink.regions.image_key`); each further prompt does only its region's own work. The
segmenter's image embedding is kept by the linker's
:class:`~pixlink.regions.SegmenterSession`, with the same kind of bounds.

The cache is off unless a linker is given one (``Linker.use_image_cache``): a batch that links
one region per image gains nothing from it (a whole-image face scan costs more than a scan of
one region's window), a service that answers clicks on uploaded images gains most.

Thread-safe: one lock guards the table; a value is computed by one thread while the others that
ask for the same (image, part) wait for it. Bounded: at most ``max_images`` images and
``max_bytes`` bytes (arrays counted by :func:`pixlink.lru.approx_nbytes`); the least recently used
image goes first, with all its parts (:class:`pixlink.lru.BoundedLRU`).
"""

from __future__ import annotations

import threading
from typing import Any, Callable, TypeVar

from ..lru import MISSING, BoundedLRU, SingleFlight, approx_nbytes

T = TypeVar("T")


class ImageCache:
    """Values computed from one image, keyed by ``(image key, part)``.

    Args:
        max_images: how many images' values to keep (LRU by image).
        max_bytes: and at most this many bytes of them; a single value larger than this is
            returned and not kept.

    Attributes:
        hits, misses: lookups answered from the cache / computed (for metrics).
    """

    def __init__(self, max_images: int = 32, max_bytes: int = 256 * 2**20) -> None:
        self._images: BoundedLRU[str, dict[str, Any]] = BoundedLRU(max_images, max_bytes, what="image cache")
        self._lock = threading.Lock()
        self._flight = SingleFlight()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        """How many images have values here."""
        return len(self._images)

    @property
    def cached_bytes(self) -> int:
        return self._images.cached_bytes

    def __contains__(self, key: object) -> bool:
        return key in self._images

    def _lookup(self, key: str, part: str) -> Any:
        parts = self._images.get(key)
        if parts is not None and part in parts:
            with self._lock:
                self.hits += 1
            return parts[part]
        return MISSING

    def get(self, key: str, part: str, compute: Callable[[], T]) -> T:
        """The value of ``part`` for image ``key``, computed by ``compute()`` once (``None`` is
        a value too: "no face here" is remembered); threads asking for it meanwhile wait for it."""

        def make() -> T:
            value = compute()
            with self._lock:
                self.misses += 1
            if approx_nbytes(value) <= self._images.max_bytes:  # else used once, not kept
                self._images.update(key, lambda parts: {**(parts or {}), part: value})
            return value

        return self._flight.run((key, part), lambda: self._lookup(key, part), make)[0]

    def stats(self) -> dict[str, int]:
        """``images``, ``bytes``, ``hits``, ``misses`` (for a service's metrics)."""
        with self._lock:
            return {"images": len(self._images), "bytes": self._images.cached_bytes, "hits": self.hits,
                    "misses": self.misses}
