"""The Ray engine (Ray Data, a local Ray of 2 CPUs): a driver killed mid-job, then the job run
again on 2 actors — no id missing, none twice, bad items in the error table, the same answers
as the Python API item by item. One test: a Ray start costs ~10 s and each actor loads the models."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from helpers import need_module
from jobs.killing import kill_after_parts, rows_by_id, start_cli_job, write_config
from jobs.photo_kb import BAD, GOOD, same_link
from pixlink.jobs import run_job

pytestmark = [pytest.mark.slow, pytest.mark.data]

IDS = {r["id"] for r in GOOD + BAD}


def _ray_processes() -> set[int]:
    out = subprocess.run(["pgrep", "-f", "ray/core/src/ray|raylet|gcs_server"], capture_output=True, text=True)
    return {int(p) for p in out.stdout.split()}


def test_killed_ray_job_resumes_and_answers_as_the_api(tmp_path, photo_kb, link_spec, manifest, api, shared_data):
    ray = need_module("ray", "the distributed extra (pip install 'pixlink[distributed]')")
    assert not ray.is_initialized()
    before = _ray_processes()
    out = tmp_path / "out"
    cfg = write_config(tmp_path / "linker.json", segment=False)
    proc = start_cli_job(["link", "--engine", "ray", "--workers", "1", "--input", str(manifest), "--out", str(out),
                          "--kb", str(photo_kb), "--profile", "offline", "--config", str(cfg), "--images",
                          str(shared_data("photos")), "--batch-size", "1", "--rows-per-part", "1"], tmp_path / "first.log")
    try:
        kill_after_parts(proc, out / "parts", at_least=2, total=len(IDS))
    finally:
        # the killed driver's local Ray (its raylet, GCS and workers) must not outlive it
        for pid in _ray_processes() - before:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        summary = run_job(link_spec, out, manifest, engine="ray", workers=2, batch_size=2, rows_per_part=2,
                          image_root=shared_data("photos"), progress=False)
    finally:
        ray.shutdown()
    c = summary["counts"]
    assert summary["complete"] and summary["resumed"] and c["done_before"] >= 2
    assert (c["missing"], c["duplicates"], c["manifest_errors"]) == (0, 0, 3)
    assert summary["versions"]["ray"] == ray.__version__
    rows = rows_by_id(out / "parts")
    assert set(rows) == IDS and all(len(v) == 1 for v in rows.values())
    for i in IDS:
        same_link(rows[i][0], api[i])
    assert len({r[0]["worker"] for i, r in rows.items() if r[0]["run"] == summary["run"]["run"]}) >= 1
