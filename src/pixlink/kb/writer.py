"""Writing ``kb.sqlite`` during a build: the build's state, the loaded batches, the indexes and
the full-text table.

A :class:`StoreWriter` owns the build's one read-write connection (autocommit; every step opens
its own transaction). While loading the database is in WAL mode, so a killed build rolls back
its last batch; a finished KB is switched back to ``journal_mode=DELETE`` for read-only readers.
The ``meta`` table holds the build's state: ``format``, ``schema_version``, ``build_id`` (a
uuid4 hex, new for every build, kept by a resumed one), ``name``, ``created``, ``language``,
``images_root``, ``phase`` (``load``, ``merged``, ``indexed``, ``fts``, ``complete``) and, once
complete, ``counts`` and ``completed``.
"""

from __future__ import annotations

import sqlite3
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from .. import __version__
from ..errors import Errors, KBError
from . import schema
from .directory import KB_FORMAT
from .report import SourceCounts
from .text import FTS_TOKENIZER

PHASES = ("load", "merged", "indexed", "fts", "complete")
ENTITIES_PATH = "<entities>"
"""The source path of a build from :class:`~pixlink.types.Entity` objects."""


def jdump(obj: Any) -> str:
    """JSON text of ``obj`` as stored in the database's TEXT columns."""
    return orjson.dumps(obj).decode()


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Batch:
    """Rows of one load transaction, in the column order of the load tables (``schema.LOAD_DDL``)."""

    entities: list[tuple] = field(default_factory=list)
    aliases: list[tuple] = field(default_factory=list)
    types: list[tuple] = field(default_factory=list)
    parents: list[tuple] = field(default_factory=list)
    images: list[tuple] = field(default_factory=list)
    issues: list[tuple] = field(default_factory=list)

    def clear(self) -> None:
        for rows in (self.entities, self.aliases, self.types, self.parents, self.images, self.issues):
            rows.clear()


INSERTS = dict((
    ("entities", "INSERT INTO entities(row, id, label, label_folded, description, popularity, source, line, augment,"
                 " attrs) VALUES (?,?,?,?,?,?,?,?,?,?)"),
    ("aliases", "INSERT INTO aliases(ent, name, folded) VALUES (?,?,?)"),
    ("types", "INSERT INTO types(ent, type) VALUES (?,?)"),
    ("parents", "INSERT INTO parents(ent, parent) VALUES (?,?)"),
    ("images", "INSERT INTO images(ent, ref, path) VALUES (?,?,?)"),
    ("issues", "INSERT INTO issues(source, line, item, code, level, message) VALUES (?,?,?,?,?,?)"),
))
"""Table -> the INSERT of its rows (the column order of :class:`Batch`)."""


def source_row(i: int, path: Path, fmt: str) -> tuple:
    """``(idx, path, format, name, size, mtime)`` of source ``i`` for the ``sources`` table."""
    if str(path) == ENTITIES_PATH:
        return (i, ENTITIES_PATH, fmt, f"{fmt}:{path.name}", None, None)
    st = path.stat()
    return (i, str(path.resolve()), fmt, f"{fmt}:{path.name}", st.st_size, st.st_mtime)


class StoreWriter:
    """The ``kb.sqlite`` of a build in ``out``.

    Call :meth:`connect`, then :meth:`create` (a new build) or :meth:`check_resume`, then
    :meth:`flush` for each batch and the finalize steps; :meth:`close` at the end.
    """

    def __init__(self, out: Path) -> None:
        self.out = out
        self.db_path = out / schema.DB_NAME
        self.con: sqlite3.Connection | None = None

    # -- connection and meta ----------------------------------------------------------------
    def connect(self) -> sqlite3.Connection:
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(self.db_path, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise KBError(Errors.E119.format(path=str(self.out), reason=str(exc))) from exc
        for p in schema.BUILD_PRAGMAS:
            con.execute(p)
        con.executescript(schema.LOAD_DDL)
        self.con = con
        return con

    def meta(self, key: str, default: str | None = None) -> str | None:
        assert self.con is not None
        r = self.con.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return r[0] if r else default

    def set_meta(self, **kv: Any) -> None:
        assert self.con is not None
        self.con.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                             [(k, v if isinstance(v, str) else jdump(v)) for k, v in kv.items()])

    def phase_before(self, phase: str) -> bool:
        """The build has not finished step ``phase`` yet."""
        return PHASES.index(self.meta("phase", "load") or "load") < PHASES.index(phase)

    def source_names(self) -> dict[int, tuple[str, str]]:
        """``idx -> (path, name)`` of the build's sources."""
        assert self.con is not None
        return {i: (p, n) for i, p, n in self.con.execute("SELECT idx, path, name FROM sources")}

    def source_counts(self) -> dict[int, SourceCounts]:
        assert self.con is not None
        return {i: SourceCounts.from_json(c) for i, c in self.con.execute("SELECT idx, counts FROM sources")}

    def save_source_counts(self, counts: dict[int, SourceCounts]) -> None:
        assert self.con is not None
        self.con.executemany("UPDATE sources SET counts=? WHERE idx=?", [(jdump(c.to_dict()), i) for i, c in counts.items()])

    # -- start ------------------------------------------------------------------------------
    def create(self, rows: list[tuple], name: str, lang: str, images_root: Path | None) -> str:
        """Record a new build of the sources ``rows`` (:func:`source_row`); returns its build id."""
        con = self.con
        assert con is not None
        con.execute(schema.BUILD_JOURNAL)
        build_id = uuid.uuid4().hex
        con.execute("BEGIN")
        con.executemany("INSERT INTO sources(idx, path, format, name, size, mtime) VALUES (?,?,?,?,?,?)", rows)
        self.set_meta(format=KB_FORMAT, schema_version=str(schema.SCHEMA_VERSION), build_id=build_id, name=name,
                      created=now(), language=lang, phase="load", pixlink_version=__version__,
                      images_root=str(images_root) if images_root else "")
        con.execute("COMMIT")
        return build_id

    def check_resume(self, rows: list[tuple], lang: str, images_root: Path | None) -> None:
        """Refuse (E104) to resume a build of other sources, language or images root."""
        assert self.con is not None
        fail = lambda reason: KBError(Errors.E104.format(path=str(self.out), reason=reason))  # noqa: E731
        if self.meta("format") != KB_FORMAT:
            raise fail("the directory does not hold a pixlink KB build")
        if self.meta("schema_version") != str(schema.SCHEMA_VERSION):
            raise fail(f"it was started by a pixlink with schema version {self.meta('schema_version')}, "
                       f"not {schema.SCHEMA_VERSION}")
        have = self.con.execute("SELECT idx, path, format, name, size, mtime FROM sources ORDER BY idx").fetchall()
        if [r[:3] for r in have] != [r[:3] for r in rows]:
            raise fail(f"it was started with other sources {[(r[1], r[2]) for r in have]}, "
                       f"not {[(r[1], r[2]) for r in rows]}")
        for h, r in zip(have, rows):
            if h[1] != ENTITIES_PATH and (h[4] != r[4] or (h[5] is not None and r[5] is not None and abs(h[5] - r[5]) > 1e-3)):
                raise fail(f"source {h[1]} changed since the build started")
        if self.meta("language") != lang:
            raise fail(f"it was started with language {self.meta('language')!r}, not {lang!r}")
        root = str(images_root) if images_root else ""
        if self.meta("images_root", "") != root:
            raise fail(f"it was started with images root {self.meta('images_root')!r}, not {root!r}")
        if self.meta("phase") != "complete":  # a finished KB (maybe open by readers) stays as it is
            self.con.execute(schema.BUILD_JOURNAL)

    # -- load -------------------------------------------------------------------------------
    def flush(self, idx: int, unit: int, counts: SourceCounts, finished: bool, batch: Batch) -> None:
        """Commit ``batch`` with source ``idx``'s position ``unit`` and counts, in one transaction."""
        con = self.con
        assert con is not None
        con.execute("BEGIN")
        for table in INSERTS:
            self.insert(table, getattr(batch, table))
        con.execute("UPDATE sources SET done=?, finished=?, counts=? WHERE idx=?",
                    (unit, 1 if finished else 0, jdump(counts.to_dict()), idx))
        con.execute("COMMIT")
        batch.clear()

    def insert(self, table: str, rows: list[tuple]) -> None:
        """Insert ``rows`` into ``table`` (one of :data:`INSERTS`), in the caller's transaction."""
        assert self.con is not None
        if rows:
            self.con.executemany(INSERTS[table], rows)

    def next_row(self) -> int:
        """The next free entity row."""
        assert self.con is not None
        return (self.con.execute("SELECT max(row) FROM entities").fetchone()[0] or 0) + 1

    # -- finalize ---------------------------------------------------------------------------
    def index_for_merge(self) -> None:
        """The child-table indexes and a non-unique id index the merge step needs."""
        assert self.con is not None
        self.con.executescript(schema.CHILD_INDEXES)
        self.con.execute("CREATE INDEX IF NOT EXISTS build_entities_id ON entities(id)")

    def final_indexes(self) -> None:
        assert self.con is not None
        self.con.executescript(schema.FINAL_INDEXES)
        self.con.execute("DROP INDEX IF EXISTS build_entities_id")
        self.set_meta(phase="indexed")

    def full_text(self) -> None:
        """The FTS5 table over label, aliases and description (one transaction)."""
        con = self.con
        assert con is not None
        con.execute("BEGIN")
        con.execute("DROP TABLE IF EXISTS fts")
        con.execute(schema.FTS_DDL.format(tokenizer=FTS_TOKENIZER))
        con.execute("INSERT INTO fts(fts, rank) VALUES ('automerge', 0)")  # one merge at the end instead
        con.execute(
            "INSERT INTO fts(rowid, label, aliases, description) "
            "SELECT e.row, e.label, coalesce(a.names, ''), e.description FROM entities e "
            "LEFT JOIN (SELECT ent, group_concat(name, ' ') AS names FROM aliases GROUP BY ent) a ON a.ent = e.row")
        con.execute("INSERT INTO fts(fts) VALUES ('optimize')")
        con.execute("INSERT INTO fts(fts, rank) VALUES ('automerge', 4)")
        self.set_meta(phase="fts")
        con.execute("COMMIT")

    def totals(self) -> dict[str, int]:
        con = self.con
        assert con is not None
        one = lambda q: int(con.execute(q).fetchone()[0] or 0)  # noqa: E731
        return {
            "entities": one("SELECT count(*) FROM entities"),
            "aliases": one("SELECT count(*) FROM aliases"),
            "types": one("SELECT count(*) FROM types"),
            "parents": one("SELECT count(*) FROM parents"),
            "images": one("SELECT count(*) FROM images"),
            "images_resolved": one("SELECT count(*) FROM images WHERE path IS NOT NULL"),
            "entities_with_images": one("SELECT count(DISTINCT ent) FROM images WHERE path IS NOT NULL"),
            "issues": one("SELECT count(*) FROM issues"),
        }

    def complete(self, totals: dict[str, int] | None) -> None:
        """Mark the build complete with its ``totals`` (``None``: it is complete already) and
        switch to journal_mode=DELETE."""
        con = self.con
        assert con is not None
        if totals is not None:
            self.set_meta(phase="complete", counts=totals, completed=now())
        if con.execute("PRAGMA journal_mode").fetchone()[0] != "delete":
            con.execute("PRAGMA journal_mode=DELETE")  # read-only readers need no -wal/-shm file

    def close(self) -> None:
        if self.con is not None:
            self.con.close()
            self.con = None
