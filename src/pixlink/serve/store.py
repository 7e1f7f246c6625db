"""Uploaded images, kept decoded by content id in a bounded LRU (count and bytes).

An image is uploaded once (``POST /v1/images``) and named by its content: the id is
:func:`pixlink.regions.image_key` of its decoded pixels, the same key under which the linker
keeps the image's segmenter embedding and face scan, so one id names all the work done on it.
Thread-safe.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import numpy as np

from ..errors import Errors, InputError
from ..io import load_image
from ..lru import BoundedLRU
from ..regions import image_key

ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class StoredImage:
    """An upload: ``id`` (content key), ``pixels`` ``(H, W, 3)`` uint8 RGB, ``created`` (epoch s)."""

    id: str
    pixels: np.ndarray
    created: float

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)``."""
        return int(self.pixels.shape[0]), int(self.pixels.shape[1])


class ImageStore:
    """Decoded uploads by id, at most ``max_images`` images and ``max_bytes`` bytes of pixels
    (the least recently used go first; an image larger than ``max_bytes`` is used for its
    request and not kept): a :class:`pixlink.lru.BoundedLRU`."""

    def __init__(self, max_images: int, max_bytes: int) -> None:
        self._items: BoundedLRU[str, StoredImage] = BoundedLRU(max_images, max_bytes, what="upload store")

    def __len__(self) -> int:
        return len(self._items)

    def stats(self) -> dict[str, int]:
        """``items``, ``bytes``, ``hits`` / ``misses`` (lookups by id), ``evictions``... (:meth:`pixlink.lru.BoundedLRU.stats`)."""
        return self._items.stats()

    def add(self, data: bytes, max_pixels: int) -> tuple[StoredImage, bool]:
        """Decode ``data`` (any format PIL reads; E001 when it is not an image, E016 above
        ``max_pixels`` — checked from the header, before decoding) and keep it.

        Returns ``(image, known)``; ``known`` is True when the same pixels were already here."""
        if not data:
            raise InputError(Errors.E738.format(reason="the body is empty; send the image file's bytes"))
        pixels = load_image(bytes(data), max_pixels=max_pixels)
        pixels.setflags(write=False)  # shared by threads: nobody may change it
        key = image_key(pixels)
        img, added = self._items.setdefault(key, StoredImage(key, pixels, time.time()), size=pixels.nbytes)
        return img, not added

    def get(self, image_id: str) -> StoredImage:
        """The upload ``image_id``; E724 for a malformed id, E721 when it is not (or no longer) here."""
        if not isinstance(image_id, str) or not ID_PATTERN.match(image_id):
            raise InputError(Errors.E724.format(reason=f"image_id {str(image_id)[:80]!r} is not an id this server "
                                                       "gives (32 hexadecimal digits from POST /v1/images)"))
        img = self._items.get(image_id)
        if img is None:
            raise InputError(Errors.E721.format(id=image_id))
        return img
