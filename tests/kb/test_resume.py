"""Resumable builds: stopped (max_records) or killed mid-transaction, a resumed build ends with the
same KB as an uninterrupted one."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from pixlink.errors import KBError
from pixlink.kb import KB, build_kb
from pixlink.kb.synth import write_wikidata_dump


def _state(kbdir):
    kb = KB.open(kbdir)
    ents = [e.to_dict() for e in kb.iter_entities(batch_size=500)]
    info = kb.info()
    report = (kbdir / "build_report.jsonl").read_text().splitlines()
    chains = [kb.hypernyms(e["id"]) for e in ents[:50]]
    search = [[(e.id, round(s, 9)) for e, s in kb.search(q, k=5)] for q in ("Q76", "obama", ents[-1]["label"])]
    kb.close()
    return ents, info["counts"], [s["counts"] for s in info["sources"]], report, chains, search


@pytest.fixture
def sources(tmp_path, wd, wd_sample):
    dump = write_wikidata_dump(tmp_path / "synth.json.gz", 1500, seed=3)
    sample = wd.write(tmp_path / "sample.json", wd_sample + [wd_sample[0]])  # one duplicate to report
    types = tmp_path / "types.json"
    types.write_text(json.dumps({"Q76": ["Q82955"], "Q1": ["Q5"], "Q99999999": ["Q5"]}))
    return [str(dump), str(sample), f"codex-types:{types}"]


def test_stopped_build_resumes_to_the_same_kb(tmp_path, sources):
    full = build_kb(sources, tmp_path / "full", progress=False, batch_size=100)
    assert full.complete
    calls = 0
    rep = build_kb(sources, tmp_path / "part", progress=False, batch_size=100, max_records=700)
    while not rep.complete:
        calls += 1
        assert calls < 10
        with pytest.raises(KBError, match=r"\[E101\]"):
            KB.open(tmp_path / "part")
        rep = build_kb(sources, tmp_path / "part", progress=False, batch_size=100, max_records=700, resume=True)
    assert calls == 2  # 1500 + 17 + 3 records in slices of 700
    assert _state(tmp_path / "full") == _state(tmp_path / "part")
    assert rep.issue_counts == full.issue_counts and rep.issue_counts["E110"] == 1
    # resuming a finished build changes nothing; other sources cannot resume it
    again = build_kb(sources, tmp_path / "part", progress=False, resume=True)
    assert again.complete and again.counts == full.counts
    with pytest.raises(KBError, match=r"\[E104\]"):
        build_kb(sources[:2], tmp_path / "part", progress=False, resume=True)
    with pytest.raises(KBError, match=r"\[E104\].*language"):
        build_kb(sources, tmp_path / "part", progress=False, resume=True, lang="fr")


CHILD = textwrap.dedent("""
    import os, signal, sys
    import pixlink.kb.builder as b
    calls = {"n": 0}
    orig = b._Builder._flush
    def flush(self, idx, unit, counts, finished, batch):
        calls["n"] += 1
        if calls["n"] == int(sys.argv[3]):
            # die inside a transaction: the batch's entities are written but not committed
            self.con.execute("BEGIN")
            self.con.executemany("INSERT INTO entities(row, id, label, label_folded, description, popularity,"
                                 " source, line, augment, attrs) VALUES (?,?,?,?,?,?,?,?,?,?)", batch.entities)
            os.kill(os.getpid(), signal.SIGKILL)
        return orig(self, idx, unit, counts, finished, batch)
    b._Builder._flush = flush
    b.build_kb(sys.argv[4:], sys.argv[1], progress=False, batch_size=int(sys.argv[2]))
""")


@pytest.mark.parametrize("kill_at", [3, 17])  # in the dump; in the second source (its one batch)
def test_killed_build_resumes_to_the_same_kb(tmp_path, sources, kill_at):
    out = tmp_path / "killed"
    proc = subprocess.run([sys.executable, "-c", CHILD, str(out), "100", str(kill_at), *sources],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr
    with pytest.raises(KBError, match=r"\[E101\]"):
        KB.open(out)
    rep = build_kb(sources, out, progress=False, batch_size=100, resume=True)
    assert rep.complete
    build_kb(sources, tmp_path / "full", progress=False, batch_size=100)
    assert _state(tmp_path / "full") == _state(out)
