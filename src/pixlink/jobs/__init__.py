"""Batch jobs: link, GMNER, NER and KB embedding over many items, on a local process pool or
on Ray (Ray Data, a local Ray or a cluster), resumable, with a per-item error table.

* :func:`run_job` / :func:`plan_job` — run a :class:`JobSpec` over a manifest into an output
  directory (:mod:`.run`); ``pixlink jobs run`` is the command.
* :mod:`.tasks` — the kinds of work (``link``, ``gmner``, ``ner``, ``embed``), each built once
  per worker from the spec.
* :mod:`.output` — the output directory: part files, done ids, error table, summary.
* :func:`build_index_from_job` — the KB index (FAISS files or Milvus) from an ``embed`` job's
  vector shards, on one machine.

See docs/jobs.md.
"""

from __future__ import annotations

from .embed import build_index_from_job
from .run import ENGINES, plan_job, run_job
from .spec import JobSpec
from .tasks import task_names

__all__ = ["ENGINES", "JobSpec", "build_index_from_job", "plan_job", "run_job", "task_names"]
