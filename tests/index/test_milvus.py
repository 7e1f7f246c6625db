"""The Milvus backend (Milvus Lite, the same client code as a server) against the FAISS exact
index on the same vectors: the same entities and scores, the same subset scores, and the
checks that keep a stale or foreign collection from being used."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import need_module
from pixlink.errors import IndexError_, InputError
from pixlink.index.dense import DenseIndex, index_dir


@pytest.fixture(autouse=True)
def _milvus():
    need_module("pymilvus", "the milvus extra (pip install 'pixlink[milvus]')")
    need_module("milvus_lite", "Milvus Lite (pip install 'pixlink[milvus]')")


def _data(n_ent=300, dim=32, seed=0):
    rng = np.random.default_rng(seed)
    ids, vecs = [], []
    for e in range(n_ent):
        for _ in range(1 + (e % 3 == 0) * 2):  # every third entity has three vectors
            ids.append(f"Q{e}")
            vecs.append(rng.normal(size=dim))
    return ids, np.asarray(vecs, dtype=np.float32), rng.normal(size=(12, dim)).astype(np.float32)


def _pair(tmp_path, metric="cosine", build="b1"):
    from pixlink.index.milvus import MilvusIndex

    ids, x, q = _data()
    kb = tmp_path / "kb"
    faiss = DenseIndex.build(tmp_path / "faiss", x, ids, model_id="m", space="entity_image", metric=metric,
                             backend="exact", kb_build_id=build, progress=False)
    mil = MilvusIndex.build(index_dir(kb, "entity_image", "m"), [x[:250], x[250:]], None, ids, uri=str(tmp_path / "v.db"),
                            model_id="m", space="entity_image", metric=metric, kb_build_id=build, progress=False)
    return faiss, mil, q


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_milvus_lite_answers_as_the_exact_faiss_index(tmp_path, metric):
    faiss, mil, q = _pair(tmp_path, metric)
    try:
        assert (len(mil), mil.n_entities, mil.dim) == (len(faiss), faiss.n_entities, faiss.dim)
        fs, fi = faiss.search(q, k=10)
        ms, mi = mil.search(q, k=10)
        assert mi == fi  # k distinct entities, the same ones in the same order
        np.testing.assert_allclose(ms, fs, atol=1e-4)
        cands = fi[0][:5] + ["Q-absent"]
        fs2, fi2 = faiss.search_subset(q, cands)
        ms2, mi2 = mil.search_subset(q, cands)
        assert mi2 == fi2
        np.testing.assert_allclose(ms2, fs2, atol=1e-5)
        assert mil.contains(["Q0", "Q1", "nope"]).tolist() == [True, True, False]
        got = mil.vectors_of("Q3")
        want = faiss.vectors_of("Q3")
        assert got.shape == want.shape == (3, 32)
        np.testing.assert_allclose(got[np.lexsort(got.T)], want[np.lexsort(want.T)], atol=1e-6)
    finally:
        mil.close()


def test_a_record_opens_only_for_its_model_build_and_collection(tmp_path):
    from pixlink.index.milvus import MilvusIndex, connect

    faiss, mil, _ = _pair(tmp_path)
    path, uri, name = mil.path, mil.uri, mil.collection
    props = json.loads((path / "meta.json").read_text())
    assert props["backend"] == "milvus" and props["params"]["index_type"] == "FLAT" and "token" not in json.dumps(props)
    mil.close()
    with pytest.raises(IndexError_, match="E222"):
        MilvusIndex.open(path, expect_model_id="other")
    with pytest.raises(IndexError_, match="E250"):
        MilvusIndex.open(path, expect_kb_build_id="b2")
    meta = json.loads((path / "meta.json").read_text())
    (path / "meta.json").write_text(json.dumps(meta | {"kb_build_id": "b2"}))
    with pytest.raises(IndexError_, match="E273"):  # the collection says build b1
        MilvusIndex.open(path)
    (path / "meta.json").write_text(json.dumps(meta))
    client = connect(uri)
    client.drop_collection(name)
    client.close()
    with pytest.raises(IndexError_, match="E272"):
        MilvusIndex.open(path)


def test_reindex_moves_vectors_between_milvus_and_faiss_files(tmp_path):
    from pixlink.index.milvus import is_milvus_record, reindex

    faiss, mil, q = _pair(tmp_path)
    path = mil.path
    mil.close()
    back = reindex(path, "exact", progress=False)
    assert not is_milvus_record(path) and back.backend == "exact"
    fs, fi = faiss.search(q, k=10)
    bs, bi = back.search(q, k=10)
    assert bi == fi
    np.testing.assert_allclose(bs, fs, atol=1e-5)
    back.close()
    again = reindex(path, "milvus", uri=str(tmp_path / "v2.db"), progress=False)
    assert is_milvus_record(path) and again.search(q, k=10)[1] == fi
    again.close()
    with pytest.raises(InputError, match="E274"):
        reindex(path, "milvus")


def test_bad_build_input_is_refused(tmp_path):
    from pixlink.index.milvus import MilvusIndex

    x = np.ones((2, 4), dtype=np.float32)
    with pytest.raises(InputError, match="E276"):  # a tab would make an entity id look like a further vector's key
        MilvusIndex.build(tmp_path / "kb/vectors/s/m", [x], None, ["a\tb", "b"], uri=str(tmp_path / "v.db"),
                          model_id="m", space="entity_text", progress=False)
    with pytest.raises(InputError, match="E224"):
        MilvusIndex.build(tmp_path / "kb/vectors/s/m", [np.zeros((2, 4), dtype=np.float32)], None, ["a", "b"],
                          uri=str(tmp_path / "v.db"), model_id="m", space="entity_text", progress=False)
    with pytest.raises(InputError, match="E274"):
        MilvusIndex.build(tmp_path / "kb/vectors/s/m", [x], None, ["a", "b"], uri=str(tmp_path / "v.db"),
                          model_id="m", space="entity_text", collection="bad name!", progress=False)
