"""The one bounded LRU of the package: count and byte bounds, recency, single-flight computation,
an oversized value used and not kept, bounds changed later, bad bounds refused."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import race

from pixlink.errors import InputError
from pixlink.lru import BoundedLRU, approx_nbytes


def test_count_bound_drops_the_least_recently_used():
    lru = BoundedLRU(2, 10**9)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1  # a is now the most recent
    lru.put("c", 3)
    assert "b" not in lru and "a" in lru and "c" in lru and lru.evictions == 1
    assert lru.stats()["hits"] == 1


def test_byte_bound_and_an_oversized_value():
    lru = BoundedLRU(100, 3000)
    for i in range(5):
        lru.put(i, np.zeros(1000, np.uint8))
    assert lru.cached_bytes == 3000 and len(lru) == 3 and 0 not in lru and 4 in lru
    lru.put(4, np.zeros(10, np.uint8))  # a replacement is re-sized
    assert lru.cached_bytes == 2010
    assert lru.put("big", np.zeros(5000, np.uint8)) is False and "big" not in lru and len(lru) == 3


def test_setdefault_keeps_the_first_and_counts_nothing():
    lru = BoundedLRU(4, 10**6)
    a, b = np.zeros(8), np.ones(8)
    assert lru.setdefault("k", a)[1] is True
    got, added = lru.setdefault("k", b)
    assert got is a and added is False and lru.hits == 0 and lru.misses == 0


def test_update_is_read_modify_write():
    lru = BoundedLRU(4, 10**6)
    lru.update("img", lambda d: {**(d or {}), "faces": np.zeros(100, np.uint8)})
    lru.update("img", lambda d: {**(d or {}), "desc": np.zeros(50, np.uint8)})
    assert set(lru.get("img")) == {"faces", "desc"} and lru.cached_bytes == 150


def test_resize_evicts_at_once():
    lru = BoundedLRU(10, 10**6)
    for i in range(6):
        lru.put(i, i)
    lru.resize(max_items=2)
    assert len(lru) == 2 and 5 in lru and 4 in lru


def test_one_computation_under_threads_and_failures_not_kept():
    lru = BoundedLRU(8, 10**6)
    ran, got = race(lambda compute: lru.get_or_compute("img", compute))
    assert ran == 1 and sum(c for _, c in got) == 1 and all(v is got[0][0] for v, _ in got)
    assert lru.computed == 1 and lru.hits == 15

    def boom():
        raise InputError("[E010] x")

    with pytest.raises(InputError):
        lru.get_or_compute("other", boom)
    assert lru.get_or_compute("other", lambda: None) == (None, True)  # None is a value
    assert lru.get_or_compute("other", lambda: 1) == (None, False)


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "3"])
def test_bad_bounds_are_refused(bad):
    with pytest.raises(InputError, match="E010.*max_items"):
        BoundedLRU(bad, 10, what="test cache")
    with pytest.raises(InputError, match="E010"):
        BoundedLRU(1, 10).resize(max_bytes=bad)


def test_approx_nbytes_walks_containers_and_objects():
    class Handle:
        def __init__(self):
            self.emb = np.zeros((4, 8), np.float32)
            self.meta = {"hw": (2, 3), "grid": [np.zeros(16, np.uint8)]}

    assert approx_nbytes(Handle()) == 4 * 8 * 4 + 16
    assert approx_nbytes(None) == 0 and approx_nbytes("text") == 0
