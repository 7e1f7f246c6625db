"""The REST routes: uploads, linking, GMNER, the KB, health, readiness and metrics.

Blocking work runs through the worker's :class:`~pixlink.serve.limits.Runner` (admission,
timeout); every answer is JSON (an error is ``{"code", "message"}``, see :mod:`pixlink.serve.app`).
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any, Optional

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from ..errors import Errors, InputError, PixlinkError
from ..types import Link
from .engine import Engine
from .limits import Runner, TooLarge, check_api_key
from .schemas import AnnotateRequest, BatchRequest, GMNERRequest, ImageRef, LinkRequest
from .store import StoredImage

UPLOAD_BODY = {
    "requestBody": {
        "description": "The image file: multipart/form-data with a `file` field, or the raw bytes.",
        "content": {
            "multipart/form-data": {"schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}},
                                               "required": ["file"]}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "image/*": {"schema": {"type": "string", "format": "binary"}},
        },
        "required": True,
    }
}


def engine_of(request: Request) -> Engine:
    return request.app.state.engine


def runner_of(request: Request) -> Runner:
    return request.app.state.runner


def require_key(request: Request, x_api_key: Optional[str] = Header(None),
                authorization: Optional[str] = Header(None)) -> None:
    """The API key check of the ``/v1`` routes (nothing when the server has no key)."""
    check_api_key(request.app.state.settings.api_key, x_api_key, _basic_password(authorization) or authorization)


def _basic_password(authorization: Optional[str]) -> Optional[str]:
    """``Authorization: Basic base64(user:KEY)`` -> ``Bearer KEY`` (Label Studio's ML backend
    connection sends basic auth), else None."""
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        raw = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return "Bearer " + raw.partition(":")[2]


def require_ready(engine: Engine, retry: int) -> None:
    from .limits import Busy

    if engine.error is not None:
        raise Busy(Errors.E728.format(reason=engine.error))
    if not engine.ready:
        raise Busy(Errors.E727.format(retry=retry))


api = APIRouter(prefix="/v1", dependencies=[Depends(require_key)])
meta = APIRouter()


# ---------------------------------------------------------------------------------------------
# images
# ---------------------------------------------------------------------------------------------
async def read_upload(request: Request, limit: int) -> bytes:
    """The image bytes of an upload request: multipart ``file`` field or the raw body."""
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=4)
        f = form.get("file")
        if f is None or isinstance(f, str):
            raise InputError(Errors.E738.format(reason="the multipart form has no `file` field holding a file"))
        data = await f.read()
        await form.close()
    elif ctype.startswith("application/json") or ctype.startswith("text/"):
        raise InputError(Errors.E738.format(reason=f"content type {ctype!r}: send the image file (multipart field "
                                                   "`file`, or the raw bytes as application/octet-stream or image/*)"))
    else:
        data = await request.body()
    if len(data) > limit:
        raise TooLarge(Errors.E720.format(what="image", size=len(data), limit=limit))
    return data


def image_json(img: StoredImage, known: bool, engine: Engine) -> dict[str, Any]:
    h, w = img.size
    return {"id": img.id, "width": w, "height": h, "known": known,
            "precompute": "started" if engine.settings.precompute else "off"}


@api.post("/images", openapi_extra=UPLOAD_BODY, summary="Upload an image once; get its id (content hash)")
async def upload_image(request: Request) -> JSONResponse:
    engine, runner = engine_of(request), runner_of(request)
    require_ready(engine, runner.retry_after)
    data = await read_upload(request, engine.settings.max_upload_bytes)
    img, known = await runner.run(engine.upload, data)
    return JSONResponse(image_json(img, known, engine), status_code=200 if known else 201)


def _decode_inline(b64: str, limit: int) -> bytes:
    if len(b64) > limit * 4 // 3 + 8:
        raise TooLarge(Errors.E720.format(what="image", size=len(b64) * 3 // 4, limit=limit))
    try:
        return base64.b64decode(b64.split(",", 1)[1] if b64.startswith("data:") else b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError(Errors.E738.format(reason=f"`image` is not base64 ({exc})")) from exc


def resolve_image(engine: Engine, ref: ImageRef, required: bool = True) -> StoredImage | None:
    """The image a request names: ``image_id`` (an upload) or ``image`` (inline base64, kept
    like an upload). Runs on an engine thread (decoding)."""
    if ref.image_id is not None and ref.image is not None:
        raise InputError(Errors.E724.format(reason="give image_id or image, not both"))
    if ref.image is not None:
        return engine.upload(_decode_inline(ref.image, engine.settings.max_upload_bytes))[0]
    if ref.image_id is not None:
        return engine.store.get(ref.image_id)
    if required:
        raise InputError(Errors.E724.format(reason="give image_id (from POST /v1/images) or image (base64)"))
    return None


# ---------------------------------------------------------------------------------------------
# linking
# ---------------------------------------------------------------------------------------------
def check_k(k: int, engine: Engine) -> None:
    if k > engine.settings.max_k:
        raise InputError(Errors.E724.format(reason=f"k={k} is above the server's max_k={engine.settings.max_k}"))


def check_text(text: Optional[str], engine: Engine, what: str = "text") -> None:
    if text is not None and len(text) > engine.settings.max_text_chars:
        raise InputError(Errors.E724.format(reason=f"{what} has {len(text)} characters, above the server's limit of "
                                                   f"{engine.settings.max_text_chars}"))


def thumbnail_url(eid: str) -> str:
    from urllib.parse import quote

    return f"/v1/kb/entities/{quote(eid, safe='')}/image"


def link_json(link: Link, img: StoredImage | None, engine: Engine) -> dict[str, Any]:
    """The answer of one prompt: candidates (with thumbnail URLs), NIL, region, provenance."""
    cands = []
    for c in link.candidates:
        cands.append({"id": c.entity_id, "label": c.label, "description": c.description, "score": c.score,
                      "signals": c.signals, "thumbnail": thumbnail_url(c.entity_id) if engine.has_image(c.entity_id) else None})
    region = None
    if link.region is not None:
        r = link.region
        region = {"box": [round(float(v), 2) for v in r.bbox], "mask": r.to_rle(), "source": r.source,
                  "score": r.score, "image_size": list(r.image_size) if r.image_size else None,
                  "area": int(r.mask.sum()) if r.mask is not None else None}
    return {
        "image_id": img.id if img is not None else None,
        "kb": engine.kb_info,
        "prediction": link.prediction,
        "nil": link.nil,
        "nil_threshold": link.nil_threshold,
        "top_score": link.candidates[0].score if link.candidates else 0.0,
        "candidates": cands,
        "region": region,
        "backends": link.backends,
        "signals": link.signals,
        "notes": link.notes,
        "timings": link.timings,
    }


@api.post("/link", summary="Link one prompt (box, clicks or mask) on an image to KB entities")
async def link_route(body: LinkRequest, request: Request) -> dict[str, Any]:
    engine, runner = engine_of(request), runner_of(request)
    require_ready(engine, runner.retry_after)
    check_k(body.k, engine)
    check_text(body.text, engine)
    t0 = time.perf_counter()

    def work() -> dict[str, Any]:
        t1 = time.perf_counter()
        img = resolve_image(engine, body)
        assert img is not None
        link = engine.link(img, body.prompt.to_linker() if body.prompt else None, body.text, body.k,
                           surface=body.surface, mention_type=body.mention_type)
        out = link_json(link, img, engine)
        out["timings"]["queue"] = round(t1 - t0, 4)
        return out

    out = await runner.run(work)
    out["timings"]["server"] = round(time.perf_counter() - t0, 4)
    return out


@api.post("/link/batch", summary="Link several prompts on one image")
async def link_batch_route(body: BatchRequest, request: Request) -> dict[str, Any]:
    engine, runner = engine_of(request), runner_of(request)
    require_ready(engine, runner.retry_after)
    if len(body.prompts) > engine.settings.max_prompts:
        raise InputError(Errors.E726.format(n=len(body.prompts), limit=engine.settings.max_prompts))
    for item in body.prompts:
        check_k(item.k or body.k, engine)
        check_text(item.text, engine)
    check_k(body.k, engine)
    check_text(body.text, engine)

    def work() -> dict[str, Any]:
        img = resolve_image(engine, body)
        assert img is not None
        results: list[dict[str, Any]] = []
        for item in body.prompts:
            try:
                link = engine.link(img, item.prompt.to_linker() if item.prompt else None,
                                   item.text if item.text is not None else body.text, item.k or body.k,
                                   surface=item.surface, mention_type=item.mention_type)
                results.append({"ok": True, **link_json(link, img, engine)})
            except InputError as exc:  # a bad prompt is reported in its place; the others go on
                results.append({"ok": False, "error": {"code": exc.code, "message": str(exc)}})
        return {"image_id": img.id, "results": results}

    return await runner.run(work)


# ---------------------------------------------------------------------------------------------
# GMNER
# ---------------------------------------------------------------------------------------------
def gmner_json(result: Any, img: StoredImage | None, engine: Engine) -> dict[str, Any]:
    ents = []
    for e in result.entities:
        link = None
        if e.link is not None:
            link = {"prediction": e.link.prediction, "nil": e.link.nil, "nil_threshold": e.link.nil_threshold,
                    "candidates": [{"id": c.entity_id, "label": c.label, "description": c.description, "score": c.score,
                                    "signals": c.signals,
                                    "thumbnail": thumbnail_url(c.entity_id) if engine.has_image(c.entity_id) else None}
                                   for c in e.link.candidates[:3]]}
        region = None
        if e.region is not None:
            region = {"box": [round(float(v), 2) for v in e.region.bbox], "mask": e.region.to_rle(),
                      "source": e.region.source, "score": e.region.score}
        ents.append({"start": e.start, "end": e.end, "type": e.type, "text": e.text, "groundable": e.groundable,
                     "expansion": e.expansion, "score": e.score, "region": region, "link": link})
    return {"image_id": img.id if img is not None else None, "kb": engine.kb_info, "tokens": result.tokens,
            "entities": ents, "notes": result.notes, "backends": result.backends, "timings": result.timings}


@api.post("/gmner", summary="Grounded multimodal NER: text (+ image) -> entities with type, box, mask, link")
async def gmner_route(body: GMNERRequest, request: Request) -> dict[str, Any]:
    engine, runner = engine_of(request), runner_of(request)
    require_ready(engine, runner.retry_after)
    check_text(body.text, engine)

    def work() -> dict[str, Any]:
        img = resolve_image(engine, body, required=False)
        return gmner_json(engine.gmner_run(img, body.text), img, engine)

    return await runner.run(work)


# ---------------------------------------------------------------------------------------------
# reverse annotation
# ---------------------------------------------------------------------------------------------
def annotate_json(res: Any, img: StoredImage, engine: Engine) -> dict[str, Any]:
    rec = res.to_record()
    region = rec.get("region")
    if region is not None:
        region = {"box": [round(float(v), 2) for v in region["box"]], "mask": region["mask"],
                  "source": region["source"], "score": region["score"]}
    return {"image_id": img.id, "kb": engine.kb_info, "entity": {"id": res.item.entity, "label": rec["entity_label"]},
            "status": rec["status"], "rule": rec["rule"], "flags": rec["flags"], "region": region,
            "text_prompt": rec["text_prompt"], "labels": rec["labels"], "figures": rec["figures"],
            "verify": rec["verify"], "notes": rec["notes"], "backends": rec["backends"], "timings": rec["timings"],
            **({"vpwiki": rec["vpwiki"]} if "vpwiki" in rec else {})}


@api.post("/annotate", summary="Reverse annotation: image + KB entity (+ question) -> the entity's region, or why not")
async def annotate_route(body: AnnotateRequest, request: Request) -> dict[str, Any]:
    engine, runner = engine_of(request), runner_of(request)
    require_ready(engine, runner.retry_after)
    for what in ("question", "mention", "caption"):
        check_text(getattr(body, what), engine, what)

    def work() -> dict[str, Any]:
        img = resolve_image(engine, body)
        res = engine.annotate(img, body.entity, question=body.question, mode=body.mode, mention=body.mention,
                              caption=body.caption)
        return annotate_json(res, img, engine)

    return await runner.run(work)


# ---------------------------------------------------------------------------------------------
# the KB
# ---------------------------------------------------------------------------------------------
def entity_json(engine: Engine, eid: str) -> dict[str, Any]:
    e = engine.entity(eid)
    hyper = [{"relation": rel, "id": tid, "label": label, "depth": depth} for rel, tid, label, depth in engine.kb.hypernyms(eid)]
    n_images = sum(1 for _, p in engine.kb.image_refs(eid) if p)
    return {"id": e.id, "label": e.label, "description": e.description, "aliases": list(e.aliases),
            "types": list(e.types), "hypernyms": hyper, "popularity": e.popularity, "images": n_images,
            "thumbnail": thumbnail_url(e.id) if n_images else None, "kb": engine.kb_info}


@api.get("/kb/search", summary="Search the KB by name (BM25 over labels, aliases and descriptions)")
async def kb_search(request: Request, q: str = Query(..., min_length=1, max_length=200),
                    k: int = Query(10, ge=1)) -> dict[str, Any]:
    engine = engine_of(request)
    require_ready(engine, runner_of(request).retry_after)
    check_k(k, engine)

    def work() -> dict[str, Any]:
        hits = engine.kb.search(q, k=k)
        return {"query": q, "kb": engine.kb_info, "results": [
            {"id": e.id, "label": e.label, "description": e.description, "score": round(float(s), 4),
             "thumbnail": thumbnail_url(e.id) if engine.has_image(e.id) else None} for e, s in hits]}

    return await run_in_threadpool(work)


@api.get("/kb/entities/{eid}", summary="One entity with its types and hypernyms")
async def kb_entity(eid: str, request: Request) -> dict[str, Any]:
    engine = engine_of(request)
    require_ready(engine, runner_of(request).retry_after)
    return await run_in_threadpool(entity_json, engine, eid)


@api.get("/kb/entities/{eid}/image", summary="The entity's image (a JPEG thumbnail)",
         response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
async def kb_entity_image(eid: str, request: Request, i: int = Query(0, ge=0)) -> Response:
    engine = engine_of(request)
    require_ready(engine, runner_of(request).retry_after)
    data = await run_in_threadpool(engine.thumbnail, eid, i)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


# ---------------------------------------------------------------------------------------------
# health, readiness, metrics
# ---------------------------------------------------------------------------------------------
@meta.get("/health", summary="Liveness: the process answers")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@meta.get("/ready", summary="Readiness: the models are loaded (503 until then)")
async def ready(request: Request) -> JSONResponse:
    engine, runner = engine_of(request), runner_of(request)
    try:
        require_ready(engine, runner.retry_after)
    except PixlinkError as exc:
        return JSONResponse({"ready": False, "code": exc.code, "message": request.app.state.scrub(str(exc))},
                            status_code=503, headers={"Retry-After": str(runner.retry_after)})
    backends = {role: d.get("backend") for role, d in engine.linker.profile.describe().items()}
    return JSONResponse({"ready": True, "kb": engine.kb_info, "backends": backends,
                         "load_seconds": round(engine.load_seconds or 0.0, 2), "limits": engine.settings.public()})


@meta.get("/metrics", summary="Prometheus metrics of this worker", response_class=PlainTextResponse)
async def metrics(request: Request) -> PlainTextResponse:
    return PlainTextResponse(request.app.state.metrics.render(), media_type="text/plain; version=0.0.4")
