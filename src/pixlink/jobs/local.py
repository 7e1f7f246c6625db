"""The local engine: the job on a pool of worker processes on this machine (no Ray).

Workers are started with ``spawn`` (a fresh interpreter: no forked model or SQLite state) and
each builds its engine from the :class:`~pixlink.jobs.spec.JobSpec` once, in the pool's
initializer; no worker takes a batch before every worker has its engine (a barrier), so that
the first one ready does not take the whole of a short job while the others are still loading
models. The driver sends batches of items, gets their outcomes back as plain data and
writes each finished batch group as one part file, atomically; progress (items, rate, ETA)
goes to stderr.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, Callable

from ..log import get_logger
from .manifest import items_of
from .output import JobDir, outcomes_table, worker_name
from .spec import JobSpec
from .tasks import Outcome, get_task

log = get_logger("pixlink.jobs")

_RUNNER: Any = None
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_READY_TIMEOUT_S = 900


def _init_worker(spec_json: str, threads: int, ready: Any = None) -> None:
    """Pool initializer: build this process's engine once, then wait at ``ready`` (a barrier of
    all the pool's workers) until every worker has built its own."""
    global _RUNNER
    for var in _THREAD_VARS:  # one worker = `threads` cores, not all of them
        os.environ.setdefault(var, str(threads))
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass
    spec = JobSpec.from_json(spec_json)
    _RUNNER = get_task(spec.task).build(dict(spec.params))
    if ready is not None:
        import threading

        try:
            ready.wait(timeout=_READY_TIMEOUT_S)
        except threading.BrokenBarrierError:
            log.warning("a worker was not ready after %d s; this one starts without it", _READY_TIMEOUT_S)


def _run_batch(items: list[dict[str, Any]]) -> tuple[str, list[Outcome]]:
    assert _RUNNER is not None
    me = worker_name()
    outcomes = _RUNNER.run_batch(items)
    for o in outcomes:
        o.worker = me
    return me, outcomes


def run_local(
    spec: JobSpec, todo: Any, jobdir: JobDir, run: str, *, workers: int, batch_size: int, rows_per_part: int,
    threads_per_worker: int = 1, progress: bool = True, on_part: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Run the items of ``todo`` (a :func:`~pixlink.jobs.manifest.todo_table`) on ``workers``
    processes; return the run's figures (items, seconds, per-worker counts)."""
    import multiprocessing as mp

    from ..progress import progress as make_progress

    n = todo.num_rows
    batches = [todo.slice(s, batch_size) for s in range(0, n, batch_size)]
    # a worker per batch at most: the pool starts a process per submitted batch until it has
    # ``workers``, and the ready barrier counts on every one of them being started
    workers = max(1, min(workers, len(batches)))
    per_worker: dict[str, int] = {}
    pending_rows: list[Outcome] = []
    seq = 0
    done = 0
    t0 = time.perf_counter()
    ctx = mp.get_context("spawn")
    t_start = time.perf_counter()
    ready = ctx.Barrier(workers) if workers > 1 else None
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(spec.to_json(), threads_per_worker, ready)) as pool, \
            make_progress(disable=not progress) as bar:
        task = bar.add_task(f"{spec.task} job ({workers} worker{'s' if workers != 1 else ''})", total=n, rate="")
        futures: dict[Future, int] = {}
        it = iter(batches)
        # keep two batches per worker in flight: workers never wait for the driver
        for b in it:
            futures[pool.submit(_run_batch, items_of(b))] = b.num_rows
            if len(futures) >= 2 * workers:
                break
        first_result_at = last_result_at = None
        first_items = 0
        while futures:
            finished, _ = wait(list(futures), return_when=FIRST_COMPLETED)
            for f in finished:
                futures.pop(f)
                worker, outcomes = f.result()
                last_result_at = time.perf_counter()
                if first_result_at is None:
                    first_result_at, first_items = last_result_at, len(outcomes)
                per_worker[worker] = per_worker.get(worker, 0) + len(outcomes)
                pending_rows.extend(outcomes)
                done += len(outcomes)
                while len(pending_rows) >= rows_per_part:
                    jobdir.write_part(outcomes_table(spec.task, pending_rows[:rows_per_part], run), run, seq)
                    seq += 1
                    pending_rows = pending_rows[rows_per_part:]
                    if on_part is not None:
                        on_part(seq)
                rate = done / max(time.perf_counter() - t0, 1e-9)
                bar.update(task, advance=len(outcomes), rate=f"{rate:.2f} items/s")
                nxt = next(it, None)
                if nxt is not None:
                    futures[pool.submit(_run_batch, items_of(nxt))] = nxt.num_rows
        if pending_rows:
            jobdir.write_part(outcomes_table(spec.task, pending_rows, run), run, seq)
            seq += 1
    seconds = time.perf_counter() - t_start
    steady = None  # items/s once every worker has its engine: from the first result to the last
    if first_result_at is not None and last_result_at is not None and last_result_at > first_result_at:
        steady = (done - first_items) / (last_result_at - first_result_at)
    return {"items": done, "seconds": seconds, "parts": seq, "per_worker": per_worker,
            "startup_seconds": (first_result_at - t_start) if first_result_at else None,
            "steady_items_per_second": steady}
