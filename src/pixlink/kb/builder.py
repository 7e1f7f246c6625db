"""Building a KB directory from sources: streaming, constant memory, resumable, reported.

The build has two parts:

1. **load** — each source is streamed in order; its records are appended to ``kb.sqlite`` in
   batches (one transaction a batch, together with the batch's issues and the source's position),
   with no index but the rowid. A killed or stopped build (``max_records``) restarts from the last
   committed batch with ``resume=True``.
2. **finalize** — one pass over the ids that occur more than once: a repeat within one source is
   reported (E110) and skipped; records of the same id from different sources merge (union of
   aliases / types / parents / images, first non-empty label and description — the other labels
   become aliases —, highest
   popularity, attrs merged with the first source winning, ``attrs["merged_from"]`` naming the
   sources); nameless records that no other source names are reported (E113) and dropped. Then the
   indexes and the FTS5 table are built and ``meta.json`` and ``build_report.jsonl`` are written.

Each finalize step records its completion in the ``meta`` table, so a resumed build continues
after the last finished step and ends with the same KB as an uninterrupted one.
"""

from __future__ import annotations

import math
import os
import shutil
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import orjson

from .. import __version__
from ..errors import Errors, InputError, KBError
from ..log import get_logger
from ..types import Entity
from . import schema
from .images import ImageResolver
from .report import BuildReport, Issue, SourceCounts, SourceReport
from .sources import FORMATS, LOCAL_IMAGE_FORMATS, Bad, SourceSpec, open_source
from .text import FTS_TOKENIZER, fold

log = get_logger("pixlink.kb.build")

_PHASES = ("load", "merged", "indexed", "fts", "complete")
_RECORD_ERRORS = {"E108", "E109"}
_FILE_ERRORS = {"E111", "E118"}
ENTITIES_PATH = "<entities>"


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


class _Progress:
    """A rich progress bar on stderr, or nothing."""

    def __init__(self, enabled: bool) -> None:
        self.p = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.p = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[amount]}"),
                              TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                              console=Console(stderr=True), transient=False)
            self.p.start()
        self.unit: dict[Any, str] = {}

    def add(self, desc: str, total: float | None, unit: str = "MB") -> Any:
        if self.p is None:
            return None
        task = self.p.add_task(desc, total=total, rate="", amount="")
        self.unit[task] = unit
        return task

    def update(self, task: Any, **kw: Any) -> None:
        if self.p is not None and task is not None:
            self.p.update(task, **kw)
            t = self.p.tasks[task] if isinstance(task, int) and task < len(self.p.tasks) else None
            if t is not None:
                if self.unit.get(task) == "MB":
                    amount = f"{t.completed / 1e6:,.1f}/{(t.total or 0) / 1e6:,.1f} MB"
                else:
                    amount = f"{t.completed:g}/{t.total or 0:g} {self.unit.get(task, '')}"
                self.p.update(task, amount=amount)

    def stop(self) -> None:
        if self.p is not None:
            self.p.stop()


class _Builder:
    def __init__(self, out_dir: Path, images_root: Path | None, lang: str, batch_size: int,
                 max_issues: int, progress: bool) -> None:
        self.out = out_dir
        self.db_path = out_dir / schema.DB_NAME
        self.images_root = images_root
        self.lang = lang
        self.batch_size = batch_size
        self.max_issues = max_issues
        self.progress = _Progress(progress)
        self.con: sqlite3.Connection | None = None
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}

    def _clock(self) -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    def _tally(self, name: str, start: tuple[float, float]) -> None:
        """Add the wall and CPU time since ``start`` to phase ``name``."""
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start[0]
        self.cpu_seconds[name] = self.cpu_seconds.get(name, 0.0) + time.process_time() - start[1]

    # -- setup ------------------------------------------------------------------------------
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
                             [(k, v if isinstance(v, str) else _dumps(v)) for k, v in kv.items()])

    def start(self, specs: list[tuple[SourceSpec, str]], resume: bool, overwrite: bool, name: str) -> None:
        exists = self.db_path.exists()
        if self.out.exists() and not self.out.is_dir():
            raise KBError(Errors.E119.format(path=str(self.out), reason="it is a file, not a directory"))
        if exists and not resume:
            if not overwrite:
                raise KBError(Errors.E103.format(path=str(self.out)))
            for n in (schema.DB_NAME, schema.DB_NAME + "-wal", schema.DB_NAME + "-shm", schema.META_NAME,
                      schema.REPORT_NAME):
                (self.out / n).unlink(missing_ok=True)
            exists = False
        if resume and not exists:
            log.info("nothing to resume in %s: starting a new build", self.out)
        con = self.connect()
        rows = [(i, str(s.path.resolve()) if str(s.path) != ENTITIES_PATH else ENTITIES_PATH, fmt,
                 f"{fmt}:{s.path.name}", *_stat(s.path)) for i, (s, fmt) in enumerate(specs)]
        if exists:
            self._check_resume(rows)
            if self.meta("phase") != "complete":  # a finished KB (maybe open by readers) stays as it is
                con.execute(schema.BUILD_JOURNAL)
            return
        con.execute(schema.BUILD_JOURNAL)
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        con.execute("BEGIN")
        con.executemany("INSERT INTO sources(idx, path, format, name, size, mtime) VALUES (?,?,?,?,?,?)", rows)
        self.set_meta(format="pixlink-kb", schema_version=str(schema.SCHEMA_VERSION), name=name, created=now,
                      language=self.lang, phase="load", pixlink_version=__version__,
                      images_root=str(self.images_root) if self.images_root else "")
        con.execute("COMMIT")

    def _check_resume(self, rows: list[tuple]) -> None:
        assert self.con is not None
        if self.meta("format") != "pixlink-kb":
            raise KBError(Errors.E104.format(path=str(self.out), reason="the directory does not hold a pixlink KB build"))
        have = self.con.execute("SELECT idx, path, format, name, size, mtime FROM sources ORDER BY idx").fetchall()
        if [r[:3] for r in have] != [r[:3] for r in rows]:
            raise KBError(Errors.E104.format(path=str(self.out), reason=(
                f"it was started with other sources {[(r[1], r[2]) for r in have]}, not {[(r[1], r[2]) for r in rows]}")))
        for h, r in zip(have, rows):
            if h[1] != ENTITIES_PATH and (h[4] != r[4] or (h[5] is not None and r[5] is not None and abs(h[5] - r[5]) > 1e-3)):
                raise KBError(Errors.E104.format(path=str(self.out), reason=f"source {h[1]} changed since the build started"))
        if self.meta("language") != self.lang:
            raise KBError(Errors.E104.format(path=str(self.out), reason=f"it was started with language {self.meta('language')!r}, not {self.lang!r}"))
        root = str(self.images_root) if self.images_root else ""
        if self.meta("images_root", "") != root:
            raise KBError(Errors.E104.format(path=str(self.out), reason=f"it was started with images root {self.meta('images_root')!r}, not {root!r}"))

    # -- load -------------------------------------------------------------------------------
    def load(self, records: dict[int, Iterable[tuple[int, int, Any]]] | None, max_records: int | None) -> bool:
        """Stream every unfinished source. False when ``max_records`` stopped the load early."""
        con = self.con
        assert con is not None
        t0 = self._clock()
        budget = max_records if max_records is not None else math.inf
        srcs = con.execute("SELECT idx, path, format, name, done, finished, counts, size FROM sources ORDER BY idx").fetchall()
        processed = 0
        for idx, path, fmt, name, done, finished, counts_json, size in srcs:
            if finished:
                continue
            counts = SourceCounts(**orjson.loads(counts_json))
            row = (con.execute("SELECT max(row) FROM entities").fetchone()[0] or 0) + 1
            p = Path(path)
            resolver = ImageResolver(self.images_root, p.parent if fmt in LOCAL_IMAGE_FORMATS and path != ENTITIES_PATH else None)
            task = self.progress.add(f"import {name}", size)
            if path == ENTITIES_PATH:
                assert records is not None
                opened = None
                it: Iterator[tuple[int, int, Any]] = iter(records[idx])
            else:
                opened = open_source(p)
                it = FORMATS[fmt][0](opened, done, self.lang, p)
            ents: list[tuple] = []
            als: list[tuple] = []
            tys: list[tuple] = []
            pas: list[tuple] = []
            ims: list[tuple] = []
            iss: list[tuple] = []
            last_unit = done
            n_batch = 0
            t_src = time.perf_counter()
            n_src = 0
            stopped = False
            try:
                for unit, line, rec in it:
                    last_unit = unit
                    n_batch += 1
                    processed += 1
                    if type(rec) is tuple:
                        eid, label, desc, aliases, types, parents, images, pop, attrs, _key, augment = rec
                        r = row
                        row += 1
                        ents.append((r, eid, label, fold(label) if label else "", desc, pop, idx, line,
                                     1 if augment else 0, _dumps(attrs) if attrs else None))
                        for a in aliases:
                            als.append((r, a[0], a[1]))
                        for t in types:
                            tys.append((r, t))
                        for t in parents:
                            pas.append((r, t))
                        for ref in images:
                            resolved, report = resolver.resolve(ref)
                            ims.append((r, ref, resolved))
                            counts.images += 1
                            if resolved is not None:
                                counts.images_resolved += 1
                            elif report:
                                counts.images_missing += 1
                                where = f" under {self.images_root}" if self.images_root else ""
                                iss.append((idx, line, eid, "E112", "warning",
                                            Errors.E112.format(ref=ref, id=eid, where=where)))
                        counts.read += 1
                        counts.imported += 1
                    else:
                        bad: Bad = rec
                        iss.append((idx, line, bad.item, bad.code, bad.level, bad.message))
                        if bad.code in _FILE_ERRORS:
                            counts.truncated = 1
                        else:
                            counts.read += 1
                            if bad.code in _RECORD_ERRORS:
                                counts.bad += 1
                            else:
                                counts.skipped += 1
                    if n_batch >= self.batch_size or processed >= budget:
                        self._flush(idx, last_unit, counts, False, ents, als, tys, pas, ims, iss)
                        n_src += n_batch
                        n_batch = 0
                        rate = n_src / max(time.perf_counter() - t_src, 1e-9)
                        self.progress.update(task, completed=opened.tell_raw() if opened else None, rate=f"{rate:,.0f} rec/s")
                        if processed >= budget:
                            stopped = True
                            break
            finally:
                if opened is not None:
                    opened.close()
            if stopped:
                self._tally("load", t0)
                self.progress.stop()
                return False
            self._flush(idx, last_unit, counts, True, ents, als, tys, pas, ims, iss)
            self.progress.update(task, completed=size or 0, total=size or 0)
            log.debug("source %s: %s", name, counts)
        self._tally("load", t0)
        return True

    def _flush(self, idx: int, unit: int, counts: SourceCounts, finished: bool, ents: list, als: list,
               tys: list, pas: list, ims: list, iss: list) -> None:
        con = self.con
        assert con is not None
        con.execute("BEGIN")
        if ents:
            con.executemany("INSERT INTO entities(row, id, label, label_folded, description, popularity, source, line,"
                            " augment, attrs) VALUES (?,?,?,?,?,?,?,?,?,?)", ents)
        if als:
            con.executemany("INSERT INTO aliases(ent, name, folded) VALUES (?,?,?)", als)
        if tys:
            con.executemany("INSERT INTO types(ent, type) VALUES (?,?)", tys)
        if pas:
            con.executemany("INSERT INTO parents(ent, parent) VALUES (?,?)", pas)
        if ims:
            con.executemany("INSERT INTO images(ent, ref, path) VALUES (?,?,?)", ims)
        if iss:
            con.executemany("INSERT INTO issues(source, line, item, code, level, message) VALUES (?,?,?,?,?,?)", iss)
        con.execute("UPDATE sources SET done=?, finished=?, counts=? WHERE idx=?",
                    (unit, 1 if finished else 0, _dumps(counts.to_dict()), idx))
        con.execute("COMMIT")
        for lst in (ents, als, tys, pas, ims, iss):
            lst.clear()

    # -- finalize ---------------------------------------------------------------------------
    def finalize(self) -> None:
        con = self.con
        assert con is not None
        phase = self.meta("phase", "load")
        task = self.progress.add("finalize: merge, index, full-text", 4, unit="steps")
        t = self._clock()
        if _PHASES.index(phase) < _PHASES.index("merged"):
            con.executescript(schema.CHILD_INDEXES)
            con.execute("CREATE INDEX IF NOT EXISTS build_entities_id ON entities(id)")
            con.execute("BEGIN")
            self._merge()
            self._drop_unmatched()
            self.set_meta(phase="merged")
            con.execute("COMMIT")
        self._tally("merge", t)
        self.progress.update(task, completed=1)
        t = self._clock()
        if _PHASES.index(self.meta("phase", "load")) < _PHASES.index("indexed"):
            con.executescript(schema.FINAL_INDEXES)
            con.execute("DROP INDEX IF EXISTS build_entities_id")
            self.set_meta(phase="indexed")
        self._tally("index", t)
        self.progress.update(task, completed=2)
        t = self._clock()
        if _PHASES.index(self.meta("phase", "load")) < _PHASES.index("fts"):
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
        self._tally("fts", t)
        self.progress.update(task, completed=3)
        self._complete()
        self.progress.update(task, completed=4)

    def _source_names(self) -> dict[int, tuple[str, str]]:
        assert self.con is not None
        return {i: (p, n) for i, p, n in self.con.execute("SELECT idx, path, name FROM sources")}

    def _merge(self) -> None:
        """Resolve ids that occur more than once (see the module docstring)."""
        con = self.con
        assert con is not None
        names = self._source_names()
        con.execute("DROP TABLE IF EXISTS temp.grp")
        con.execute(
            "CREATE TEMP TABLE grp AS SELECT row, id, label, description, popularity, source, line, augment, attrs "
            "FROM entities WHERE id IN (SELECT id FROM entities GROUP BY id HAVING count(*) > 1) ORDER BY id, row")
        counts = {i: SourceCounts(**orjson.loads(c)) for i, c in con.execute("SELECT idx, counts FROM sources")}
        cur = con.execute("SELECT row, id, label, description, popularity, source, line, augment, attrs FROM grp ORDER BY id, row")
        groups: list[list[tuple]] = []
        current: list[tuple] = []
        while True:
            chunk = cur.fetchmany(5000)
            for r in chunk:
                if current and current[0][1] != r[1]:
                    groups.append(current)
                    current = []
                current.append(r)
            if not chunk or len(groups) >= 2000:
                if not chunk and current:
                    groups.append(current)
                    current = []
                if groups:
                    self._merge_groups(groups, counts, names)
                    groups = []
            if not chunk:
                break
        con.execute("DROP TABLE temp.grp")
        con.executemany("UPDATE sources SET counts=? WHERE idx=?", [(_dumps(c.to_dict()), i) for i, c in counts.items()])

    def _children(self, rows: Sequence[int]) -> dict[str, dict[int, list[tuple]]]:
        con = self.con
        assert con is not None
        out: dict[str, dict[int, list[tuple]]] = {"aliases": {}, "types": {}, "parents": {}, "images": {}}
        cols = {"aliases": "name, folded", "types": "type", "parents": "parent", "images": "ref, path"}
        for i in range(0, len(rows), 500):
            part = rows[i:i + 500]
            marks = ",".join("?" * len(part))
            for table, c in cols.items():
                for r in con.execute(f"SELECT ent, {c} FROM {table} WHERE ent IN ({marks}) ORDER BY rowid", part):
                    out[table].setdefault(r[0], []).append(r[1:])
        return out

    def _merge_groups(self, groups: list[list[tuple]], counts: dict[int, SourceCounts],
                      names: dict[int, tuple[str, str]]) -> None:
        con = self.con
        assert con is not None
        all_rows = [r[0] for g in groups for r in g]
        kids = self._children(all_rows)
        upd: list[tuple] = []
        new_kids: dict[str, list[tuple]] = {"aliases": [], "types": [], "parents": [], "images": []}
        issues: list[tuple] = []
        delete_rows: list[int] = []
        for g in groups:
            first_by_src: dict[int, tuple] = {}
            kept: list[tuple] = []
            for r in g:
                src = r[5]
                if src in first_by_src:
                    path = names[src][0]
                    issues.append((src, r[6], r[1], "E110", "error", Errors.E110.format(
                        id=r[1], line=r[6], path=path, first_line=first_by_src[src][6])))
                    counts[src].duplicates += 1
                    counts[src].imported -= 1
                    continue
                first_by_src[src] = r
                kept.append(r)
            survivor = kept[0]
            delete_rows.extend(r[0] for r in g if r is not survivor)
            named = [r for r in kept if not r[7]]
            label = next((r[2] for r in kept if r[2]), "")
            desc = next((r[3] for r in kept if r[3]), "")
            pops = [r[4] for r in kept if r[4] is not None]
            attrs: dict[str, Any] = {}
            for r in kept:
                if r[8]:
                    for k, v in orjson.loads(r[8]).items():
                        attrs.setdefault(k, v)
            src_order = list(dict.fromkeys(r[5] for r in kept))
            if len(src_order) > 1:
                attrs["merged_from"] = [names[s][1] for s in src_order]
                for s in src_order:
                    if s != (named[0][5] if named else survivor[5]):
                        counts[s].merged += 1
            main_src = named[0][5] if named else survivor[5]
            upd.append((label, fold(label) if label else "", desc, max(pops) if pops else None, main_src,
                        (named[0][6] if named else survivor[6]), 0 if named else 1,
                        _dumps(attrs) if attrs else None, survivor[0]))
            # union of children in source order, without repeats; the label is not an alias, the
            # other sources' labels are
            seen_alias = {label}
            for table in new_kids:
                seen: set = set()
                for r in kept:
                    extra = [(r[2], fold(r[2]))] if table == "aliases" and r[2] else []
                    for v in [*extra, *kids[table].get(r[0], ())]:
                        if table == "aliases":
                            if v[0] in seen_alias:
                                continue
                            seen_alias.add(v[0])
                        else:
                            k = v[0]
                            if k in seen:
                                continue
                            seen.add(k)
                        new_kids[table].append((survivor[0], *v))
        marks_rows = all_rows
        for i in range(0, len(marks_rows), 500):
            part = marks_rows[i:i + 500]
            marks = ",".join("?" * len(part))
            for table in new_kids:
                con.execute(f"DELETE FROM {table} WHERE ent IN ({marks})", part)
        for i in range(0, len(delete_rows), 500):
            part = delete_rows[i:i + 500]
            con.execute(f"DELETE FROM entities WHERE row IN ({','.join('?' * len(part))})", part)
        con.executemany("UPDATE entities SET label=?, label_folded=?, description=?, popularity=?, source=?, line=?,"
                        " augment=?, attrs=? WHERE row=?", upd)
        con.executemany("INSERT INTO aliases(ent, name, folded) VALUES (?,?,?)", new_kids["aliases"])
        con.executemany("INSERT INTO types(ent, type) VALUES (?,?)", new_kids["types"])
        con.executemany("INSERT INTO parents(ent, parent) VALUES (?,?)", new_kids["parents"])
        con.executemany("INSERT INTO images(ent, ref, path) VALUES (?,?,?)", new_kids["images"])
        con.executemany("INSERT INTO issues(source, line, item, code, level, message) VALUES (?,?,?,?,?,?)", issues)

    def _drop_unmatched(self) -> None:
        """Nameless records (types only...) whose id no other source names: report and drop."""
        con = self.con
        assert con is not None
        names = self._source_names()
        counts = {i: SourceCounts(**orjson.loads(c)) for i, c in con.execute("SELECT idx, counts FROM sources")}
        cur = con.execute(
            "SELECT e.row, e.id, e.source, e.line, "
            "(SELECT count(*) FROM types WHERE ent=e.row), (SELECT count(*) FROM parents WHERE ent=e.row), "
            "(SELECT count(*) FROM images WHERE ent=e.row) FROM entities e WHERE e.augment=1")
        rows_seen = 0
        while True:
            chunk = cur.fetchmany(10000)
            if not chunk:
                break
            issues = []
            for row, eid, src, line, nt, np_, ni in chunk:
                facts = [w for w, n in (("types", nt), ("parents", np_), ("images", ni)) if n]
                what = f"it only adds {', '.join(facts)}" if facts else "it holds nothing else either"
                issues.append((src, line, eid, "E113", "info",
                               Errors.E113.format(id=eid, line=line, path=names[src][0], what=what)))
                counts[src].unmatched += 1
                counts[src].imported -= 1
            rows_seen += len(chunk)
            # the cursor reads entities; write the issues after this chunk (no entity is modified yet)
            con.executemany("INSERT INTO issues(source, line, item, code, level, message) VALUES (?,?,?,?,?,?)", issues)
        if rows_seen:
            for table in ("aliases", "types", "parents", "images"):
                con.execute(f"DELETE FROM {table} WHERE ent IN (SELECT row FROM entities WHERE augment=1)")
            con.execute("DELETE FROM entities WHERE augment=1")
        con.executemany("UPDATE sources SET counts=? WHERE idx=?", [(_dumps(c.to_dict()), i) for i, c in counts.items()])

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

    def _complete(self) -> None:
        con = self.con
        assert con is not None
        if self.meta("phase") != "complete":
            t = self._clock()
            totals = self.totals()
            self._tally("counts", t)
            self.set_meta(phase="complete", counts=totals,
                          completed=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        if con.execute("PRAGMA journal_mode").fetchone()[0] != "delete":
            con.execute("PRAGMA journal_mode=DELETE")  # read-only readers need no -wal/-shm file
        self.write_files()

    def write_files(self) -> None:
        """``meta.json`` and ``build_report.jsonl`` from the database (written atomically)."""
        con = self.con
        assert con is not None
        meta = {k: v for k, v in con.execute("SELECT key, value FROM meta")}
        out = {
            "format": meta.get("format"), "schema_version": int(meta.get("schema_version", 0)),
            "name": meta.get("name"), "created": meta.get("created"), "completed": meta.get("completed"),
            "language": meta.get("language"), "pixlink_version": meta.get("pixlink_version"),
            "images_root": meta.get("images_root") or None,
            "complete": meta.get("phase") == "complete",
            "counts": orjson.loads(meta["counts"]) if "counts" in meta else {},
            "sources": [{"path": p, "format": f, "name": n, "counts": orjson.loads(c), "finished": bool(fin)}
                        for p, f, n, c, fin in con.execute("SELECT path, format, name, counts, finished FROM sources ORDER BY idx")],
        }
        tmp = self.out / (schema.META_NAME + ".tmp")
        tmp.write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2))
        os.replace(tmp, self.out / schema.META_NAME)
        names = self._source_names()
        tmp = self.out / (schema.REPORT_NAME + ".tmp")
        with open(tmp, "wb") as fh:
            for src, line, item, code, level, msg in con.execute(
                    "SELECT source, line, item, code, level, message FROM issues ORDER BY seq"):
                fh.write(orjson.dumps({"source": names[src][1] if src in names else None,
                                       "path": names[src][0] if src in names else None, "line": line,
                                       "item": item, "code": code, "level": level, "message": msg}) + b"\n")
        os.replace(tmp, self.out / schema.REPORT_NAME)

    def report(self, complete: bool) -> BuildReport:
        con = self.con
        assert con is not None
        names = self._source_names()
        sources = [SourceReport(path=p, format=f, name=n, counts=SourceCounts(**orjson.loads(c)), finished=bool(fin))
                   for p, f, n, c, fin in con.execute("SELECT path, format, name, counts, finished FROM sources ORDER BY idx")]
        issues = [Issue(source=s, path=names[s][0] if s in names else "", line=l, item=i, code=c, level=lv, message=m)
                  for s, l, i, c, lv, m in con.execute(
                      "SELECT source, line, item, code, level, message FROM issues ORDER BY seq LIMIT ?", (self.max_issues,))]
        issue_counts = {c: n for c, n in con.execute("SELECT code, count(*) FROM issues GROUP BY code ORDER BY code")}
        counts = orjson.loads(self.meta("counts") or "{}") if complete else {}
        return BuildReport(kb_path=self.out, sources=sources, complete=complete, counts=counts, issues=issues,
                           issue_counts=issue_counts,
                           report_path=(self.out / schema.REPORT_NAME) if complete else None,
                           seconds={k: round(v, 3) for k, v in self.seconds.items()},
                           cpu_seconds={k: round(v, 3) for k, v in self.cpu_seconds.items()})

    def close(self) -> None:
        self.progress.stop()
        if self.con is not None:
            self.con.close()
            self.con = None


def _stat(p: Path) -> tuple[int | None, float | None]:
    if str(p) == ENTITIES_PATH:
        return None, None
    st = p.stat()
    return st.st_size, st.st_mtime


def _check_lang(lang: str) -> str:
    if not isinstance(lang, str) or not lang or not all(c.isalnum() or c == "-" for c in lang):
        raise InputError(Errors.E117.format(what="Language", value=lang, reason="expected a Wikidata language code such as 'en'"))
    return lang


def _check_images_root(images_root: str | Path | None) -> Path | None:
    if images_root is None:
        return None
    p = Path(images_root).expanduser()
    if not p.is_dir():
        raise InputError(Errors.E117.format(what="Images root", value=str(images_root), reason="is not a directory"))
    return p.resolve()


def build_kb(
    sources: Sequence["str | Path | SourceSpec | tuple[str | Path, str]"] | str | Path,
    out_dir: str | Path,
    images_root: str | Path | None = None,
    lang: str = "en",
    resume: bool = False,
    progress: bool = True,
    *,
    overwrite: bool = False,
    max_records: int | None = None,
    batch_size: int = 5000,
    name: str | None = None,
    max_issues: int = 1000,
) -> BuildReport:
    """Build (or resume) a KB directory from one or more sources.

    Args:
        sources: paths, ``"FORMAT:path"`` strings, ``(path, format)`` pairs or
            :class:`~pixlink.kb.sources.SourceSpec`; formats are the keys of
            :data:`pixlink.kb.sources.FORMATS`, ``auto`` (the default) sniffs the file.
            Several sources of different formats merge into one KB.
        out_dir: the KB directory (created).
        images_root: directory that resolves image file names (Wikidata P18 values, MEL
            ``image_list`` entries, Wiki6M image URLs).
        lang: language of labels, aliases and descriptions (Wikidata dumps).
        resume: continue a build of the same sources that stopped (killed, or ``max_records``).
        progress: show a progress bar on stderr.
        overwrite: replace a KB already in ``out_dir``.
        max_records: stop after this many records (good or bad) in this call, leaving a build to
            resume; the report says ``complete=False``.
        batch_size: records per transaction.
        name: the KB's name in ``meta.json`` (default: the directory name).
        max_issues: how many issues the returned report holds in memory (all are in
            ``build_report.jsonl``).

    Raises:
        InputError: E105 (unreadable source), E106 (unknown format), E107, E117.
        KBError: E103 (``out_dir`` already holds a KB), E104 (cannot resume), E119.
    """
    if isinstance(sources, (str, Path, SourceSpec, tuple)):
        sources = [sources]  # type: ignore[list-item]
    specs = [SourceSpec.parse(s) for s in sources]  # type: ignore[union-attr]
    if not specs:
        raise InputError(Errors.E117.format(what="Sources", value=[], reason="give at least one source"))
    for s in specs:
        if not s.path.is_file():
            raise InputError(Errors.E105.format(path=str(s.path), reason="no such file"))
    resolved = [(s, s.resolved_format()) for s in specs]
    return _run(resolved, Path(out_dir), images_root, lang, resume, progress, overwrite, max_records, batch_size,
                name, max_issues, None)


def _entity_records(entities: Iterable[Entity | dict]) -> Iterator[tuple[int, int, Any]]:
    for i, e in enumerate(entities, start=1):
        try:
            if isinstance(e, dict):
                e = Entity.from_dict(e)
            if not isinstance(e, Entity):
                raise TypeError(f"expected an Entity, got {type(e).__name__}")
        except (TypeError, ValueError) as exc:
            yield i, i, Bad.of(Errors.E109.format(line=i, path=ENTITIES_PATH, reason=str(exc)))
            continue
        seen = {e.label}
        aliases = []
        for a in e.aliases:
            if a and a not in seen:
                seen.add(a)
                aliases.append((a, fold(a)))
        yield i, i, (e.id.strip(), e.label, e.description or "", aliases, list(dict.fromkeys(e.types)),
                     list(dict.fromkeys(e.parents)), list(dict.fromkeys(e.images)), e.popularity,
                     dict(e.attrs) or None, e.id, not e.label and not aliases)


def build_kb_from_entities(
    entities: Iterable[Entity | dict],
    out_dir: str | Path,
    images_root: str | Path | None = None,
    lang: str = "en",
    progress: bool = False,
    *,
    overwrite: bool = False,
    name: str | None = None,
) -> BuildReport:
    """Build a KB from :class:`~pixlink.types.Entity` objects (or their dicts), e.g. a demo KB.
    Same rules as :func:`build_kb` (a repeated id is reported, nameless entities need a named
    twin); the entities' ``source`` is ``"entities:<entities>"``. Not resumable."""
    spec = SourceSpec(Path(ENTITIES_PATH), "entities")
    return _run([(spec, "entities")], Path(out_dir), images_root, lang, False, progress, overwrite, None, 5000,
                name, 1000, {0: _entity_records(entities)})


def _run(resolved: list[tuple[SourceSpec, str]], out: Path, images_root: str | Path | None, lang: str, resume: bool,
         progress: bool, overwrite: bool, max_records: int | None, batch_size: int, name: str | None,
         max_issues: int, records: dict[int, Iterable] | None) -> BuildReport:
    lang = _check_lang(lang)
    root = _check_images_root(images_root)
    if max_records is not None and max_records < 1:
        raise InputError(Errors.E117.format(what="max_records", value=max_records, reason="must be >= 1"))
    if batch_size < 1:
        raise InputError(Errors.E117.format(what="batch_size", value=batch_size, reason="must be >= 1"))
    b = _Builder(out, root, lang, batch_size, max_issues, progress)
    t0 = b._clock()
    try:
        b.start(resolved, resume, overwrite, name or out.resolve().name)
        done = b.load(records, max_records)
        if not done:
            log.info("build of %s stopped after max_records=%s; resume to finish it", out, max_records)
            b._tally("total", t0)
            b.write_files()
            return b.report(complete=False)
        b.finalize()
        b._tally("total", t0)
        return b.report(complete=True)
    finally:
        b.close()


def remove_kb(path: str | Path) -> None:
    """Delete a KB directory built by :func:`build_kb` (only the files a build writes)."""
    p = Path(path)
    for n in (schema.DB_NAME, schema.DB_NAME + "-wal", schema.DB_NAME + "-shm", schema.META_NAME, schema.REPORT_NAME):
        (p / n).unlink(missing_ok=True)
    if p.is_dir() and not any(p.iterdir()):
        shutil.rmtree(p)
