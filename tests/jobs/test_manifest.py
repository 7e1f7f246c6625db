"""Manifests and output directories, without models: bad rows, resume bookkeeping, locks."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pixlink.errors import InputError
from pixlink.jobs import JobSpec
from pixlink.jobs.manifest import read_manifest, todo_table
from pixlink.jobs.output import JobDir, outcomes_table
from pixlink.jobs.tasks import Outcome


def test_bad_rows_go_to_the_error_table_with_their_line(tmp_path):
    m = tmp_path / "m.jsonl"
    m.write_text("\n".join([json.dumps({"id": "a", "image": "x.jpg"}), "{oops", json.dumps([1, 2]),
                            json.dumps({"image": "y.jpg"}), json.dumps({"id": 7, "text": "numeric id"}),
                            json.dumps({"id": "a", "text": "again"}), ""]) + "\n")
    man = read_manifest(m)
    assert [it["id"] for _, it in man.items] == ["a", "7"]
    assert man.items[0][1]["image"] == str(tmp_path / "x.jpg")  # relative to the manifest
    assert [(e["line"], e["code"]) for e in man.errors] == [(2, "E011"), (3, "E752"), (4, "E752"), (6, "E753")]
    assert man.rows == 6


def test_a_parquet_manifest_reads_like_jsonl(tmp_path):
    pq.write_table(pa.table({"id": ["p1", "p2", None], "text": ["x", "y", "z"]}), tmp_path / "m.parquet")
    man = read_manifest(tmp_path / "m.parquet", image_root=tmp_path)
    assert [it["id"] for _, it in man.items] == ["p1", "p2"]
    assert man.errors[0]["line"] == 3
    t = todo_table(man.items)
    assert t.column("id").to_pylist() == ["p1", "p2"] and json.loads(t.column("item")[0].as_py())["text"] == "x"


def test_an_unreadable_manifest_is_refused(tmp_path):
    with pytest.raises(InputError, match="E751"):
        read_manifest(tmp_path / "absent.jsonl")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(InputError, match="E751"):
        read_manifest(tmp_path / "bad.parquet")


def _part(jd, ids, run="r1", seq=0):
    return jd.write_part(outcomes_table("ner", [Outcome(id=i, ok=True, result={"x": 1}) for i in ids], run), run, seq)


def test_done_ids_come_from_readable_parts_and_cut_parts_are_swept(tmp_path):
    jd = JobDir(tmp_path / "out")
    _part(jd, ["a", "b"])
    _part(jd, ["c"], seq=1)
    cut = jd.parts / "part-r2-000000.parquet"
    good = (jd.parts / "part-r1-000000.parquet").read_bytes()
    cut.write_bytes(good[: len(good) // 2])  # a write killed half way: no footer
    (jd.parts / ".part-r2-000001.parquet.tmp").write_bytes(b"x")
    notes = jd.sweep()
    assert not cut.exists() and len(notes) == 1 and "cut short" in notes[0]
    assert not list(jd.parts.glob(".*"))
    assert jd.done_ids() == {"a", "b", "c"}


def test_an_out_dir_holds_one_job(tmp_path):
    jd = JobDir(tmp_path / "out")
    jd.out.mkdir()
    spec = JobSpec("ner", {"profile": "offline"})
    assert jd.check_job(spec, "/m.jsonl") is False
    assert jd.check_job(spec, "/m.jsonl") is True  # the same job: a resume
    with pytest.raises(InputError, match="E754"):
        jd.check_job(JobSpec("ner", {"profile": "hub"}), "/m.jsonl")
    with pytest.raises(InputError, match="E754"):
        jd.check_job(spec, "/other.jsonl")
    with pytest.raises(InputError, match="E750"):
        JobSpec("annotate-everything", {})


def test_the_lock_refuses_a_live_job_and_takes_over_a_dead_ones(tmp_path):
    import socket
    import subprocess
    import sys

    a, b = JobDir(tmp_path / "out"), JobDir(tmp_path / "out")
    assert a.acquire() == []
    with pytest.raises(InputError, match="E755"):
        b.acquire()
    a.release()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    a.lock_path.write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid}))
    notes = b.acquire()
    assert notes and str(dead.pid) in notes[0]
    assert json.loads(b.lock_path.read_text())["pid"] == os.getpid()
    b.release()
    assert not b.lock_path.exists()
