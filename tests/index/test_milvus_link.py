"""The linking checks on real photos answer the same when the KB's vectors are served by Milvus
Lite (moved there with ``pixlink kb index --backend milvus``) as with the FAISS files, and again
after moving them back. Offline profile (packaged models)."""

from __future__ import annotations

import json
import logging

import pytest
from typer.testing import CliRunner

from helpers import need_module
from jobs.photo_kb import BAD, GOOD, api_answers, build_photo_kb
from pixlink.cli.main import app
from pixlink.index.dense import list_indexes
from pixlink.link import LinkerConfig
from pixlink.models import Profile

pytestmark = [pytest.mark.slow, pytest.mark.data]

# the answers the linking tests expect (tests/link/test_linker_photos.py), on this smaller KB
EXPECTED = {"obama-in-pair": "Q76", "biden-in-pair": "Q6279", "biden-two": "Q6279", "obama-two": "Q76",
            "kit": "Q357607", "rose-named": "Q461132", "text-only": "Q1646482"}


def _answers(kb, shared, profile):
    """The API's answers with a new linker over ``kb`` (its indexes opened anew) sharing ``profile``
    (the models load once for the three rounds)."""
    from pixlink.kb import KB
    from pixlink.link import Linker

    linker = Linker(KB.open(kb), profile, LinkerConfig(segment=False))
    try:
        return api_answers(linker, shared, GOOD + BAD), {n: type(i).__name__ for n, i in linker.vectors._open.items()}
    finally:
        linker.close()


def _same(a, b):
    assert a.keys() == b.keys()
    for i in a:
        assert a[i]["ok"] == b[i]["ok"], i
        if not a[i]["ok"]:
            assert a[i]["code"] == b[i]["code"]
            continue
        x, y = a[i]["answer"], b[i]["answer"]
        assert x["prediction"] == y["prediction"] and x["nil"] == y["nil"], i
        assert [c["entity_id"] for c in x["candidates"]] == [c["entity_id"] for c in y["candidates"]], i
        for c, d in zip(x["candidates"], y["candidates"]):
            assert abs(c["score"] - d["score"]) <= 1e-5 and c["signals"].keys() == d["signals"].keys(), (i, c, d)


def test_linking_answers_the_same_from_milvus_lite_and_faiss(tmp_path, shared_data):
    need_module("pymilvus", "the milvus extra (pip install 'pixlink[milvus]')")
    need_module("milvus_lite", "Milvus Lite (pip install 'pixlink[milvus]')")
    kb = build_photo_kb(tmp_path, shared_data)
    profile = Profile("offline")
    faiss, opened = _answers(kb, shared_data, profile)
    assert {v for v in opened.values() if v} <= {"ExactIndex"} and "ExactIndex" in opened.values()
    assert {i: a["answer"]["prediction"] for i, a in faiss.items() if a["ok"]} == EXPECTED

    uri = tmp_path / "kb_vectors.db"
    res = CliRunner().invoke(app, ["kb", "index", str(kb), "--backend", "milvus", "--uri", str(uri), "--json"])
    logging.getLogger("pixlink").setLevel(logging.INFO)
    assert res.exit_code == 0, res.output
    moved = json.loads(res.stdout)
    # faces, images, instance images, entity texts (v2t's ConSE and dense_text share MiniLM's text index)
    assert {r["backend"] for r in moved} == {"milvus"} and len(moved) == len(list_indexes(kb)) == 4
    milvus, opened = _answers(kb, shared_data, profile)
    assert "MilvusIndex" in opened.values() and "ExactIndex" not in opened.values()
    _same(milvus, faiss)

    res = CliRunner().invoke(app, ["kb", "index", str(kb), "--backend", "exact", "--json"])
    assert res.exit_code == 0, res.output
    back, opened = _answers(kb, shared_data, profile)
    assert "MilvusIndex" not in opened.values()
    _same(back, faiss)


def test_kb_index_refuses_milvus_without_a_uri(tmp_path):
    res = CliRunner().invoke(app, ["kb", "index", str(tmp_path), "--backend", "milvus"])
    assert res.exit_code == 2 and "E274" in res.output
    res = CliRunner().invoke(app, ["kb", "index", str(tmp_path), "--backend", "annoy", "--uri", "x.db"])
    assert res.exit_code == 2 and "E225" in res.output
