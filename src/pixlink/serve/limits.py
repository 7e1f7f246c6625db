"""The limits a worker keeps: admission (a bounded number of requests at once, 503 beyond it),
a per-request timeout, body sizes, and the optional API key.

Blocking engine work runs on the engine's own thread pool; a request waits for it at most
``timeout`` seconds (504 after that). The admission slot is released when the *work* ends, not
when the request gives up, so a slow request that timed out still counts until its thread is
free: timeouts cannot pile up hidden work.
"""

from __future__ import annotations

import asyncio
import hmac
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, TypeVar

from ..errors import Errors, InputError, PixlinkError

T = TypeVar("T")


class Busy(PixlinkError):
    """Refused for load (503 + ``Retry-After``)."""


class TimedOut(PixlinkError):
    """The request's time ran out (504)."""


class Unauthorised(PixlinkError):
    """No or a wrong API key (401)."""


class TooLarge(InputError):
    """A body above its limit (413)."""


class Admission:
    """At most ``limit`` requests admitted at once; :meth:`try_enter` never waits."""

    def __init__(self, limit: int) -> None:
        self.limit = int(limit)
        self.pending = 0
        self.refused = 0
        self._lock = threading.Lock()

    def try_enter(self) -> bool:
        with self._lock:
            if self.pending >= self.limit:
                self.refused += 1
                return False
            self.pending += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self.pending = max(0, self.pending - 1)


class Runner:
    """Runs blocking engine calls on ``threads`` threads behind an :class:`Admission` of
    ``max_pending``, each request waiting at most ``timeout`` s."""

    def __init__(self, threads: int, max_pending: int, timeout: float, retry_after: int) -> None:
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="pixlink-engine")
        self.admission = Admission(max_pending)
        self.timeout = float(timeout)
        self.retry_after = int(retry_after)

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> "Future[T]":
        """Admit and start ``fn``; :class:`Busy` (E722) when the admission is full."""
        if not self.admission.try_enter():
            raise Busy(Errors.E722.format(pending=self.admission.pending, limit=self.admission.limit,
                                          retry=self.retry_after))
        try:
            fut = self.pool.submit(fn, *args, **kwargs)
        except RuntimeError:  # the pool is shut down (the server is stopping)
            self.admission.leave()
            raise
        fut.add_done_callback(lambda _: self.admission.leave())  # also when cancelled before it ran
        return fut

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` on the engine's threads; E722 when busy, E723 after ``timeout``."""
        fut = self.submit(fn, *args, **kwargs)
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(fut)), self.timeout)
        except asyncio.TimeoutError as exc:
            fut.cancel()  # drops it if it has not started; a running call ends on its own
            raise TimedOut(Errors.E723.format(timeout=self.timeout)) from exc

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def check_api_key(expected: str | None, x_api_key: str | None, authorization: str | None) -> None:
    """Nothing when no key is configured or the right one is given (``X-API-Key: KEY`` or
    ``Authorization: Bearer KEY`` / ``Token KEY``); else :class:`Unauthorised` (E725).
    Compared in constant time."""
    if expected is None:
        return
    given = x_api_key
    if not given and authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() in ("bearer", "token"):
            given = value.strip()
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Unauthorised(Errors.E725)


async def read_body(receive_chunks: Any, limit: int, what: str, declared: int | None = None) -> bytes:
    """Read a request body of at most ``limit`` bytes from an async iterator of chunks
    (Starlette's ``request.stream()``), refusing (E720, 413) as soon as it is exceeded — also
    before reading when the declared ``Content-Length`` is already too large."""
    if declared is not None and declared > limit:
        raise TooLarge(Errors.E720.format(what=what, size=declared, limit=limit))
    buf = bytearray()
    async for chunk in receive_chunks:
        buf += chunk
        if len(buf) > limit:
            raise TooLarge(Errors.E720.format(what=what, size=len(buf), limit=limit))
    return bytes(buf)
