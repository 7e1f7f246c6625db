"""What a KB build tells its caller: counts per source and every skipped / bad record."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

LEVELS = ("error", "warning", "info")


@dataclass
class Issue:
    """One reported record.

    Attributes:
        source: index of the source in the build's source list (``None`` for build-wide notes).
        path: the source file.
        line: 1-based line of the record in the (decompressed) source, when known.
        item: the record's id or key (e.g. a QID, a Freebase mid), when known.
        code: error catalogue code (``"E110"``).
        level: ``"error"`` (record skipped or field dropped), ``"warning"`` (kept with a
            problem, e.g. an unresolved image) or ``"info"`` (not imported by design).
        message: the full message, starting with ``[code]``.
    """

    source: int | None
    path: str
    line: int | None
    item: str | None
    code: str
    level: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SourceCounts:
    """Counts for one source of a build.

    ``read``: records read (good or bad); ``imported``: records stored (an entity, or facts
    merged into one); ``bad``: records skipped as malformed (E108/E109); ``skipped``: records
    left out by design (E115, e.g. lexemes); ``duplicates``: repeated ids within this source
    (skipped, E110); ``merged``: records merged into an entity an earlier source also defines;
    ``unmatched``: nameless records adding facts to ids no other source defines (E113);
    ``images``/``images_resolved``/``images_missing``: image references, those resolved to a
    local file, and those reported missing (E112); ``truncated``: 1 when the file ends early or
    breaks (E111/E118).
    """

    read: int = 0
    imported: int = 0
    bad: int = 0
    skipped: int = 0
    duplicates: int = 0
    merged: int = 0
    unmatched: int = 0
    images: int = 0
    images_resolved: int = 0
    images_missing: int = 0
    truncated: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class SourceReport:
    path: str
    format: str
    name: str
    counts: SourceCounts = field(default_factory=SourceCounts)
    finished: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "format": self.format, "name": self.name,
                "counts": self.counts.to_dict(), "finished": self.finished}


@dataclass
class BuildReport:
    """The result of :func:`pixlink.kb.build_kb`.

    ``issues`` holds the first ``max_issues`` issues (memory stays bounded on huge dumps);
    ``issue_counts`` counts all of them by code, and ``report_path`` (``KBDIR/build_report.jsonl``)
    lists every one. ``complete`` is False when the build stopped early (``max_records``);
    re-run with ``resume=True`` to finish it. ``seconds`` / ``cpu_seconds``: wall and CPU time of
    each phase (load, merge, index, fts, counts, total) in this call.
    """

    kb_path: Path
    sources: list[SourceReport]
    complete: bool
    counts: dict[str, int] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)
    issue_counts: dict[str, int] = field(default_factory=dict)
    report_path: Path | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def n_issues(self) -> int:
        return sum(self.issue_counts.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "kb_path": str(self.kb_path), "complete": self.complete,
            "sources": [s.to_dict() for s in self.sources], "counts": self.counts,
            "issue_counts": self.issue_counts, "n_issues": self.n_issues,
            "issues_shown": [i.to_dict() for i in self.issues],
            "report_path": str(self.report_path) if self.report_path else None,
            "seconds": self.seconds, "cpu_seconds": self.cpu_seconds,
        }
