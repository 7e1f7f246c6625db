"""Plain entity records and the small JSON-document formats.

* ``jsonl`` — one :class:`pixlink.types.Entity` dict a line:
  ``{"id", "label", "aliases": [...], "description", "types": [P31 ids], "parents": [P279 ids],
  "images": [paths or file names], "popularity", "attrs": {...}}``; other keys go to ``attrs``.
* ``csv`` — a header row with the same column names; list cells are a JSON array
  (``["a", "b"]``) or ``|``-separated; other columns go to ``attrs``.
* ``entity-json`` — one JSON document ``{id: {record}}`` (the key is the id unless the record has
  one) or ``[{record}, ...]``; ``alternatives`` is read as ``aliases``, ``wiki`` as
  ``attrs["wikipedia"]`` (CoDEx ``types/<lang>.json`` and ``entities/<lang>.json`` have this shape).
* ``fb15k237`` — ``{freebase_mid: {"label", "description", "alternatives", "wikidata_id",
  "wikipedia"}}`` (villmow/datasets_knowledge_embedding ``entity2wikidata.json``): the id is the
  QID, the mid goes to ``attrs["freebase_mid"]``.
* ``codex-types`` — ``{qid: [P31 type qids]}`` (CoDEx ``entity2types.json``): adds types to
  entities that other sources name.

A record with neither label nor alias only adds facts (types, parents, images) to an entity
another source defines; if none does it is reported (E113) and not imported.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Iterator

import orjson

from ...errors import Errors
from ..text import fold
from ._io import Bad, JSONDocError, Opened, encoding_bad, iter_json_items, iter_jsonl_objects

_ENTITY_KEYS = ("id", "label", "aliases", "description", "types", "parents", "images", "popularity", "source", "attrs")


class RecordError(ValueError):
    """A record field has the wrong shape (message says which)."""


def _str_list(v: Any, what: str) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        return [v] if v else []
    if not isinstance(v, (list, tuple)):
        raise RecordError(f"{what} must be a list of strings, got {type(v).__name__}")
    out: list[str] = []
    for x in v:
        if not isinstance(x, str):
            raise RecordError(f"{what} must be a list of strings, found {x!r}")
        if x and x not in out:
            out.append(x)
    return out


def make_record(d: dict[str, Any], key: str | None = None, default_id: str | None = None) -> tuple:
    """A generic entity dict -> record tuple ``(id, label, description, [(alias, folded)], types,
    parents, images, popularity, attrs, key, augment)``. Raises :class:`RecordError`."""
    if not isinstance(d, dict):
        raise RecordError(f"expected a JSON object, got {type(d).__name__}")
    eid = d.get("id", default_id)
    if isinstance(eid, int) and not isinstance(eid, bool):
        eid = str(eid)
    if not isinstance(eid, str) or not eid.strip():
        raise RecordError(f"'id' must be a non-empty string, got {eid!r}")
    eid = eid.strip()
    label = d.get("label") or ""
    if not isinstance(label, str):
        raise RecordError(f"'label' must be a string, got {label!r}")
    description = d.get("description") or ""
    if not isinstance(description, str):
        raise RecordError(f"'description' must be a string, got {description!r}")
    names = _str_list(d.get("aliases", d.get("alternatives")), "'aliases'")
    aliases = [(a, fold(a)) for a in names if a != label]
    types = _str_list(d.get("types"), "'types'")
    parents = _str_list(d.get("parents"), "'parents'")
    images = _str_list(d.get("images"), "'images'")
    pop = d.get("popularity")
    if pop is not None:
        if isinstance(pop, bool) or not isinstance(pop, (int, float, str)):
            raise RecordError(f"'popularity' must be a number, got {pop!r}")
        try:
            pop = float(pop) if pop != "" else None
        except ValueError as exc:
            raise RecordError(f"'popularity' must be a number, got {pop!r}") from exc
    attrs = d.get("attrs") or {}
    if not isinstance(attrs, dict):
        raise RecordError(f"'attrs' must be an object, got {type(attrs).__name__}")
    extra = {k: v for k, v in d.items() if k not in _ENTITY_KEYS and k != "alternatives" and v not in (None, "")}
    if "wiki" in extra:
        extra["wikipedia"] = extra.pop("wiki")
    attrs = {**extra, **attrs} or None
    augment = not label and not aliases
    return (eid, label, description, aliases, types, parents, images, pop, attrs, key or eid, augment)


def _utf8_bad(path: Path, exc: UnicodeDecodeError) -> Bad:
    """E123 for a text stream that stopped decoding (the text is decoded in chunks, so the
    records of the chunk that holds the bad byte are not read either)."""
    byte = exc.object[exc.start] if exc.start < len(exc.object) else None
    what = f"byte 0x{byte:02X}" if isinstance(byte, int) else "a byte"
    return encoding_bad(path, f"it holds {what}, which is not UTF-8 (Latin-1 or Windows-1252 text?)")


# ------------------------------------------------------------------------------------------
# JSONL and CSV
# ------------------------------------------------------------------------------------------


def read_jsonl(op: Opened, start: int, lang: str, path: Path) -> Iterator[tuple[int, int, Any]]:
    for n, obj in iter_jsonl_objects(op, start, path):
        if type(obj) is Bad:
            yield n, n, obj
            continue
        try:
            yield n, n, make_record(obj)
        except RecordError as exc:
            item = obj.get("id") if isinstance(obj, dict) else None
            yield n, n, Bad.of(Errors.E109.format(line=n, path=path, reason=str(exc)), item=str(item) if item is not None else None)


def _csv_cell_list(v: str) -> list[str] | str:
    v = v.strip()
    if not v:
        return []
    if v.startswith("["):
        try:
            out = orjson.loads(v)
        except orjson.JSONDecodeError as exc:
            raise RecordError(f"list cell {v[:60]!r} is not a JSON array ({exc})") from exc
        return out
    return [x.strip() for x in v.split("|") if x.strip()]


def read_csv(op: Opened, start: int, lang: str, path: Path) -> Iterator[tuple[int, int, Any]]:
    """CSV (``,``) or TSV (tab, when the header has tabs and no commas) with a header row."""
    text = io.TextIOWrapper(op.stream, encoding="utf-8-sig", newline="")
    try:
        header_line = text.readline()
    except UnicodeDecodeError as exc:
        yield 1, 1, _utf8_bad(path, exc)
        return
    delim = "\t" if "\t" in header_line and "," not in header_line else ","
    header = next(csv.reader([header_line], delimiter=delim))
    header = [h.strip() for h in header]
    if "id" not in header:
        yield 1, 1, Bad.of(Errors.E115.format(line=1, path=path, reason=f"the header {header} has no 'id' column; no record was read"))
        return
    reader = csv.reader(text, delimiter=delim)
    n = 1  # physical lines consumed (the header is line 1); a row may span several lines
    while True:
        first = n + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError as exc:
            yield first, first, _utf8_bad(path, exc)
            return
        except csv.Error as exc:
            yield first, first, Bad.of(Errors.E109.format(line=first, path=path, reason=f"not readable CSV ({exc})"))
            return
        except (EOFError, OSError) as exc:
            yield first, first, Bad.of(Errors.E111.format(path=path, reason=f"the stream ends after line {n} ({exc})"))
            return
        n = reader.line_num + 1
        if n <= start or not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            yield n, first, Bad.of(Errors.E109.format(line=first, path=path, reason=f"{len(row)} cells for {len(header)} columns"))
            continue
        d: dict[str, Any] = dict(zip(header, row))
        try:
            for k in ("aliases", "alternatives", "types", "parents", "images"):
                if k in d:
                    d[k] = _csv_cell_list(d[k])
            if "attrs" in d:
                d["attrs"] = orjson.loads(d["attrs"]) if d["attrs"].strip() else {}
            yield n, first, make_record(d)
        except (RecordError, orjson.JSONDecodeError) as exc:
            yield n, first, Bad.of(Errors.E109.format(line=first, path=path, reason=str(exc)), item=d.get("id") or None)


# ------------------------------------------------------------------------------------------
# Single JSON documents
# ------------------------------------------------------------------------------------------


def iter_doc(op: Opened, start: int, path: Path) -> Iterator[tuple[int, int, Any, Any]]:
    """``(unit, line, key, value)`` for the items of a JSON document after the first ``start``;
    a malformed or cut document ends with one ``(unit, line, None, Bad)``."""
    text = io.TextIOWrapper(op.stream, encoding="utf-8-sig")
    unit = 0
    line = 1
    try:
        for line, key, value in iter_json_items(text):
            unit += 1
            if unit <= start:
                continue
            yield unit, line, key, value
    except JSONDocError as exc:
        if "truncated" in exc.reason:
            msg = Errors.E111.format(path=path, reason=f"{exc.reason} at line {exc.line}")
        else:
            msg = Errors.E118.format(path=path, line=exc.line, reason=exc.reason)
        yield unit + 1, exc.line, None, Bad.of(msg)
    except UnicodeDecodeError as exc:
        yield unit + 1, line, None, _utf8_bad(path, exc)
    except (EOFError, OSError) as exc:
        yield unit + 1, line, None, Bad.of(Errors.E111.format(path=path, reason=f"the stream breaks after line {line} ({exc})"))


def read_entity_json(op: Opened, start: int, lang: str, path: Path) -> Iterator[tuple[int, int, Any]]:
    for unit, line, key, value in iter_doc(op, start, path):
        if type(value) is Bad:
            yield unit, line, value
            return
        default_id = key if isinstance(key, str) else None
        try:
            yield unit, line, make_record(value, key=default_id, default_id=default_id)
        except RecordError as exc:
            yield unit, line, Bad.of(Errors.E109.format(line=line, path=path, reason=str(exc)), item=default_id)


def read_fb15k237(op: Opened, start: int, lang: str, path: Path) -> Iterator[tuple[int, int, Any]]:
    for unit, line, key, value in iter_doc(op, start, path):
        if type(value) is Bad:
            yield unit, line, value
            return
        mid = key if isinstance(key, str) else None
        try:
            if not isinstance(value, dict):
                raise RecordError(f"expected an object, got {type(value).__name__}")
            qid = value.get("wikidata_id")
            if not isinstance(qid, str) or not qid.strip():
                raise RecordError(f"'wikidata_id' must be a non-empty string, got {qid!r}")
            d = {"id": qid, "label": value.get("label"), "description": value.get("description"),
                 "aliases": value.get("alternatives"), "attrs": {"freebase_mid": mid}}
            if value.get("wikipedia"):
                d["attrs"]["wikipedia"] = value["wikipedia"]
            yield unit, line, make_record(d, key=mid)
        except RecordError as exc:
            yield unit, line, Bad.of(Errors.E109.format(line=line, path=path, reason=str(exc)), item=mid)


def read_codex_types(op: Opened, start: int, lang: str, path: Path) -> Iterator[tuple[int, int, Any]]:
    for unit, line, key, value in iter_doc(op, start, path):
        if type(value) is Bad:
            yield unit, line, value
            return
        try:
            if not isinstance(key, str) or not key.strip():
                raise RecordError("codex-types needs an object {qid: [type qids]}")
            types = _str_list(value, "the type list")
        except RecordError as exc:
            yield unit, line, Bad.of(Errors.E109.format(line=line, path=path, reason=str(exc)),
                                     item=key if isinstance(key, str) else None)
            continue
        yield unit, line, (key.strip(), "", "", [], types, [], [], None, None, key, True)
