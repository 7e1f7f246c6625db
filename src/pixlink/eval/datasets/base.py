"""Helpers every dataset loader shares; what a loader returns (:class:`LoadResult` with its
:class:`LoadReport`) lives on the ground floor, :mod:`pixlink.loadreport`, and is re-exported here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...loadreport import LoadReport, LoadResult

__all__ = ["LoadReport", "LoadResult", "as_path", "read_records", "resolve_image", "rle_bbox", "merge_rles"]


def as_path(path: str | Path) -> Path:
    return Path(path).expanduser()


# --------------------------------------------------------------------------------------------
# Helpers shared by the mention loaders
# --------------------------------------------------------------------------------------------


def read_records(path: str | Path, report: LoadReport) -> list[tuple[str, Any]]:
    """``[(key, record)]`` of a JSON list, a JSON object of records (key -> record object) or a
    JSONL file (always for a ``.jsonl`` name; a single object whose values are not all objects
    is one record); the key is the list index / object key / line number. A JSONL line that is not JSON
    becomes an error in ``report`` (the other lines load). E600 when the file cannot be read."""
    import orjson

    from ...errors import DatasetError, Errors

    p = as_path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise DatasetError(Errors.E600.format(path=str(p), reason=f"{type(exc).__name__}: {exc}")) from exc
    head = raw.lstrip()[:1]
    jsonl = p.suffix.lower() == ".jsonl"
    if head in (b"[", b"{") and not jsonl:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            obj = None  # maybe JSONL whose lines are objects
        if isinstance(obj, list):
            return [(str(i), r) for i, r in enumerate(obj)]
        if isinstance(obj, dict) and all(isinstance(v, dict) for v in obj.values()):
            return [(str(k), v) for k, v in obj.items()]
        if isinstance(obj, dict):  # one record on one line: JSONL of one line
            return [("line1", obj)]
        if obj is not None:
            raise DatasetError(Errors.E600.format(path=str(p), reason="JSON is neither a list nor an object of records"))
    out: list[tuple[str, Any]] = []
    for n, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            out.append((f"line{n}", orjson.loads(line)))
        except orjson.JSONDecodeError as exc:
            report.n_records += 1
            report.error(n - 1, f"line {n}", Errors.E011.format(line=n, path=str(p), reason=str(exc)))
    if not out and not report.errors:
        raise DatasetError(Errors.E600.format(path=str(p), reason="empty, or neither JSON nor JSONL"))
    return out


def resolve_image(image: str | None, root: str | Path | None) -> str | None:
    """``root / image`` for a relative path when a root is given; the path as it is otherwise."""
    if image is None or root is None:
        return image
    p = Path(image)
    return image if p.is_absolute() else str(Path(root) / p)


def rle_bbox(rle: dict[str, Any]) -> list[float]:
    """XYXY box of a COCO RLE mask (decoded once, then dropped). E007 if malformed, E004 if empty."""
    from ...geometry import as_mask, mask_to_box, rle_to_mask

    return [float(v) for v in mask_to_box(as_mask(rle_to_mask(rle)))]


def merge_rles(rles: list[dict[str, Any]]) -> dict[str, Any]:
    """Union of the COCO RLE masks of one image, as compressed RLE (masks decoded one at a time).

    Raises E007 when an RLE is malformed, E005 when the sizes differ, E004 when all are empty."""
    import numpy as np

    from ...geometry import as_mask, mask_to_rle, rle_to_mask

    union: np.ndarray | None = None
    for r in rles:
        m = rle_to_mask(r)
        if union is None:
            union = m.copy()
        else:
            if m.shape != union.shape:
                from ...errors import Errors, InputError

                raise InputError(Errors.E005.format(shape=m.shape, height=union.shape[0], width=union.shape[1]))
            union |= m
    if union is None:
        from ...errors import Errors, InputError

        raise InputError(Errors.E008)
    return mask_to_rle(as_mask(union))
