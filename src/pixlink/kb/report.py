"""What a KB build tells its caller: counts per source and every skipped / bad record.

:func:`write_files` writes ``meta.json`` and ``build_report.jsonl`` from the build's database;
:func:`read_report` makes the :class:`BuildReport` a build returns.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from . import schema

if TYPE_CHECKING:
    from .writer import StoreWriter

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
    local file, and those reported missing (E112); ``truncated``: 1 when the file ends early,
    breaks (E111/E118) or stops being UTF-8 text (E123: nothing after that point is read).
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

    @classmethod
    def from_json(cls, text: str | bytes) -> "SourceCounts":
        """From the JSON text stored in the ``sources`` table."""
        return cls(**orjson.loads(text))


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
    each phase (load, merge, index, fts, counts, total) in this call. ``build_id``: the build's
    unique id (uuid4 hex, :attr:`pixlink.kb.KB.build_id`), the same for a resumed build.
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
    build_id: str | None = None

    @property
    def n_issues(self) -> int:
        return sum(self.issue_counts.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "kb_path": str(self.kb_path), "build_id": self.build_id, "complete": self.complete,
            "sources": [s.to_dict() for s in self.sources], "counts": self.counts,
            "issue_counts": self.issue_counts, "n_issues": self.n_issues,
            "issues_shown": [i.to_dict() for i in self.issues],
            "report_path": str(self.report_path) if self.report_path else None,
            "seconds": self.seconds, "cpu_seconds": self.cpu_seconds,
        }


_SOURCES_SQL = "SELECT path, format, name, counts, finished FROM sources ORDER BY idx"
_ISSUES_SQL = "SELECT source, line, item, code, level, message FROM issues ORDER BY seq"


def write_files(w: "StoreWriter") -> None:
    """``meta.json`` and ``build_report.jsonl`` of the build in ``w.out`` (each written atomically)."""
    assert w.con is not None
    meta = {k: v for k, v in w.con.execute("SELECT key, value FROM meta")}
    out = {
        "format": meta.get("format"), "schema_version": int(meta.get("schema_version", 0)),
        "build_id": meta.get("build_id"),
        "name": meta.get("name"), "created": meta.get("created"), "completed": meta.get("completed"),
        "language": meta.get("language"), "pixlink_version": meta.get("pixlink_version"),
        "images_root": meta.get("images_root") or None,
        "complete": meta.get("phase") == "complete",
        "counts": orjson.loads(meta["counts"]) if "counts" in meta else {},
        "sources": [{"path": p, "format": f, "name": n, "counts": orjson.loads(c), "finished": bool(fin)}
                    for p, f, n, c, fin in w.con.execute(_SOURCES_SQL)],
    }
    tmp = w.out / (schema.META_NAME + ".tmp")
    tmp.write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2))
    os.replace(tmp, w.out / schema.META_NAME)
    names = w.source_names()
    tmp = w.out / (schema.REPORT_NAME + ".tmp")
    with open(tmp, "wb") as fh:
        for src, line, item, code, level, msg in w.con.execute(_ISSUES_SQL):
            fh.write(orjson.dumps({"source": names[src][1] if src in names else None,
                                   "path": names[src][0] if src in names else None, "line": line,
                                   "item": item, "code": code, "level": level, "message": msg}) + b"\n")
    os.replace(tmp, w.out / schema.REPORT_NAME)


def read_report(w: "StoreWriter", complete: bool, max_issues: int, seconds: dict[str, float],
                cpu_seconds: dict[str, float]) -> BuildReport:
    """The :class:`BuildReport` of the build in ``w`` (the first ``max_issues`` issues in memory)."""
    con = w.con
    assert con is not None
    names = w.source_names()
    sources = [SourceReport(path=p, format=f, name=n, counts=SourceCounts.from_json(c), finished=bool(fin))
               for p, f, n, c, fin in con.execute(_SOURCES_SQL)]
    issues = [Issue(source=s, path=names[s][0] if s in names else "", line=ln, item=i, code=c, level=lv, message=m)
              for s, ln, i, c, lv, m in con.execute(_ISSUES_SQL + " LIMIT ?", (max_issues,))]
    issue_counts = {c: n for c, n in con.execute("SELECT code, count(*) FROM issues GROUP BY code ORDER BY code")}
    counts = orjson.loads(w.meta("counts") or "{}") if complete else {}
    return BuildReport(kb_path=w.out, sources=sources, complete=complete, counts=counts, issues=issues,
                       issue_counts=issue_counts, report_path=(w.out / schema.REPORT_NAME) if complete else None,
                       seconds={k: round(v, 3) for k, v in seconds.items()},
                       cpu_seconds={k: round(v, 3) for k, v in cpu_seconds.items()},
                       build_id=w.meta("build_id"))
