"""VPWiki (VP-MEL, "visual prompt" multimodal entity linking) and its KB.

Mentions: records ``{"id": "0", "sentence": "...", "mentions": " ", "entities": "Gert Steegmans",
"answer": "Q381794", "imgPath": "test_img/mention_0.jpg"}`` in a JSON list, a JSON object of
records, or JSONL. The visual prompt is a red box drawn *into* the mention image, so there is no
region: ``region`` is ``None`` (the whole image, with its red box) and ``meta["prompt"] =
"red_box_in_image"``. ``mentions`` is often blank (the prompt replaces the words): ``surface``
is then ``None``.

Answers from the WikiMEL part carry a ``wk`` prefix (``"wkQ19198"``). The VPWiki KB keys those
entities with the same prefix (``"wkQ19198"`` and ``"Q19198"`` can be two entries with other
images), and ``pixlink kb build mel:KB.json`` keeps ids as written, so ``gold`` is the answer *as
written* (``"wkQ19198"``): that is the id the KB holds, and a stripped id could never be hit.
``split`` is ``"wikimel"`` for those and ``"vpwiki"`` for the others; ``meta["qid"]`` is the bare
Wikidata QID and ``meta["answer_raw"]`` the original string. An answer ``"nil"`` (any case;
also ``"none"``/``"null"``) is NIL (``gold`` None), as the VP-MEL/MIMIC code reads it.

KB: ``{qid: {"entity_name", "attr", "image_list", "type"}}`` -> :class:`~pixlink.types.Entity`
with the key as written as id (as ``kb build mel:`` does), ``label`` = entity_name,
``description`` = attr, ``images`` = image_list, ``attrs["type"]``, ``attrs["qid"]`` (bare) and
``attrs["kb_key"]``.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import Errors, InputError
from ...types import Entity, Mention
from .base import LoadReport, LoadResult, as_path, read_records, resolve_image


NIL_ANSWERS = frozenset({"nil", "none", "null"})
"""Answers read as NIL (compared lower-cased)."""


def strip_wk(qid: str) -> tuple[str, bool]:
    """``"wkQ19198"`` -> ``("Q19198", True)``; ``"Q5"`` -> ``("Q5", False)``."""
    return (qid[2:], True) if qid.startswith("wk") else (qid, False)


def load_vpwiki(path: str | Path, image_root: str | Path | None = None) -> LoadResult[Mention]:
    """Read VPWiki mentions (image paths relative to ``image_root``, default the file's folder)."""
    p = as_path(path)
    root = image_root if image_root is not None else p.parent
    report = LoadReport(path=str(p), dataset="vpwiki")
    out: list[Mention] = []
    for idx, (key, rec) in enumerate(read_records(p, report)):
        report.n_records += 1
        item = str(rec.get("id", key)) if isinstance(rec, dict) else key
        try:
            if not isinstance(rec, dict) or not {"answer", "imgPath"} <= set(rec):
                raise InputError(Errors.E603.format(item=item, path=str(p), reason="needs answer and imgPath"))
            ans = rec["answer"]
            if not isinstance(ans, str) or not ans.strip():
                raise InputError(Errors.E603.format(item=item, path=str(p), reason=f"answer {ans!r} is not an id"))
            gold: str | None = ans.strip()
            qid, wk = strip_wk(ans.strip())
            if ans.strip().lower() in NIL_ANSWERS:
                gold, qid = None, None
                report.note("nil_answer", "answers 'nil' were read as NIL")
            elif wk:
                report.note("wk_prefix", "answers with the WikiMEL 'wk' prefix kept it (the id the VPWiki KB and "
                                         "`kb build mel:` hold; split 'wikimel'; meta['qid'] is the bare QID)")
            surface = rec.get("mentions")
            out.append(Mention(
                id=item, image=resolve_image(str(rec["imgPath"]), root), region=None, text=rec.get("sentence"),
                surface=surface.strip() if isinstance(surface, str) and surface.strip() else None, gold=gold,
                split="wikimel" if wk else "vpwiki",
                meta={"answer_raw": ans, "qid": qid, "entity_name": rec.get("entities"), "prompt": "red_box_in_image"},
            ))
        except InputError as exc:
            report.error(idx, item, str(exc))
    if report.counts or report.errors:
        report.log()
    return LoadResult(out, report)


def load_vpwiki_kb(path: str | Path) -> LoadResult[Entity]:
    """Read the VPWiki KB json into entities (ids as written, ``wk`` prefixes kept as ``kb build mel:``
    keeps them; a repeated id is reported)."""
    p = as_path(path)
    report = LoadReport(path=str(p), dataset="vpwiki_kb")
    out: list[Entity] = []
    seen: set[str] = set()
    for idx, (key, rec) in enumerate(read_records(p, report)):
        report.n_records += 1
        try:
            if not isinstance(rec, dict) or "entity_name" not in rec:
                raise InputError(Errors.E603.format(item=key, path=str(p), reason="needs entity_name"))
            eid = str(rec.get("qid", key))
            qid, wk = strip_wk(eid)
            if wk:
                report.note("wk_prefix", "KB keys with the 'wk' prefix kept it (attrs['qid'] is the bare QID)")
            if eid in seen:
                raise InputError(Errors.E603.format(item=key, path=str(p), reason=f"{eid} appears twice"))
            imgs = rec.get("image_list") or []
            out.append(Entity(
                id=eid, label=str(rec["entity_name"]), description=str(rec.get("attr") or ""),
                images=tuple(str(i) for i in (imgs if isinstance(imgs, list) else [imgs])), source=f"vpwiki:{p.name}",
                attrs={"type": rec.get("type"), "qid": qid, "kb_key": key},
            ))
            seen.add(eid)
        except InputError as exc:
            report.error(idx, key, str(exc))
    if report.counts or report.errors:
        report.log()
    return LoadResult(out, report)
