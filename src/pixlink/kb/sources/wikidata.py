"""Wikidata JSON dumps (``latest-all.json[.gz|.bz2]``).

Format (Wikibase JSON, one entity a line inside ``[`` ... ``]``, lines end with ``,``)::

    [
    {"type": "item", "id": "Q76", "labels": {"en": {"language": "en", "value": "Barack Obama"}},
     "descriptions": {...}, "aliases": {"en": [{"language": "en", "value": "Obama"}, ...]},
     "claims": {"P31": [{"mainsnak": {"snaktype": "value", "property": "P31",
                "datavalue": {"value": {"entity-type": "item", "numeric-id": 5, "id": "Q5"},
                              "type": "wikibase-entityid"}}, "rank": "normal", ...}],
                "P18": [{"mainsnak": {"datavalue": {"value": "President Barack Obama.jpg",
                                                      "type": "string"}, ...}}]},
     "sitelinks": {"enwiki": {"site": "enwiki", "title": "Barack Obama", "badges": []}}},
    ...
    ]

Kept: label / description / aliases in the chosen language (falling back to ``mul``, and for the
label to the ``{lang}wiki`` sitelink title), P31 (instance of), P279 (subclass of) and P18 (image
file names) from statements that are not deprecated and have a value, the number of sitelinks as
popularity, the ``{lang}wiki`` title in ``attrs["wikipedia"]``. Items and properties are imported;
lexemes (``L…``) are skipped and counted. A file of the same entity lines without the brackets
(JSONL) reads the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import orjson

from ...errors import Errors
from ..text import fold
from ._io import Bad, Opened, iter_lines, json_line_reason

_loads = orjson.loads
_JSONError = orjson.JSONDecodeError


def _values(stmts: Any) -> Iterator[Any]:
    """``datavalue.value`` of each statement that has a value and is not deprecated."""
    for st in stmts or ():
        if st.get("rank") == "deprecated":
            continue
        ms = st.get("mainsnak")
        if not ms or ms.get("snaktype") != "value":
            continue
        yield ms["datavalue"]["value"]


def _item_ids(stmts: Any) -> list[str]:
    out: list[str] = []
    for v in _values(stmts):
        i = v.get("id")
        if i is None:
            nid = v.get("numeric-id")
            if nid is None:
                continue
            i = f"Q{nid}"
        if i not in out:
            out.append(i)
    return out


def _string_values(stmts: Any) -> list[str]:
    out: list[str] = []
    for v in _values(stmts):
        if isinstance(v, str) and v and v not in out:
            out.append(v)
    return out


def parse_entity(obj: dict[str, Any], lang: str) -> tuple | None:
    """One Wikibase entity -> record tuple (see :mod:`pixlink.kb.sources`), or ``None`` for a
    lexeme / entity without a Q/P id. Raises KeyError/TypeError/AttributeError on a bad shape."""
    eid = obj["id"]
    if not isinstance(eid, str) or not eid or eid[0] not in "QP":
        return None
    labels = obj.get("labels") or {}
    lab = labels.get(lang) or labels.get("mul")
    label = lab["value"] if lab else ""
    sitelinks = obj.get("sitelinks") or {}
    wiki = sitelinks.get(f"{lang}wiki")
    if not label and wiki:
        label = wiki["title"]
    descs = obj.get("descriptions") or {}
    d = descs.get(lang) or descs.get("mul")
    description = d["value"] if d else ""
    aliases: list[tuple[str, str]] = []
    al = obj.get("aliases")
    if al:
        seen = {label}
        for lng in (lang, "mul"):
            for a in al.get(lng) or ():
                v = a["value"]
                if v and v not in seen:
                    seen.add(v)
                    aliases.append((v, fold(v)))
    claims = obj.get("claims") or obj.get("statements") or {}
    types = _item_ids(claims.get("P31"))
    parents = _item_ids(claims.get("P279"))
    images = _string_values(claims.get("P18"))
    attrs = {"wikipedia": wiki["title"]} if wiki else None
    return (eid, label, description, aliases, types, parents, images, float(len(sitelinks)), attrs, eid,
            not label and not aliases)


def read(op: Opened, start: int, lang: str, path: Path) -> Iterator[tuple[int, int, Any]]:
    """Yield ``(unit, line, record | Bad)``; ``unit`` is the line number (resume skips lines)."""
    opened = closed = False
    last_line = 0
    loads, parse = _loads, parse_entity
    for n, line in iter_lines(op, 0):
        last_line = n
        if type(line) is Bad:
            yield n, n, line
            return
        if n <= start:  # resuming: these lines were imported by the interrupted build
            if not opened and line.strip() == b"[":
                opened = True
            continue
        s = line.strip()
        if not s:
            continue
        if s == b"[":
            opened = True
            continue
        if s == b"]":
            closed = True
            continue
        if s[-1] == 44:  # b","
            s = s[:-1]
        try:
            obj = loads(s)
        except _JSONError as exc:
            yield n, n, Bad.of(Errors.E108.format(line=n, path=path, reason=json_line_reason(s, exc)))
            continue
        try:
            rec = parse(obj, lang)
        except (KeyError, TypeError, AttributeError, IndexError) as exc:
            item = obj.get("id") if isinstance(obj, dict) else None
            yield n, n, Bad.of(Errors.E109.format(line=n, path=path, reason=f"unexpected Wikibase JSON shape ({type(exc).__name__}: {exc})"),
                               item=item if isinstance(item, str) else None)
            continue
        if rec is None:
            eid = obj.get("id")
            yield n, n, Bad.of(Errors.E115.format(line=n, path=path, reason=f"entity {eid!r} is not an item or property"),
                               item=eid if isinstance(eid, str) else None, level="info")
            continue
        yield n, n, rec
    if opened and not closed:
        yield last_line, last_line, Bad.of(Errors.E111.format(path=path, reason=f"the closing ']' is missing after line {last_line}"))
