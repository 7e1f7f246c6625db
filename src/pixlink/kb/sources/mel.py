"""MEL-style KB json (WikiMEL / RichpediaMEL / WikiDiverse / VPWiki entity files).

One JSON document ``{qid: {"entity_name", "attr", "image_list", "type"}}``, or a list of such
objects carrying their id in ``qid`` / ``id`` / ``wikidata_id``. ``entity_name`` is the label;
``image_list`` holds image file names (resolved under the images root) or URLs; ``type`` (and
MIMIC's ``instance``) becomes a P31 type when it is a QID and ``attrs["type"]`` otherwise;
``attr`` (free attribute text) is kept in ``attrs["attr"]``; ``desc``/``description`` is the
description. Ids are kept as written (VPWiki's ``wk`` prefixed ids stay as they are).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

from ...errors import Errors
from .records import RecordError, iter_doc, make_record
from ._io import Bad, Opened

_QID = re.compile(r"^[QP]\d+$")


def to_record(key: str | None, value: Any) -> tuple:
    if not isinstance(value, dict):
        raise RecordError(f"expected an object, got {type(value).__name__}")
    eid = value.get("qid") or value.get("id") or value.get("wikidata_id") or key
    name = value.get("entity_name", value.get("name"))
    if name is not None and not isinstance(name, str):
        raise RecordError(f"'entity_name' must be a string, got {name!r}")
    types: list[str] = []
    attrs: dict[str, Any] = {}
    for k in ("type", "instance"):
        t = value.get(k)
        vals = t if isinstance(t, list) else [t] if t else []
        for v in vals:
            if isinstance(v, str) and _QID.match(v.strip()):
                types.append(v.strip())
            elif v:
                attrs.setdefault(k, v)
    if value.get("attr"):
        attrs["attr"] = value["attr"]
    known = {"qid", "id", "wikidata_id", "entity_name", "name", "type", "instance", "attr", "image_list",
             "desc", "description", "aliases"}
    for k, v in value.items():
        if k not in known and v not in (None, "", [], {}):
            attrs[k] = v
    d = {"id": eid, "label": name or "", "description": value.get("desc") or value.get("description") or "",
         "aliases": value.get("aliases"), "types": types, "images": value.get("image_list"), "attrs": attrs}
    return make_record(d, key=key if isinstance(key, str) else None)


def read(op: Opened, start: int, lang: str, path: Path) -> Iterator[tuple[int, int, Any]]:
    for unit, line, key, value in iter_doc(op, start, path):
        if type(value) is Bad:
            yield unit, line, value
            return
        k = key if isinstance(key, str) else None
        try:
            yield unit, line, to_record(k, value)
        except RecordError as exc:
            yield unit, line, Bad.of(Errors.E109.format(line=line, path=path, reason=str(exc)), item=k)
