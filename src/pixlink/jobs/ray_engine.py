"""The Ray engine: the job as a Ray Data pipeline, on a local Ray or a cluster.

::

    ray.data.from_arrow(blocks of the items to do)
      .map_batches(JobActor, fn_constructor_kwargs={"spec_json": ..., "run": ...},
                   batch_size=B, concurrency=N, num_cpus=C, num_gpus=G, batch_format="pyarrow")
      .write_parquet(OUT/parts)

:class:`JobActor` is a callable class, so Ray Data runs it as ``N`` long-lived actors, each of
which builds its linker / pipeline / tagger / encoder from the :class:`JobSpec` once. The
items come from the driver (``from_arrow``), which has read the manifest and removed the ids
already done; reading and writing take no CPU of their own (``num_cpus=0``), so ``N`` actors of
one CPU fit a Ray of ``N`` CPUs (with a read or write task that asks for a CPU, Ray Data waits
for one forever once the actors hold them all).

On a cluster, pixlink (with the same extras) must be installed on every node, and the KB, the
images and OUT must be at the same paths on every node (a shared file system) — or images given
as URIs every node can read.
"""

from __future__ import annotations

import time
from typing import Any

from ..errors import Errors, InputError
from ..log import get_logger
from .manifest import items_of
from .output import JobDir, outcomes_table, worker_name
from .spec import JobSpec
from .tasks import get_task

log = get_logger("pixlink.jobs")


def ray_version() -> str | None:
    try:
        import ray
    except ImportError:
        return None
    return str(ray.__version__)


def require_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise InputError(Errors.E756.format(
            engine="ray", reason=f"Ray Data is not installed ({exc}); pip install 'pixlink[distributed]'")) from exc
    return ray


class JobActor:
    """One Ray actor: builds the task's engine once, then turns batches of items into part rows."""

    def __init__(self, spec_json: str, run: str) -> None:
        spec = JobSpec.from_json(spec_json)
        self.task = spec.task
        self.run = run
        self.runner = get_task(spec.task).build(dict(spec.params))
        self.worker = worker_name()

    def __call__(self, batch: Any) -> Any:
        outcomes = self.runner.run_batch(items_of(batch))
        for o in outcomes:
            o.worker = self.worker
        return outcomes_table(self.task, outcomes, self.run)


def run_ray(
    spec: JobSpec, todo: Any, jobdir: JobDir, run: str, *, workers: int, batch_size: int, rows_per_part: int,
    address: str | None = None, cpus_per_worker: float = 1.0, gpus_per_worker: float = 0.0, progress: bool = True,
) -> dict[str, Any]:
    """Run the items of ``todo`` as a Ray Data job; return the run's figures."""
    ray = require_ray()
    from ray.data.datasource import FilenameProvider

    started_here = False
    t_start = time.perf_counter()
    if not ray.is_initialized():
        import logging

        kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING,
                                  "log_to_driver": True}
        if address:
            kwargs["address"] = address
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise InputError(Errors.E756.format(engine="ray", reason=f"ray.init failed: {exc}")) from exc
        started_here = True
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = progress
    ctx.print_on_execution_start = progress
    try:
        n = todo.num_rows
        # a block is a part file; small jobs get at least ~4 blocks per actor so that all of them work
        per_block = min(rows_per_part, -(-n // (4 * workers)))
        step = max(batch_size, (per_block // batch_size) * batch_size)
        blocks = [todo.slice(s, step) for s in range(0, n, step)]
        cluster_cpus = float(ray.cluster_resources().get("CPU", 0))
        ds = ray.data.from_arrow(blocks)
        pool: dict[str, Any] = {"concurrency": workers}
        if hasattr(ray.data, "ActorPoolStrategy"):  # `concurrency` is deprecated since Ray 2.51
            pool = {"compute": ray.data.ActorPoolStrategy(size=workers)}
        out = ds.map_batches(
            JobActor, fn_constructor_kwargs={"spec_json": spec.to_json(), "run": run}, batch_size=batch_size,
            num_cpus=cpus_per_worker, num_gpus=gpus_per_worker or None, batch_format="pyarrow", **pool,
        )
        jobdir.parts.mkdir(parents=True, exist_ok=True)
        out.write_parquet(str(jobdir.parts), filename_provider=FilenameProvider(dataset_uuid=f"part-{run}",
                                                                                file_format="parquet"),
                          ray_remote_args={"num_cpus": 0})
        seconds = time.perf_counter() - t_start
        per_worker: dict[str, int] = {}
        for t in jobdir.iter_parts(["worker", "run"]):
            for w, r in zip(t.column("worker").to_pylist(), t.column("run").to_pylist()):
                if r == run:
                    per_worker[w] = per_worker.get(w, 0) + 1
        return {"items": sum(per_worker.values()), "seconds": seconds, "parts": None, "per_worker": per_worker,
                "cluster_cpus": cluster_cpus, "address": address or "local"}
    finally:
        if started_here:
            ray.shutdown()
