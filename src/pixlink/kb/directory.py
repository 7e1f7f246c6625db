"""What an output directory holds before a build, and what a build may delete there.

A build writes into ``out`` only when ``out`` is new, empty, or holds a pixlink KB (a
``kb.sqlite`` whose ``meta`` table names the ``pixlink-kb`` format). Anything else — a folder of
the user's files, a ``kb.sqlite`` of another program — is never written to nor deleted, not even
with ``overwrite=True`` (``--force``): the build refuses with E120 / E121 and the message does
not suggest ``--force``.

The check reads ``kb.sqlite`` read-only (``file:...?mode=ro``), so a foreign database gets no
table and no change. ``overwrite=True`` on a pixlink KB removes *everything* in the directory
(``vectors/`` and any cache included): a rebuilt KB must never be answered from the vectors of
the KB it replaced.
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from ..errors import Errors, KBError
from . import schema

KB_FORMAT = "pixlink-kb"


@dataclass(frozen=True)
class OutDir:
    """What ``out`` holds.

    Attributes:
        path: the directory.
        exists: it exists (as a directory).
        is_kb: it holds a pixlink KB (finished or not).
        entries: names of what is in it (sorted), for messages.
    """

    path: Path
    exists: bool
    is_kb: bool
    entries: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.entries


def _foreign_db_reason(db: Path) -> str | None:
    """``None`` when ``db`` is a pixlink KB database, else why it is not. Read-only."""
    try:
        con = sqlite3.connect(f"file:{db.as_posix()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        return f"it cannot be opened ({exc})"
    try:
        con.execute("PRAGMA query_only=ON")
        has_meta = con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
        if not has_meta:
            return "it has no meta table"
        row = con.execute("SELECT value FROM meta WHERE key='format'").fetchone()
    except sqlite3.DatabaseError as exc:
        return f"it is not an SQLite database pixlink can read ({exc})"
    finally:
        con.close()
    if row is None or row[0] != KB_FORMAT:
        return f"its meta table does not name the {KB_FORMAT} format"
    return None


def inspect_out(out: Path) -> OutDir:
    """Look at ``out`` without changing it.

    Raises :class:`KBError` E119 when ``out`` is a file, E121 when it holds a ``kb.sqlite``
    that is not a pixlink KB, E120 when it is not empty and holds no ``kb.sqlite``.
    """
    if out.exists() and not out.is_dir():
        raise KBError(Errors.E119.format(path=str(out), reason="it is a file, not a directory"))
    if not out.exists():
        return OutDir(out, exists=False, is_kb=False)
    entries = tuple(sorted(p.name for p in out.iterdir()))
    db = out / schema.DB_NAME
    if db.exists():
        why = _foreign_db_reason(db) if db.is_file() else "it is not a file"
        if why is not None:
            raise KBError(Errors.E121.format(path=str(out), db=schema.DB_NAME, reason=why))
        return OutDir(out, exists=True, is_kb=True, entries=entries)
    if entries:
        shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
        raise KBError(Errors.E120.format(path=str(out), what=shown))
    return OutDir(out, exists=True, is_kb=False, entries=entries)


def clear_kb_dir(state: OutDir) -> None:
    """Delete everything in the pixlink KB directory ``state.path`` (the directory stays).

    Refuses (E121) unless :func:`inspect_out` found a pixlink KB there."""
    if not state.is_kb:
        raise KBError(Errors.E121.format(path=str(state.path), db=schema.DB_NAME, reason="there is no pixlink KB to replace"))
    for p in state.path.iterdir():
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def remove_kb(path: str | Path) -> None:
    """Delete a KB directory built by :func:`pixlink.kb.build_kb`, with everything in it
    (``vectors/`` included). A missing directory is no error; a directory that is not a
    pixlink KB is refused (E120 / E121) and left as it is."""
    p = Path(path)
    if not p.exists():
        return
    state = inspect_out(p)
    if state.is_kb:
        clear_kb_dir(state)
    p.rmdir()
