"""The evaluation runner: run a system over a dataset, keep every prediction, score them.

Three evaluations share one mechanism:

* :func:`run_ner` — an NER tagger (``tag_tokens``) over CoNLL posts; entity-level P/R/F1.
* :func:`run_link` — a linker (``link_batch``) over mentions; Hits@k, MRR, NIL accuracy.
* :func:`run_gmner` — a GMNER pipeline (``run_batch``) over posts with gold boxes (and masks);
  GMNER / MNER / EEG (/ SMNER / EES / mIoU) and F1 against the IoU threshold.

Output folder (``out``):

* ``run.json`` — what is evaluated (task, data file, options: the caller's ``run_info``) and,
  under ``system``, what of the system changes its predictions (:func:`system_key`: the KB's
  build id, the linker / pipeline configuration, the fusion parameters, the profile, model ids).
  A re-run with the same folder and the same ``run_info`` *resumes*; a different ``run_info``
  is refused (E608) unless ``restart=True``.
* ``predictions.jsonl`` — one JSON record per item, appended (and flushed) batch by batch as
  they come: gold, prediction, ``error`` when the system failed on the item, and the resume key:
  ``item_key`` (a hash of the item's content, :func:`item_key`) and ``system_key`` (a hash of
  :func:`system_key`). On resume a record is reused only when both keys still match and it
  holds no error; an edited item, a rebuilt KB or another linker configuration redoes the items
  concerned. ``results["resume"]`` (and a note) says how many were reused and how many redone,
  and why. Metrics are computed from this file, so an interrupted run loses at most one batch.
* ``results.json``, ``results.md`` (a table laid out like the paper's, and what became of every
  input record: :func:`pixlink.eval.report.accounting`), and plots (``hits_at_k.png``,
  ``f1_vs_iou.png``) — written by :mod:`pixlink.eval.report`.

Items the system fails on: the batch is retried one item at a time to find the failing item;
its record carries the error and an empty prediction, and it *counts* in the metrics (as
missing every gold entity / as a wrong link) — ``n_errors`` says how many. Items whose image is
not on this machine (linking, GMNER) are not sent to the system: they are recorded with E612,
counted in ``n_missing_image`` and left out of the metrics, which then cover ``n`` items.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import orjson

from ..errors import Errors, InputError, PixlinkError
from ..io import dumps
from ..log import get_logger
from ..types import Mention, Post
from . import metrics as M
from ..spans import align_type

log = get_logger(__name__)

PREDICTIONS = "predictions.jsonl"
RUN_INFO = "run.json"


# --------------------------------------------------------------------------------------------
# Resume keys
# --------------------------------------------------------------------------------------------

_SYSTEM_NAMES = ("name", "model_id", "label_scheme")


def _digest(obj: Any) -> str:
    """16 hex digits of the sha256 of ``obj``'s canonical JSON (sorted keys)."""
    data = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY, default=str)
    return hashlib.sha256(data).hexdigest()[:16]


def _as_dict(obj: Any) -> Any:
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    return None


def item_key(item: Any) -> str:
    """The hash of a dataset item's content (its ``to_dict()``, or its dataclass fields): the
    id, image path, region, text, gold, split and meta of a mention, the tokens, gold entities
    and boxes of a post. An edited input line gives another key."""
    d = _as_dict(item)
    return _digest(d if d is not None else repr(item))


def system_key(system: Any, _depth: int = 0) -> dict[str, Any]:
    """What of an evaluated system (linker, tagger, GMNER pipeline) changes its predictions, as
    far as the system shows it: its KB's build id (``kb.build_id``: a rebuilt KB has another),
    its ``config`` and ``fusion`` parameters, its profile (name, overrides, options), its
    ``name`` / ``model_id`` / ``label_scheme`` and, for a pipeline, its linker's. Attributes the
    system does not have are left out (a fake system in a test gives ``{}``)."""
    out: dict[str, Any] = {}
    kb = getattr(system, "kb", None)
    if kb is not None:
        out["kb_build_id"] = getattr(kb, "build_id", None)
    for attr in ("config", "fusion"):
        d = _as_dict(getattr(system, attr, None))
        if d is not None:
            out[attr] = d
    prof = getattr(system, "profile", None)
    if prof is not None:
        out["profile"] = {"name": getattr(prof, "name", str(prof)), "overrides": getattr(prof, "overrides", None),
                          "options": getattr(prof, "options", None)}
    for attr in _SYSTEM_NAMES:
        v = getattr(system, attr, None)
        if isinstance(v, str):
            out[attr] = v
    linker = getattr(system, "linker", None)
    if linker is not None and _depth == 0:
        out["linker"] = system_key(linker, _depth + 1)
    return orjson.loads(orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY, default=str))


# --------------------------------------------------------------------------------------------
# Predictions store (resumable)
# --------------------------------------------------------------------------------------------

REDO_REASONS = {
    "failed": "failed before",
    "item": "the item changed",
    "system": "the system changed (KB build, configuration, fusion, profile or model)",
    "unkeyed": "recorded without a resume key (an older pixlink)",
}


class PredictionStore:
    """``<out>/predictions.jsonl`` with the run description in ``<out>/run.json``.

    ``run_info`` must be JSON-serialisable and describe the run (data file, task, options); it
    is compared on resume (E608 when it differs). ``system`` (:func:`system_key`) is recorded,
    not compared: records made by another system are redone (:meth:`plan`).
    """

    def __init__(self, out: str | Path, run_info: dict[str, Any], restart: bool = False,
                 system: dict[str, Any] | None = None) -> None:
        self.out = Path(out).expanduser()
        self.out.mkdir(parents=True, exist_ok=True)
        self.path = self.out / PREDICTIONS
        self.notes: list[str] = []
        self.system = orjson.loads(orjson.dumps(system or {}, default=str))
        self.system_hash = _digest(self.system)
        self.old_system: dict[str, Any] | None = None
        self.resume: dict[str, Any] = {}
        self._item_keys: dict[str, str] = {}
        info_path = self.out / RUN_INFO
        info = orjson.loads(orjson.dumps(run_info))
        self.run_k: int | None = info.get("k") if isinstance(info.get("k"), int) else None
        if restart:
            for p in (self.path, info_path):
                if p.exists():
                    p.unlink()
        elif info_path.exists():
            try:
                old = orjson.loads(info_path.read_bytes())
            except orjson.JSONDecodeError as exc:
                raise InputError(Errors.E608.format(out=str(self.out), reason=f"run.json is not JSON ({exc})")) from exc
            if not isinstance(old, dict):
                raise InputError(Errors.E608.format(out=str(self.out), reason="run.json is not a JSON object"))
            self.old_system = old.pop("system", None)
            if old != info:
                diff = sorted(k for k in set(old) | set(info) if old.get(k) != info.get(k))
                raise InputError(Errors.E608.format(out=str(self.out), reason=f"it differs in {diff}"))
        elif self.path.exists() and self.path.stat().st_size > 0:
            raise InputError(Errors.E608.format(out=str(self.out), reason="predictions.jsonl exists without run.json"))
        info_path.write_bytes(orjson.dumps({**info, "system": self.system}, option=orjson.OPT_INDENT_2))
        self.records = self._read()

    def _read(self) -> dict[str, dict[str, Any]]:
        recs: dict[str, dict[str, Any]] = {}
        if not self.path.exists():
            return recs
        lines = self.path.read_bytes().split(b"\n")
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                if n >= len(lines) - 1:  # a last line cut by an interrupted run: redo that item
                    msg = f"{self.path}: last line {n} was incomplete (interrupted run); its item is redone"
                    log.warning(msg)
                    self.notes.append(msg)
                    self._truncate_last_line()
                    continue
                raise InputError(Errors.E609.format(path=str(self.path), line=n, reason=str(exc))) from exc
            if not isinstance(rec, dict) or "id" not in rec:
                raise InputError(Errors.E609.format(path=str(self.path), line=n, reason="no 'id'"))
            recs[str(rec["id"])] = rec
        return recs

    def _truncate_last_line(self) -> None:
        data = self.path.read_bytes().rstrip(b"\n")
        cut = data.rfind(b"\n")
        self.path.write_bytes(data[: cut + 1] if cut >= 0 else b"")

    def _stale(self, rec: dict[str, Any], key: str) -> str | None:
        """Why the stored record ``rec`` of an item whose key is now ``key`` cannot be reused
        (a key of :data:`REDO_REASONS`), or ``None``."""
        if rec.get("error"):
            return "failed"  # the fixed system, or the image now present, may answer
        if "item_key" not in rec:
            return "unkeyed"
        if rec["item_key"] != key:
            return "item"
        if rec.get("system_key") != self.system_hash:
            return "system"
        return None

    def plan(self, items: Sequence[Any]) -> list[Any]:
        """The items to (re)do: those with no record, and those whose record cannot be reused
        (it holds an error, the item changed, the system changed, or it has no resume key).
        Fills :attr:`resume` (``reused``, ``redone``, ``new``, ``redone_because``) and adds a
        note when earlier records were reused or redone."""
        todo: list[Any] = []
        reused = 0
        why: dict[str, int] = {}
        for it in items:
            key = item_key(it)
            self._item_keys[str(it.id)] = key
            rec = self.records.get(str(it.id))
            if rec is None:
                todo.append(it)
                continue
            stale = self._stale(rec, key)
            if stale is None:
                reused += 1
            else:
                why[stale] = why.get(stale, 0) + 1
                todo.append(it)
        redone = sum(why.values())
        self.resume = {"reused": reused, "redone": redone, "new": len(todo) - redone,
                       "redone_because": {REDO_REASONS[k]: n for k, n in sorted(why.items())}}
        if reused or redone:
            parts = ", ".join(f"{n} because {REDO_REASONS[k]}" for k, n in sorted(why.items()))
            note = (f"resumed from {self.path}: {reused} items reused, {redone} redone"
                    + (f" ({parts})" if parts else "") + f", {len(todo) - redone} new")
            if why.get("system") and isinstance(self.old_system, dict):
                changed = sorted(k for k in set(self.old_system) | set(self.system)
                                 if self.old_system.get(k) != self.system.get(k))
                if changed:
                    note += f"; the system differs in {changed}"
            log.info(note)
            self.notes.append(note)
        return todo

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        """Append ``records`` (each with ``id``), stamped with their resume keys."""
        recs = list(records)
        if not recs:
            return
        for r in recs:
            r["item_key"] = self._item_keys.get(str(r["id"]))
            r["system_key"] = self.system_hash
        with open(self.path, "ab") as fh:
            for r in recs:
                fh.write(orjson.dumps(r, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        for r in recs:
            self.records[str(r["id"])] = r


def _batches(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _check_batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(Errors.E614.format(what="batch_size", value=batch_size, reason="must be a positive integer"))
    return batch_size


def _err(exc: BaseException) -> dict[str, Any]:
    code = exc.code if isinstance(exc, PixlinkError) else None
    return {"code": code, "message": str(exc)}


def _progress(enabled: bool, total: int, desc: str) -> Any:
    from ..progress import progress

    prog = progress(disable=not enabled)
    return prog, prog.add_task(desc, total=total, rate="")


def _with_item_isolation(
    batch: Sequence[Any], call: Callable[[Sequence[Any]], list[Any]], what: str,
) -> list[tuple[Any, BaseException | None]]:
    """Call ``call(batch)``; on an :class:`InputError` retry one item at a time so that only the
    failing items fail. Returns ``(result or None, error or None)`` per item."""
    try:
        out = call(batch)
        if len(out) != len(batch):
            raise InputError(Errors.E613.format(what=what, got=len(out), expected=len(batch)))
        return [(o, None) for o in out]
    except InputError as exc:
        if len(batch) == 1:
            return [(None, exc)]
    res: list[tuple[Any, BaseException | None]] = []
    for item in batch:
        try:
            out = call([item])
            if len(out) != 1:
                raise InputError(Errors.E613.format(what=what, got=len(out), expected=1))
            res.append((out[0], None))
        except InputError as exc:
            res.append((None, exc))
    return res


def _stamp(results: dict[str, Any], store: PredictionStore, t0: float, n_new: int, n_items: int) -> None:
    results["out"] = str(store.out)
    results["n_items"] = n_items
    results["n_predicted_this_run"] = n_new
    results["resume"] = store.resume
    results["system_key"] = store.system
    results["seconds_this_run"] = round(time.time() - t0, 2)
    if store.notes:
        results.setdefault("notes", []).extend(store.notes)


# --------------------------------------------------------------------------------------------
# NER
# --------------------------------------------------------------------------------------------


def run_ner(
    posts: Sequence[Post], tagger: Any, out: str | Path, run_info: dict[str, Any], labels: Sequence[str] | None = None,
    batch_size: int = 64, restart: bool = False, show_progress: bool = False,
) -> dict[str, Any]:
    """Tag every post with ``tagger.tag_tokens`` and score entity-level P/R/F1 (:func:`~.metrics.span_prf`).

    Args:
        posts: gold posts (:func:`pixlink.eval.datasets.conll.load_conll`).
        tagger: has ``tag_tokens(list of token lists) -> list of lists of (start, end, type)``
            and ``labels``.
        labels: the dataset's types (e.g. PER/LOC/ORG/OTHER). Predicted types are named as the
            dataset names them with :func:`~pixlink.spans.align_type` (the tagger's
            MISC becomes OTHER for Twitter-2015 / GMNER); the mapping used is in ``type_map``.
        run_info: the description stored in ``run.json`` (resume key).

    Returns:
        ``{"task": "ner", "n", "precision", "recall", "f1", "n_correct", "n_pred", "n_gold",
        "per_type", "n_errors", "errors", "type_map", ...}``; P/R/F1 in [0, 1].
    """
    _check_batch_size(batch_size)
    t0 = time.time()
    store = PredictionStore(out, {"task": "ner", **run_info}, restart=restart, system=system_key(tagger))
    todo = store.plan(posts)
    type_map: dict[str, str] = {}
    for t in getattr(tagger, "labels", ()) or ():
        a = align_type(t, labels)
        if a != t:
            type_map[t] = a
    prog, task = _progress(show_progress, len(posts), "ner")
    with prog:
        prog.update(task, completed=len(posts) - len(todo))
        for batch in _batches(todo, batch_size):
            results = _with_item_isolation(batch, lambda b: tagger.tag_tokens([p.tokens for p in b]), "NER tagger")
            recs = []
            for post, (spans, err) in zip(batch, results):
                pred = []
                if err is None:
                    for s, e, t in spans:
                        pred.append([int(s), int(e), align_type(str(t), labels)])
                recs.append({
                    "id": post.id, "text": post.text,
                    "gold": [[e.start, e.end, e.type] for e in post.entities],
                    "pred": pred, "error": _err(err) if err else None,
                })
            store.append(recs)
            prog.update(task, advance=len(batch))
    return ner_results(posts, store, labels, type_map, t0, len(todo))


def ner_results(posts: Sequence[Post], store: PredictionStore, labels: Sequence[str] | None,
                type_map: dict[str, str], t0: float, n_new: int) -> dict[str, Any]:
    recs = [store.records[p.id] for p in posts if p.id in store.records]
    res = M.span_prf([r["gold"] for r in recs], [r["pred"] for r in recs])
    for t in labels or ():
        res["per_type"].setdefault(t, M.prf(0, 0, 0))
    errors = [{"id": r["id"], **r["error"]} for r in recs if r.get("error")]
    out: dict[str, Any] = {"task": "ner", **res, "n_errors": len(errors), "errors": errors[:50],
                           "type_map": type_map, "labels": list(labels) if labels else None}
    extra = sorted({t for r in recs for _s, _e, t in r["pred"]} - set(labels or ())) if labels else []
    if extra:
        out["notes"] = [f"predicted types outside the dataset's label set count as wrong: {extra}"]
    if errors:
        out.setdefault("notes", []).append(
            f"{len(errors)} items failed in the tagger; they count as predicting no entity (see 'errors')")
    _stamp(out, store, t0, n_new, len(posts))
    return out


# --------------------------------------------------------------------------------------------
# Linking
# --------------------------------------------------------------------------------------------


def _image_missing(image: str | None) -> bool:
    return image is not None and not Path(image).expanduser().exists()


def run_link(
    mentions: Sequence[Mention], linker: Any, out: str | Path, run_info: dict[str, Any], k: int = 20,
    batch_size: int = 16, restart: bool = False, show_progress: bool = False, ks: Sequence[int] = M.DEFAULT_KS,
    ties: str = "pessimistic",
) -> dict[str, Any]:
    """Link every mention with ``linker.link_batch(mentions, k)`` and score it (:func:`~.metrics.link_metrics`).

    Each record keeps the top-``k`` candidates with their scores and signals' names, the NIL
    decision and the linker's notes, for error analysis. Mentions whose image file is absent are
    recorded with E612 and left out of the metrics (``n_missing_image``).
    """
    _check_batch_size(batch_size)
    k = M._check_k(k)
    t0 = time.time()
    store = PredictionStore(out, {"task": "link", "k": k, **run_info}, restart=restart, system=system_key(linker))
    todo = store.plan(mentions)
    prog, task = _progress(show_progress, len(mentions), "link")
    with prog:
        prog.update(task, completed=len(mentions) - len(todo))
        for batch in _batches(todo, batch_size):
            recs: list[dict[str, Any]] = []
            runnable = []
            for m in batch:
                base = {"id": m.id, "gold": m.gold, "labelled": m.labelled, "split": m.split, "image": m.image,
                        "text": m.text, "surface": m.surface}
                if _image_missing(m.image):
                    recs.append({**base, "prediction": None, "candidates": [], "scores": [], "nil": None,
                                 "missing_image": True,
                                 "error": {"code": "E612", "message": Errors.E612.format(path=m.image, item=m.id)}})
                else:
                    runnable.append((m, base))
            if runnable:
                from .datasets.mentions import materialize_masks

                ms = materialize_masks([m for m, _ in runnable])  # masks decoded one batch at a time
                results = _link_isolated(linker, ms, k)
                for (m, base), (link, err) in zip(runnable, results):
                    if err is not None:
                        recs.append({**base, "prediction": None, "candidates": [], "scores": [], "nil": None,
                                     "error": _err(err)})
                        continue
                    recs.append({
                        **base, "prediction": link.prediction, "nil": link.nil,
                        "candidates": [c.entity_id for c in link.candidates[:k]],
                        "scores": [float(c.score) for c in link.candidates[:k]],
                        "labels": [c.label for c in link.candidates[:k]],
                        "nil_threshold": link.nil_threshold, "backends": link.backends, "notes": link.notes,
                        "error": None,
                    })
            store.append(recs)
            prog.update(task, advance=len(batch))
    return link_results(mentions, store, ks, ties, t0, len(todo))


def _link_isolated(linker: Any, mentions: list[Mention], k: int) -> list[tuple[Any, BaseException | None]]:
    """``link_batch`` returns a BatchResult: good items by index, bad ones as ItemError."""
    br = linker.link_batch(mentions, k=k)
    got: dict[int, Any] = {int(i): link for i, link in br.results}
    errs: dict[int, Any] = {int(e.index): e for e in br.errors}
    out: list[tuple[Any, BaseException | None]] = []
    for i, _m in enumerate(mentions):
        if i in got:
            out.append((got[i], None))
        elif i in errs:
            e = errs[i]
            out.append((None, InputError(e.error)))
        else:
            out.append((None, InputError(Errors.E613.format(what="linker", got=len(got) + len(errs),
                                                             expected=len(mentions)))))
    return out


def link_results(mentions: Sequence[Mention], store: PredictionStore, ks: Sequence[int], ties: str,
                 t0: float, n_new: int) -> dict[str, Any]:
    recs = [store.records[m.id] for m in mentions if m.id in store.records]
    scored = [r for r in recs if not r.get("missing_image")]
    # the linker returned its top k: the mean reciprocal rank is MRR@k (named so)
    res = M.link_metrics(scored, ks=ks, ties=ties, cut_at=store.run_k)
    errors = [{"id": r["id"], **r["error"]} for r in scored if r.get("error")]
    out: dict[str, Any] = {"task": "link", **res, "ties": ties, "n_errors": len(errors), "errors": errors[:50],
                           "n_missing_image": len(recs) - len(scored)}
    notes = []
    if out["n_missing_image"]:
        notes.append(f"{out['n_missing_image']} items were skipped because their image is not on this machine")
    if errors:
        notes.append(f"{len(errors)} items failed in the linker; they count as wrong (see 'errors')")
    if notes:
        out["notes"] = notes
    _stamp(out, store, t0, n_new, len(mentions))
    return out


# --------------------------------------------------------------------------------------------
# GMNER / SMNER
# --------------------------------------------------------------------------------------------


def _gold_grounded(post: Post) -> list[dict[str, Any]]:
    boxes = post.meta.get("gold_boxes") or [[] for _ in post.entities]
    masks = post.meta.get("gold_masks")
    out = []
    for i, e in enumerate(post.entities):
        g = {"start": e.start, "end": e.end, "type": e.type, "text": e.text, "boxes": boxes[i]}
        if masks is not None:
            g["masks"] = masks[i]
        out.append(g)
    return out


def _pred_grounded(ents: Sequence[Any], labels: Sequence[str] | None) -> list[dict[str, Any]]:
    out = []
    for e in ents:
        reg = e.region if getattr(e, "groundable", None) is not False else None
        out.append({
            "start": int(e.start), "end": int(e.end), "type": align_type(str(e.type), labels), "text": e.text,
            "groundable": e.groundable,
            "box": reg.bbox.tolist() if reg is not None else None,
            "mask": reg.to_rle() if reg is not None and reg.mask is not None else None,
            "score": e.score,
        })
    return out


def run_gmner(
    posts: Sequence[Post], pipeline: Any, out: str | Path, run_info: dict[str, Any],
    labels: Sequence[str] | None = None, batch_size: int = 8, restart: bool = False, show_progress: bool = False,
    iou_threshold: float = 0.5, thresholds: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    inclusive: bool = False,
) -> dict[str, Any]:
    """Run ``pipeline.run_batch(posts) -> BatchResult[list[NamedEntity]]`` and score GMNER, MNER
    and EEG (plus SMNER, EES and mask mIoU when the gold has masks) at ``iou_threshold``, and
    GMNER/EEG F1 at each of ``thresholds``.

    A predicted entity's region is its ``region`` (``bbox`` for boxes, ``mask`` for masks);
    ``groundable=False`` or ``region=None`` is the prediction "no visual object" (None).
    ``inclusive``: a region with IoU equal to the threshold is right (RiVEG's ``>=``; default the
    GMNER paper's ``>``); ``results["iou_rule"]`` says which ran.
    """
    _check_batch_size(batch_size)
    t0 = time.time()
    store = PredictionStore(out, {"task": "gmner", **run_info}, restart=restart, system=system_key(pipeline))
    todo = store.plan(posts)
    prog, task = _progress(show_progress, len(posts), "gmner")
    with prog:
        prog.update(task, completed=len(posts) - len(todo))
        for batch in _batches(todo, batch_size):
            recs: list[dict[str, Any]] = []
            runnable = []
            for p in batch:
                base = {"id": p.id, "text": p.text, "image": p.image, "gold": _gold_grounded(p)}
                if _image_missing(p.image):
                    recs.append({**base, "pred": [], "missing_image": True,
                                 "error": {"code": "E612", "message": Errors.E612.format(path=p.image, item=p.id)}})
                else:
                    runnable.append((p, base))
            if runnable:
                br = pipeline.run_batch([p for p, _ in runnable])
                got = {int(i): ents for i, ents in br.results}
                errs = {int(e.index): e for e in br.errors}
                for i, (p, base) in enumerate(runnable):
                    if i in got:
                        recs.append({**base, "pred": _pred_grounded(got[i], labels), "error": None})
                    else:
                        e = errs.get(i)
                        msg = e.error if e else Errors.E613.format(what="GMNER pipeline", got=len(got) + len(errs),
                                                                   expected=len(runnable))
                        recs.append({**base, "pred": [], "error": {"code": e.code if e else "E613", "message": msg}})
            store.append(recs)
            prog.update(task, advance=len(batch))
    return gmner_results(posts, store, iou_threshold, thresholds, t0, len(todo), inclusive=inclusive)


def _metric_inputs(recs: list[dict[str, Any]], region: str) -> tuple[list[Any], list[Any]]:
    gold, pred = [], []
    for r in recs:
        if region == "box":
            gold.append([((g["start"], g["end"]), g["type"], g["boxes"]) for g in r["gold"]])
            pred.append([((p["start"], p["end"]), p["type"], p["box"]) for p in r["pred"]])
        else:
            gold.append([((g["start"], g["end"]), g["type"], g.get("masks") or []) for g in r["gold"]])
            pred.append([((p["start"], p["end"]), p["type"], p.get("mask")) for p in r["pred"]])
    return gold, pred


def gmner_results(posts: Sequence[Post], store: PredictionStore, iou_threshold: float,
                  thresholds: Sequence[float], t0: float, n_new: int, inclusive: bool = False) -> dict[str, Any]:
    recs = [store.records[p.id] for p in posts if p.id in store.records]
    scored = [r for r in recs if not r.get("missing_image")]
    gold_b, pred_b = _metric_inputs(scored, "box")
    out: dict[str, Any] = {"task": "gmner", "n": len(scored), "iou_threshold": iou_threshold,
                           "iou_inclusive": inclusive, "iou_rule": M.iou_rule(iou_threshold, inclusive)}
    for v in ("gmner", "mner", "eeg"):
        out[v] = M.grounded_prf(gold_b, pred_b, v, iou_threshold=iou_threshold, inclusive=inclusive)
    out["f1_vs_iou"] = {v: M.f1_vs_iou(gold_b, pred_b, v, thresholds, inclusive) for v in ("gmner", "eeg")}
    has_masks = any("masks" in g for r in scored for g in r["gold"])
    if has_masks:
        gold_m, pred_m = _metric_inputs(scored, "mask")
        for v in ("smner", "ees"):
            out[v] = M.grounded_prf(gold_m, pred_m, v, iou_threshold=iou_threshold, inclusive=inclusive)
        out["miou"] = M.mask_miou(gold_m, pred_m)
        out["f1_vs_iou"]["smner"] = M.f1_vs_iou(gold_m, pred_m, "smner", thresholds, inclusive)
    errors = [{"id": r["id"], **r["error"]} for r in scored if r.get("error")]
    out.update({"n_errors": len(errors), "errors": errors[:50], "n_missing_image": len(recs) - len(scored)})
    notes = []
    if out["n_missing_image"]:
        notes.append(f"{out['n_missing_image']} posts were skipped because their image is not on this machine")
    if errors:
        notes.append(f"{len(errors)} posts failed in the pipeline; they count as predicting no entity")
    if notes:
        out["notes"] = notes
    _stamp(out, store, t0, n_new, len(posts))
    return out


def save(results: dict[str, Any], out: str | Path, title: str = "") -> dict[str, str]:
    """Write ``results.json``, ``results.md`` and the plots; return their paths.

    Adds ``results["accounting"]`` first (:func:`pixlink.eval.report.accounting`): what became
    of every input record — loaded, rejected at load (by code), not run, image missing, failed
    in the system, scored — from ``results["load_report"]`` when the caller put it there."""
    from .report import accounting, write_report

    results["accounting"] = accounting(results)
    return write_report(results, Path(out), title=title)


__all__ = ["PredictionStore", "item_key", "system_key", "run_ner", "run_link", "run_gmner", "save", "dumps"]
