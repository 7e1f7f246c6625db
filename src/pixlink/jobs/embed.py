"""The KB index from an ``embed`` job's vector shards, built on one machine.

The job's part files are the shards: one row per KB item (``id`` = the item's cache key,
``vector``, ``model_id``). :func:`build_index_from_job` reads them in order, maps keys to
entity ids (an image key ``"Q76\\t<ref>"`` is a vector of Q76) and writes the index of the
signal's space for that model into the KB directory: FAISS files (``exact``, ``ivfpq``,
``hnsw``, ``auto``: the default) or a Milvus collection (``milvus``, with ``uri``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import Errors, InputError
from ..log import get_logger
from .output import JobDir

log = get_logger("pixlink.jobs")


def _job(out: Path) -> dict[str, Any]:
    try:
        job = json.loads((out / "job.json").read_text())
    except (OSError, ValueError) as exc:
        raise InputError(Errors.E759.format(out=str(out), reason=f"no readable job.json ({exc})")) from exc
    if job.get("spec", {}).get("task") != "embed":
        raise InputError(Errors.E759.format(out=str(out), reason=f"it is a {job.get('spec', {}).get('task')!r} job, not embed"))
    return job


def job_vectors(out: str | Path, chunk_rows: int = 65_536) -> tuple[dict[str, Any], list[str], Any]:
    """``(job params, keys, chunk iterator)`` of an embed job's good rows, in part-file order.

    ``chunk iterator()`` yields ``(keys, (n, D) float32)`` blocks. Raises E759 when the parts
    mix models or dimensions, or hold no vector."""
    jobdir = JobDir(out)
    params = _job(jobdir.out)["spec"]["params"]
    keys: list[str] = []
    models: set[str] = set()
    for t in jobdir.iter_parts(["id", "ok", "model_id"]):
        ok = t.column("ok").to_pylist()
        keys.extend(k for k, good in zip(t.column("id").to_pylist(), ok) if good)
        models.update(m for m, good in zip(t.column("model_id").to_pylist(), ok) if good)
    if not keys:
        raise InputError(Errors.E759.format(out=str(out), reason="its parts hold no vector"))
    if len(models) != 1:
        raise InputError(Errors.E759.format(out=str(out), reason=f"its vectors come from several models: {sorted(models)}"))
    params = dict(params) | {"model_id": models.pop()}

    def chunks() -> Iterator[tuple[list[str], np.ndarray]]:
        dim = None
        for t in jobdir.iter_parts(["id", "ok", "vector"]):
            t = t.filter(t.column("ok"))
            for s in range(0, t.num_rows, chunk_rows):
                part = t.slice(s, chunk_rows)
                flat = part.column("vector").combine_chunks()
                lengths = np.diff(np.asarray(flat.offsets))
                if dim is None:
                    dim = int(lengths[0])
                if (lengths != dim).any():
                    raise InputError(Errors.E759.format(out=str(out), reason="its vectors differ in dimension"))
                vec = np.asarray(flat.values.to_numpy(zero_copy_only=False), dtype=np.float32).reshape(-1, dim)
                yield part.column("id").to_pylist(), vec

    return params, keys, chunks


def build_index_from_job(
    out: str | Path, kb_dir: str | Path | None = None, *, backend: str = "auto", uri: str | None = None,
    token: str | None = None, collection: str | None = None, progress: bool = True, **params: Any,
) -> dict[str, Any]:
    """Build the KB's index of an embed job's vectors; return a report.

    Args:
        out: the embed job's output directory.
        kb_dir: the KB (default: the job's); it must still be the build the job embedded (E759).
        backend: ``auto``, ``exact``, ``ivfpq``, ``hnsw`` (FAISS files in the KB directory) or
            ``milvus`` (a collection at ``uri``, recorded in the KB directory).
        uri, token, collection: Milvus only (see :meth:`pixlink.index.milvus.MilvusIndex.build`).
        **params: index knobs (FAISS backends' knobs; Milvus ``index_type``, ``index_params``...).
    """
    from ..index.dense import DenseIndex, index_dir
    from ..index.embed import entity_of_key
    from ..kb import KB
    from ..link.signals import make_signal

    job_params, keys, chunks = job_vectors(out)
    kb_path = Path(kb_dir) if kb_dir is not None else Path(job_params["kb"])
    with KB.open(kb_path) as kb:
        build_id = kb.build_id
    if job_params.get("kb_build_id") != build_id:
        raise InputError(Errors.E759.format(out=str(out), reason=(
            f"it embedded KB build {job_params.get('kb_build_id')!r}, the KB at {kb_path} is build {build_id!r}; "
            "run the embed job again")))
    space = make_signal(job_params["signal"], job_params.get("signal_options") or None).space
    model_id = job_params["model_id"]
    target = index_dir(kb_path, space, model_id)
    ids = [entity_of_key(k) for k in keys]
    if backend == "milvus":
        from ..index.milvus import MilvusIndex

        idx = MilvusIndex.build(target, chunks(), keys, ids, uri=uri, token=token, collection=collection,
                                model_id=model_id, space=space, kb_build_id=build_id, progress=progress, **params)
    else:
        idx = DenseIndex.build(target, (v for _, v in chunks()), ids, model_id=model_id, space=space, backend=backend,
                               overwrite=True, kb_build_id=build_id, progress=progress, **params)
    report = {"space": space, "model_id": model_id, "vectors": len(keys), "entities": idx.n_entities,
              "backend": idx.backend, "index": str(target), "job": str(out)}
    (target / "embed_report.json").write_text(json.dumps(report, indent=2), "utf-8")
    log.info("indexed %d vectors of %s (%s) from job %s into %s", len(keys), model_id, space, out, target)
    return report
