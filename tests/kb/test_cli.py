"""``pixlink kb build | info | search | entity`` through the real Typer app."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from pixlink.cli.main import app

runner = CliRunner()


def test_build_info_search_entity(tmp_path, wd, wd_sample):
    dump = wd.write(tmp_path / "d.json.gz", wd_sample)
    types = tmp_path / "t.json"
    types.write_text(json.dumps({"Q42": ["Q36180"]}))
    images = tmp_path / "img"
    images.mkdir()
    (images / "President_Barack_Obama.jpg").write_bytes(b"x")
    out = tmp_path / "kb"
    r = runner.invoke(app, ["kb", "build", str(dump), f"codex-types:{types}", "--out", str(out),
                            "--images", str(images), "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["complete"] and rep["counts"]["entities"] == len(wd_sample) - 2
    assert [s["format"] for s in rep["sources"]] == ["wikidata", "codex-types"]
    assert rep["issue_counts"] == {"E112": 1, "E113": 1, "E115": 1}

    r = runner.invoke(app, ["kb", "info", str(out), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["counts"]["images_resolved"] == 1

    r = runner.invoke(app, ["kb", "search", str(out), "douglas adams", "-k", "2", "--json"])
    hits = json.loads(r.stdout)
    assert r.exit_code == 0 and hits[0]["id"] == "Q42" and hits[0]["rank"] == 1 and hits[0]["types"] == ["Q5", "Q36180"]

    r = runner.invoke(app, ["kb", "entity", str(out), "Q76", "--json"])
    d = json.loads(r.stdout)
    assert d["label"] == "Barack Obama" and d["hypernyms"][0] == {"relation": "P31", "id": "Q5", "label": "human", "depth": 1}
    assert d["hypernym_text"].startswith("Barack Obama (Q76) — instance of: human (Q5) — subclass of: person (Q215627)")
    assert d["image_refs"] == [{"ref": "President Barack Obama.jpg", "path": str((images / "President_Barack_Obama.jpg").resolve())}]

    # human-readable forms
    r = runner.invoke(app, ["kb", "entity", str(out), "Q76"])
    assert r.exit_code == 0 and "instance of" in r.stdout and "human (Q5)" in r.stdout
    r = runner.invoke(app, ["kb", "search", str(out), "paris"])
    assert r.exit_code == 0 and "Q90" in r.stdout
    r = runner.invoke(app, ["kb", "info", str(out)])
    assert r.exit_code == 0 and "entities" in r.stdout


def test_resume_and_errors(tmp_path, wd, wd_sample):
    dump = wd.write(tmp_path / "d.json", wd_sample)
    out = tmp_path / "kb"
    r = runner.invoke(app, ["kb", "build", str(dump), "--out", str(out), "--max-records", "5", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["complete"] is False
    r = runner.invoke(app, ["kb", "search", str(out), "paris"])
    assert r.exit_code == 2 and "[E101]" in r.output
    r = runner.invoke(app, ["kb", "build", str(dump), "--out", str(out)])
    assert r.exit_code == 2 and "[E103]" in r.output
    r = runner.invoke(app, ["kb", "build", str(dump), "--out", str(out), "--resume"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["kb", "entity", str(out), "Q404"])
    assert r.exit_code == 2 and "[E114]" in r.output
    r = runner.invoke(app, ["kb", "build", str(tmp_path / "none.json"), "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "[E105]" in r.output
    r = runner.invoke(app, ["kb", "info", str(tmp_path / "x")])
    assert r.exit_code == 2 and "[E100]" in r.output
