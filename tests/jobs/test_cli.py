"""``pixlink jobs``: the plan of a dry run (no model loads), refusals, a real NER job with a bad
item, and ``jobs status``."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from pixlink.cli.main import app


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_dry_run_shows_the_plan_and_writes_nothing(tmp_path, photo_kb, manifest, shared_data):
    out = tmp_path / "out"
    res = invoke("jobs", "run", "link", "--input", manifest, "--out", out, "--kb", photo_kb, "--profile", "offline",
                 "--workers", "2", "--engine", "ray", "--dry-run", "--json")
    assert res.exit_code == 0, res.output
    plan = json.loads(res.stdout)
    assert (plan["items"], plan["manifest_errors"], plan["to_do"], plan["workers"]) == (10, 3, 10, 2)
    assert plan["engine"] == "ray" and plan["resume"] is False
    assert not out.exists()


@pytest.mark.parametrize("args,code", [
    (["annotate-all", "--out", "o"], "E750"),
    (["link", "--out", "o"], "E757"),  # no --kb
    (["ner", "--out", "o", "--fusion", "f.json"], "E705"),  # --fusion file absent
    (["link", "--out", "o", "--kb", "."], "E757"),  # . is not a KB
    (["ner", "--out", "o", "--engine", "spark"], "E010"),
])
def test_refusals_name_the_problem(tmp_path, monkeypatch, args, code):
    monkeypatch.chdir(tmp_path)
    res = invoke("jobs", "run", *args)
    assert res.exit_code == 2 and code in res.output, res.output


@pytest.mark.slow
def test_a_ner_job_tags_posts_and_reports_the_bad_one(tmp_path):
    m = tmp_path / "posts.jsonl"
    m.write_text("\n".join(json.dumps(r) for r in [
        {"id": "p1", "text": "Barack Obama met Angela Merkel in Berlin"},
        {"id": "p2", "tokens": ["RT", "@nasa", ":", "Kennedy", "Space", "Center", "launch"]},
        {"id": "p3", "text": "   "},
    ]) + "\n")
    out = tmp_path / "out"
    res = invoke("jobs", "run", "ner", "--input", m, "--out", out, "--profile", "offline", "--batch-size", "3", "--json")
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert (s["counts"]["ok"], s["counts"]["failed"], s["counts"]["missing"]) == (2, 1, 0)
    errors = [json.loads(x) for x in (out / "errors.jsonl").read_text().splitlines()]
    assert [(e["id"], e["code"]) for e in errors] == [("p3", "E752")]
    import pyarrow.parquet as pq

    rows = {r["id"]: r for r in pq.read_table(out / "parts").to_pylist()}
    ents = json.loads(rows["p1"]["result"])["entities"]
    assert {"Barack Obama", "Berlin"} <= {e["text"] for e in ents}
    assert rows["p1"]["n_entities"] == len(ents)
    st = invoke("jobs", "status", out, "--json")
    assert st.exit_code == 0 and json.loads(st.stdout)["ids_done"] == 3


def test_gmner_and_embed_plans_check_their_options(tmp_path, photo_kb):
    m = tmp_path / "posts.jsonl"
    m.write_text(json.dumps({"id": "p1", "text": "Obama in Berlin"}) + "\n")
    cfg = tmp_path / "gmner.json"
    cfg.write_text(json.dumps({"segment": False, "label_scheme": "MISC"}))
    res = invoke("jobs", "run", "gmner", "--input", m, "--out", tmp_path / "o", "--kb", photo_kb, "--config", cfg,
                 "--dry-run", "--json")
    assert res.exit_code == 0, res.output
    plan = json.loads(res.stdout)
    assert plan["to_do"] == 1 and plan["params"]["config"]["label_scheme"] == "MISC"
    cfg.write_text(json.dumps({"label_scheme": "XYZ"}))
    res = invoke("jobs", "run", "gmner", "--input", m, "--out", tmp_path / "o", "--config", cfg, "--dry-run")
    assert res.exit_code == 2 and "E010" in res.output
    res = invoke("jobs", "run", "embed", "--kb", photo_kb, "--signal", "face", "--out", tmp_path / "e", "--dry-run",
                 "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["to_do"] == 4  # one reference photo each for four of the five people
    res = invoke("jobs", "run", "embed", "--kb", photo_kb, "--signal", "lexical", "--out", tmp_path / "e", "--dry-run")
    assert res.exit_code == 2 and "E757" in res.output


def test_annotate_jobs_check_their_config(tmp_path, photo_kb):
    """The annotate task is wired to pixlink.annotate (reverse annotation) where it exists."""
    pytest.importorskip("pixlink.annotate", reason="the annotate package is not in this tree")
    m = tmp_path / "items.jsonl"
    m.write_text(json.dumps({"id": "a1", "image": "obama.jpg", "entity": "Q76"}) + "\n")
    cfg = tmp_path / "annotate.json"
    cfg.write_text(json.dumps({"mode": "maskoven", "annotators": ["face"]}))
    res = invoke("jobs", "run", "annotate", "--input", m, "--out", tmp_path / "o", "--kb", photo_kb, "--config", cfg,
                 "--dry-run", "--json")
    assert res.exit_code == 0, res.output
    plan = json.loads(res.stdout)
    assert plan["to_do"] == 1 and plan["params"]["config"]["annotators"] == ["face"]
    cfg.write_text(json.dumps({"no_such_knob": 1}))
    res = invoke("jobs", "run", "annotate", "--input", m, "--out", tmp_path / "o", "--kb", photo_kb, "--config", cfg,
                 "--dry-run")
    assert res.exit_code == 2 and "E757" in res.output
