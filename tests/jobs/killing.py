"""Start ``pixlink jobs run`` in a subprocess and SIGKILL it (with its process group) mid-job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def start_cli_job(args: list[str], log: Path) -> subprocess.Popen:
    """``pixlink jobs run ARGS`` in a new session (so that its workers can be killed with it)."""
    cmd = [sys.executable, "-c", "from pixlink.cli.main import main; main()", "jobs", "run", *args]
    return subprocess.Popen(cmd, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True,
                            env=dict(os.environ))


def kill_after_parts(proc: subprocess.Popen, parts: Path, at_least: int, total: int, timeout: float = 600) -> int:
    """Wait until ``parts`` holds ``at_least`` part files (of ``total``), then SIGKILL the job's
    whole process group; return how many part files there were. Fails if the job ended first."""
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline:
        n = len(list(parts.glob("*.parquet"))) if parts.is_dir() else 0
        if n >= at_least:
            break
        if proc.poll() is not None:
            raise AssertionError(f"the job ended (exit {proc.returncode}) before it could be killed")
        time.sleep(0.1)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError(f"no {at_least} part files after {timeout} s")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert n < total, f"the job wrote all {total} parts before it was killed"
    return n


def rows_by_id(parts: Path) -> dict[str, list[dict]]:
    import pyarrow.parquet as pq

    out: dict[str, list[dict]] = {}
    for p in sorted(parts.glob("*.parquet")):
        for r in pq.read_table(p).to_pylist():
            out.setdefault(r["id"], []).append(r)
    return out


def write_config(path: Path, **settings) -> Path:
    path.write_text(json.dumps(settings))
    return path
