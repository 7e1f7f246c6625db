"""Training data: any dataset the eval loaders read, split and filtered against a KB.

* :func:`read_dataset` — ``"FORMAT:PATH"`` or a path (format by the file name) through
  :func:`pixlink.eval.datasets.load_mentions_dataset` (VPWiki, WikiMEL, RichpediaMEL,
  WikiDiverse, WIKIPerson, MaskOVEN, OVEN, ``mentions.jsonl``).
* :func:`split_mentions` — a seeded split (MIMIC's 7:1:2 by default) that keeps the mentions of
  one record (one sentence of WikiMEL) together; :func:`write_mentions` writes each part as
  ``mentions.jsonl`` (``pixlink train split``).
* :func:`usable` — the mentions a linker can learn from: labelled, gold not NIL, gold in the KB;
  the others are counted by reason.
* :func:`data_hash` — a digest of the items (ids, text, image, region, gold), recorded in a
  checkpoint so that a model says what it was trained and selected on.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

import orjson

from ..errors import Errors, InputError
from ..log import get_logger
from ..types import Mention

log = get_logger("pixlink.train.data")

MIMIC_SPLIT = (7, 1, 2)
"""MIMIC's train:dev:test ratios for WikiMEL / RichpediaMEL (the files here come unsplit)."""


def read_dataset(spec: str | Path, image_root: str | Path | None = None) -> tuple[list[Mention], dict[str, Any]]:
    """Read a mention dataset: ``"FORMAT:PATH"`` (a format of
    :data:`pixlink.eval.datasets.MENTION_FORMATS`) or a path whose name says its format.
    Returns ``(mentions, load report dict)``."""
    from ..eval.datasets import MENTION_FORMATS, load_mentions_dataset

    s = str(spec)
    fmt = "auto"
    head, sep, rest = s.partition(":")
    if sep and head in MENTION_FORMATS:
        fmt, s = head, rest
    p = Path(s).expanduser()
    if not p.is_file():
        raise InputError(Errors.E771.format(what=repr(str(spec)), reason="no such file"))
    res = load_mentions_dataset(p, fmt=fmt, image_root=image_root)
    if not res.items:
        raise InputError(Errors.E771.format(what=str(p), reason="no mention could be loaded"))
    rep = res.report.to_dict()
    rep["errors"] = rep["errors"][:20]
    return list(res.items), rep


def record_of(m: Mention) -> str:
    """The record a mention comes from (WikiMEL's sentence id), else its own id."""
    rec = m.meta.get("record") if isinstance(m.meta, dict) else None
    return str(rec) if rec is not None else m.id


def split_mentions(mentions: Sequence[Mention], ratios: Sequence[float] = MIMIC_SPLIT, seed: int = 0,
                   group: Callable[[Mention], str] = record_of, names: Sequence[str] = ("train", "dev", "test"),
                   ) -> dict[str, list[Mention]]:
    """Split ``mentions`` into parts of the given ``ratios`` (of the records), with a fixed seed.

    Records (``group``) are shuffled with ``random.Random(seed)`` and cut at the cumulative
    ratios, so the mentions of one sentence never straddle two parts. Each mention of a part
    gets ``split`` = the part's name (its dataset name moves to ``meta["dataset_split"]``).
    """
    if len(ratios) != len(names):
        raise InputError(Errors.E777.format(ratios=list(ratios), reason=f"give one ratio per part {list(names)}"))
    if any((isinstance(r, bool) or not isinstance(r, (int, float)) or r < 0) for r in ratios) or sum(ratios) <= 0:
        raise InputError(Errors.E777.format(ratios=list(ratios), reason="ratios must be numbers >= 0, not all 0"))
    order: dict[str, list[Mention]] = {}
    for m in mentions:
        order.setdefault(group(m), []).append(m)
    keys = list(order)
    random.Random(seed).shuffle(keys)
    total = float(sum(ratios))
    bounds, acc = [], 0.0
    for r in ratios:
        acc += r
        bounds.append(round(len(keys) * acc / total))
    out: dict[str, list[Mention]] = {}
    start = 0
    for name, stop in zip(names, bounds):
        part = []
        for k in keys[start:stop]:
            for m in order[k]:
                meta = dict(m.meta or {})
                if m.split is not None:
                    meta.setdefault("dataset_split", m.split)
                part.append(Mention(id=m.id, image=m.image, region=m.region, text=m.text, surface=m.surface,
                                    gold=m.gold, labelled=m.labelled, split=name, meta=meta, type=m.type))
        out[name] = part
        start = stop
    return out


def parse_ratios(text: str) -> tuple[float, ...]:
    """``"7:1:2"`` -> ``(7.0, 1.0, 2.0)`` (E777 otherwise)."""
    try:
        vals = tuple(float(x) for x in str(text).split(":"))
    except ValueError as exc:
        raise InputError(Errors.E777.format(ratios=text, reason="write them as a:b:c")) from exc
    return vals


def write_mentions(mentions: Sequence[Mention], path: str | Path) -> Path:
    """Write mentions as pixlink's ``mentions.jsonl`` (readable by every command)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    with open(tmp, "wb") as fh:
        for m in mentions:
            d = m.to_dict()
            rec: dict[str, Any] = {"id": d["id"], "image": d["image"], "text": d["text"], "surface": d["surface"],
                                   "gold": d["gold"], "split": d["split"], "meta": d["meta"]}
            if not m.labelled:
                rec.pop("gold")
            meta = dict(rec["meta"] or {})
            if meta.get("mask_rle") is not None:  # loaders keep dataset masks encoded (mentions.materialize_masks)
                rec["mask"] = meta.pop("mask_rle")
                rec["meta"] = meta
            elif m.region is not None:
                r = m.region
                if r.mask is not None:
                    rec["mask"] = r.to_rle()
                elif r.points is not None:
                    rec["points"] = r.points.tolist()
                    if r.point_labels is not None:
                        rec["point_labels"] = r.point_labels.tolist()
                else:
                    rec["box"] = [float(v) for v in r.bbox]
                if r.image_size is not None:
                    rec["image_size"] = list(r.image_size)
            if m.type:
                rec.setdefault("meta", {})["type"] = m.type
            fh.write(orjson.dumps(rec, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
    tmp.replace(p)
    return p


def usable(mentions: Sequence[Mention], kb: Any) -> tuple[list[Mention], dict[str, int]]:
    """The mentions a linker can learn from — labelled, gold not NIL, gold in ``kb`` — and the
    count of the others by reason (``unlabelled``, ``nil``, ``gold_not_in_kb``)."""
    keep: list[Mention] = []
    why: Counter = Counter()
    for m in mentions:
        if not m.labelled:
            why["unlabelled"] += 1
        elif m.gold is None:
            why["nil"] += 1
        elif m.gold not in kb:
            why["gold_not_in_kb"] += 1
        else:
            keep.append(m)
    return keep, dict(why)


def data_hash(mentions: Sequence[Mention]) -> str:
    """sha256 (16 hex digits) of the mentions' content in order (id, image, region, text,
    surface, gold)."""
    h = hashlib.sha256()
    for m in mentions:
        d = m.to_dict()
        h.update(orjson.dumps([d["id"], d["image"], d["region"], d["text"], d["surface"], d["gold"]],
                              option=orjson.OPT_SERIALIZE_NUMPY))
    return h.hexdigest()[:16]


def subsample(mentions: Sequence[Mention], n: int | None, seed: int = 0) -> list[Mention]:
    """At most ``n`` mentions, drawn with a fixed seed (order kept); all when ``n`` is None."""
    if n is None or n >= len(mentions):
        return list(mentions)
    idx = sorted(random.Random(seed).sample(range(len(mentions)), int(n)))
    return [mentions[i] for i in idx]


__all__ = ["read_dataset", "split_mentions", "parse_ratios", "write_mentions", "usable", "data_hash", "subsample",
           "record_of", "MIMIC_SPLIT"]
