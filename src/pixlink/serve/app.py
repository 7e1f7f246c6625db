"""The service: ``create_app(settings)`` -> a FastAPI app (OpenAPI docs at ``/docs``).

* Models load in the background at start-up; ``/health`` answers at once, ``/ready`` and the
  ``/v1`` routes answer 503 (E727, with ``Retry-After``) until the engine is ready.
* Every error is JSON ``{"code": "E…", "message": "…"}``: 4xx for the client's mistakes, 5xx only
  for the server's (a model that cannot load, a timeout, a bug); never a traceback, and messages
  never name the server's paths (the KB directory, caches, the Python install are replaced by
  ``<kb>``, ``<cache>``, ``<server>``). Each answer carries an ``X-Request-ID``.
* Request bodies are read up to a limit (413 beyond it) before a route sees them; CORS is off
  unless origins are configured; with an API key the ``/v1`` and Label Studio routes ask for it.

``pixlink serve`` runs it with uvicorn (:mod:`pixlink.cli.serve`); :func:`app_from_env` is the
factory each uvicorn worker process calls.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
import uuid
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..errors import Errors, InputError, KBError, ModelUnavailableError, PixlinkError
from ..log import get_logger
from .engine import Engine
from .limits import Busy, Runner, TimedOut, TooLarge, Unauthorised
from .metrics import Metrics
from .settings import SETTINGS_ENV, ServeSettings

log = get_logger("pixlink.serve")

STATIC = Path(str(resources.files("pixlink.serve") / "static"))

# code -> HTTP status where the class alone does not decide it
STATUS_BY_CODE = {
    "E016": 413, "E720": 413, "E721": 404, "E730": 404, "E114": 404, "E725": 401, "E722": 503, "E727": 503,
    "E728": 503, "E723": 504, "E724": 422, "E726": 422, "E731": 405, "E733": 502, "E739": 404,
    "E712": 404,
}


def status_of(exc: PixlinkError) -> int:
    """The HTTP status of a pixlink error: the client's mistakes 4xx, the server's 5xx."""
    code = exc.code or ""
    if code in STATUS_BY_CODE:
        return STATUS_BY_CODE[code]
    if isinstance(exc, TooLarge):
        return 413
    if isinstance(exc, Unauthorised):
        return 401
    if isinstance(exc, (Busy, ModelUnavailableError)):
        return 503
    if isinstance(exc, TimedOut):
        return 504
    if isinstance(exc, InputError):
        return 400
    if isinstance(exc, KBError):
        return 500  # a damaged or missing KB is the server's problem
    return 500


def make_scrubber(settings: ServeSettings) -> Any:
    """``scrub(message)``: the server's own paths replaced by placeholders."""
    from ..config import cache_dir

    kb = Path(settings.kb).expanduser()
    pairs = []
    for p, name in ((kb.resolve(), "<kb>"), (kb, "<kb>"), (cache_dir(), "<cache>"), (Path(sys.prefix), "<server>"),
                    (Path(tempfile.gettempdir()), "<tmp>"), (Path.home(), "<home>"), (Path.cwd(), "<cwd>")):
        s = str(p)
        if len(s) > 1 and (s, name) not in pairs:
            pairs.append((s, name))
    pairs.sort(key=lambda t: -len(t[0]))  # the longest first: /tmp/x/kb before /tmp

    def scrub(message: str) -> str:
        for s, name in pairs:
            message = message.replace(s, name)
        return message

    return scrub


class BodyLimit:
    """Reads a POST/PUT body up to ``limit`` bytes before the app sees it; 413 (E720) beyond
    it, also from a ``Content-Length`` that already says so."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        size = int(declared) if declared and declared.isdigit() else None
        if size is not None and size > self.limit:
            await self._refuse(scope, send, size)
            return
        chunks: list[bytes] = []
        total = 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            body = msg.get("body", b"")
            total += len(body)
            if total > self.limit:
                await self._refuse(scope, send, total)
                return
            chunks.append(body)
            if not msg.get("more_body", False):
                break
        data = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": data, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, send: Send, size: int) -> None:
        msg = Errors.E720.format(what="request body", size=size, limit=self.limit)
        resp = JSONResponse({"code": "E720", "message": msg}, status_code=413, headers={"Connection": "close"})
        await resp(scope, _drain, send)


async def _drain() -> Message:
    return {"type": "http.disconnect"}


def create_app(settings: ServeSettings, engine: Engine | None = None, load: bool = True) -> FastAPI:
    """The app of one worker. ``engine``: a prebuilt engine (tests); ``load=False`` leaves the
    models unloaded (the engine's :meth:`~Engine.start` is then the caller's)."""
    owned = engine is None
    engine = engine or Engine(settings)
    runner = Runner(settings.threads, settings.max_pending, settings.timeout, settings.retry_after)
    metrics = Metrics()
    metrics.add_gauges(engine.gauges)
    metrics.add_gauges(lambda: [
        ("pixlink_requests_in_progress", "gauge", {}, float(runner.admission.pending)),
        ("pixlink_requests_refused_total", "counter", {}, float(runner.admission.refused)),
    ])
    scrub = make_scrubber(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if load and not engine.ready and engine.error is None:
            threading.Thread(target=engine.start, name="pixlink-load", daemon=True).start()
        yield
        runner.close()
        if owned:
            engine.close()

    app = FastAPI(title="pixlink", version=__version__, lifespan=lifespan,
                  description="Link what a person points at in an image to knowledge-base entities; grounded "
                              "multimodal NER; Label Studio ML backend. Errors are JSON {code, message}.")
    app.state.settings = settings
    app.state.engine = engine
    app.state.runner = runner
    app.state.metrics = metrics
    app.state.scrub = scrub

    def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"code": code, "message": scrub(message)}, status_code=status, headers=headers)

    @app.exception_handler(PixlinkError)
    async def pixlink_error(request: Request, exc: PixlinkError) -> JSONResponse:
        status = status_of(exc)
        headers = {"Retry-After": str(settings.retry_after)} if status == 503 else None
        if status >= 500:
            log.warning("%s %s -> %d: %s", request.method, request.url.path, status, exc)
        return error(status, exc.code or "E729", str(exc), headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors()[:5]:
            where = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
            parts.append(f"{where or 'body'}: {e.get('msg', 'invalid')}")
        return error(422, "E724", Errors.E724.format(reason="; ".join(parts) or "the body does not match the schema"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error(404, "E730", Errors.E730.format(what=f"no route {request.url.path} (see /docs)"))
        if exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            return error(405, "E731", Errors.E731.format(method=request.method, allowed=allowed or "see /docs"))
        return error(exc.status_code, "E724", Errors.E724.format(reason=str(exc.detail)))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        rid = request.headers.get("x-request-id") or getattr(request.state, "rid", "-")
        log.error("request %s %s (id %s) failed", request.method, request.url.path, rid, exc_info=exc)
        return error(500, "E729", Errors.E729.format(kind=type(exc).__name__, rid=rid))

    @app.middleware("http")
    async def observe(request: Request, call_next: Any) -> Any:
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex[:16]
        request.state.rid = rid
        t0 = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            response.headers["X-Request-ID"] = rid
            return response
        finally:
            route = request.scope.get("route")
            name = getattr(route, "path", None) or ("static" if request.url.path.startswith("/static") else "other")
            metrics.observe(name, request.method, status, time.perf_counter() - t0)

    from .labelstudio import router as labelstudio_router
    from .routes import api, meta

    app.include_router(meta)
    app.include_router(api)
    app.include_router(labelstudio_router)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes * 4 // 3 + 2**16)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type", "X-API-Key", "Authorization", "X-Request-ID"])
    return app


def app_from_env() -> FastAPI:
    """The factory of a uvicorn worker process: the settings come as JSON in
    ``PIXLINK_SERVE_SETTINGS``, the secrets from their own variables."""
    text = os.environ.get(SETTINGS_ENV)
    if not text:
        raise InputError(Errors.E737.format(what=SETTINGS_ENV, value=None, reason="not set; start the service with "
                                                                                  "`pixlink serve --kb KB`"))
    return create_app(ServeSettings.from_json(text).with_environment())
