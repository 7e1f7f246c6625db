"""What a reader of a data file returns: the items it loaded and a report of what was not clean.

Readers never drop a record silently. A record that cannot be read becomes an
:class:`~pixlink.types.ItemError` in :attr:`LoadReport.errors` (and the rest still load);
a record that loads after a repair (a box clipped to the image, an ``I-`` tag without its
``B-``, several RLE parts unioned into one region) is counted in :attr:`LoadReport.counts`
and described once in :attr:`LoadReport.notes`. :meth:`LoadReport.log` writes the notes and
errors at WARNING level so that a command line run shows them.

The CoNLL reader (:mod:`pixlink.conll`) and every dataset loader of :mod:`pixlink.eval.datasets`
return a :class:`LoadResult`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .log import get_logger
from .types import ItemError

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
