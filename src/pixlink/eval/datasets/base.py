"""What every dataset loader returns: the loaded items and a report of what was not clean.

Loaders never drop a record silently. A record that cannot be read becomes an
:class:`~pixlink.types.ItemError` in :attr:`LoadReport.errors` (and the rest still load);
a record that loads after a repair (a box clipped to the image, an ``I-`` tag without its
``B-``, several RLE parts unioned into one region) is counted in :attr:`LoadReport.counts`
and described once in :attr:`LoadReport.notes`. :meth:`LoadReport.log` writes the notes and
errors at WARNING level so that a command line run shows them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from ...log import get_logger
from ...types import ItemError

log = get_logger(__name__)

T = TypeVar("T")


@dataclass
class LoadReport:
    """What a loader met besides clean records.

    Attributes:
        path: the file read.
        dataset: the dataset name (``"twitter2015"``, ``"wikiperson"``...).
        n_records: records seen in the file (loaded + failed).
        errors: records that could not be loaded, with where and why.
        counts: repair / oddity name -> how many records it touched.
        notes: one human sentence per kind of repair, for the run's output.
        n_items: items made from the loaded records (one record may give several mentions);
            set by :class:`LoadResult`.
    """

    path: str
    dataset: str | None = None
    n_records: int = 0
    errors: list[ItemError] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    notes: dict[str, str] = field(default_factory=dict)
    n_items: int | None = None

    def note(self, key: str, message: str, n: int = 1) -> None:
        """Count ``n`` occurrences of the repair ``key`` (described by ``message``)."""
        self.counts[key] += n
        self.notes.setdefault(key, message)

    def error(self, index: int, item_id: str | None, message: str) -> None:
        code = message[1 : message.index("]")] if message.startswith("[E") and "]" in message else None
        self.errors.append(ItemError(index=index, item_id=item_id, error=message, code=code))

    @property
    def ok(self) -> bool:
        return not self.errors

    def log(self) -> None:
        """Write the repairs and the errors at WARNING level (once per kind)."""
        for key, n in self.counts.items():
            log.warning("%s: %s (%d records)", self.path, self.notes.get(key, key), n)
        for e in self.errors[:10]:
            log.warning("%s: record %s skipped: %s", self.path, e.item_id or e.index, e.error)
        if len(self.errors) > 10:
            log.warning("%s: ... and %d more records skipped", self.path, len(self.errors) - 10)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path, "dataset": self.dataset, "n_records": self.n_records,
            "n_loaded": self.n_records - len(self.errors), "n_errors": len(self.errors),
            "n_items": self.n_items, "error_codes": dict(Counter(e.code or "?" for e in self.errors)),
            "errors": [e.to_dict() for e in self.errors],
            "repairs": {k: {"count": int(v), "note": self.notes.get(k, "")} for k, v in self.counts.items()},
        }


@dataclass
class LoadResult(Generic[T]):
    """Items of a dataset file plus the :class:`LoadReport`."""

    items: list[T]
    report: LoadReport

    def __post_init__(self) -> None:
        self.report.n_items = len(self.items)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def as_path(path: str | Path) -> Path:
    return Path(path).expanduser()


# --------------------------------------------------------------------------------------------
# Helpers shared by the mention loaders
# --------------------------------------------------------------------------------------------


def read_records(path: str | Path, report: LoadReport) -> list[tuple[str, Any]]:
    """``[(key, record)]`` of a JSON list, a JSON object of records (key -> record) or a JSONL
    file; the key is the list index / object key / line number. A JSONL line that is not JSON
    becomes an error in ``report`` (the other lines load). E600 when the file cannot be read."""
    import orjson

    from ...errors import DatasetError, Errors

    p = as_path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise DatasetError(Errors.E600.format(path=str(p), reason=f"{type(exc).__name__}: {exc}")) from exc
    head = raw.lstrip()[:1]
    if head in (b"[", b"{"):
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            obj = None  # maybe JSONL whose lines are objects
        if isinstance(obj, list):
            return [(str(i), r) for i, r in enumerate(obj)]
        if isinstance(obj, dict):
            return [(str(k), v) for k, v in obj.items()]
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
