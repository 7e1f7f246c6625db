"""The evaluation runner with fake systems: predictions kept per item, resume, errors, reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixlink.errors import InputError
from pixlink.eval.datasets.conll import DATASET_TYPES, load_conll
from pixlink.eval.datasets.gmner import load_gmner
from pixlink.eval.datasets.mentions import load_mentions
from pixlink.eval.runner import run_gmner, run_link, run_ner, save

FIX = Path(__file__).parent / "fixtures"
TABLE = {"Paris": "LOC", "Obama": "PER", "Orleans": "LOC", "rocks": "MISC"}


def _posts():
    return load_conll(FIX / "twitter2015_mini.txt", dataset="twitter2015").items


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_ner_scores_isolates_bad_item_and_maps_types(tmp_path, fakes):
    posts = _posts()  # 1001, 1002 (has a no-break-space token), 1005
    tagger = fakes.GazetteerTagger(TABLE)
    r = run_ner(posts, tagger, tmp_path, {"data": "mini"}, labels=DATASET_TYPES["twitter2015"], batch_size=8)
    # 1001: (4,5,LOC) and (5,6,OTHER) both wrong; 1002 fails -> no prediction; 1005: (3,4,LOC) right
    assert (r["n"], r["n_gold"], r["n_pred"], r["n_correct"]) == (3, 7, 4, 1)
    assert r["precision"] == pytest.approx(0.25) and r["recall"] == pytest.approx(1 / 7)
    assert r["type_map"] == {"MISC": "OTHER"}
    assert r["n_errors"] == 1 and r["errors"][0]["id"] == "1002" and r["errors"][0]["code"] == "E010"
    assert set(r["per_type"]) == {"PER", "LOC", "ORG", "OTHER"}
    recs = {x["id"]: x for x in _lines(tmp_path / "predictions.jsonl")}
    assert recs["1001"]["pred"] == [[4, 5, "LOC"], [5, 6, "OTHER"]]
    assert recs["1002"]["error"]["code"] == "E010" and recs["1002"]["pred"] == []
    paths = save(r, tmp_path)
    md = (tmp_path / "results.md").read_text()
    assert "| fake" not in md and "OTHER F1" in md and "25.00" in md  # precision in %
    assert json.loads(Path(paths["json"]).read_text())["n_correct"] == 1


def test_ner_resume_and_refuse_other_run(tmp_path, fakes):
    posts = _posts()
    t1 = fakes.GazetteerTagger(TABLE)
    run_ner(posts[:1], t1, tmp_path, {"data": "mini"}, batch_size=1)
    t2 = fakes.GazetteerTagger(TABLE)
    r = run_ner(posts, t2, tmp_path, {"data": "mini"}, batch_size=1)
    assert r["n_predicted_this_run"] == 2 and r["n"] == 3
    assert len(_lines(tmp_path / "predictions.jsonl")) == 3
    t3 = fakes.GazetteerTagger(TABLE)
    r = run_ner(posts, t3, tmp_path, {"data": "mini"})
    # only 1002, recorded with an error, is tried again; the others are done
    assert t3.calls == 1 and r["n_predicted_this_run"] == 1 and r["n"] == 3 and r["n_errors"] == 1
    assert len(_lines(tmp_path / "predictions.jsonl")) == 4  # appended; the last record of an id wins
    with pytest.raises(InputError, match="E608"):
        run_ner(posts, t3, tmp_path, {"data": "other"})
    r = run_ner(posts, t3, tmp_path, {"data": "other"}, restart=True)
    assert r["n_predicted_this_run"] == 3


def test_interrupted_last_line_is_redone(tmp_path, fakes):
    posts = _posts()
    run_ner(posts, fakes.GazetteerTagger(TABLE), tmp_path, {"data": "mini"})
    p = tmp_path / "predictions.jsonl"
    data = p.read_bytes()
    p.write_bytes(data[: len(data) - 15])  # cut the last record mid-way
    r = run_ner(posts, fakes.GazetteerTagger(TABLE), tmp_path, {"data": "mini"})
    # the cut record (1005) is redone, and 1002 (recorded with an error) is tried again
    assert r["n_predicted_this_run"] == 2 and r["n"] == 3
    assert any("incomplete" in n for n in r["notes"])
    assert [x["id"] for x in _lines(p)] == ["1001", "1002", "1002", "1005"]


def _mentions(tmp_path):
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "a.png")
    rows = [
        {"id": "m1", "image": "a.png", "box": [1, 1, 10, 10], "surface": "obama", "gold": "Q76", "split": "seen"},
        {"id": "m2", "image": "a.png", "points": [[5, 5]], "surface": "biden", "gold": "Q6279", "split": "unseen"},
        {"id": "m3", "image": "absent.png", "surface": "obama", "gold": "Q76"},
        {"id": "m4", "image": "a.png", "surface": "nobody", "gold": None, "split": "seen"},
        {"id": "m5", "image": "a.png", "text": "FAIL", "gold": "Q1", "split": "seen"},
        {"id": "m6", "image": "a.png", "mask": {"size": [20, 30], "counts": [22, 3, 575]}, "surface": "obama",
         "gold": "Q76", "split": "unseen"},
    ]
    f = tmp_path / "mentions.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return load_mentions(f).items


def test_link_metrics_missing_images_errors_and_masks(tmp_path, fakes):
    ms = _mentions(tmp_path)
    linker = fakes.TableLinker({"obama": [("Q76", 0.9), ("Q6279", 0.5)], "biden": [("Q76", 0.6), ("Q6279", 0.6)],
                          "nobody": [("Q5", 0.1)]}, nil_below=0.3)
    out = tmp_path / "run"
    r = run_link(ms, linker, out, {"data": "m"}, k=5, ks=(1, 3))
    assert "m3" not in linker.seen and r["n_missing_image"] == 1
    # the mask of m6 was decoded for the linker; the others kept their prompt kind
    assert linker.kinds == {"m1": "box", "m2": "points", "m4": None, "m5": None, "m6": "mask"}
    # scored: m1 (rank 1), m2 (tie at .6 -> pessimistic rank 2), m4 NIL right, m5 failed, m6 rank 1
    assert r["n"] == 5 and r["n_linkable"] == 4 and r["n_errors"] == 1
    assert r["hits@1"] == pytest.approx(2 / 4) and r["hits@3"] == pytest.approx(3 / 4)
    assert r["nil_accuracy"] == 1.0 and r["per_split"]["unseen"]["hits@1"] == 0.5
    recs = {x["id"]: x for x in _lines(out / "predictions.jsonl")}
    assert recs["m3"]["error"]["code"] == "E612" and recs["m5"]["error"]["code"] == "E400"
    assert recs["m2"]["scores"] == [0.6, 0.6]
    paths = save(r, out)
    assert Path(paths["plot"]).name == "hits_at_k.png" and Path(paths["plot"]).stat().st_size > 1000
    assert "Hits@1" in (out / "results.md").read_text()


def test_gmner_runner_iou_curve(tmp_path, fakes):
    # images present for the fixture posts: write blank images named by IMGID
    for i in ("100", "200", "400"):
        Image.fromarray(np.zeros((100, 200, 3), np.uint8)).save(tmp_path / f"{i}.jpg")
    posts = load_gmner(FIX / "gmner" / "dev.txt", image_root=tmp_path).items
    r = run_gmner(posts, fakes.ShiftPipeline(dx=10), tmp_path / "run", {"data": "g"}, labels=DATASET_TYPES["gmner"])
    # gold: 100 -> Obama (boxes), Biden, Paris (no box); 200 -> NBA (no box); 400 -> none
    # Obama's box [10,5,60,90] shifted by 10: IoU = 40/60 = .667 > .5 -> all 4 right
    assert r["gmner"]["n_correct"] == 4 and r["gmner"]["f1"] == 1.0
    curve = {p["iou"]: p["f1"] for p in r["f1_vs_iou"]["gmner"]}
    assert curve[0.6] == 1.0 and curve[0.7] < 1.0  # .667 passes .6, fails .7
    paths = save(r, tmp_path / "run")
    assert Path(paths["plot"]).name == "f1_vs_iou.png"
    r = run_gmner(posts, fakes.ShiftPipeline(dx=30), tmp_path / "run2", {"data": "g"}, labels=DATASET_TYPES["gmner"])
    assert r["gmner"]["n_correct"] == 3 and r["eeg"]["n_correct"] == 3 and r["mner"]["n_correct"] == 4
