"""The local engine (a spawn process pool) on real photos: the job answers as the Python API,
bad items land in the error table, and a driver killed mid-job resumes with no id missing and
none twice. Real packaged models (offline profile)."""

from __future__ import annotations

import json

import pytest

from jobs.killing import kill_after_parts, rows_by_id, start_cli_job, write_config
from jobs.photo_kb import BAD, GOOD, same_link
from pixlink.jobs import run_job

pytestmark = [pytest.mark.slow, pytest.mark.data]

IDS = {r["id"] for r in GOOD + BAD}


def test_killed_local_job_resumes_and_answers_as_the_api(tmp_path, photo_kb, link_spec, manifest, api, shared_data):
    out = tmp_path / "out"
    cfg = write_config(tmp_path / "linker.json", segment=False)
    proc = start_cli_job(["link", "--input", str(manifest), "--out", str(out), "--kb", str(photo_kb), "--profile",
                          "offline", "--config", str(cfg), "--images", str(shared_data("photos")), "--batch-size", "1",
                          "--rows-per-part", "1", "--workers", "1"], tmp_path / "first.log")
    killed_at = kill_after_parts(proc, out / "parts", at_least=2, total=len(IDS))
    assert json.loads((out / "job.json").read_text())["spec"] == link_spec.to_dict()  # the CLI made the same spec

    summary = run_job(link_spec, out, manifest, engine="local", workers=2, batch_size=2, rows_per_part=3,
                      image_root=shared_data("photos"), jsonl=True, progress=False)
    c = summary["counts"]
    assert summary["complete"] and summary["resumed"]
    assert c["done_before"] >= killed_at and c["done_before"] + c["done_now"] == len(IDS)
    assert (c["missing"], c["duplicates"], c["manifest_errors"]) == (0, 0, 3)
    rows = rows_by_id(out / "parts")
    assert set(rows) == IDS and all(len(v) == 1 for v in rows.values())  # none missing, none twice
    for i in IDS:
        same_link(rows[i][0], api[i])
    assert c["ok"] == sum(a["ok"] for a in api.values()) and c["failed"] == len(IDS) - c["ok"]

    import pyarrow.parquet as pq

    errors = pq.read_table(out / "errors.parquet").to_pylist()
    by_stage = {(e["stage"], e["id"], e["code"]) for e in errors}
    assert {(s, i) for s, i, _ in by_stage if s == "item"} == {("item", i) for i in IDS if not api[i]["ok"]}
    assert sorted(e["line"] for e in errors if e["stage"] == "manifest") == [11, 12, 13]
    assert ("manifest", "kit", "E753") in by_stage  # the repeated id is reported, the first "kit" was linked
    lines = (out / "results.jsonl").read_text().splitlines()
    assert sorted(json.loads(x)["id"] for x in lines) == sorted(IDS)

    again = run_job(link_spec, out, manifest, engine="local", workers=1, image_root=shared_data("photos"), progress=False)
    assert again["counts"]["done_now"] == 0 and again["counts"]["done_before"] == len(IDS)
    assert len(again["runs"]) == 2  # the killed run wrote no summary; the resume and this one did
