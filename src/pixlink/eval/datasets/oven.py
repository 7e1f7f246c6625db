"""OVEN (Open-domain Visual Entity recognitioN, Hu et al. 2023) queries and its Wiki6M KB.

Queries: JSONL ``{"data_id", "image_id", "question", "entity_id": QID, "entity_text",
"data_split"}`` -> :class:`~pixlink.types.Mention` with ``id`` = data_id, ``image`` =
``<image_root>/<image_id><image_ext>``, ``text`` = the question, ``gold`` = entity_id, ``split`` =
data_split (e.g. ``query_val_seen`` / ``entity_val_unseen``: the per-split figures give the
seen / unseen breakdown the paper reports), ``meta["seen"]`` = ``"seen"`` / ``"unseen"`` when
the split name says so. No region: OVEN asks about the whole image.

KB: ``Wiki6M_ver_1_0.jsonl`` (6,063,945 lines ``{"wikidata_id", "wikipedia_title",
"wikipedia_content", ...}``): :func:`iter_wiki6m` streams it as :class:`~pixlink.types.Entity`
(label = title, description = the first sentence of the content, at most 300 characters) so
that a KB importer never holds it all in memory; bad lines are counted in the report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import orjson

from ...errors import DatasetError, Errors, InputError
from ...types import Entity, Mention
from .base import LoadReport, LoadResult, as_path, read_records


def load_oven(path: str | Path, image_root: str | Path | None = None, image_ext: str = ".jpg") -> LoadResult[Mention]:
    p = as_path(path)
    report = LoadReport(path=str(p), dataset="oven")
    out: list[Mention] = []
    for idx, (key, rec) in enumerate(read_records(p, report)):
        report.n_records += 1
        item = str(rec.get("data_id", key)) if isinstance(rec, dict) else key
        try:
            if not isinstance(rec, dict) or not {"image_id", "entity_id"} <= set(rec):
                raise InputError(Errors.E603.format(item=item, path=str(p), reason="needs image_id and entity_id"))
            gold = rec["entity_id"]
            if not isinstance(gold, str) or not gold.strip():
                raise InputError(Errors.E603.format(item=item, path=str(p), reason=f"entity_id {gold!r} is not an id"))
            split = rec.get("data_split")
            meta = {"entity_text": rec.get("entity_text"), "image_id": rec["image_id"], "prompt": "image"}
            if isinstance(split, str):
                meta["seen"] = "unseen" if "unseen" in split else "seen" if "seen" in split else None
            image = f"{rec['image_id']}{image_ext}"
            out.append(Mention(
                id=item, image=str(Path(image_root) / image) if image_root is not None else image,
                text=rec.get("question"), gold=gold.strip(), split=split, meta=meta,
            ))
        except InputError as exc:
            report.error(idx, item, str(exc))
    if report.counts or report.errors:
        report.log()
    return LoadResult(out, report)


def _first_sentence(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    cut = text.find(". ")
    s = text[: cut + 1] if 0 < cut < limit else text[:limit]
    return s


def iter_wiki6m(path: str | Path, report: LoadReport | None = None) -> Iterator[Entity]:
    """Stream Wiki6M lines as entities; a bad line is recorded in ``report`` (when given) and skipped."""
    p = as_path(path)
    try:
        fh = open(p, "rb")
    except OSError as exc:
        raise DatasetError(Errors.E600.format(path=str(p), reason=f"{type(exc).__name__}: {exc}")) from exc
    with fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            if report is not None:
                report.n_records += 1
            try:
                rec = orjson.loads(line)
                qid, title = rec["wikidata_id"], rec["wikipedia_title"]
                if not isinstance(qid, str) or not qid or not isinstance(title, str):
                    raise KeyError("wikidata_id / wikipedia_title")
            except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                if report is not None:
                    report.error(n - 1, f"line {n}", Errors.E601.format(path=str(p), line=n, reason=f"{type(exc).__name__}: {exc}"))
                continue
            content = rec.get("wikipedia_content") or ""
            yield Entity(id=qid, label=title, description=_first_sentence(content) if isinstance(content, str) else "",
                         source=f"wiki6m:{p.name}",
                         attrs={k: v for k, v in rec.items() if k not in ("wikidata_id", "wikipedia_title", "wikipedia_content")})
