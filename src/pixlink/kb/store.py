"""Reading a KB directory: entities by id and name, lexical search, hypernym chains.

:class:`KB` opens ``KBDIR/kb.sqlite`` read-only (``file:...?mode=ro``), so any number of reader
processes can share one KB; each thread (and each process after a fork) gets its own SQLite
connection. Nothing is loaded into memory up front.

Search (:meth:`KB.search`) ranks in three tiers, and its score says which:

* ``[2, 3)`` the query equals an entity's label (case and accents folded, see
  :func:`pixlink.kb.text.fold`);
* ``[1, 2)`` the query equals one of its aliases;
* ``[0, 1)`` BM25 over label, aliases and description (FTS5, column weights
  :data:`BM25_WEIGHTS`, description lowest), squashed as ``b / (1 + b)``.

Within the exact tiers the fraction is ``0.5 * b/(1+b) + 0.5 * p/(1+p)`` with ``b`` the BM25
score and ``p = log1p(popularity)``, so "Paris" puts the better-linked Paris first.
"""

from __future__ import annotations

import math
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import orjson

from ..errors import Errors, InputError, KBError
from ..types import Entity
from . import schema
from .text import fold, fts_query

BM25_WEIGHTS = (3.0, 2.0, 0.5)
"""FTS5 bm25 column weights for (label, aliases, description)."""

_REL_TEXT = {"P31": "instance of", "P279": "subclass of"}
_CHUNK = 500


def _squash(x: float) -> float:
    return x / (1.0 + x) if x > 0 else 0.0


class KB:
    """A read-only knowledge base. Open with :meth:`KB.open`.

    Attributes:
        path: the KB directory.
    """

    def __init__(self, path: Path, meta: dict[str, Any]) -> None:
        self.path = path
        self._meta = meta
        self._db = path / schema.DB_NAME
        self._local = threading.local()
        self._sources: dict[int, str] | None = None

    # -- opening ----------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path) -> "KB":
        """Open the KB directory ``path`` (or its ``kb.sqlite``) read-only.

        Raises :class:`KBError`: E100 (no KB there), E101 (its build did not finish),
        E102 (not a pixlink KB, damaged, or another schema version).
        """
        p = Path(path).expanduser()
        if p.is_file() and p.name == schema.DB_NAME:
            p = p.parent
        db = p / schema.DB_NAME
        if not p.exists():
            raise KBError(Errors.E100.format(path=str(p), reason="the directory does not exist"))
        if not db.is_file():
            raise KBError(Errors.E100.format(path=str(p), reason=f"it has no {schema.DB_NAME}"))
        kb = cls(p.resolve(), {})
        try:
            meta = {k: v for k, v in kb._con().execute("SELECT key, value FROM meta")}
        except sqlite3.DatabaseError as exc:
            kb.close()
            raise KBError(Errors.E102.format(path=str(p), reason=str(exc))) from exc
        if meta.get("format") != "pixlink-kb":
            kb.close()
            raise KBError(Errors.E102.format(path=str(p), reason="its meta table does not name the pixlink-kb format"))
        if int(meta.get("schema_version", 0)) != schema.SCHEMA_VERSION:
            kb.close()
            raise KBError(Errors.E102.format(path=str(p), reason=(
                f"schema version {meta.get('schema_version')} but this pixlink reads {schema.SCHEMA_VERSION}; rebuild it")))
        if meta.get("phase") != "complete":
            kb.close()
            raise KBError(Errors.E101.format(path=str(p), where=f"in its {meta.get('phase')!r} phase"))
        kb._meta = meta
        return kb

    def _con(self) -> sqlite3.Connection:
        """This thread's read-only connection (a new one after a fork)."""
        loc = self._local
        con = getattr(loc, "con", None)
        if con is None or loc.pid != os.getpid():
            uri = f"file:{self._db.as_posix()}?mode=ro"
            try:
                con = sqlite3.connect(uri, uri=True, check_same_thread=True)
            except sqlite3.Error as exc:
                raise KBError(Errors.E102.format(path=str(self.path), reason=str(exc))) from exc
            con.execute("PRAGMA query_only=ON")
            con.execute("PRAGMA cache_size=-65536")
            loc.con = con
            loc.pid = os.getpid()
        return con

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None

    def __enter__(self) -> "KB":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        # a KB travels to worker processes as its path; each process opens its own connection
        return {"path": str(self.path)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        other = KB.open(state["path"])
        self.__dict__.update(other.__dict__)

    def __repr__(self) -> str:
        return f"KB({str(self.path)!r}, entities={len(self)})"

    @property
    def build_id(self) -> str | None:
        """The unique id of the build that made this KB (uuid4 hex): a rebuilt KB has a new one,
        so anything derived from a KB (vectors, caches, evaluation runs) can tell whether it
        still matches. ``None`` for a KB built before build ids existed."""
        return self._meta.get("build_id") or None

    # -- basic access -----------------------------------------------------------------------
    def __len__(self) -> int:
        counts = orjson.loads(self._meta.get("counts", "{}"))
        if "entities" in counts:
            return int(counts["entities"])
        return int(self._con().execute("SELECT count(*) FROM entities").fetchone()[0])

    def __contains__(self, eid: object) -> bool:
        return isinstance(eid, str) and self._con().execute(
            "SELECT 1 FROM entities WHERE id=?", (eid,)).fetchone() is not None

    def _source_names(self) -> dict[int, str]:
        if self._sources is None:
            self._sources = {i: n for i, n in self._con().execute("SELECT idx, name FROM sources")}
        return self._sources

    def _assemble(self, rows: list[tuple]) -> list[Entity]:
        """Entity objects for entity rows ``(row, id, label, description, popularity, source, attrs)``."""
        if not rows:
            return []
        con = self._con()
        rids = [r[0] for r in rows]
        marks = ",".join("?" * len(rids))
        kids: dict[str, dict[int, list]] = {}
        for table, col in (("aliases", "name"), ("types", "type"), ("parents", "parent"),
                           ("images", "coalesce(path, ref)")):
            d: dict[int, list] = {}
            for ent, v in con.execute(f"SELECT ent, {col} FROM {table} WHERE ent IN ({marks}) ORDER BY rowid", rids):
                d.setdefault(ent, []).append(v)
            kids[table] = d
        names = self._source_names()
        out = []
        for row, eid, label, desc, pop, src, attrs in rows:
            out.append(Entity(
                id=eid, label=label, aliases=tuple(kids["aliases"].get(row, ())), description=desc,
                types=tuple(kids["types"].get(row, ())), parents=tuple(kids["parents"].get(row, ())),
                images=tuple(kids["images"].get(row, ())), popularity=pop, source=names.get(src, ""),
                attrs=orjson.loads(attrs) if attrs else {}))
        return out

    _COLS = "row, id, label, description, popularity, source, attrs"

    def _by_rows(self, rows: Sequence[int]) -> dict[int, Entity]:
        out: dict[int, Entity] = {}
        con = self._con()
        for i in range(0, len(rows), _CHUNK):
            part = list(rows[i:i + _CHUNK])
            recs = con.execute(f"SELECT {self._COLS} FROM entities WHERE row IN ({','.join('?' * len(part))})", part).fetchall()
            for r, e in zip(recs, self._assemble(recs)):
                out[r[0]] = e
        return out

    def get(self, eid: str) -> Entity | None:
        """The entity with id ``eid``, or ``None``."""
        rows = self._con().execute(f"SELECT {self._COLS} FROM entities WHERE id=?", (eid,)).fetchall()
        ents = self._assemble(rows)
        return ents[0] if ents else None

    def get_many(self, ids: Iterable[str]) -> list[Entity]:
        """Entities for ``ids``, in the same order; ids not in the KB are skipped."""
        ids = list(ids)
        found: dict[str, Entity] = {}
        con = self._con()
        uniq = list(dict.fromkeys(i for i in ids if isinstance(i, str)))
        for i in range(0, len(uniq), _CHUNK):
            part = uniq[i:i + _CHUNK]
            recs = con.execute(f"SELECT {self._COLS} FROM entities WHERE id IN ({','.join('?' * len(part))})", part).fetchall()
            for e in self._assemble(recs):
                found[e.id] = e
        return [found[i] for i in ids if i in found]

    def _name_rows(self, folded: str) -> tuple[list[int], list[int]]:
        con = self._con()
        by_label = [r for (r,) in con.execute("SELECT row FROM entities WHERE label_folded=? ORDER BY row", (folded,))]
        lab = set(by_label)
        by_alias = [r for (r,) in con.execute("SELECT DISTINCT ent FROM aliases WHERE folded=? ORDER BY ent", (folded,))
                    if r not in lab]
        return by_label, by_alias

    def by_name(self, name: str) -> list[Entity]:
        """Entities whose label or an alias equals ``name`` (case and accents folded): label
        matches first, then alias matches, each by popularity (highest first)."""
        if not isinstance(name, str) or not name.strip():
            return []
        by_label, by_alias = self._name_rows(fold(name))
        ents = self._by_rows(by_label + by_alias)
        key = lambda r: -(ents[r].popularity or 0.0)  # noqa: E731
        return [ents[r] for r in sorted(by_label, key=key) + sorted(by_alias, key=key)]

    # -- search -----------------------------------------------------------------------------
    def search(self, query: str, k: int = 10, weights: Sequence[float] = BM25_WEIGHTS) -> list[tuple[Entity, float]]:
        """The ``k`` best entities for ``query``: exact label matches, then exact alias matches,
        then BM25 hits; ``(entity, score)``, higher is better (see the module docstring for the
        score's scale).

        Raises :class:`InputError` E116 for an empty query or ``k < 1``.
        """
        if not isinstance(query, str) or not query.strip():
            raise InputError(Errors.E116.format(query=query, reason="it is empty"))
        if not isinstance(k, int) or k < 1:
            raise InputError(Errors.E116.format(query=query, reason=f"k must be a positive integer, got {k!r}"))
        if len(weights) != 3:
            raise InputError(Errors.E116.format(query=query, reason="weights are 3 numbers: label, aliases, description"))
        con = self._con()
        by_label, by_alias = self._name_rows(fold(query))
        exact = by_label + by_alias
        match = fts_query(query)
        bm: dict[int, float] = {}
        w = ",".join(str(float(x)) for x in weights)
        if match is not None:
            for row, s in con.execute(
                    f"SELECT rowid, bm25(fts, {w}) AS s FROM fts WHERE fts MATCH ? ORDER BY s LIMIT ?",
                    (match, k + len(exact))):
                bm[row] = -s
            missing = [r for r in exact if r not in bm]
            for i in range(0, len(missing), _CHUNK):
                part = missing[i:i + _CHUNK]
                for row, s in con.execute(
                        f"SELECT rowid, bm25(fts, {w}) FROM fts WHERE fts MATCH ? AND rowid IN ({','.join('?' * len(part))})",
                        (match, *part)):
                    bm[row] = -s
        pops = {}
        if exact:
            for i in range(0, len(exact), _CHUNK):
                part = exact[i:i + _CHUNK]
                pops.update(con.execute(
                    f"SELECT row, popularity FROM entities WHERE row IN ({','.join('?' * len(part))})", part).fetchall())
        scored: dict[int, float] = {}
        for tier, rows in ((2.0, by_label), (1.0, by_alias)):
            for r in rows:
                p = pops.get(r)
                scored[r] = tier + 0.5 * _squash(bm.get(r, 0.0)) + 0.5 * _squash(math.log1p(p) if p else 0.0)
        for r, b in bm.items():
            if r not in scored:
                scored[r] = _squash(b)
        top = sorted(scored.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        ents = self._by_rows([r for r, _ in top])
        return [(ents[r], s) for r, s in top if r in ents]

    # -- hierarchy --------------------------------------------------------------------------
    def hypernyms(self, eid: str, max_depth: int = 4) -> list[tuple[str, str, str, int]]:
        """The type and hypernym chain of ``eid``: ``(relation, type id, type label, depth)``.

        Depth 1 holds the entity's own P31 (instance of) types and, for a class, its own P279
        (subclass of) parents; each further depth follows P279 upward from the previous one.
        Each id appears once (at its smallest depth; cycles stop). A type that is not itself in
        the KB has label ``""``. Raises :class:`KBError` E114 when ``eid`` is not in the KB.
        """
        con = self._con()
        r = con.execute("SELECT row FROM entities WHERE id=?", (eid,)).fetchone()
        if r is None:
            raise KBError(Errors.E114.format(id=eid, path=str(self.path)))
        out: list[tuple[str, str, str, int]] = []
        seen = {eid}
        level: list[tuple[str, str]] = [("P31", t) for (t,) in con.execute(
            "SELECT type FROM types WHERE ent=? ORDER BY rowid", (r[0],))]
        level += [("P279", t) for (t,) in con.execute("SELECT parent FROM parents WHERE ent=? ORDER BY rowid", (r[0],))]
        depth = 1
        while level and depth <= max_depth:
            fresh = []
            for rel, t in level:
                if t not in seen:
                    seen.add(t)
                    fresh.append((rel, t))
            labels = self._labels([t for _, t in fresh])
            out.extend((rel, t, labels.get(t, ""), depth) for rel, t in fresh)
            if depth == max_depth or not fresh:
                break
            nxt: list[tuple[str, str]] = []
            ids = [t for _, t in fresh]
            for i in range(0, len(ids), _CHUNK):
                part = ids[i:i + _CHUNK]
                q = (f"SELECT e.id, p.parent FROM parents p JOIN entities e ON e.row = p.ent "
                     f"WHERE e.id IN ({','.join('?' * len(part))}) ORDER BY p.rowid")
                by_id: dict[str, list[str]] = {}
                for child, parent in con.execute(q, part):
                    by_id.setdefault(child, []).append(parent)
                for t in part:
                    nxt.extend(("P279", p) for p in by_id.get(t, ()))
            level = nxt
            depth += 1
        return out

    def _labels(self, ids: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        con = self._con()
        for i in range(0, len(ids), _CHUNK):
            part = list(ids[i:i + _CHUNK])
            out.update(con.execute(f"SELECT id, label FROM entities WHERE id IN ({','.join('?' * len(part))})", part).fetchall())
        return out

    def hypernym_text(self, eid: str, max_depth: int = 4) -> str:
        """A one-line text of the chain, e.g. ``"Barack Obama (Q76) — instance of: human (Q5) —
        subclass of: person (Q215627)"``; each depth of ``subclass of`` is one more segment."""
        ent = self.get(eid)
        if ent is None:
            raise KBError(Errors.E114.format(id=eid, path=str(self.path)))
        chain = self.hypernyms(eid, max_depth=max_depth)
        parts = [f"{ent.label} ({eid})" if ent.label else eid]
        fmt = lambda t, lab: f"{lab} ({t})" if lab else t  # noqa: E731
        for depth in sorted({d for *_, d in chain}):
            for rel in ("P31", "P279"):
                items = [fmt(t, lab) for r, t, lab, d in chain if d == depth and r == rel]
                if items:
                    parts.append(f"{_REL_TEXT[rel]}: {', '.join(items)}")
        return " — ".join(parts)

    # -- iteration --------------------------------------------------------------------------
    def iter_entities(self, batch_size: int = 1000) -> Iterator[Entity]:
        """Every entity in build order, ``batch_size`` at a time from the database."""
        if batch_size < 1:
            raise InputError(Errors.E117.format(what="batch_size", value=batch_size, reason="must be >= 1"))
        con = self._con()
        last = 0
        while True:
            recs = con.execute(f"SELECT {self._COLS} FROM entities WHERE row > ? ORDER BY row LIMIT ?",
                               (last, batch_size)).fetchall()
            if not recs:
                return
            last = recs[-1][0]
            yield from self._assemble(recs)

    def entities_with_images(self, resolved_only: bool = True, batch_size: int = 1000) -> Iterator[Entity]:
        """Entities that have an image: a local file (default) or, with ``resolved_only=False``,
        any reference. Their ``images`` list local paths where resolved, references otherwise."""
        cond = "path IS NOT NULL" if resolved_only else "1"
        con = self._con()
        last = 0
        while True:
            rows = [r for (r,) in con.execute(
                f"SELECT DISTINCT ent FROM images WHERE {cond} AND ent > ? ORDER BY ent LIMIT ?", (last, batch_size))]
            if not rows:
                return
            last = rows[-1]
            ents = self._by_rows(rows)
            yield from (ents[r] for r in rows)

    def image_refs(self, eid: str) -> list[tuple[str, str | None]]:
        """``(reference as the source gave it, absolute local path or None)`` for each image."""
        return self._con().execute(
            "SELECT i.ref, i.path FROM images i JOIN entities e ON e.row = i.ent WHERE e.id=? ORDER BY i.rowid",
            (eid,)).fetchall()

    # -- description ------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """Name, path, build id, language, creation time, counts and sources (with their import counts)."""
        m = self._meta
        sources = [{"path": p, "format": f, "name": n, "counts": orjson.loads(c)}
                   for p, f, n, c in self._con().execute("SELECT path, format, name, counts FROM sources ORDER BY idx")]
        issues = {c: n for c, n in self._con().execute("SELECT code, count(*) FROM issues GROUP BY code ORDER BY code")}
        return {
            "name": m.get("name"), "path": str(self.path), "build_id": self.build_id, "language": m.get("language"),
            "created": m.get("created"), "completed": m.get("completed"),
            "schema_version": int(m.get("schema_version", 0)), "pixlink_version": m.get("pixlink_version"),
            "images_root": m.get("images_root") or None,
            "counts": orjson.loads(m.get("counts", "{}")), "sources": sources, "issues": issues,
            "build_report": str(self.path / schema.REPORT_NAME),
        }
