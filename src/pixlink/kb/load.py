"""Reading the sources of a build into ``kb.sqlite`` (the build's ``load`` phase).

Each unfinished source is streamed in order (:func:`pixlink.kb.sources.read_source`); its
records become rows of a :class:`~pixlink.kb.writer.Batch` and every ``batch_size`` records the
batch is committed together with its issues and the source's position (``unit``), so a killed
build resumes from the last committed batch. No index but the rowid exists while loading.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ..errors import Errors
from ..log import get_logger
from .images import ImageResolver
from .report import SourceCounts
from .sources import LOCAL_IMAGE_FORMATS, Bad, open_source, read_source
from .text import fold
from .writer import ENTITIES_PATH, Batch, StoreWriter, jdump

log = get_logger("pixlink.kb.build")

RECORD_ERRORS = {"E108", "E109"}
"""Codes of a record skipped as malformed (counted in ``bad``)."""
FILE_ERRORS = {"E111", "E118", "E123"}
"""Codes of a file that ends early, breaks or is not UTF-8 (``truncated``; not a record read)."""

Flush = Callable[[int, int, SourceCounts, bool, Batch], None]


def _add_record(batch: Batch, counts: SourceCounts, rec: tuple, row: int, idx: int, line: int,
                resolver: ImageResolver, images_root: Path | None) -> None:
    """The rows of one record tuple (see :mod:`pixlink.kb.sources`) as entity ``row``."""
    eid, label, desc, aliases, types, parents, images, pop, attrs, _key, augment = rec
    batch.entities.append((row, eid, label, fold(label) if label else "", desc, pop, idx, line,
                           1 if augment else 0, jdump(attrs) if attrs else None))
    batch.aliases.extend((row, a[0], a[1]) for a in aliases)
    batch.types.extend((row, t) for t in types)
    batch.parents.extend((row, t) for t in parents)
    for ref in images:
        resolved, report = resolver.resolve(ref)
        batch.images.append((row, ref, resolved))
        counts.images += 1
        if resolved is not None:
            counts.images_resolved += 1
        elif report:
            counts.images_missing += 1
            where = f" under {images_root}" if images_root else ""
            batch.issues.append((idx, line, eid, "E112", "warning", Errors.E112.format(ref=ref, id=eid, where=where)))
    counts.read += 1
    counts.imported += 1


def _add_bad(batch: Batch, counts: SourceCounts, bad: Bad, idx: int, line: int) -> None:
    batch.issues.append((idx, line, bad.item, bad.code, bad.level, bad.message))
    if bad.code in FILE_ERRORS:
        counts.truncated = 1
    else:
        counts.read += 1
        if bad.code in RECORD_ERRORS:
            counts.bad += 1
        else:
            counts.skipped += 1


def load_sources(w: StoreWriter, flush: Flush, bar: Any, *, records: dict[int, Iterable[tuple[int, int, Any]]] | None,
                 max_records: int | None, images_root: Path | None, lang: str, batch_size: int) -> bool:
    """Stream every unfinished source into the database, committing through ``flush``.

    Args:
        w: the build's writer (connected, build started).
        flush: commits ``(source idx, unit, counts, finished, batch)``.
        bar: a :func:`pixlink.progress.progress` bar (started, or disabled).
        records: ``source idx -> (unit, line, record)`` for the ``<entities>`` sources.
        max_records: stop after this many records (good or bad) in this call.

    Returns:
        False when ``max_records`` stopped the load early, True when every source is finished.
    """
    con = w.con
    assert con is not None
    budget = max_records if max_records is not None else math.inf
    srcs = con.execute("SELECT idx, path, format, name, done, finished, size FROM sources ORDER BY idx").fetchall()
    counts_of = w.source_counts()
    processed = 0
    for idx, path, fmt, name, done, finished, size in srcs:
        if finished:
            continue
        counts = counts_of[idx]
        row = w.next_row()
        p = Path(path)
        local = fmt in LOCAL_IMAGE_FORMATS and path != ENTITIES_PATH
        resolver = ImageResolver(images_root, p.parent if local else None)
        task = bar.add_task(f"import {name} (MB)", total=size / 1e6 if size else None, rate="")
        if path == ENTITIES_PATH:
            assert records is not None
            opened = None
            it: Iterator[tuple[int, int, Any]] = iter(records[idx])
        else:
            opened = open_source(p)
            it = read_source(fmt, opened, done, lang, p)
        batch = Batch()
        last_unit = done
        n_batch = 0
        n_src = 0
        t_src = time.perf_counter()
        stopped = False
        try:
            for unit, line, rec in it:
                last_unit = unit
                n_batch += 1
                processed += 1
                if type(rec) is tuple:
                    _add_record(batch, counts, rec, row, idx, line, resolver, images_root)
                    row += 1
                else:
                    _add_bad(batch, counts, rec, idx, line)
                if n_batch >= batch_size or processed >= budget:
                    flush(idx, last_unit, counts, False, batch)
                    n_src += n_batch
                    n_batch = 0
                    rate = n_src / max(time.perf_counter() - t_src, 1e-9)
                    bar.update(task, completed=opened.tell_raw() / 1e6 if opened else None, rate=f"{rate:,.0f} rec/s")
                    if processed >= budget:
                        stopped = True
                        break
        finally:
            if opened is not None:
                opened.close()
        if stopped:
            return False
        flush(idx, last_unit, counts, True, batch)
        bar.update(task, completed=size / 1e6 if size else 0, total=size / 1e6 if size else 0)
        log.debug("source %s: %s", name, counts)
    return True
