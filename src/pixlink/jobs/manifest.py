"""Manifests: the items of a job, one row each (JSONL or Parquet).

A row is a JSON object with a unique ``id`` (a string; numbers are taken as their decimal
text) and the fields of its task (:mod:`pixlink.jobs.tasks`). A relative ``image`` path is
relative to the manifest's folder (or ``image_root``). Rows that cannot be items — a line
that is not JSON, a row without an id, an id seen before — are not run; they go to the
error table with their line number (``stage: "manifest"``), and the job goes on.

:func:`read_manifest` reads the whole manifest once on the driver (a million rows is a few
hundred MB of dicts at most) and the driver hands the engines only the items still to do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..errors import Errors, InputError


@dataclass
class Manifest:
    """The usable items of a manifest and the rows that are not.

    Attributes:
        items: ``(line, item)`` pairs in manifest order; ``item["id"]`` is a str.
        errors: error-table rows of the unusable rows: ``id`` (or None), ``line``, ``stage``
            (``"manifest"``), ``code``, ``error``.
        rows: how many rows the manifest has.
        path: the manifest file, or None for items made from the KB.
    """

    items: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    rows: int = 0
    path: str | None = None

    def lines(self) -> dict[str, int]:
        return {it["id"]: line for line, it in self.items}


def _rows(path: Path) -> Iterator[tuple[int, Any]]:
    """``(line or row number, dict or InputError)`` of a JSONL or Parquet manifest."""
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(path)
        except (OSError, ValueError) as exc:
            raise InputError(Errors.E751.format(path=str(path), reason=str(exc))) from exc
        n = 0
        for batch in pf.iter_batches(batch_size=8192):
            for row in batch.to_pylist():
                n += 1
                yield n, row
        return
    from ..io import iter_jsonl

    try:
        yield from iter_jsonl(path, strict=False)
    except OSError as exc:
        raise InputError(Errors.E751.format(path=str(path), reason=exc.strerror or str(exc))) from exc


def _resolve_image(value: Any, root: Path) -> Any:
    if isinstance(value, str) and value and "://" not in value and not Path(value).is_absolute():
        return str(root / value)
    return value


def read_manifest(path: str | Path, image_root: str | Path | None = None) -> Manifest:
    """Read a JSONL (``.jsonl``, ``.json``) or Parquet (``.parquet``) manifest (E751 when it
    cannot be read at all; bad rows go to :attr:`Manifest.errors`)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(Errors.E751.format(path=str(p), reason="it is not a file"))
    root = Path(image_root) if image_root is not None else p.resolve().parent
    out = Manifest(path=str(p.resolve()))
    seen: set[str] = set()
    for line, row in _rows(p):
        out.rows += 1
        where = f"at line {line}"
        if isinstance(row, InputError):
            out.errors.append({"id": None, "line": line, "stage": "manifest", "code": row.code, "error": str(row)})
            continue
        if not isinstance(row, dict):
            err = Errors.E752.format(where=where, reason=f"a row is a JSON object, not {type(row).__name__}")
            out.errors.append({"id": None, "line": line, "stage": "manifest", "code": "E752", "error": err})
            continue
        rid = row.get("id")
        if isinstance(rid, int) and not isinstance(rid, bool):
            rid = str(rid)
        if not isinstance(rid, str) or not rid.strip():
            err = Errors.E752.format(where=where, reason="it has no id (a non-empty string)")
            out.errors.append({"id": None, "line": line, "stage": "manifest", "code": "E752", "error": err})
            continue
        if rid in seen:
            err = Errors.E753.format(where=where, id=rid)
            out.errors.append({"id": rid, "line": line, "stage": "manifest", "code": "E753", "error": err})
            continue
        seen.add(rid)
        item = dict(row)
        item["id"] = rid
        if "image" in item:
            item["image"] = _resolve_image(item["image"], root)
        out.items.append((line, item))
    return out


def from_items(items: list[dict[str, Any]]) -> Manifest:
    """A manifest of items made by the program (``embed`` from the KB): ids are unique keys."""
    return Manifest(items=[(i + 1, it) for i, it in enumerate(items)], rows=len(items), path=None)


def todo_table(items: list[tuple[int, dict[str, Any]]]) -> Any:
    """The items an engine reads: an Arrow table ``id``, ``line``, ``item`` (JSON text)."""
    import pyarrow as pa

    from ..io import dumps

    return pa.table({
        "id": pa.array([it["id"] for _, it in items], type=pa.string()),
        "line": pa.array([line for line, _ in items], type=pa.int64()),
        "item": pa.array([dumps(it) for _, it in items], type=pa.string()),
    })


def items_of(table: Any) -> list[dict[str, Any]]:
    """The items of a :func:`todo_table` batch."""
    return [json.loads(s) for s in table.column("item").to_pylist()]
