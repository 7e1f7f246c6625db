"""The read side: API, read-only opening, several reader processes, errors."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
import threading

import pytest

from pixlink.errors import InputError, KBError
from pixlink.kb import KB, build_kb


@pytest.fixture
def kbdir(tmp_path, wd, wd_sample):
    build_kb([wd.write(tmp_path / "d.json", wd_sample)], tmp_path / "kb", progress=False)
    return tmp_path / "kb"


def test_api(kbdir, wd_sample):
    kb = KB.open(kbdir)
    assert kb.path == kbdir.resolve()
    assert len(kb) == len(wd_sample) - 2 == len(list(kb.iter_entities(batch_size=4)))
    assert [e.id for e in kb.get_many(["Q90", "nope", "Q76", "Q90"])] == ["Q90", "Q76", "Q90"]
    assert kb.get("nope") is None and "Q76" in kb and "nope" not in kb
    assert [e.id for e in kb.iter_entities()][:3] == ["Q76", "Q5", "Q215627"]  # build order
    info = kb.info()
    assert info["counts"]["entities"] == len(kb) and info["language"] == "en"
    assert info["sources"][0]["format"] == "wikidata" and info["issues"] == {"E113": 1, "E115": 1}
    assert KB.open(kbdir / "kb.sqlite").path == kb.path  # the database file works too
    with pytest.raises(KBError, match=r"\[E114\]"):
        kb.hypernyms("Q000")


def test_search_tiers_and_safety(kbdir):
    kb = KB.open(kbdir)
    hits = kb.search("Paris", k=5)
    # two exact label matches first, the better-linked (4 sitelinks) one on top; then BM25 hits
    assert [e.id for e, _ in hits[:2]] == ["Q90", "Q830149"] and all(s >= 2 for _, s in hits[:2])
    assert hits[0][1] > hits[1][1]
    assert kb.search("paris texas", k=1)[0][0].id == "Q830149"  # BM25 (the alias "Paris, Texas" has a comma)
    assert kb.search("muenchen", k=1)[0][0].id == "Q1726"  # alias
    assert kb.search("münchen", k=1)[0][0].id == "Q1726"  # accent folded exact alias
    assert kb.search("douglas noel adams", k=1)[0][0].id == "Q42"
    # descriptions count, but less than names: "capital" only in descriptions
    assert {e.id for e, _ in kb.search("capital", k=5)} == {"Q90", "Q1726"}
    # FTS5 syntax in user text is just words
    for q in ('"unbalanced', "NEAR(paris", "label:paris", "paris*", "AND", "-paris", "obama OR"):
        kb.search(q, k=3)
    assert kb.search("!!!", k=3) == []
    with pytest.raises(InputError, match=r"\[E116\]"):
        kb.search("  ")
    with pytest.raises(InputError, match=r"\[E116\]"):
        kb.search("paris", k=0)


def test_read_only(kbdir):
    kb = KB.open(kbdir)
    with pytest.raises(sqlite3.OperationalError):
        kb._con().execute("DELETE FROM entities")
    assert len(list(kb.iter_entities())) == len(kb)
    assert not (kbdir / "kb.sqlite-wal").exists()


def _worker(args):
    path, queries = args
    kb = KB.open(path)
    return [[e.id for e, _ in kb.search(q, k=3)] for q in queries] + [[kb.hypernym_text("Q76")]]


def test_several_reader_processes_and_threads(kbdir):
    queries = ["paris", "obama", "douglas adams", "munich", "human"]
    kb = KB.open(kbdir)
    expected = [[e.id for e, _ in kb.search(q, k=3)] for q in queries] + [[kb.hypernym_text("Q76")]]
    ctx = mp.get_context("spawn")
    with ctx.Pool(3) as pool:
        results = pool.map(_worker, [(str(kbdir), queries)] * 6)
    assert results == [expected] * 6
    # threads share one KB object, each with its own connection
    out = []

    def run() -> None:
        out.append([[e.id for e, _ in kb.search(q, k=3)] for q in queries] + [[kb.hypernym_text("Q76")]])

    ts = [threading.Thread(target=run) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert out == [expected] * 4


def test_open_errors(tmp_path, kbdir, wd, wd_sample):
    with pytest.raises(KBError, match=r"\[E100\]"):
        KB.open(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(KBError, match=r"\[E100\]"):
        KB.open(tmp_path / "empty")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "kb.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(KBError, match=r"\[E102\]"):
        KB.open(tmp_path / "junk")
    rep = build_kb([wd.write(tmp_path / "d2.json", wd_sample)], tmp_path / "stopped", progress=False, max_records=3)
    assert not rep.complete
    with pytest.raises(KBError, match=r"\[E101\].*--resume"):
        KB.open(tmp_path / "stopped")
