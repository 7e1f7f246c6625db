"""Merging the records of a build (its finalize step ``merged``), inside one transaction.

* :func:`merge_duplicates` — ids that occur more than once: a repeat within one source is
  reported (E110) and skipped; records of the same id from different sources merge into the
  first one (union of aliases / types / parents / images in source order, first non-empty label
  and description — the other labels become aliases —, highest popularity, attrs merged with the
  first source winning, ``attrs["merged_from"]`` naming the sources).
* :func:`drop_unmatched` — nameless records (types only, ...) that no other source names are
  reported (E113) and dropped.

Both read and write through a :class:`~pixlink.kb.writer.StoreWriter` and update the sources'
counts; groups are handled a few thousand at a time, so memory stays bounded.
"""

from __future__ import annotations

from typing import Any, Sequence

import orjson

from ..errors import Errors
from .report import SourceCounts
from .text import fold
from .writer import StoreWriter, jdump

_CHILD_COLS = {"aliases": "name, folded", "types": "type", "parents": "parent", "images": "ref, path"}


def merge_duplicates(w: StoreWriter) -> None:
    """Resolve the ids that occur more than once (see the module docstring)."""
    con = w.con
    assert con is not None
    names = w.source_names()
    con.execute("DROP TABLE IF EXISTS temp.grp")
    con.execute(
        "CREATE TEMP TABLE grp AS SELECT row, id, label, description, popularity, source, line, augment, attrs "
        "FROM entities WHERE id IN (SELECT id FROM entities GROUP BY id HAVING count(*) > 1) ORDER BY id, row")
    counts = w.source_counts()
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
                _merge_groups(w, groups, counts, names)
                groups = []
        if not chunk:
            break
    con.execute("DROP TABLE temp.grp")
    w.save_source_counts(counts)


def _children(w: StoreWriter, rows: Sequence[int]) -> dict[str, dict[int, list[tuple]]]:
    """``table -> entity row -> [values]`` of the child tables, in insertion order."""
    assert w.con is not None
    out: dict[str, dict[int, list[tuple]]] = {t: {} for t in _CHILD_COLS}
    for i in range(0, len(rows), 500):
        part = rows[i:i + 500]
        marks = ",".join("?" * len(part))
        for table, c in _CHILD_COLS.items():
            for r in w.con.execute(f"SELECT ent, {c} FROM {table} WHERE ent IN ({marks}) ORDER BY rowid", part):
                out[table].setdefault(r[0], []).append(r[1:])
    return out


def _merge_groups(w: StoreWriter, groups: list[list[tuple]], counts: dict[int, SourceCounts],
                  names: dict[int, tuple[str, str]]) -> None:
    con = w.con
    assert con is not None
    all_rows = [r[0] for g in groups for r in g]
    kids = _children(w, all_rows)
    upd: list[tuple] = []
    new_kids: dict[str, list[tuple]] = {t: [] for t in _CHILD_COLS}
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
                    jdump(attrs) if attrs else None, survivor[0]))
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
    for i in range(0, len(all_rows), 500):
        part = all_rows[i:i + 500]
        marks = ",".join("?" * len(part))
        for table in new_kids:
            con.execute(f"DELETE FROM {table} WHERE ent IN ({marks})", part)
    for i in range(0, len(delete_rows), 500):
        part = delete_rows[i:i + 500]
        con.execute(f"DELETE FROM entities WHERE row IN ({','.join('?' * len(part))})", part)
    con.executemany("UPDATE entities SET label=?, label_folded=?, description=?, popularity=?, source=?, line=?,"
                    " augment=?, attrs=? WHERE row=?", upd)
    for table, rows in new_kids.items():
        w.insert(table, rows)
    w.insert("issues", issues)


def drop_unmatched(w: StoreWriter) -> None:
    """Nameless records (types only...) whose id no other source names: report and drop."""
    con = w.con
    assert con is not None
    names = w.source_names()
    counts = w.source_counts()
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
        for _row, eid, src, line, nt, np_, ni in chunk:
            facts = [what for what, n in (("types", nt), ("parents", np_), ("images", ni)) if n]
            what = f"it only adds {', '.join(facts)}" if facts else "it holds nothing else either"
            issues.append((src, line, eid, "E113", "info",
                           Errors.E113.format(id=eid, line=line, path=names[src][0], what=what)))
            counts[src].unmatched += 1
            counts[src].imported -= 1
        rows_seen += len(chunk)
        # the cursor reads entities; write the issues after this chunk (no entity is modified yet)
        w.insert("issues", issues)
    if rows_seen:
        for table in _CHILD_COLS:
            con.execute(f"DELETE FROM {table} WHERE ent IN (SELECT row FROM entities WHERE augment=1)")
        con.execute("DELETE FROM entities WHERE augment=1")
    w.save_source_counts(counts)
