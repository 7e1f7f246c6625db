"""Resuming an evaluation never reuses stale results (issue #11): the resume key covers each
item's content, the KB's build id and the linker's configuration, and the report says what was
reused, what was redone, and what became of every input line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from pixlink.cli.main import app
from pixlink.eval.datasets.mentions import load_mentions
from pixlink.eval.runner import run_link, save
from pixlink.kb import KB, build_kb
from pixlink.link import Fusion, LinkerConfig
from pixlink.models import Profile

runner = CliRunner()
TABLE = {"obama": [("Q76", 0.9), ("Q6279", 0.5)], "biden": [("Q6279", 0.8)], "paris": [("Q90", 0.7)]}
ROWS = [
    {"id": "m1", "image": "a.png", "box": [1, 1, 10, 10], "surface": "obama", "gold": "Q76"},
    {"id": "m2", "image": "a.png", "surface": "biden", "gold": "Q6279"},
    {"id": "m3", "image": "a.png", "surface": "paris", "gold": "Q90"},
    {"id": "m4", "image": "a.png", "text": "FAIL", "gold": "Q1"},
]


def _write(tmp_path: Path, rows: list[dict]) -> Path:
    if not (tmp_path / "a.png").exists():
        Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "a.png")
    f = tmp_path / "mentions.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return f


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_an_edited_item_is_redone_and_the_report_says_so(tmp_path, fakes):
    out = tmp_path / "run"
    first = run_link(load_mentions(_write(tmp_path, ROWS)).items, fakes.TableLinker(TABLE), out, {"data": "m"}, k=5)
    assert first["hits@1"] == pytest.approx(3 / 4) and first["resume"] == {
        "reused": 0, "redone": 0, "new": 4, "redone_because": {}}
    # m1's gold is corrected in the file: its old record (and old gold) must not be reused
    rows = [dict(ROWS[0], gold="Q6279"), *ROWS[1:]]
    linker = fakes.TableLinker(TABLE)
    r = run_link(load_mentions(_write(tmp_path, rows)).items, linker, out, {"data": "m"}, k=5)
    assert sorted(linker.seen) == ["m1", "m4"]  # the edited item, and the one that failed before
    assert r["resume"] == {"reused": 2, "redone": 2, "new": 0,
                           "redone_because": {"failed before": 1, "the item changed": 1}}
    assert r["n_predicted_this_run"] == 2 and r["hits@1"] == pytest.approx(2 / 4)  # m1 now ranks 2nd
    recs = {x["id"]: x for x in _lines(out / "predictions.jsonl")}
    assert recs["m1"]["gold"] == "Q6279" and recs["m1"]["item_key"] != _lines(out / "predictions.jsonl")[0]["item_key"]
    save(r, out)
    md = (out / "results.md").read_text()
    assert "resumed: 2 reused from an earlier run, 2 redone (1 because failed before, 1 because the item changed)" in md
    assert any("2 items reused, 2 redone" in n for n in r["notes"])


def test_records_without_a_resume_key_are_redone(tmp_path, fakes):
    out = tmp_path / "run"
    items = load_mentions(_write(tmp_path, ROWS[:3])).items
    run_link(items, fakes.TableLinker(TABLE), out, {"data": "m"}, k=5)
    p = out / "predictions.jsonl"  # as an older pixlink wrote them
    p.write_text("".join(json.dumps({k: v for k, v in x.items() if k not in ("item_key", "system_key")}) + "\n"
                         for x in _lines(p)))
    linker = fakes.TableLinker(TABLE)
    r = run_link(items, linker, out, {"data": "m"}, k=5)
    assert sorted(linker.seen) == ["m1", "m2", "m3"]
    assert r["resume"]["redone_because"] == {"recorded without a resume key (an older pixlink)": 3}


def _kb(tmp_path: Path, overwrite: bool = False) -> KB:
    src = tmp_path / "ents.jsonl"
    src.write_text("".join(json.dumps({"id": q, "label": q}) + "\n" for q in ("Q76", "Q6279", "Q90")))
    build_kb([src], tmp_path / "kb", progress=False, overwrite=overwrite)
    return KB.open(tmp_path / "kb")


def _linker(fakes, kb: KB, **config):
    linker = fakes.TableLinker(TABLE)
    linker.kb, linker.config, linker.fusion, linker.profile = kb, LinkerConfig(**config), Fusion(), Profile("offline")
    return linker


def test_a_rebuilt_kb_or_another_linker_configuration_redoes_every_item(tmp_path, fakes):
    out = tmp_path / "run"
    items = load_mentions(_write(tmp_path, ROWS[:3])).items
    kb = _kb(tmp_path)
    run_link(items, _linker(fakes, kb), out, {"data": "m"}, k=5)
    info = json.loads((out / "run.json").read_text())
    assert info["system"]["kb_build_id"] == kb.build_id and info["system"]["profile"]["name"] == "offline"

    same = _linker(fakes, kb)
    r = run_link(items, same, out, {"data": "m"}, k=5)
    assert same.seen == [] and r["resume"]["reused"] == 3

    kb.close()
    rebuilt = _kb(tmp_path, overwrite=True)
    again = _linker(fakes, rebuilt)
    r = run_link(items, again, out, {"data": "m"}, k=5)
    assert sorted(again.seen) == ["m1", "m2", "m3"]
    assert r["resume"]["redone"] == 3 and "the system changed" in next(iter(r["resume"]["redone_because"]))
    assert any("the system differs in ['kb_build_id']" in n for n in r["notes"])

    other = _linker(fakes, rebuilt, nil_threshold=0.9, recall_k=10)
    r = run_link(items, other, out, {"data": "m"}, k=5)
    assert sorted(other.seen) == ["m1", "m2", "m3"] and any("['config']" in n for n in r["notes"])


def test_eval_link_counts_every_input_line(tmp_path, fakes, monkeypatch):
    import pixlink.link as link_mod

    monkeypatch.setattr(link_mod.Linker, "from_kb", classmethod(lambda cls, kb, profile="auto", config=None, fusion=None, device=None: fakes.TableLinker(TABLE)))
    f = _write(tmp_path, ROWS)
    with open(f, "a") as fh:
        fh.write('{"id": "bad1", "image": "a.png", "gold": 76}\n')  # gold must be a string: E010
        fh.write('{"id": "bad2", "image": \n')  # not JSON: E011
        fh.write(json.dumps({"id": "m9", "image": "gone.png", "surface": "obama", "gold": "Q76"}) + "\n")
    out = tmp_path / "o"
    res = runner.invoke(app, ["eval", "link", str(f), "--kb", str(tmp_path), "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout[res.stdout.index("{"):])
    a = r["accounting"]
    assert (a["input_records"], a["rejected_at_load"], a["rejected_codes"]) == (7, 2, {"E010": 1, "E011": 1})
    assert (a["loaded_records"], a["loaded_items"], a["not_run"], a["missing_image"], a["scored"], a["failed"]) == (
        5, 5, 0, 1, 4, 1)
    assert a["input_records"] == a["rejected_at_load"] + a["loaded_records"]
    assert a["loaded_items"] == a["not_run"] + a["missing_image"] + a["unlabelled"] + a["scored"] and a["scored"] == r["n"]
    md = (out / "results.md").read_text()
    assert "input records: 7; rejected at load: 2 (E010 x1, E011 x1" in md and "loaded: 5" in md
    assert "image not on this machine (left out of the figures): 1" in md
    assert "scored (`n`): 4, of which 1 failed in the system and count as wrong" in md
    assert json.loads((out / "results.json").read_text())["accounting"] == a

    res = runner.invoke(app, ["eval", "link", str(f), "--kb", str(tmp_path), "--out", str(tmp_path / "o2"),
                              "--limit", "2", "--json"])
    a = json.loads(res.stdout[res.stdout.index("{"):])["accounting"]
    assert (a["not_run"], a["scored"]) == (3, 2)
    assert "loaded but not run (--limit): 3" in (tmp_path / "o2" / "results.md").read_text()
