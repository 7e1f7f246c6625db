"""A thread-safe least-recently-used table bounded by a count *and* by bytes.

The one cache of everything a process keeps per image: the service's decoded uploads
(:class:`pixlink.serve.store.ImageStore`), a linker's per-image work
(:class:`pixlink.link.imagecache.ImageCache`) and a segmenter's image embeddings
(:class:`pixlink.regions.SegmenterSession`). Each entry is held with its size in bytes
(:func:`approx_nbytes` unless the caller gives it); a value larger than the byte bound is
never kept (it is the caller's to use once); the least recently used entries go first until
both bounds hold.

:meth:`BoundedLRU.get_or_compute` computes a missing value once when several threads ask for
it at the same time (the others wait for it and read it): an image's embedding is not computed
twice by two clicks on it. :class:`SingleFlight` is that gating alone, for a cache that keeps
its values its own way (:class:`~pixlink.link.imagecache.ImageCache`: several parts per image).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable, Generic, Hashable, TypeVar

import numpy as np

from .errors import Errors, InputError

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

MISSING: Any = object()
"""What a :meth:`SingleFlight.run` lookup returns when it has no value (``None`` is a value)."""


def approx_nbytes(obj: Any, _depth: int = 0) -> int:
    """Rough bytes held by ``obj``: arrays (numpy, torch) counted, containers and an object's
    attributes walked (4 levels deep); other leaves count 0."""
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


def check_bound(what: str, value: Any) -> int:
    """``value`` as a bound (an integer >= 1); E010 naming ``what`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(Errors.E010.format(what=what, value=value, reason="must be an integer >= 1"))
    return int(value)


class SingleFlight:
    """One computation per key at a time: the threads that ask for a key being computed wait
    for it and read its value instead of computing it again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._gates: dict[Hashable, threading.Lock] = {}

    def run(self, key: Hashable, lookup: Callable[[], Any], compute: Callable[[], V]) -> tuple[Any, bool]:
        """``(value, computed)``: ``lookup()``'s value, else ``compute()``'s (which must keep
        it where ``lookup`` finds it). ``lookup`` returns :data:`MISSING` when it has none; it
        runs again after waiting for another thread's ``compute``. An exception of ``compute``
        reaches the thread that called it, and the next caller computes again."""
        found = lookup()
        if found is not MISSING:
            return found, False
        with self._lock:
            gate = self._gates.setdefault(key, threading.Lock())
        with gate:
            found = lookup()  # computed by the thread this one waited for
            if found is not MISSING:
                return found, False
            try:
                return compute(), True
            finally:
                with self._lock:
                    self._gates.pop(key, None)


class BoundedLRU(Generic[K, V]):
    """``key -> value``, at most ``max_items`` entries and ``max_bytes`` bytes of them.

    Args:
        max_items, max_bytes: the bounds (integers >= 1; E010 naming ``what`` otherwise). They
            may be changed later (:meth:`resize`).
        what: what the table holds, for error messages (``"image cache"``).

    Attributes:
        hits, misses: lookups answered from the table / not (:meth:`get`,
            :meth:`get_or_compute`); ``computed``: values computed by :meth:`get_or_compute`;
            ``evictions``: entries dropped to keep the bounds.
    """

    def __init__(self, max_items: int, max_bytes: int, *, what: str = "cache") -> None:
        self.what = what
        self.max_items = check_bound(f"{what} max_items", max_items)
        self.max_bytes = check_bound(f"{what} max_bytes", max_bytes)
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._flight = SingleFlight()
        self.hits = self.misses = self.computed = self.evictions = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    @property
    def cached_bytes(self) -> int:
        return self._bytes

    def resize(self, max_items: int | None = None, max_bytes: int | None = None) -> None:
        """New bounds (None keeps one); entries are dropped at once if they no longer fit."""
        with self._lock:
            if max_items is not None:
                self.max_items = check_bound(f"{self.what} max_items", max_items)
            if max_bytes is not None:
                self.max_bytes = check_bound(f"{self.what} max_bytes", max_bytes)
            self._evict()

    def get(self, key: K, default: Any = None) -> V | Any:
        """The value of ``key`` (now the most recently used), or ``default``."""
        with self._lock:
            hit = self._items.get(key, MISSING)
            if hit is MISSING:
                self.misses += 1
                return default
            self._items.move_to_end(key)
            self.hits += 1
            return hit[0]  # type: ignore[index]

    def put(self, key: K, value: V, size: int | None = None) -> bool:
        """Keep ``value`` under ``key`` (replacing what was there); ``size`` its bytes
        (:func:`approx_nbytes` when None). False when it is larger than ``max_bytes`` and so
        not kept (what was under ``key`` is dropped too: it is stale)."""
        size = approx_nbytes(value) if size is None else int(size)
        with self._lock:
            return self._put(key, value, size)

    def setdefault(self, key: K, value: V, size: int | None = None) -> tuple[V, bool]:
        """``(the value under key, added)``: the value already there (now the most recently
        used), else ``value``, kept as :meth:`put` keeps it. Counts no hit or miss."""
        size = approx_nbytes(value) if size is None else int(size)
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit[0], False
            self._put(key, value, size)
            return value, True

    def update(self, key: K, change: Callable[[V | None], V]) -> V:
        """Atomically replace ``key``'s value by ``change(old value or None)`` (sized by
        :func:`approx_nbytes`); ``change`` runs under the table's lock, so keep it cheap."""
        with self._lock:
            old = self._items.get(key)
            value = change(None if old is None else old[0])
            self._put(key, value, approx_nbytes(value))
            return value

    def get_or_compute(self, key: K, compute: Callable[[], V], size: int | None = None) -> tuple[V, bool]:
        """``(value, computed)``: the value of ``key``, computed by ``compute()`` and kept when
        it is missing (``None`` is a value too). While one thread computes it, the others that
        ask for ``key`` wait and read its value; an exception of ``compute`` reaches the
        thread that called it, and the next caller computes again."""
        def make() -> V:
            value = compute()
            n = approx_nbytes(value) if size is None else int(size)
            with self._lock:
                self.misses += 1
                self.computed += 1
                self._put(key, value, n)
            return value

        return self._flight.run(key, lambda: self._hit(key), make)

    def _hit(self, key: K) -> Any:
        """The value of ``key`` counted as a hit, or ``MISSING`` (not counted)."""
        with self._lock:
            hit = self._items.get(key)
            if hit is None:
                return MISSING
            self._items.move_to_end(key)
            self.hits += 1
            return hit[0]

    def stats(self) -> dict[str, int]:
        """``items``, ``bytes``, ``hits``, ``misses``, ``computed``, ``evictions``."""
        with self._lock:
            return {"items": len(self._items), "bytes": self._bytes, "hits": self.hits, "misses": self.misses,
                    "computed": self.computed, "evictions": self.evictions}

    def _put(self, key: K, value: V, size: int) -> bool:
        old = self._items.pop(key, None)
        if old is not None:
            self._bytes -= old[1]
        if size > self.max_bytes:
            return False
        self._items[key] = (value, size)
        self._bytes += size
        self._evict()
        return True

    def _evict(self) -> None:
        while self._items and (len(self._items) > self.max_items or self._bytes > self.max_bytes):
            _, (_, gone) = self._items.popitem(last=False)
            self._bytes -= gone
            self.evictions += 1
