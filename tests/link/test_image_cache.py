"""The linker's per-image cache: bounded by images and bytes, LRU by image, one computation per
(image, part) under concurrency, ``None`` remembered."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import race

from pixlink.errors import InputError
from pixlink.link.imagecache import ImageCache


def test_values_are_computed_once_and_none_is_a_value():
    cache = ImageCache(max_images=4, max_bytes=10_000)
    calls = []
    assert cache.get("a", "faces", lambda: calls.append(1) or None) is None
    assert cache.get("a", "faces", lambda: calls.append(1) or 5) is None
    assert calls == [1] and cache.stats()["hits"] == 1 and cache.stats()["misses"] == 1


def test_bounded_by_images_lru_whole_image_goes():
    cache = ImageCache(max_images=2, max_bytes=10**9)
    for key in ("a", "b"):
        cache.get(key, "p1", lambda: 1)
        cache.get(key, "p2", lambda: 2)
    cache.get("a", "p1", lambda: 0)  # a is now the most recent
    cache.get("c", "p1", lambda: 3)
    assert "b" not in cache and "a" in cache and "c" in cache and len(cache) == 2


def test_bounded_by_bytes():
    cache = ImageCache(max_images=100, max_bytes=3000)
    for i in range(5):
        cache.get(str(i), "arr", lambda: np.zeros(1000, np.uint8))
    assert cache.cached_bytes <= 3000 and len(cache) == 3 and "0" not in cache and "4" in cache
    big = cache.get("big", "arr", lambda: np.zeros(5000, np.uint8))  # used, not kept
    assert big.nbytes == 5000 and "big" not in cache and cache.cached_bytes <= 3000


def test_one_computation_under_threads():
    cache = ImageCache()
    ran, got = race(lambda compute: cache.get("img", "faces", compute))
    assert ran == 1 and all(g is got[0] for g in got)


def test_a_failed_computation_is_not_kept():
    cache = ImageCache()

    def boom():
        raise InputError("[E010] x")

    with pytest.raises(InputError):
        cache.get("img", "p", boom)
    assert cache.get("img", "p", lambda: 7) == 7


@pytest.mark.parametrize("bad", [0, -1, True, 1.5])
def test_bounds_are_checked(bad):
    with pytest.raises(InputError, match="E010"):
        ImageCache(max_images=bad)
