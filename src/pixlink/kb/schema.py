"""The on-disk layout of a knowledge base.

A KB is a directory::

    KBDIR/
      kb.sqlite           SQLite 3 database (tables below); opened read-only by readers
      meta.json           {"format": "pixlink-kb", "schema_version", "name", "created", "language",
                           "sources": [{"path", "format", "counts"}], "counts", "complete"}
      build_report.jsonl  one JSON object a line for every skipped / bad / merged record:
                          {"source", "path", "line", "item", "code", "level", "message"}

Tables of ``kb.sqlite``:

* ``entities(row INTEGER PRIMARY KEY, id TEXT UNIQUE, label, label_folded, description,
  popularity REAL NULL, source INT, line INT, augment INT, attrs TEXT JSON object or NULL)``
* ``aliases(ent -> entities.row, name, folded)`` in source order
* ``types(ent, type)`` instance of (P31) ids; ``parents(ent, parent)`` subclass of (P279) ids
* ``images(ent, ref, path)``: ``ref`` as the source gave it; ``path`` the absolute local file or NULL
* ``fts`` FTS5 contentless table over (label, aliases, description), rowid = ``entities.row``
* ``sources(idx, path, format, size, mtime, done, finished, counts JSON)``: build state (resume)
* ``issues(seq, source, line, item, code, level, message)``: the build report
* ``meta(key, value)``: schema version, language, completion
"""

from __future__ import annotations

SCHEMA_VERSION = 1
DB_NAME = "kb.sqlite"
META_NAME = "meta.json"
REPORT_NAME = "build_report.jsonl"

# Tables written during the load phase. No index but the rowid: indexes are built once, after.
LOAD_DDL = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS sources(
  idx INTEGER PRIMARY KEY, path TEXT NOT NULL, format TEXT NOT NULL, name TEXT NOT NULL,
  size INTEGER, mtime REAL, done INTEGER NOT NULL DEFAULT 0, finished INTEGER NOT NULL DEFAULT 0,
  counts TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS entities(
  row INTEGER PRIMARY KEY, id TEXT NOT NULL, label TEXT NOT NULL, label_folded TEXT NOT NULL,
  description TEXT NOT NULL, popularity REAL, source INTEGER NOT NULL, line INTEGER,
  augment INTEGER NOT NULL DEFAULT 0, attrs TEXT);
CREATE TABLE IF NOT EXISTS aliases(ent INTEGER NOT NULL, name TEXT NOT NULL, folded TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS types(ent INTEGER NOT NULL, type TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS parents(ent INTEGER NOT NULL, parent TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images(ent INTEGER NOT NULL, ref TEXT NOT NULL, path TEXT);
CREATE TABLE IF NOT EXISTS issues(
  seq INTEGER PRIMARY KEY, source INTEGER, line INTEGER, item TEXT, code TEXT NOT NULL,
  level TEXT NOT NULL, message TEXT NOT NULL);
"""

# Child tables: (table, value column(s)) — merged by the builder, read by the store.
CHILD_INDEXES = """
CREATE INDEX IF NOT EXISTS aliases_ent ON aliases(ent);
CREATE INDEX IF NOT EXISTS types_ent ON types(ent);
CREATE INDEX IF NOT EXISTS parents_ent ON parents(ent);
CREATE INDEX IF NOT EXISTS images_ent ON images(ent);
"""

FINAL_INDEXES = """
CREATE UNIQUE INDEX IF NOT EXISTS entities_id ON entities(id);
CREATE INDEX IF NOT EXISTS entities_label_folded ON entities(label_folded);
CREATE INDEX IF NOT EXISTS aliases_folded ON aliases(folded);
"""

FTS_DDL = (
    "CREATE VIRTUAL TABLE fts USING fts5(label, aliases, description, content='', "
    "tokenize='{tokenizer}')"
)

# While loading: WAL, so that a killed build rolls back its last batch cleanly (resume). A finished
# KB is switched back to journal_mode=DELETE (readers opening it read-only need no -wal/-shm).
BUILD_JOURNAL = "PRAGMA journal_mode=WAL"
BUILD_PRAGMAS = (
    "PRAGMA synchronous=OFF",   # safe against a killed process; only an OS crash may lose data
    "PRAGMA cache_size=-262144",  # 256 MiB page cache
    "PRAGMA temp_store=FILE",
)
