"""The kinds of work a job runs, one :class:`Task` each: ``link``, ``gmner``, ``ner``, ``embed``.

A task is used in two places:

* on the driver, :meth:`Task.check` validates and completes the job's parameters before any
  model loads (so that a typo fails at once, not in every worker);
* in each worker process or Ray actor, :meth:`Task.build` makes the worker's engine once (a
  :class:`~pixlink.link.Linker` from its :class:`~pixlink.link.LinkerSpec`, a GMNER pipeline, a
  tagger, an encoder) and returns a :class:`Runner`, whose :meth:`Runner.run_batch` turns a batch
  of manifest items into one :class:`Outcome` per item. An item that fails (a missing image, a
  bad box...) is an outcome with its error code; it never stops the batch.

Items are the manifest's rows as dicts, with the fields of the Python API:

==========  ==================================================================================
task        item fields (``id`` always)
==========  ==================================================================================
``link``    ``image`` (path or URI; none for a text-only mention), ``prompt`` (``{"box": [x1, y1,
            x2, y2]}``, ``{"points": [[x, y]], "labels": [1]}`` or ``{"mask": RLE}``; or ``box`` /
            ``points`` / ``mask`` at the top level), ``text``, ``surface``, ``mention_type``, ``k``
``gmner``   ``image`` (optional), ``text`` or ``tokens``
``ner``     ``text`` or ``tokens``
``embed``   ``payload``: what the signal's KB encoder takes (entity text, an image path)
``annotate`` ``image``, ``entity``, ``question``, ``mention``, ``caption``, ``split``
            (:class:`pixlink.annotate.AnnotationItem`)
==========  ==================================================================================

The full answer of an item (``Link.to_dict()``, ``GMNERResult.to_dict()``, the NER spans) goes
to the ``result`` column as JSON; a few columns are also written flat for quick queries
(:attr:`Task.columns`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

from ..errors import Errors, InputError, ModelUnavailableError, PixlinkError
from ..log import get_logger

log = get_logger("pixlink.jobs")

_TASKS: dict[str, type["Task"]] = {}


def register_task(cls: type["Task"]) -> type["Task"]:
    """Class decorator: register a :class:`Task` under its ``name``."""
    _TASKS[cls.name] = cls
    return cls


def task_names() -> tuple[str, ...]:
    return tuple(_TASKS)


def get_task(name: str) -> "Task":
    try:
        return _TASKS[name]()
    except KeyError:
        raise InputError(Errors.E750.format(task=name, tasks=", ".join(_TASKS))) from None


@dataclass
class Outcome:
    """What one item gave: the full answer (``result``, JSON-ready) and the task's flat
    columns, or the error (message and code). ``seconds`` is the item's share of the work."""

    id: str
    ok: bool
    result: Any = None
    flat: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    code: str | None = None
    seconds: float = 0.0
    worker: str | None = None


def failed(item_id: str, exc: PixlinkError, seconds: float = 0.0) -> Outcome:
    return Outcome(id=item_id, ok=False, error=str(exc), code=exc.code, seconds=seconds)


class Runner:
    """A worker's engine for one task: built once per process / actor, then fed batches."""

    def run_item(self, item: dict[str, Any]) -> Outcome:
        raise NotImplementedError

    def run_batch(self, items: Sequence[dict[str, Any]]) -> list[Outcome]:
        """One outcome per item, in order; an item's :class:`PixlinkError` is its outcome.
        A model that cannot run at all (:class:`ModelUnavailableError`) stops the job."""
        out = []
        for item in items:
            t0 = time.perf_counter()
            try:
                res = self.run_item(item)
            except ModelUnavailableError:
                raise
            except PixlinkError as exc:
                res = failed(item["id"], exc)
            res.seconds = time.perf_counter() - t0
            out.append(res)
        return out


class Task:
    """A kind of job (see the module docstring). Subclass, set ``name`` and ``columns``,
    implement :meth:`check` and :meth:`build`, decorate with :func:`register_task`."""

    name: ClassVar[str] = ""
    columns: ClassVar[tuple[tuple[str, str], ...]] = ()
    """Flat columns ``(name, arrow type)``: ``string``, ``bool``, ``float64``, ``int32``,
    ``list<float32>``."""
    description: ClassVar[str] = ""

    def check(self, params: dict[str, Any]) -> dict[str, Any]:
        """The parameters, validated and completed (driver side, before any model loads)."""
        return dict(params)

    def build(self, params: dict[str, Any]) -> Runner:
        """The worker's engine (worker side, once)."""
        raise NotImplementedError

    def kb_manifest(self, params: dict[str, Any]) -> list[dict[str, Any]] | None:
        """Items made from the KB when no manifest is given (``embed``); None: a manifest is needed."""
        return None


# ------------------------------------------------------------------------------------------
# shared helpers
# ------------------------------------------------------------------------------------------


def profile_params(task: str, params: dict[str, Any]) -> dict[str, Any]:
    """``profile``, ``overrides``, ``options``, ``device`` of ``params``, checked."""
    out = {
        "profile": params.get("profile", "auto"),
        "overrides": dict(params.get("overrides") or {}),
        "options": {k: dict(v) for k, v in (params.get("options") or {}).items()},
        "device": params.get("device"),
    }
    if out["profile"] not in ("offline", "hub", "auto"):
        raise InputError(Errors.E757.format(name="profile", task=task, reason="offline, hub or auto"))
    if out["device"] is not None:
        from ..device import requested_device

        out["device"] = requested_device(out["device"])
    return out


def make_profile(params: dict[str, Any]) -> Any:
    from ..models import Profile

    kw: dict[str, Any] = {"overrides": params["overrides"], "options": params["options"]}
    if params.get("device") is not None:
        kw["device"] = params["device"]
    return Profile(params["profile"], **kw)


def check_kb(task: str, kb: Any, required: bool) -> str | None:
    if kb is None:
        if required:
            raise InputError(Errors.E757.format(name="kb", task=task, reason="a KB directory is needed"))
        return None
    path = Path(str(kb))
    if not (path / "meta.json").is_file():
        raise InputError(Errors.E757.format(name="kb", task=task, reason=f"{path} is not a KB directory (no meta.json)"))
    return str(path.resolve())


def read_image_source(source: Any) -> Any:
    """An item's ``image``: a local path is returned as is (``load_image`` reads it); a URI is
    fetched to bytes: ``file://``, the schemes pyarrow's file systems know (``s3://``,
    ``gs://``, ``hdfs://``) and ``http(s)://``. Raises E758 when it cannot be fetched."""
    if not isinstance(source, str) or "://" not in source:
        return source
    scheme = source.split("://", 1)[0].lower()
    if scheme == "file":
        from urllib.parse import unquote, urlparse

        return unquote(urlparse(source).path)
    if scheme in ("http", "https"):
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(source, timeout=30) as resp:  # noqa: S310 (the user's own manifest)
                return resp.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise InputError(Errors.E758.format(uri=source, reason=str(exc))) from exc
    import pyarrow.fs as pafs

    try:
        fs, path = pafs.FileSystem.from_uri(source)
        with fs.open_input_stream(path) as fh:
            return fh.read()
    except (OSError, ValueError, TypeError) as exc:  # pyarrow raises ArrowInvalid (a ValueError) / OSError
        raise InputError(Errors.E758.format(uri=source, reason=str(exc))) from exc


def _text_or_tokens(item: dict[str, Any]) -> tuple[str | None, list[str] | None]:
    text, tokens = item.get("text"), item.get("tokens")
    if tokens is not None:
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise InputError(Errors.E752.format(where=repr(item["id"]), reason="tokens must be a list of strings"))
        return None, tokens
    if not isinstance(text, str) or not text.strip():
        raise InputError(Errors.E752.format(where=repr(item["id"]), reason="it needs a non-empty text (or tokens)"))
    return text, None


# ------------------------------------------------------------------------------------------
# link
# ------------------------------------------------------------------------------------------


class _LinkRunner(Runner):
    def __init__(self, linker: Any, k: int) -> None:
        self.linker, self.k = linker, k

    def run_item(self, item: dict[str, Any]) -> Outcome:
        prompt = item.get("prompt")
        if prompt is None:
            found = {key: item[key] for key in ("box", "points", "labels", "mask") if item.get(key) is not None}
            prompt = found or None
        k = item.get("k", self.k)
        image = read_image_source(item.get("image")) if item.get("image") is not None else None
        link = self.linker.link(image, prompt, text=item.get("text"), k=k, mention_id=item["id"],
                                surface=item.get("surface"), mention_type=item.get("mention_type"))
        top = link.candidates[0].score if link.candidates else None
        return Outcome(id=item["id"], ok=True, result=link.to_dict(),
                       flat={"prediction": link.prediction, "nil": link.nil, "score": top})


@register_task
class LinkTask(Task):
    name = "link"
    columns = (("prediction", "string"), ("nil", "bool"), ("score", "float64"))
    description = "link each item's region (+ caption) to the KB (Linker.link)"

    def check(self, params: dict[str, Any]) -> dict[str, Any]:
        from ..link import LinkerSpec

        spec = params.get("linker")
        if not isinstance(spec, dict):
            raise InputError(Errors.E757.format(name="linker", task=self.name, reason="a LinkerSpec as a JSON object"))
        spec = LinkerSpec.from_dict(spec).to_dict()  # validated (E406)
        spec["kb"] = check_kb(self.name, spec["kb"], required=True)
        k = params.get("k", 5)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InputError(Errors.E757.format(name="k", task=self.name, reason="an integer >= 1"))
        return {"linker": spec, "k": k}

    def build(self, params: dict[str, Any]) -> Runner:
        from ..link import LinkerSpec

        linker = LinkerSpec.from_dict(params["linker"]).build()
        # load the signals' models now, once per worker, not inside the first items (a role that
        # cannot run is noted by the linker at each call, as with the Python API)
        for role in dict.fromkeys(s.role for s in linker.signals if s.role):
            try:
                linker.profile.get(role)
            except ModelUnavailableError:
                pass
        return _LinkRunner(linker, int(params["k"]))


# ------------------------------------------------------------------------------------------
# gmner
# ------------------------------------------------------------------------------------------


class _GMNERRunner(Runner):
    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline

    def run_item(self, item: dict[str, Any]) -> Outcome:
        text, tokens = _text_or_tokens(item)
        image = read_image_source(item.get("image")) if item.get("image") is not None else None
        res = self.pipeline.run(image, text=text, tokens=tokens)
        return Outcome(id=item["id"], ok=True, result=res.to_dict(), flat={"n_entities": len(res.entities)})


@register_task
class GMNERTask(Task):
    name = "gmner"
    columns = (("n_entities", "int32"),)
    description = "entities of each post with types, boxes, masks and KB links (GMNERPipeline.run)"

    def check(self, params: dict[str, Any]) -> dict[str, Any]:
        from ..ner.gmner import GMNERConfig

        out = profile_params(self.name, params)
        out["kb"] = check_kb(self.name, params.get("kb"), required=False)
        cfg = dict(params.get("config") or {})
        if "expansion_sources" in cfg:
            cfg["expansion_sources"] = tuple(cfg["expansion_sources"])
        try:
            GMNERConfig(**cfg)
        except TypeError as exc:
            raise InputError(Errors.E757.format(name="config", task=self.name, reason=str(exc))) from exc
        out["config"] = {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}
        return out

    def build(self, params: dict[str, Any]) -> Runner:
        from ..ner.gmner import GMNERConfig, GMNERPipeline

        cfg = dict(params.get("config") or {})
        if "expansion_sources" in cfg:
            cfg["expansion_sources"] = tuple(cfg["expansion_sources"])
        return _GMNERRunner(GMNERPipeline.from_kb(params.get("kb"), profile=make_profile(params), config=GMNERConfig(**cfg)))


# ------------------------------------------------------------------------------------------
# ner
# ------------------------------------------------------------------------------------------


class _NERRunner(Runner):
    def __init__(self, tagger: Any) -> None:
        self.tagger = tagger

    def _answer(self, item_id: str, tokens: list[str], spans: Any) -> Outcome:
        ents = [{"start": s, "end": e, "type": t, "text": " ".join(tokens[s:e])} for s, e, t in spans]
        return Outcome(id=item_id, ok=True, result={"tokens": tokens, "entities": ents}, flat={"n_entities": len(ents)})

    def run_item(self, item: dict[str, Any]) -> Outcome:
        text, tokens = _text_or_tokens(item)
        toks = tokens if tokens is not None else str(text).split()
        return self._answer(item["id"], toks, self.tagger.tag_tokens([toks])[0])

    def run_batch(self, items: Sequence[dict[str, Any]]) -> list[Outcome]:
        """The tagger sees the batch's good posts at once; items that are not posts fail alone."""
        t0 = time.perf_counter()
        out: list[Outcome | None] = [None] * len(items)
        good: list[tuple[int, list[str]]] = []
        for i, item in enumerate(items):
            try:
                text, tokens = _text_or_tokens(item)
                good.append((i, tokens if tokens is not None else str(text).split()))
            except PixlinkError as exc:
                out[i] = failed(item["id"], exc)
        if good:
            try:
                spans = self.tagger.tag_tokens([t for _, t in good])
            except ModelUnavailableError:
                raise
            except PixlinkError:  # one post spoils the batch: tag them one by one
                for i, _ in good:
                    out[i] = super().run_batch([items[i]])[0]
            else:
                for (i, toks), sp in zip(good, spans):
                    out[i] = self._answer(items[i]["id"], toks, sp)
        share = (time.perf_counter() - t0) / max(len(items), 1)
        for o in out:
            assert o is not None
            o.seconds = o.seconds or share
        return [o for o in out if o is not None]


@register_task
class NERTask(Task):
    name = "ner"
    columns = (("n_entities", "int32"),)
    description = "named entities of each text (the profile's ner role)"

    def check(self, params: dict[str, Any]) -> dict[str, Any]:
        return profile_params(self.name, params)

    def build(self, params: dict[str, Any]) -> Runner:
        from ..models import roles as R

        return _NERRunner(make_profile(params).get(R.NER))


# ------------------------------------------------------------------------------------------
# annotate (reverse region-entity annotation, pixlink.annotate)
# ------------------------------------------------------------------------------------------


def _annotate_module() -> Any:
    import importlib

    try:
        return importlib.import_module("pixlink.annotate")
    except ImportError as exc:
        raise InputError(Errors.E757.format(name="task", task="annotate",
                                            reason=f"this pixlink has no annotate package ({exc})")) from exc


def _annotate_config(params: dict[str, Any]) -> Any:
    cfg = dict(params.get("config") or {})
    for key in ("references", "annotators"):
        if key in cfg:
            cfg[key] = tuple(cfg[key])
    try:
        return _annotate_module().AnnotateConfig(**cfg)
    except TypeError as exc:
        raise InputError(Errors.E757.format(name="config", task="annotate", reason=str(exc))) from exc


class _AnnotateRunner(Runner):
    def __init__(self, annotator: Any, item_cls: Any) -> None:
        self.annotator, self.item_cls = annotator, item_cls

    def run_item(self, item: dict[str, Any]) -> Outcome:
        it = self.item_cls.from_dict(dict(item), default_id=item["id"])
        rec = self.annotator.annotate(it).to_record()
        return Outcome(id=item["id"], ok=True, result=rec, flat={"status": rec.get("status"), "rule": rec.get("rule")})


@register_task
class AnnotateTask(Task):
    name = "annotate"
    columns = (("status", "string"), ("rule", "string"))
    description = "reverse annotation of (image, entity[, question]) items (ReverseAnnotator.annotate)"

    def check(self, params: dict[str, Any]) -> dict[str, Any]:
        out = profile_params(self.name, params)
        out["kb"] = check_kb(self.name, params.get("kb"), required=True)
        out["config"] = _annotate_config(params).to_dict()
        return out

    def build(self, params: dict[str, Any]) -> Runner:
        mod = _annotate_module()
        annotator = mod.ReverseAnnotator.from_kb(params["kb"], profile=make_profile(params), config=_annotate_config(params))
        return _AnnotateRunner(annotator, mod.AnnotationItem)


# ------------------------------------------------------------------------------------------
# embed (the KB side of a dense signal, as ``pixlink kb embed`` computes it)
# ------------------------------------------------------------------------------------------


class _EmbedRunner(Runner):
    def __init__(self, encode: Callable[[list[Any]], Any], model_id: str) -> None:
        self.encode, self.model_id = encode, model_id

    def _vectors(self, payloads: list[Any]) -> Any:
        import numpy as np

        arr = np.asarray(self.encode(payloads), dtype=np.float32)
        if arr.ndim != 2 or arr.shape[0] != len(payloads) or arr.shape[1] == 0:
            raise InputError(Errors.E242.format(model=self.model_id, what=f"shape {arr.shape}", n=len(payloads), dim="D"))
        return arr

    def _outcome(self, item_id: str, vec: Any) -> Outcome:
        import numpy as np

        if not np.isfinite(vec).all():
            return Outcome(id=item_id, ok=False, error=Errors.E243.format(model=self.model_id, key=item_id), code="E243")
        return Outcome(id=item_id, ok=True, result=None, flat={"vector": vec.tolist(), "model_id": self.model_id})

    def run_item(self, item: dict[str, Any]) -> Outcome:
        if "payload" not in item:
            raise InputError(Errors.E752.format(where=repr(item["id"]), reason="an embed item needs a payload"))
        return self._outcome(item["id"], self._vectors([item["payload"]])[0])

    def run_batch(self, items: Sequence[dict[str, Any]]) -> list[Outcome]:
        """The batch is encoded at once; when that raises for one payload, item by item (as
        :func:`pixlink.index.embed.embed_items` does)."""
        t0 = time.perf_counter()
        try:
            if any("payload" not in it for it in items):
                raise InputError(Errors.E752.format(where="in the batch", reason="an embed item needs a payload"))
            vecs = self._vectors([it["payload"] for it in items])
        except ModelUnavailableError:
            raise
        except PixlinkError as exc:
            if exc.code == "E242":
                raise
            return super().run_batch(items)
        share = (time.perf_counter() - t0) / max(len(items), 1)
        out = [self._outcome(it["id"], v) for it, v in zip(items, vecs)]
        for o in out:
            o.seconds = share
        return out


@register_task
class EmbedTask(Task):
    name = "embed"
    columns = (("vector", "list<float32>"), ("model_id", "string"))
    description = "KB vectors of one dense signal (pixlink kb embed, spread over workers)"

    def check(self, params: dict[str, Any]) -> dict[str, Any]:
        from ..link.signals import dense_signals

        out = profile_params(self.name, params)
        out["kb"] = check_kb(self.name, params.get("kb"), required=True)
        sig = params.get("signal")
        if sig not in dense_signals():
            raise InputError(Errors.E757.format(name="signal", task=self.name, reason=f"one of {', '.join(dense_signals())}"))
        out["signal"] = sig
        if sig == "instance":  # a KB's own instance head: the workers embed with it, as kb embed does
            from ..link.kbhead import use_kb_head

            prof = make_profile(out)
            if use_kb_head(out["kb"], prof) is not None:
                out["options"] = {k: dict(v) for k, v in prof.options.items()}
        out["signal_options"] = dict(params.get("signal_options") or {})
        bs = params.get("batch_size", 32)
        if isinstance(bs, bool) or not isinstance(bs, int) or bs < 1:
            raise InputError(Errors.E757.format(name="batch_size", task=self.name, reason="an integer >= 1"))
        out["batch_size"] = bs
        from ..kb import KB

        with KB.open(out["kb"]) as kb:  # the vectors are made for this build of the KB
            out["kb_build_id"] = kb.build_id
        return out

    def _signal(self, params: dict[str, Any]) -> Any:
        from ..link.signals import make_signal

        return make_signal(params["signal"], params.get("signal_options") or None)

    def model_id(self, params: dict[str, Any]) -> str:
        """The model id the vectors carry (loads the backend)."""
        sig = self._signal(params)
        return sig.model_id(make_profile(params).get(sig.role))

    def space(self, params: dict[str, Any]) -> str:
        return str(self._signal(params).space)

    def kb_manifest(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        from ..kb import KB

        with KB.open(params["kb"]) as kb:
            return [{"id": key, "payload": payload} for key, payload in self._signal(params).kb_items(kb)]

    def build(self, params: dict[str, Any]) -> Runner:
        sig = self._signal(params)
        backend = make_profile(params).get(sig.role)
        return _EmbedRunner(sig.kb_encoder(backend, int(params["batch_size"])), sig.model_id(backend))


def result_json(result: Any) -> str | None:
    """The full answer as JSON text (numpy values allowed), or None."""
    if result is None:
        return None
    from ..io import dumps

    return dumps(result)


def parse_result(text: str | None) -> Any:
    return None if text is None else json.loads(text)
