"""Building a KB directory from sources: streaming, constant memory, resumable, reported.

The build has two parts:

1. **load** (:mod:`pixlink.kb.load`) — each source is streamed in order; its records are
   appended to ``kb.sqlite`` in batches (one transaction a batch, together with the batch's
   issues and the source's position), with no index but the rowid. A killed or stopped build
   (``max_records``) restarts from the last committed batch with ``resume=True``.
2. **finalize** — one pass over the ids that occur more than once (:mod:`pixlink.kb.merge`: a
   repeat within one source is reported, records of the same id from different sources merge,
   nameless records no other source names are dropped), then the indexes and the FTS5 table
   (:mod:`pixlink.kb.writer`), then ``meta.json`` and ``build_report.jsonl``
   (:mod:`pixlink.kb.report`).

Each finalize step records its completion in the ``meta`` table, so a resumed build continues
after the last finished step and ends with the same KB as an uninterrupted one. Every new build
gets a unique ``build_id`` (``KB.build_id``; a resumed build keeps its own).

The output directory is guarded (:mod:`pixlink.kb.directory`): a build writes only into a new or
empty directory or over a pixlink KB; ``overwrite=True`` then removes everything in it
(``vectors/`` included). A build that imports no entity is an error (E122) and keeps nothing.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from ..errors import Errors, InputError, KBError
from ..log import get_logger
from ..types import Entity
from .directory import clear_kb_dir, inspect_out, remove_kb
from .load import FILE_ERRORS, load_sources
from .merge import drop_unmatched, merge_duplicates
from .report import BuildReport, SourceCounts, read_report, write_files
from .sources import Bad, SourceSpec
from .text import fold
from .writer import ENTITIES_PATH, Batch, StoreWriter, source_row

log = get_logger("pixlink.kb.build")


class _Builder:
    """One call of a build: the writer, the progress bar and the time spent in each phase."""

    def __init__(self, out_dir: Path, images_root: Path | None, lang: str, batch_size: int,
                 max_issues: int, progress: bool) -> None:
        self.out = out_dir
        self.images_root = images_root
        self.lang = lang
        self.batch_size = batch_size
        self.max_issues = max_issues
        from ..progress import progress as progress_bar  # rich: only a build needs it, not a reader

        self.w = StoreWriter(out_dir)
        self.bar = progress_bar(disable=not progress)
        self.bar.start()
        self.created_dir = False
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}

    @property
    def con(self) -> Any:
        """The build's read-write connection (``None`` before :meth:`start`)."""
        return self.w.con

    def _clock(self) -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    def _tally(self, name: str, start: tuple[float, float]) -> None:
        """Add the wall and CPU time since ``start`` to phase ``name``."""
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start[0]
        self.cpu_seconds[name] = self.cpu_seconds.get(name, 0.0) + time.process_time() - start[1]

    # -- setup ------------------------------------------------------------------------------
    def start(self, specs: list[tuple[SourceSpec, str]], resume: bool, overwrite: bool, name: str) -> None:
        state = inspect_out(self.out)  # read-only: E119 / E120 / E121 leave everything as it is
        rows = [source_row(i, s.path, fmt) for i, (s, fmt) in enumerate(specs)]
        if state.is_kb and not resume:
            if not overwrite:
                raise KBError(Errors.E103.format(path=str(self.out)))
            clear_kb_dir(state)
        if resume and not state.is_kb:
            log.info("nothing to resume in %s: starting a new build", self.out)
        self.created_dir = not state.exists
        self.w.connect()
        if state.is_kb and resume:
            self.w.check_resume(rows, self.lang, self.images_root)
        else:
            self.w.create(rows, name, self.lang, self.images_root)

    # -- load -------------------------------------------------------------------------------
    def load(self, records: dict[int, Iterable[tuple[int, int, Any]]] | None, max_records: int | None) -> bool:
        """Stream every unfinished source. False when ``max_records`` stopped the load early."""
        t0 = self._clock()
        try:
            return load_sources(self.w, self._flush, self.bar, records=records, max_records=max_records,
                                images_root=self.images_root, lang=self.lang, batch_size=self.batch_size)
        finally:
            self._tally("load", t0)

    def _flush(self, idx: int, unit: int, counts: SourceCounts, finished: bool, batch: Batch) -> None:
        """Commit one batch (every batch of the load goes through here)."""
        self.w.flush(idx, unit, counts, finished, batch)

    # -- finalize ---------------------------------------------------------------------------
    def finalize(self) -> None:
        """Merge, index, full-text, complete: each step once, resumable after the last one done."""
        w = self.w
        con = self.con
        task = self.bar.add_task("finalize: merge, index, full-text (steps)", total=4, rate="")
        t = self._clock()
        if w.phase_before("merged"):
            w.index_for_merge()
            con.execute("BEGIN")
            merge_duplicates(w)
            drop_unmatched(w)
            w.set_meta(phase="merged")
            con.execute("COMMIT")
        self._tally("merge", t)
        self.bar.update(task, completed=1)
        t = self._clock()
        if w.phase_before("indexed"):
            w.final_indexes()
        self._tally("index", t)
        self.bar.update(task, completed=2)
        t = self._clock()
        if w.phase_before("fts"):
            w.full_text()
        self._tally("fts", t)
        self.bar.update(task, completed=3)
        totals = None
        if w.phase_before("complete"):
            t = self._clock()
            totals = w.totals()
            self._tally("counts", t)
            if not totals["entities"]:
                raise KBError(Errors.E122.format(path=str(self.out), reason=self.empty_reason()))
        w.complete(totals)
        write_files(w)
        self.bar.update(task, completed=4)

    def empty_reason(self) -> str:
        """Why no entity came from the sources: per source, the file-level problem or the counts
        and the first reported records."""
        con = self.con
        parts = []
        for idx, path, name, size, counts_json in con.execute("SELECT idx, path, name, size, counts FROM sources ORDER BY idx"):
            c = SourceCounts.from_json(counts_json)
            msgs = [m for (m,) in con.execute(
                "SELECT message FROM issues WHERE source=? ORDER BY (code IN (%s)) DESC, seq LIMIT 2"
                % ",".join("?" * len(FILE_ERRORS)), (idx, *sorted(FILE_ERRORS)))]
            if path != ENTITIES_PATH and size == 0:
                what = "the file is empty"
            elif c.read == 0:
                what = "no record was read"
            else:
                what = (f"{c.read:,} records read: {c.bad:,} malformed, {c.skipped:,} skipped, "
                        f"{c.duplicates:,} repeated ids, {c.unmatched:,} without a name")
            parts.append(f"{name}: {what}" + "".join(f"; {m}" for m in msgs))
        return " | ".join(parts)

    def discard(self) -> None:
        """Delete what this build wrote (after an empty build): the directory's content, and the
        directory itself when this build created it."""
        self.w.close()
        state = inspect_out(self.out)
        if state.is_kb:
            clear_kb_dir(state)
        if self.created_dir and not any(self.out.iterdir()):
            self.out.rmdir()

    def report(self, complete: bool) -> BuildReport:
        return read_report(self.w, complete, self.max_issues, self.seconds, self.cpu_seconds)

    def close(self) -> None:
        self.bar.stop()
        self.w.close()


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
            write_files(b.w)
            return b.report(complete=False)
        try:
            b.finalize()
        except KBError as exc:
            if exc.code == "E122":
                b.discard()
            raise
        b._tally("total", t0)
        return b.report(complete=True)
    finally:
        b.close()


__all__ = ["build_kb", "build_kb_from_entities", "remove_kb", "ENTITIES_PATH"]
