"""Score predictions that *another system* wrote, on pixlink's metrics (``pixlink eval score``).

A user who runs their own model can compare it with pixlink's on the same definitions: the
predictions file is read, paired item by item with the gold, and scored by the functions of
:mod:`pixlink.eval.metrics` (the ones ``eval ner`` / ``eval link`` / ``eval gmner`` use). The
results have the same keys, tables and plots as those commands' (:func:`pixlink.eval.runner.save`).

=========  ==============================================  ========================================
task       predictions                                     gold
=========  ==============================================  ========================================
``ner``    CoNLL (``IMGID:`` line, ``token<TAB>BIO``)        CoNLL (Twitter-2015/2017, GMNER)
``gmner``  RiVEG entity lines                              RiVEG entity lines, or Twitter-GMNER
           (``img###Entity(TYPE)###expansion###VE###&[box]``)  CoNLL + VOC xml (``--xml``)
``link``   JSONL, one mention a line: ``{"id", "prediction"``  any mention dataset ``eval link`` reads
           ``(id or null = NIL), "candidates": [...],``       (mentions.jsonl, WikiMEL, VPWiki...), or
           ``"scores": [...]}`` (``eval link``'s own            ``inline``: the ``gold`` of each
           ``predictions.jsonl`` qualifies)                  prediction line
=========  ==============================================  ========================================

Pairing and what is not paired:

* NER: posts by IMGID. A gold post with no prediction counts as predicting no entity
  (``n_missing_pred``); a predicted post whose tokens differ from the gold's (another
  tokenisation) cannot be scored span by span: it counts as predicting nothing and is listed
  (``token_mismatch``). Predicted types are named as the gold dataset names them
  (:func:`pixlink.spans.align_type`: MISC <-> OTHER).
* GMNER: entities by image and entity text, as RiVEG's ``statistic/statistic.py`` matches them
  (GMNER: text + type + region; MNER: text + type; EEG: text + region). A RiVEG prediction line
  with several boxes is judged by its *first* box (a system predicts one region per entity);
  ``[0,0,0,0]`` is the prediction "not groundable". The region rule is ``IoU > t`` (GMNER
  paper, NUSTM script) or with ``inclusive`` ``IoU >= t`` (RiVEG): ``results["iou_rule"]``
  says which ran.
* Linking: mentions by id. A gold mention with no prediction line counts as a failure of the
  system (wrong, and ranked nowhere: ``n_missing_pred``); prediction lines of unknown ids are
  counted (``n_extra_pred``) and ignored. When prediction lines hold candidate lists, the
  ranking is cut at their length (or ``k``): MRR is then reported as ``mrr@k``.

Errors: E630-E639 (:mod:`pixlink.errors`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import orjson

from ..errors import DatasetError, Errors, InputError
from ..log import get_logger
from . import metrics as M

log = get_logger(__name__)

TASKS = ("ner", "gmner", "link")
PRED_FORMATS = {"ner": ("conll",), "gmner": ("riveg",), "link": ("jsonl",)}
GOLD_FORMATS = {"ner": ("conll", "gmner"), "gmner": ("riveg", "gmner"), "link": ("inline", "auto")}


def score_predictions(
    predictions: str | Path, gold: str | Path | None, task: str, *, gold_format: str = "auto",
    dataset: str | None = None, xml_dir: str | Path | None = None, iou_threshold: float = 0.5,
    inclusive: bool = False, ks: Sequence[int] = M.DEFAULT_KS, ties: str = "pessimistic", k: int | None = None,
) -> dict[str, Any]:
    """Score a predictions file against gold (see the module docstring for formats and pairing).

    Args:
        predictions: the other system's output file.
        gold: the gold file (``None`` only for ``task="link"`` with ``gold_format="inline"``).
        task: ``"ner"``, ``"gmner"`` or ``"link"``.
        gold_format: NER: ``conll``/``gmner``/``auto``; GMNER: ``riveg`` or ``gmner`` (CoNLL +
            xml) or ``auto`` (by the file's name); linking: ``inline`` or a mention format of
            :data:`pixlink.eval.datasets.MENTION_FORMATS` (``auto``: by the file's name).
        dataset: NER/GMNER label set (``twitter2015``, ``twitter2017``, ``gmner``); default from
            the gold file's folder.
        xml_dir: VOC xml folder of a GMNER CoNLL gold (default ``xml/`` beside it).
        iou_threshold, inclusive: the GMNER region rule.
        ks, ties: Hits@k and the tie rule of linking.
        k: the candidate lists' cut for MRR@k (default: the longest list in the file).

    Returns:
        the results dict of the task (as ``eval ner|gmner|link`` write them) plus
        ``"predictions"``, ``"gold"``, ``"pairing"`` (counts of what was and was not paired)
        and ``"notes"``.
    """
    if task not in TASKS:
        raise InputError(Errors.E631.format(task=task, tasks=", ".join(TASKS)))
    t0 = time.time()
    pred_path = Path(predictions).expanduser()
    if not pred_path.is_file():
        raise DatasetError(Errors.E600.format(path=str(pred_path), reason="no such file"))
    if gold is None and not (task == "link" and gold_format == "inline"):
        raise InputError(Errors.E632.format(reason="give the gold file (--gold), or --gold-format inline for "
                                                   "link predictions that carry their gold"))
    if task == "ner":
        out = _score_ner(pred_path, Path(gold), gold_format, dataset)  # type: ignore[arg-type]
    elif task == "gmner":
        out = _score_gmner(pred_path, Path(gold), gold_format, dataset, xml_dir, iou_threshold, inclusive)  # type: ignore[arg-type]
    else:
        out = _score_link(pred_path, gold, gold_format, ks, ties, k)
    out["predictions"] = str(pred_path)
    out["gold"] = str(gold) if gold is not None else "inline"
    out["system"] = out.get("system") or pred_path.stem
    out["seconds"] = round(time.time() - t0, 3)
    return out


# --------------------------------------------------------------------------------------------
# NER
# --------------------------------------------------------------------------------------------


def _score_ner(pred_path: Path, gold_path: Path, gold_format: str, dataset: str | None) -> dict[str, Any]:
    from ..conll import dataset_of, load_conll
    from ..spans import DATASET_TYPES, align_type

    if gold_format not in ("auto", *GOLD_FORMATS["ner"]):
        raise InputError(Errors.E633.format(fmt=gold_format, task="ner", formats=", ".join(GOLD_FORMATS["ner"])))
    name = dataset or dataset_of(gold_path)
    gold = load_conll(gold_path, dataset=name)
    labels = DATASET_TYPES.get(name) if name else None
    pred = load_conll(pred_path, dataset=None)  # any type: a predicted type outside the set counts wrong
    by_id = {p.meta.get("image_id", p.id): p for p in pred.items}
    gold_spans, pred_spans = [], []
    missing, mismatch = [], []
    used: set[str] = set()
    for g in gold.items:
        gid = g.meta.get("image_id", g.id)
        gold_spans.append([(e.start, e.end, e.type) for e in g.entities])
        p = by_id.get(gid)
        if p is None:
            missing.append(gid)
            pred_spans.append([])
            continue
        used.add(gid)
        if list(p.tokens) != list(g.tokens):
            mismatch.append(gid)
            pred_spans.append([])
            continue
        pred_spans.append([(e.start, e.end, align_type(e.type, labels)) for e in p.entities])
    if not used:
        raise InputError(Errors.E632.format(reason=f"no IMGID of {pred_path.name} is in {gold_path.name}"))
    res = M.span_prf(gold_spans, pred_spans)
    for t in labels or ():
        res["per_type"].setdefault(t, M.prf(0, 0, 0))
    extra = sorted(set(by_id) - used)
    out: dict[str, Any] = {"task": "ner", **res, "labels": list(labels) if labels else None, "dataset": name,
                           "n_errors": len(missing) + len(mismatch),
                           "pairing": {"n_gold": len(gold.items), "n_pred": len(pred.items), "n_paired": len(used),
                                       "n_missing_pred": len(missing), "token_mismatch": mismatch[:50],
                                       "n_token_mismatch": len(mismatch), "n_extra_pred": len(extra)},
                           "load_report": gold.report.to_dict() | {"errors": gold.report.to_dict()["errors"][:20]},
                           "pred_load_report": _short(pred.report)}
    notes = []
    if missing:
        notes.append(f"{len(missing)} gold posts have no prediction; they count as predicting no entity")
    if mismatch:
        notes.append(f"{len(mismatch)} predicted posts are tokenised differently from the gold; they count as "
                     "predicting no entity (see pairing.token_mismatch)")
    if extra:
        notes.append(f"{len(extra)} predicted posts are not in the gold; ignored")
    outside = sorted({t for sp in pred_spans for _s, _e, t in sp} - set(labels or ())) if labels else []
    if outside:
        notes.append(f"predicted types outside the dataset's label set count as wrong: {outside}")
    if notes:
        out["notes"] = notes
    return out


# --------------------------------------------------------------------------------------------
# GMNER
# --------------------------------------------------------------------------------------------


def _gmner_gold(gold_path: Path, gold_format: str, dataset: str | None, xml_dir: str | Path | None
                ) -> tuple[dict[str, list[tuple[str, str, list[list[float]]]]], dict[str, Any]]:
    from .datasets.riveg import load_riveg_labels, riveg_grounded

    fmt = gold_format
    if fmt == "auto":
        fmt = "riveg" if "###" in _head(gold_path) else "gmner"
    if fmt not in GOLD_FORMATS["gmner"]:
        raise InputError(Errors.E633.format(fmt=gold_format, task="gmner", formats=", ".join(GOLD_FORMATS["gmner"])))
    if fmt == "riveg":
        res = load_riveg_labels(gold_path)
        return riveg_grounded(res.items), _short(res.report)
    from .datasets.gmner import load_gmner

    res = load_gmner(gold_path, xml_dir=xml_dir, dataset=dataset or "gmner")
    out: dict[str, list[tuple[str, str, list[list[float]]]]] = {}
    for p in res.items:
        boxes = p.meta.get("gold_boxes") or [[] for _ in p.entities]
        out[str(p.meta.get("image_id", p.id))] = [(e.text, e.type, list(boxes[i])) for i, e in enumerate(p.entities)]
    return out, _short(res.report)


def _score_gmner(pred_path: Path, gold_path: Path, gold_format: str, dataset: str | None, xml_dir: str | Path | None,
                 iou_threshold: float, inclusive: bool) -> dict[str, Any]:
    from ..spans import DATASET_TYPES, align_type
    from .datasets.riveg import load_riveg_labels

    gold, gold_report = _gmner_gold(gold_path, gold_format, dataset, xml_dir)
    labels = DATASET_TYPES.get(dataset or "gmner")
    pred = load_riveg_labels(pred_path)
    by_image: dict[str, list[tuple[str, str, Any]]] = {}
    multi = 0
    for lab in pred.items:
        if len(lab.boxes) > 1:
            multi += 1
        box = lab.boxes[0] if lab.boxes else None
        by_image.setdefault(lab.image_id, []).append((lab.text, align_type(lab.type, labels), box))
    images = sorted(gold)
    paired = [i for i in images if i in by_image]
    if not paired and pred.items:
        raise InputError(Errors.E632.format(reason=f"no image of {pred_path.name} is in the gold {gold_path.name}"))
    g = [gold[i] for i in images]
    p = [by_image.get(i, []) for i in images]
    out: dict[str, Any] = {"task": "gmner", "n": len(images), "iou_threshold": iou_threshold,
                           "iou_inclusive": inclusive, "iou_rule": M.iou_rule(iou_threshold, inclusive)}
    for v in ("gmner", "mner", "eeg"):
        out[v] = M.grounded_prf(g, p, v, iou_threshold=iou_threshold, inclusive=inclusive)
    out["f1_vs_iou"] = {v: M.f1_vs_iou(g, p, v, inclusive=inclusive) for v in ("gmner", "eeg")}
    extra = sorted(set(by_image) - set(gold))
    out["pairing"] = {"n_gold_images": len(images), "n_pred_images": len(by_image), "n_paired": len(paired),
                      "n_missing_pred": len(images) - len(paired), "n_extra_pred": len(extra),
                      "n_pred_lines_with_several_boxes": multi}
    out["n_errors"] = 0
    out["load_report"] = gold_report
    out["pred_load_report"] = _short(pred.report)
    notes = [f"regions judged by {out['iou_rule']}"]
    if multi:
        notes.append(f"{multi} prediction lines list several boxes; each was judged by its first box")
    if len(images) - len(paired):
        notes.append(f"{len(images) - len(paired)} gold images have no prediction line; they count as predicting "
                     "no entity")
    if extra:
        notes.append(f"{len(extra)} predicted images are not in the gold; ignored")
    out["notes"] = notes
    return out


# --------------------------------------------------------------------------------------------
# Linking
# --------------------------------------------------------------------------------------------


def read_link_predictions(path: Path) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """``id -> {"prediction", "candidates", "scores", "gold"?}`` of a JSONL predictions file, and
    the lines that could not be read (``{"line", "error"}``)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(Errors.E600.format(path=str(path), reason=f"{type(exc).__name__}: {exc}")) from exc
    out: dict[str, dict[str, Any]] = {}
    bad: list[dict[str, Any]] = []
    for n, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            rec = orjson.loads(line)
            out_rec = _link_record(rec)
        except (orjson.JSONDecodeError, ValueError) as exc:
            bad.append({"line": n, "error": Errors.E630.format(path=str(path), line=n, reason=str(exc))})
            continue
        rid = out_rec.pop("id")
        if rid in out:
            bad.append({"line": n, "error": Errors.E630.format(path=str(path), line=n,
                                                               reason=f"id {rid!r} appears again; the first line counts")})
            continue
        out[rid] = out_rec
    return out, bad


def _link_record(rec: Any) -> dict[str, Any]:
    if not isinstance(rec, dict):
        raise ValueError("a line must be a JSON object")
    rid = rec.get("id", rec.get("mention_id"))
    if not isinstance(rid, (str, int)) or isinstance(rid, bool) or str(rid) == "":
        raise ValueError("no 'id' (a string)")
    cands = rec.get("candidates")
    if cands is None:
        cands = []
    if not isinstance(cands, list):
        raise ValueError("'candidates' must be a list")
    ids = []
    scores: list[float] | None = [] if rec.get("scores") is None else None
    for c in cands:
        if isinstance(c, dict):  # pixlink's Candidate.to_dict()
            ids.append(str(c.get("entity_id")))
            if scores is not None:
                scores.append(float(c.get("score", 0.0)))
        else:
            ids.append(str(c))
            scores = None
    if rec.get("scores") is not None:
        sc = rec["scores"]
        if not isinstance(sc, list) or len(sc) != len(ids):
            raise ValueError(f"'scores' must be a list as long as 'candidates' ({len(ids)})")
        scores = [float(x) for x in sc]
    if scores is not None and not scores:
        scores = None
    if "prediction" in rec:
        pred = rec["prediction"]
        if pred is not None and not isinstance(pred, str):
            raise ValueError("'prediction' must be an entity id or null (NIL)")
    elif rec.get("nil") is True:
        pred = None
    elif ids:
        pred = ids[0]
    else:
        raise ValueError("no 'prediction' and no 'candidates'")
    out = {"id": str(rid), "prediction": pred, "candidates": ids, "scores": scores}
    if "gold" in rec:
        out["gold"] = rec["gold"]
    return out


def _score_link(pred_path: Path, gold: str | Path | None, gold_format: str, ks: Sequence[int], ties: str,
                k: int | None) -> dict[str, Any]:
    preds, bad = read_link_predictions(pred_path)
    if not preds:
        raise InputError(Errors.E632.format(reason=f"{pred_path.name} holds no readable prediction line"
                                                   + (f" (first problem: {bad[0]['error']})" if bad else "")))
    load_report = None
    if gold_format == "inline":
        golds = [(rid, p.get("gold"), True, None) for rid, p in preds.items() if "gold" in p]
        if not golds:
            raise InputError(Errors.E632.format(reason="--gold-format inline, but no prediction line has a 'gold'"))
    else:
        from .datasets import MENTION_FORMATS, load_mentions_dataset

        if gold_format != "auto" and gold_format not in MENTION_FORMATS:
            raise InputError(Errors.E633.format(fmt=gold_format, task="link",
                                                formats=", ".join(("inline", *MENTION_FORMATS))))
        res = load_mentions_dataset(gold, fmt=gold_format)  # type: ignore[arg-type]
        golds = [(m.id, m.gold, m.labelled, m.split) for m in res.items]
        load_report = _short(res.report)
    items = []
    missing = 0
    for rid, g, labelled, split in golds:
        p = preds.get(rid)
        if p is None:
            missing += 1
            items.append({"gold": g, "labelled": labelled, "split": split, "prediction": None, "candidates": [],
                          "error": {"code": "E634", "message": Errors.E634.format(item=rid)}})
            continue
        items.append({"gold": g, "labelled": labelled, "split": split, "prediction": p["prediction"],
                      "candidates": p["candidates"], "scores": p["scores"]})
    if missing == len(golds):
        raise InputError(Errors.E632.format(reason=f"no id of {pred_path.name} is among the gold mentions"))
    longest = max((len(p["candidates"]) for p in preds.values()), default=0)
    cut = k if k is not None else (longest or None)
    use_ks = tuple(x for x in ks if cut is None or x <= cut) or (1,)
    res_m = M.link_metrics(items, ks=use_ks, ties=ties, cut_at=cut)
    extra = len(set(preds) - {rid for rid, *_ in golds})
    out: dict[str, Any] = {"task": "link", **res_m, "ties": ties, "n_errors": missing,
                           "pairing": {"n_gold": len(golds), "n_pred": len(preds), "n_missing_pred": missing,
                                       "n_extra_pred": extra, "n_bad_lines": len(bad), "bad_lines": bad[:20]}}
    if load_report is not None:
        out["load_report"] = load_report
    notes = []
    if cut is not None:
        notes.append(f"the candidate lists hold at most {cut} entities: MRR is reported as mrr@{cut}")
    if missing:
        notes.append(f"{missing} gold mentions have no prediction line; they count as failures (wrong, ranked nowhere)")
    if extra:
        notes.append(f"{extra} prediction lines name mentions that are not in the gold; ignored")
    if bad:
        notes.append(f"{len(bad)} prediction lines could not be read (see pairing.bad_lines)")
    if notes:
        out["notes"] = notes
    return out


# --------------------------------------------------------------------------------------------


def _short(report: Any) -> dict[str, Any]:
    d = report.to_dict()
    d["errors"] = d["errors"][:20]
    return d


def _head(path: Path, n: int = 4096) -> str:
    try:
        with open(path, "rb") as fh:
            return fh.read(n).decode("utf-8", errors="replace")
    except OSError as exc:
        raise DatasetError(Errors.E600.format(path=str(path), reason=f"{type(exc).__name__}: {exc}")) from exc


__all__ = ["score_predictions", "read_link_predictions", "TASKS"]
