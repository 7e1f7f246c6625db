"""What a job is, as JSON: the task and its parameters (:class:`JobSpec`).

A worker process or a Ray actor receives a :class:`JobSpec` (never a pickled engine) and builds
its linker / pipeline / tagger / encoder from it once (:meth:`pixlink.jobs.tasks.Task.build`).
The spec is also written to ``OUT/job.json``, so that a restarted job can check that it resumes
the same work.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import Errors, InputError


@dataclass(frozen=True)
class JobSpec:
    """A job's task and its parameters.

    Attributes:
        task: ``link``, ``gmner``, ``ner`` or ``embed`` (:func:`pixlink.jobs.tasks.task_names`).
        params: the task's parameters, checked by the task (:meth:`Task.check`); JSON values
            only (a :class:`~pixlink.link.LinkerSpec` travels as its dict).
    """

    task: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from .tasks import get_task

        get_task(self.task)  # E750 for an unknown task
        if not isinstance(self.params, Mapping):
            raise InputError(Errors.E757.format(name="params", task=self.task, reason="must be a JSON object"))
        try:
            json.dumps(dict(self.params), sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise InputError(Errors.E757.format(name="params", task=self.task, reason=f"not JSON ({exc})")) from exc

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "params": json.loads(json.dumps(dict(self.params), sort_keys=True))}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: Any) -> "JobSpec":
        if not isinstance(d, Mapping) or "task" not in d:
            raise InputError(Errors.E757.format(name="spec", task="?", reason="expected {\"task\": ..., \"params\": {...}}"))
        return cls(task=str(d["task"]), params=dict(d.get("params") or {}))

    @classmethod
    def from_json(cls, text: str) -> "JobSpec":
        return cls.from_dict(json.loads(text))
