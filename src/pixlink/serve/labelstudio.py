"""Label Studio ML backend: the routes Label Studio calls, under ``/labelstudio``.

Point Label Studio's *Model* setting (Settings -> Model -> Connect model) at
``http://HOST:PORT/labelstudio``. Label Studio then calls:

* ``GET  /labelstudio/health`` (and ``/labelstudio/``) -> ``{"status": "UP", "model_class": ...}``
* ``POST /labelstudio/setup`` <- ``{project, schema, ...}`` -> ``{"model_version": ...}``
* ``POST /labelstudio/predict`` <- ``{tasks, label_config, params: {context}}`` -> ``{"results": [...]}``
* ``POST /labelstudio/webhook`` <- training events -> 201 ``{"status": "ok"}`` (pixlink does not
  train from annotations; the event is acknowledged and ignored, as the answer says)
* ``GET  /labelstudio/metrics`` -> ``{}``

Answers are Label Studio predictions: per region a ``rectanglelabels`` box and a ``brushlabels``
mask in **Label Studio's own brush RLE** (:func:`pixlink.labelstudio.brush_rle`, not COCO's), with percent
coordinates, plus the entity id in a per-region ``TextArea`` (or ``Choices``) that shares the
region's ``id``. Interactive ("smart") mode: a keypoint or rectangle the annotator draws arrives
in ``params.context.result``; each keypoint is a click (``is_positive`` -> label 1/0), a
rectangle a box prompt; the answer is the mask, the box and the entity. Without a context,
the backend pre-annotates the faces it finds (each face's person box linked).

Task images are fetched only from the configured Label Studio host (``LABEL_STUDIO_URL``, with
``LABEL_STUDIO_API_KEY`` as ``Authorization: Token ...``), never from another URL (E732), and
with the same byte and pixel limits as uploads.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any, Optional
from urllib.parse import urljoin, urlsplit

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from ..errors import Errors, InputError, PixlinkError
from ..labelstudio import brush_result, rectangle_result, result_base
from ..log import get_logger
from .engine import Engine
from .routes import engine_of, require_key, require_ready, runner_of
from .store import StoredImage

log = get_logger("pixlink.serve.labelstudio")

MODEL_CLASS = "PixlinkEntityLinker"

# ---------------------------------------------------------------------------------------------
# the labelling config
# ---------------------------------------------------------------------------------------------
@dataclass
class Tools:
    """The control tags of a labelling config that pixlink answers with.

    Attributes:
        image: the ``<Image>`` tag's name and its data key (``value="$image"`` -> ``image``).
        rect, brush: ``(name, [labels])`` of the ``RectangleLabels`` / ``BrushLabels`` tags.
        entity: name of the per-region ``TextArea`` or ``Choices`` that holds the entity id,
            and ``entity_kind`` ``"textarea"`` or ``"choices"``.
    """

    image: str = "image"
    data_key: str = "image"
    rect: Optional[tuple[str, list[str]]] = None
    brush: Optional[tuple[str, list[str]]] = None
    entity: Optional[str] = None
    entity_kind: str = "textarea"
    choices: list[str] = field(default_factory=list)


def parse_config(xml: str) -> Tools:
    """Read the tags pixlink uses from a labelling config (E734 when it has no ``<Image>`` or
    neither ``RectangleLabels`` nor ``BrushLabels`` for it)."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise InputError(Errors.E734.format(reason=f"not XML ({exc})")) from exc
    tools = Tools()
    img = next(iter(root.iter("Image")), None)
    if img is None:
        raise InputError(Errors.E734.format(reason="it has no <Image> tag"))
    tools.image = img.get("name", "image")
    tools.data_key = img.get("value", "$image").lstrip("$")
    for tag in root.iter():
        if tag.get("toName") not in (None, tools.image):
            continue
        labels = [lab.get("value", "") for lab in tag.iter("Label")]
        if tag.tag == "RectangleLabels" and tools.rect is None:
            tools.rect = (tag.get("name", "box"), labels)
        elif tag.tag == "BrushLabels" and tools.brush is None:
            tools.brush = (tag.get("name", "mask"), labels)
        elif tag.tag in ("TextArea", "Choices") and tag.get("perRegion") == "true" and tools.entity is None:
            tools.entity = tag.get("name")
            tools.entity_kind = tag.tag.lower()
            tools.choices = [c.get("value", "") for c in tag.iter("Choice")]
    if tools.rect is None and tools.brush is None:
        raise InputError(Errors.E734.format(reason=f"no <RectangleLabels> or <BrushLabels> for image {tools.image!r}"))
    return tools


def _label(labels: list[str], wanted: Optional[str]) -> Optional[str]:
    """The config's label for a region: the one named like the entity's type, else the first."""
    if not labels:
        return None
    if wanted:
        for lab in labels:
            if lab.lower() == wanted.lower():
                return lab
    return labels[0]


# ---------------------------------------------------------------------------------------------
# task images
# ---------------------------------------------------------------------------------------------
def task_image_url(url: str, base: Optional[str]) -> str:
    """The absolute URL of a task image, which must be on Label Studio's host (E732/E735)."""
    if not isinstance(url, str) or not url:
        raise InputError(Errors.E734.format(reason="the task has no image URL"))
    u = urlsplit(url)
    if not u.scheme:
        if base is None:
            raise InputError(Errors.E735.format(url=url))
        return urljoin(base.rstrip("/") + "/", url.lstrip("/"))
    if base is None:
        raise InputError(Errors.E732.format(url=url, host="(LABEL_STUDIO_URL is not set)"))
    b = urlsplit(base)
    if (u.scheme, u.netloc) != (b.scheme, b.netloc):
        raise InputError(Errors.E732.format(url=url, host=f"{b.scheme}://{b.netloc}"))
    return url


def fetch_task_image(engine: Engine, url: str) -> StoredImage:
    """Download a task image from Label Studio (size-limited) and keep it like an upload."""
    import httpx

    s = engine.settings
    full = task_image_url(url, s.label_studio_url)
    headers = {"Authorization": f"Token {s.label_studio_api_key}"} if s.label_studio_api_key else {}
    limit = s.max_upload_bytes
    try:
        with httpx.Client(timeout=s.label_studio_timeout, follow_redirects=False) as client:
            with client.stream("GET", full, headers=headers) as resp:
                if resp.status_code != 200:
                    raise PixlinkError(Errors.E733.format(url=url, reason=f"HTTP {resp.status_code}"))
                declared = resp.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > limit:
                    raise InputError(Errors.E720.format(what="task image", size=int(declared), limit=limit))
                buf = bytearray()
                for chunk in resp.iter_bytes():
                    buf += chunk
                    if len(buf) > limit:
                        raise InputError(Errors.E720.format(what="task image", size=len(buf), limit=limit))
    except httpx.HTTPError as exc:
        raise PixlinkError(Errors.E733.format(url=url, reason=type(exc).__name__)) from exc
    return engine.upload(bytes(buf))[0]


# ---------------------------------------------------------------------------------------------
# predictions
# ---------------------------------------------------------------------------------------------
def region_results(tools: Tools, link: Any, size: tuple[int, int], label_hint: Optional[str] = None
                   ) -> list[dict[str, Any]]:
    """The results of one linked region: box, brush mask and entity id, sharing one ``id``."""
    rid = uuid.uuid4().hex[:10]
    top = None if link.nil or not link.candidates else link.candidates[0]
    score = float(link.candidates[0].score) if link.candidates else 0.0
    region = link.region
    base = result_base(rid, tools.image, size)
    out: list[dict[str, Any]] = []
    if tools.rect is not None and region is not None:
        name, labels = tools.rect
        lab = _label(labels, label_hint)
        out.append(rectangle_result(base, name, region.bbox, [lab] if lab else [], score=score))
    if tools.brush is not None and region is not None and region.mask is not None:
        name, labels = tools.brush
        lab = _label(labels, label_hint)
        out.append(brush_result(base, name, region.mask, [lab] if lab else [], score=score))
    if tools.entity is not None:
        eid = top.entity_id if top is not None else "NIL"
        if tools.entity_kind == "textarea":
            out.append({**base, "from_name": tools.entity, "type": "textarea", "value": {"text": [eid]}})
        elif eid in tools.choices:
            out.append({**base, "from_name": tools.entity, "type": "choices", "value": {"choices": [eid]}})
    return out


def _context_prompt(context: dict[str, Any]) -> tuple[Optional[dict[str, Any]], Optional[str]]:
    """The prompt of an interactive call: keypoints -> clicks, a rectangle -> a box (percent ->
    pixels). Returns ``(prompt, label)`` or ``(None, None)`` without one."""
    points, labels, box, label = [], [], None, None
    for r in context.get("result") or []:
        if not isinstance(r, dict):
            continue
        v = r.get("value") or {}
        w, h = r.get("original_width"), r.get("original_height")
        if not w or not h:
            continue
        kind = r.get("type", "")
        names = v.get(kind) if isinstance(v.get(kind), list) else None
        label = label or (names[0] if names else None)
        try:
            if kind == "keypointlabels":
                points.append([float(v["x"]) * w / 100.0, float(v["y"]) * h / 100.0])
                labels.append(0 if r.get("is_positive") is False else 1)
            elif kind == "rectanglelabels":
                x, y = float(v["x"]) * w / 100.0, float(v["y"]) * h / 100.0
                box = [x, y, x + float(v["width"]) * w / 100.0, y + float(v["height"]) * h / 100.0]
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(Errors.E724.format(reason=f"context region {r.get('id')!r} has no usable coordinates ({exc})"))
    if box is not None:
        return {"box": box}, label
    if points:
        return {"points": points, "labels": labels}, label
    return None, None


def predict_task(engine: Engine, tools: Tools, task: dict[str, Any], context: Optional[dict[str, Any]]) -> dict[str, Any]:
    """One task's prediction (runs on an engine thread)."""
    data = task.get("data") or {}
    img = fetch_task_image(engine, data.get(tools.data_key))
    h, w = img.size
    text = None
    for key in ("text", "caption"):
        if isinstance(data.get(key), str):
            text = data[key]
    results: list[dict[str, Any]] = []
    scores: list[float] = []
    if context:
        prompt, label = _context_prompt(context)
        if prompt is None:
            return {"result": [], "score": 0.0, "model_version": model_version(engine)}
        link = engine.link(img, prompt, text, k=1)
        results += region_results(tools, link, (h, w), label)
        scores.append(link.candidates[0].score if link.candidates else 0.0)
    else:
        for box in engine.person_boxes(img):
            link = engine.link(img, {"box": box}, text, k=1)
            results += region_results(tools, link, (h, w), "PER")
            scores.append(link.candidates[0].score if link.candidates else 0.0)
    return {"result": results, "score": float(np.mean(scores)) if scores else 0.0, "model_version": model_version(engine)}


def model_version(engine: Engine) -> str:
    from .. import __version__

    build = (engine.kb_info.get("build_id") or "")[:8]
    return f"pixlink-{__version__}-kb-{build}" if build else f"pixlink-{__version__}"


# ---------------------------------------------------------------------------------------------
# routes
# ---------------------------------------------------------------------------------------------
router = APIRouter(prefix="/labelstudio", tags=["Label Studio ML backend"], dependencies=[Depends(require_key)])


@router.get("/")
@router.get("/health")
async def ls_health(request: Request) -> JSONResponse:
    engine = engine_of(request)
    status = "UP" if engine.ready else "DOWN"
    return JSONResponse({"status": status, "model_class": MODEL_CLASS}, status_code=200 if engine.ready else 503)


@router.get("/metrics")
async def ls_metrics() -> dict[str, Any]:
    return {}


@router.post("/setup")
async def ls_setup(request: Request) -> dict[str, Any]:
    engine = engine_of(request)
    require_ready(engine, runner_of(request).retry_after)
    body = await _json(request)
    schema = body.get("schema")
    if isinstance(schema, str) and schema.strip():
        parse_config(schema)  # E734 now, not at the first prediction
    return {"model_version": model_version(engine)}


@router.post("/predict")
async def ls_predict(request: Request) -> dict[str, Any]:
    engine, runner = engine_of(request), runner_of(request)
    require_ready(engine, runner.retry_after)
    body = await _json(request)
    tasks = body.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise InputError(Errors.E724.format(reason="`tasks` must be a non-empty list"))
    if len(tasks) > engine.settings.max_prompts:
        raise InputError(Errors.E726.format(n=len(tasks), limit=engine.settings.max_prompts))
    tools = parse_config(str(body.get("label_config") or ""))
    params = body.get("params") or {}
    context = params.get("context") if isinstance(params, dict) else None

    def work() -> dict[str, Any]:
        return {"results": [predict_task(engine, tools, t if isinstance(t, dict) else {}, context) for t in tasks]}

    return await runner.run(work)


@router.post("/webhook", status_code=201)
async def ls_webhook(request: Request) -> JSONResponse:
    body = await _json(request)
    action = body.get("action")
    return JSONResponse({"status": "ok", "result": {"action": action, "trained": False,
                                                    "note": "pixlink does not train from Label Studio annotations"}},
                        status_code=201)


async def _json(request: Request) -> dict[str, Any]:
    import json

    raw = await request.body()
    try:
        body = json.loads(raw or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(Errors.E724.format(reason=f"the body is not JSON ({exc})")) from exc
    if not isinstance(body, dict):
        raise InputError(Errors.E724.format(reason="the body must be a JSON object"))
    return body
