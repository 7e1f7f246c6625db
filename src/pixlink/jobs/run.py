"""Run a job (:func:`run_job`) or show its plan (:func:`plan_job`).

The driver checks the task's options, reads the manifest (or makes the items from the KB for
``embed``), takes OUT's lock, deletes part files a kill cut short, reads the ids already done,
hands the rest to an engine (``local``: a process pool; ``ray``: Ray Data), then writes the
error table and ``summary.json``. Started again with the same OUT, a job does only the items
that have no row yet.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..errors import Errors, InputError
from ..log import get_logger
from .manifest import Manifest, from_items, read_manifest, todo_table
from .output import JobDir, new_run_id
from .spec import JobSpec
from .tasks import get_task

log = get_logger("pixlink.jobs")

ENGINES = ("local", "ray")


def _checked(spec: JobSpec | dict[str, Any]) -> JobSpec:
    s = spec if isinstance(spec, JobSpec) else JobSpec.from_dict(spec)
    return JobSpec(s.task, get_task(s.task).check(dict(s.params)))


def _manifest(spec: JobSpec, manifest: str | Path | None, image_root: str | Path | None) -> Manifest:
    if manifest is not None:
        return read_manifest(manifest, image_root)
    items = get_task(spec.task).kb_manifest(dict(spec.params))
    if items is None:
        raise InputError(Errors.E757.format(name="--input", task=spec.task, reason="a manifest is needed"))
    return from_items(items)


def _check_options(engine: str, workers: int, batch_size: int, rows_per_part: int) -> None:
    if engine not in ENGINES:
        raise InputError(Errors.E010.format(what="engine", value=engine, reason=f"one of {', '.join(ENGINES)}"))
    for name, v in (("workers", workers), ("batch_size", batch_size), ("rows_per_part", rows_per_part)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise InputError(Errors.E010.format(what=name, value=v, reason="an integer >= 1"))


def plan_job(
    spec: JobSpec | dict[str, Any], out: str | Path, manifest: str | Path | None = None, *, engine: str = "local",
    workers: int = 1, batch_size: int = 8, rows_per_part: int = 256, address: str | None = None,
    cpus_per_worker: float = 1.0, gpus_per_worker: float = 0.0, image_root: str | Path | None = None,
) -> dict[str, Any]:
    """What :func:`run_job` would do, without loading a model or writing anything."""
    _check_options(engine, workers, batch_size, rows_per_part)
    spec = _checked(spec)
    man = _manifest(spec, manifest, image_root)
    jobdir = JobDir(out)
    done = jobdir.done_ids() if jobdir.parts.is_dir() else set()
    todo = sum(1 for _, it in man.items if it["id"] not in done)
    return {
        "task": spec.task, "engine": engine, "address": address if engine == "ray" else None, "workers": workers,
        "batch_size": batch_size, "rows_per_part": rows_per_part,
        "per_worker": {"cpus": cpus_per_worker, "gpus": gpus_per_worker},
        "manifest": man.path or "(items made from the KB)", "manifest_rows": man.rows, "items": len(man.items),
        "manifest_errors": len(man.errors), "already_done": len(man.items) - todo, "to_do": todo, "out": str(out),
        "resume": (Path(out) / "job.json").is_file(), "params": spec.to_dict()["params"],
    }


def run_job(
    spec: JobSpec | dict[str, Any], out: str | Path, manifest: str | Path | None = None, *, engine: str = "local",
    workers: int = 1, batch_size: int = 8, rows_per_part: int = 256, address: str | None = None,
    cpus_per_worker: float = 1.0, gpus_per_worker: float = 0.0, image_root: str | Path | None = None,
    jsonl: bool = False, progress: bool = True,
) -> dict[str, Any]:
    """Run a job; return its summary (also written to ``OUT/summary.json``).

    Args:
        spec: the task and its parameters (:class:`JobSpec` or its dict).
        out: the output directory (created; a job's OUT is resumed when run again).
        manifest: JSONL or Parquet items; ``None`` for ``embed``, whose items come from the KB.
        engine: ``local`` (process pool) or ``ray`` (Ray Data).
        workers: worker processes (local) or actors (ray).
        batch_size: items per worker call.
        rows_per_part: rows per part file (the unit of resume: a kill loses at most the
            items of the parts in flight).
        address: Ray cluster address (``ray``; None: a local Ray, or the one already started).
        cpus_per_worker, gpus_per_worker: resources of each actor (``ray``); ``cpus_per_worker``
            is also the torch threads of a local worker.
        image_root: folder relative image paths of the manifest are in (default: its folder).
        jsonl: also write ``results.jsonl``.
        progress: progress on stderr.
    """
    _check_options(engine, workers, batch_size, rows_per_part)
    spec = _checked(spec)
    if engine == "ray":
        from .ray_engine import require_ray

        require_ray()
    man = _manifest(spec, manifest, image_root)
    jobdir = JobDir(out)
    run = new_run_id()
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    notes = jobdir.acquire()
    try:
        resumed = jobdir.check_job(spec, man.path)
        notes += jobdir.sweep()
        done = jobdir.done_ids()
        todo_items = [(line, it) for line, it in man.items if it["id"] not in done]
        log.info("%s job: %d items, %d already done, %d to do", spec.task, len(man.items), len(man.items) - len(todo_items),
                 len(todo_items))
        figures: dict[str, Any] = {"items": 0, "seconds": 0.0, "per_worker": {}}
        if todo_items:
            todo = todo_table(todo_items)
            threads = max(1, int(cpus_per_worker))
            if engine == "local":
                from .local import run_local

                figures = run_local(spec, todo, jobdir, run, workers=workers, batch_size=batch_size,
                                    rows_per_part=rows_per_part, threads_per_worker=threads, progress=progress)
            else:
                from .ray_engine import run_ray

                figures = run_ray(spec, todo, jobdir, run, workers=workers, batch_size=batch_size,
                                  rows_per_part=rows_per_part, address=address, cpus_per_worker=cpus_per_worker,
                                  gpus_per_worker=gpus_per_worker, progress=progress)
        counts = jobdir.finalize(man.errors, man.lines(), jsonl)
        compute = _compute_seconds(jobdir, run)
        wanted = {it["id"] for _, it in man.items}
        missing = len(wanted - counts["ids_done"])
        seconds = float(figures.get("seconds") or 0.0)
        n_now = int(figures.get("items") or 0)
        rate = n_now / seconds if seconds > 0 else None
        per_worker_rates = None
        if rate is not None and figures.get("per_worker"):
            per_worker_rates = round(rate / max(len(figures["per_worker"]), 1), 4)
        if missing:
            notes.append(f"{missing} items have no row: the run stopped early; run the job again to finish it")
        if counts["duplicates"]:
            notes.append(f"{counts['duplicates']} ids have more than one row")  # never expected: a bug if seen
            log.warning(notes[-1])
        from .. import __version__
        from .ray_engine import ray_version

        this_run = {
            "run": run, "engine": engine, "workers": workers, "batch_size": batch_size, "started": started,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "items": n_now, "seconds": round(seconds, 3),
            "items_per_second": round(rate, 4) if rate is not None else None,
            "items_per_second_per_worker": per_worker_rates,
            "startup_seconds": round(figures["startup_seconds"], 3) if figures.get("startup_seconds") else None,
            "steady_items_per_second": (round(figures["steady_items_per_second"], 4)
                                        if figures.get("steady_items_per_second") else None),
            "per_worker_items": figures.get("per_worker", {}),
            # the workers' own time on the items (model loading, queues and writing excluded):
            # items per second of one worker
            "compute_seconds": round(compute, 3),
            "items_per_compute_second": round(n_now / compute, 4) if compute > 0 else None,
        }
        previous = _previous_runs(jobdir)
        summary = {
            "task": spec.task, "out": str(out), "manifest": man.path, "complete": missing == 0,
            "counts": {
                "manifest_rows": man.rows, "manifest_errors": len(man.errors), "items": len(man.items),
                "done_before": len(done & wanted), "done_now": n_now, "ok": counts["ok"], "failed": counts["failed"],
                "missing": missing, "duplicates": counts["duplicates"],
            },
            "resumed": resumed, "run": this_run, "runs": previous + [this_run],
            "versions": {"pixlink": __version__, "ray": ray_version() if engine == "ray" else None},
            "params": spec.to_dict()["params"], "notes": notes,
        }
        jobdir.write_summary(summary)
        return summary
    finally:
        jobdir.release()


def _compute_seconds(jobdir: JobDir, run: str) -> float:
    """The summed per-item seconds of this run's rows."""
    total = 0.0
    for t in jobdir.iter_parts(["run", "seconds"]):
        for r, sec in zip(t.column("run").to_pylist(), t.column("seconds").to_pylist()):
            if r == run and sec is not None:
                total += float(sec)
    return total


def _previous_runs(jobdir: JobDir) -> list[dict[str, Any]]:
    import json

    path = jobdir.out / "summary.json"
    if not path.is_file():
        return []
    try:
        return list(json.loads(path.read_text()).get("runs") or [])
    except (OSError, ValueError):
        return []
