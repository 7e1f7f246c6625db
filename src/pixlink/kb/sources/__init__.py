"""Streaming readers of KB sources, and format sniffing.

Every reader is ``read(opened, start, lang, path) -> Iterator[(unit, line, record | Bad)]``:

* ``unit`` is the reader's position (a line number for line formats, an item count for JSON
  documents); the builder stores the last committed unit so that a resumed build passes it back
  as ``start`` and the reader skips what was already imported.
* ``line`` is the 1-based line of the record in the decompressed source (for reports).
* a record is the tuple ``(id, label, description, [(alias, folded alias)], [P31 ids],
  [P279 ids], [image refs], popularity | None, attrs dict | None, source key, augment)``;
  ``augment`` marks a record with no name that only adds facts to an entity named elsewhere.
* a :class:`~pixlink.kb.sources._io.Bad` is a skipped record or a file-level problem.

Formats (``FORMAT:PATH`` on the command line; ``auto`` sniffs): see :data:`FORMATS`.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import orjson

from ...errors import Errors, InputError
from . import mel, records, wiki6m, wikidata
from ._io import Bad, JSONDocError, Opened, foreign_encoding, foreign_encoding_bad, iter_json_items, open_source, read_head

Reader = Callable[[Opened, int, str, Path], Iterator[tuple[int, int, Any]]]

FORMATS: dict[str, tuple[Reader, str]] = {
    "wikidata": (wikidata.read, "Wikidata JSON dump: one Wikibase entity a line inside [ ] (.json/.gz/.bz2)"),
    "wiki6m": (wiki6m.read, "OVEN Wiki6M jsonl: {wikidata_id, wikipedia_title, wikipedia_summary, ...}"),
    "mel": (mel.read, "MEL KB json: {qid: {entity_name, attr, image_list, type}}"),
    "fb15k237": (records.read_fb15k237, "FB15k-237 entity2wikidata.json: {mid: {label, alternatives, wikidata_id, ...}}"),
    "codex-types": (records.read_codex_types, "CoDEx entity2types.json: {qid: [P31 type qids]}"),
    "entity-json": (records.read_entity_json, "one JSON document {id: {label, description, aliases, ...}} or [records]"),
    "jsonl": (records.read_jsonl, "entity records, one Entity dict a line"),
    "csv": (records.read_csv, "entity records with a header row (id,label,aliases,...); lists as JSON or a|b"),
}

def read_source(fmt: str, opened: Opened, start: int, lang: str, path: Path) -> Iterator[tuple[int, int, Any]]:
    """The records of ``opened`` read as ``fmt`` from unit ``start`` (see the module docstring).
    A UTF-16 / UTF-32 file gives one file-level ``Bad`` (E123) naming its encoding, and nothing else."""
    found = opened.encoding_problem()
    if found is not None:
        yield start, 1, foreign_encoding_bad(path, found)
        return
    yield from FORMATS[fmt][0](opened, start, lang, path)


_FORMAT_WORD = re.compile(r"^[a-z][a-z0-9_-]+$")

# Formats whose relative image paths may be resolved beside the source file.
LOCAL_IMAGE_FORMATS = {"jsonl", "csv", "entity-json", "mel"}


@dataclass
class SourceSpec:
    """A source of a build: a path and its format (``"auto"`` to sniff it)."""

    path: Path
    format: str = "auto"

    @classmethod
    def parse(cls, spec: "str | Path | SourceSpec | tuple[str | Path, str]") -> "SourceSpec":
        """``"path"``, ``"FORMAT:path"`` (FORMAT one of :data:`FORMATS`), ``(path, format)`` or a
        SourceSpec."""
        if isinstance(spec, SourceSpec):
            return spec
        if isinstance(spec, tuple):
            return cls(Path(spec[0]), spec[1])
        s = str(spec)
        if not isinstance(spec, Path) and ":" in s:
            head, rest = s.split(":", 1)
            if head in FORMATS or head == "auto":
                return cls(Path(rest), head)
            if _FORMAT_WORD.match(head) and not Path(s).exists():
                raise InputError(Errors.E107.format(fmt=head, formats=", ".join(FORMATS)))
        return cls(Path(s), "auto")

    def resolved_format(self) -> str:
        if self.format == "auto":
            return detect_format(self.path)
        if self.format not in FORMATS:
            raise InputError(Errors.E107.format(fmt=self.format, formats=", ".join(FORMATS)))
        return self.format


def _strip_compression_suffix(p: Path) -> str:
    name = p.name.lower()
    for suf in (".gz", ".bz2", ".xz"):
        if name.endswith(suf):
            name = name[: -len(suf)]
    return name


def _first_item(text: str) -> Any:
    try:
        for _line, _key, value in iter_json_items(io.StringIO(text)):
            return (_key, value)
    except JSONDocError:
        return None
    return None


def _classify_record(d: Any) -> str | None:
    if not isinstance(d, dict):
        return None
    if "wikidata_id" in d and "wikipedia_title" in d:
        return "wiki6m"
    if isinstance(d.get("id"), str) and ("claims" in d or "labels" in d or "sitelinks" in d):
        return "wikidata"
    if "entity_name" in d:
        return "mel"
    if "id" in d and any(k in d for k in ("label", "aliases", "types", "description")):
        return "jsonl"
    return None


_WIKIBASE_START = re.compile(
    r'^\[?\s*\{(?=[^\n]{0,400}?"type"\s*:\s*"(?:item|property|lexeme)")(?=[^\n]{0,400}?"id"\s*:\s*"[QPL]\d+")')


def detect_format(path: str | Path) -> str:
    """Sniff a source's format from its first 64 KiB (decompressed). Raises E106 when unsure."""
    p = Path(path)
    name = _strip_compression_suffix(p)
    if name.endswith((".csv", ".tsv")):
        return "csv"
    head = read_head(p)
    fail = lambda reason: InputError(Errors.E106.format(path=str(p), reason=reason, formats=", ".join(FORMATS)))  # noqa: E731
    found = foreign_encoding(head)
    if found is not None:
        raise fail(f"the file is {found[0]} ({found[1]}), and pixlink reads UTF-8: convert it to UTF-8 "
                   f"(e.g. `iconv -f {found[0]} -t UTF-8 IN > OUT`)")
    text = head.decode("utf-8", errors="ignore").lstrip("\ufeff \t\r\n")
    if not text:
        raise fail("the file is empty")
    if _WIKIBASE_START.match(text):
        return "wikidata"  # a Wikibase entity line (the first entity of a real dump can be MBs long)
    if text[0] == "[":
        first = _first_item(text)
        if first is None:
            raise fail("a JSON array whose first item could not be read")
        kind = _classify_record(first[1])
        if kind == "wikidata" or kind == "mel":
            return kind
        if kind == "jsonl":
            return "entity-json"
        raise fail(f"a JSON array of {type(first[1]).__name__} items this importer does not know")
    if text[0] == "{":
        first_line = text.split("\n", 1)[0]
        try:
            kind = _classify_record(orjson.loads(first_line))
        except orjson.JSONDecodeError:
            kind = None
        if kind in ("wiki6m", "wikidata", "jsonl"):
            return kind
        first = _first_item(text)
        if first is None:
            raise fail("a JSON object whose first member could not be read")
        key, value = first
        if isinstance(value, list) and all(isinstance(x, str) for x in value):
            return "codex-types"
        if isinstance(value, dict):
            if "wikidata_id" in value:
                return "fb15k237"
            if "entity_name" in value:
                return "mel"
            if any(k in value for k in ("label", "aliases", "alternatives", "description")):
                return "entity-json"
        raise fail(f"a JSON object whose values ({type(value).__name__}) match no known format")
    if "," in text.split("\n", 1)[0] and "id" in [c.strip() for c in text.split("\n", 1)[0].split(",")]:
        return "csv"
    raise fail("not JSON, JSONL or CSV with an 'id' column")


__all__ = ["FORMATS", "LOCAL_IMAGE_FORMATS", "SourceSpec", "detect_format", "Bad", "Opened", "open_source", "read_source"]
