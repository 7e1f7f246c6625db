"""``kb embed`` as a job: workers write the vector shards, the index is built from them on one
machine (FAISS files or Milvus Lite) and holds the vectors ``pixlink kb embed`` makes."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from pixlink.errors import InputError
from pixlink.index.dense import DenseIndex, list_indexes
from pixlink.jobs import JobSpec, build_index_from_job, run_job

pytestmark = [pytest.mark.slow, pytest.mark.data]


@pytest.fixture(scope="module")
def embedded(tmp_path_factory, photo_kb):
    """An embed job (dense_text, 2 local workers) over a copy of the photo KB: (kb, out, summary)."""
    tmp = tmp_path_factory.mktemp("embed_job")
    kb = tmp / "kb"
    shutil.copytree(photo_kb, kb)
    spec = JobSpec("embed", {"kb": str(kb), "signal": "dense_text", "profile": "offline", "batch_size": 16})
    summary = run_job(spec, tmp / "out", None, engine="local", workers=2, batch_size=16, rows_per_part=32,
                      progress=False)
    return kb, tmp / "out", summary


def test_embed_job_shards_index_like_kb_embed(tmp_path, photo_kb, embedded):
    kb, out, summary = embedded
    c = summary["counts"]
    info = next(i for i in list_indexes(photo_kb) if i.model_id.endswith("all-MiniLM-L6-v2"))
    assert summary["complete"] and c["ok"] == info.count and c["failed"] == 0 and c["duplicates"] == 0
    assert len(summary["run"]["per_worker_items"]) == 2

    report = build_index_from_job(out, kb, backend="exact", progress=False)
    assert (report["vectors"], report["model_id"], report["space"]) == (info.count, info.model_id, "entity_text")
    ref = DenseIndex.open(info.path)
    new = DenseIndex.open(report["index"], expect_kb_build_id=ref.kb_build_id)
    for eid in ("Q76", "Q461132", "Q1646482"):
        np.testing.assert_allclose(new.vectors_of(eid), ref.vectors_of(eid), atol=1e-4)
    q = np.stack([ref.vectors_of(e)[0] for e in ("Q76", "Q6279")])
    assert new.search(q, k=5)[1] == ref.search(q, k=5)[1]

    pytest.importorskip("milvus_lite")
    from pixlink.index.milvus import MilvusIndex

    m = build_index_from_job(out, kb, backend="milvus", uri=str(tmp_path / "v.db"), progress=False)
    mil = MilvusIndex.open(m["index"], expect_model_id=info.model_id, expect_kb_build_id=ref.kb_build_id)
    try:
        assert m["backend"] == "milvus" and mil.search(q, k=5)[1] == ref.search(q, k=5)[1]
    finally:
        mil.close()


def test_an_embed_job_is_not_indexed_into_another_build_of_the_kb(tmp_path, embedded):
    from pixlink.kb import build_kb

    (tmp_path / "one.jsonl").write_text('{"id": "Q1", "label": "universe"}\n')
    other = tmp_path / "other"
    build_kb([str(tmp_path / "one.jsonl")], other, progress=False)
    _, out, _ = embedded
    with pytest.raises(InputError, match="E759"):
        build_index_from_job(out, other, progress=False)
