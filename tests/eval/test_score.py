"""`pixlink eval score`: another system's predictions scored on pixlink's metrics, on real gold
files (Twitter-2017 valid, RiVEG's label sample) and predictions derived from them by hand."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import shared

from pixlink.errors import InputError
from pixlink.eval.score import read_link_predictions, score_predictions


def _blocks(text: str) -> list[list[str]]:
    out, cur = [], []
    for line in text.splitlines():
        if not line.strip():
            if cur:
                out.append(cur)
            cur = []
        else:
            cur.append(line)
    if cur:
        out.append(cur)
    return out


def _write(blocks: list[list[str]], path: Path) -> Path:
    path.write_text("\n\n".join("\n".join(b) for b in blocks) + "\n", encoding="utf-8")
    return path


def test_ner_gold_scored_against_itself_and_without_per(tmp_path):
    gold = shared("twitter2017", "valid.txt")
    blocks = _blocks(gold.read_text(encoding="utf-8"))
    same = score_predictions(_write(blocks, tmp_path / "same.txt"), gold, "ner")
    assert same["f1"] == 1.0 and same["n_correct"] == same["n_gold"] > 500
    # a system that never finds a person: recall loses exactly the PER entities
    no_per = [[re.sub(r"\t[BI]-PER$", "\tO", ln) for ln in b] for b in blocks]
    r = score_predictions(_write(no_per, tmp_path / "noper.txt"), gold, "ner")
    n_per = sum(1 for b in blocks for ln in b if ln.endswith("\tB-PER"))
    assert r["n_gold"] == same["n_gold"] and r["n_correct"] == same["n_gold"] - n_per
    assert r["precision"] == 1.0 and r["per_type"]["PER"]["recall"] == 0.0
    assert r["pairing"]["n_paired"] == len(blocks) and r["pairing"]["n_missing_pred"] == 0


def test_ner_pairing_missing_posts_and_tokenisation(tmp_path):
    gold = shared("twitter2017", "valid.txt")
    blocks = _blocks(gold.read_text(encoding="utf-8"))[:40]
    g = _write(blocks, tmp_path / "gold.txt")
    pred = [list(b) for b in blocks[:30]]  # 10 posts missing
    pred[0] = pred[0][:-1]  # one token less: another tokenisation
    r = score_predictions(_write(pred, tmp_path / "pred.txt"), g, "ner", dataset="twitter2017")
    assert r["pairing"]["n_missing_pred"] == 10 and r["pairing"]["n_token_mismatch"] == 1
    assert r["pairing"]["token_mismatch"] == [blocks[0][0].split(":", 1)[1]]
    n_gold_30 = sum(1 for b in blocks[1:30] for ln in b if "\tB-" in ln)
    assert r["n_correct"] == n_gold_30 and r["precision"] == 1.0
    assert any("no prediction" in n for n in r["notes"])


def test_ner_misc_is_named_other_for_twitter2015(tmp_path):
    gold = _write([["IMGID:1", "Nike\tB-OTHER", "shoes\tO"], ["IMGID:2", "Paris\tB-LOC"]], tmp_path / "g.txt")
    pred = _write([["IMGID:1", "Nike\tB-MISC", "shoes\tO"], ["IMGID:2", "Paris\tB-PER"]], tmp_path / "p.txt")
    r = score_predictions(pred, gold, "ner", dataset="twitter2015")
    assert r["n_correct"] == 1 and r["n_pred"] == 2 and r["per_type"]["OTHER"]["f1"] == 1.0


def _riveg_lines() -> list[str]:
    return [ln for ln in shared("riveg", "label_format_sample.txt").read_text(encoding="utf-8").splitlines() if ln.strip()]


def test_gmner_riveg_lines_strict_and_inclusive(tmp_path):
    lines = _riveg_lines()
    gold = shared("riveg", "label_format_sample.txt")
    same = score_predictions(_write([lines], tmp_path / "same.txt"), gold, "gmner")
    assert same["gmner"]["f1"] == 1.0 and same["eeg"]["f1"] == 1.0
    # halve the height of every groundable entity's first box: IoU exactly 0.5 with its gold box
    halved, n_g = [], 0
    for ln in lines:
        head, boxes = ln.rsplit("###", 1)
        first = [float(v) for v in re.findall(r"\[([^\]]*)\]", boxes)[0].split(",")]
        if first != [0.0, 0.0, 0.0, 0.0]:
            n_g += 1
            x1, y1, x2, y2 = first
            boxes = f"&[{x1}, {y1}, {x2}, {y1 + (y2 - y1) / 2}]"
        halved.append(f"{head}###{boxes}")
    p = _write([halved], tmp_path / "half.txt")
    strict = score_predictions(p, gold, "gmner")
    incl = score_predictions(p, gold, "gmner", inclusive=True)
    n = strict["gmner"]["n_gold"]
    assert 0 < n_g < n
    assert strict["gmner"]["n_correct"] == n - n_g  # IoU 0.5 is not > 0.5
    assert incl["gmner"]["n_correct"] == n  # but it is >= 0.5 (RiVEG)
    assert strict["mner"]["f1"] == 1.0  # MNER ignores regions
    assert "IoU > 0.5" in strict["iou_rule"] and "IoU >= 0.5" in incl["iou_rule"]


def test_gmner_gold_from_conll_and_xml(tmp_path):
    conll = shared("riveg", "16_05_01_127.conll")
    xml = shared("riveg", "16_05_01_127.xml")
    (tmp_path / "xml").mkdir()
    (tmp_path / "xml" / xml.name).write_bytes(xml.read_bytes())
    gold = tmp_path / "test.txt"
    gold.write_bytes(conll.read_bytes())
    from pixlink.eval.datasets.gmner import read_voc

    _size, objects = read_voc(xml)
    name, box = objects[0]
    p = tmp_path / "pred.txt"
    p.write_text(f"16_05_01_127.jpg###{name}(ORG)###a team###2###&[{', '.join(str(v) for v in box)}]\n")
    r = score_predictions(p, gold, "gmner", gold_format="gmner")
    assert r["gmner"]["n_correct"] == 1 and r["gmner"]["f1"] == 1.0
    p.write_text(f"16_05_01_127.jpg###{name}(ORG)###a team###0###&[0, 0, 0, 0]\n")
    r = score_predictions(p, gold, "gmner", gold_format="gmner")
    assert r["gmner"]["n_correct"] == 0 and r["mner"]["n_correct"] == 1


def _mentions(tmp_path: Path) -> Path:
    f = tmp_path / "gold_mentions.jsonl"
    recs = [{"id": "a", "text": "Obama", "gold": "Q76"}, {"id": "b", "text": "Biden", "gold": "Q6279"},
            {"id": "c", "text": "nobody", "gold": None}, {"id": "d", "text": "Kit", "gold": "Q357607"}]
    f.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return f


def test_link_predictions_by_id(tmp_path):
    gold = _mentions(tmp_path)
    p = tmp_path / "pred.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in [
        {"id": "a", "prediction": "Q76", "candidates": ["Q76", "Q6279", "Q1"]},
        {"id": "b", "prediction": "Q76", "candidates": ["Q76", "Q6279", "Q1"]},
        {"id": "c", "prediction": None, "candidates": ["Q1"]},
        {"id": "zz", "prediction": "Q1"},
        "not an object",
    ]) + "\n")
    r = score_predictions(p, gold, "link")
    assert r["n"] == 4 and r["n_linkable"] == 3
    assert r["hits@1"] == pytest.approx(1 / 3) and r["hits@3"] == pytest.approx(2 / 3)  # d has no prediction
    assert "mrr" not in r and r["mrr@3"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert r["accuracy"] == pytest.approx(2 / 4) and r["nil_accuracy"] == 1.0
    assert r["pairing"] == {**r["pairing"], "n_missing_pred": 1, "n_extra_pred": 1, "n_bad_lines": 1}


def test_link_inline_gold_and_pixlink_candidates(tmp_path):
    p = tmp_path / "pred.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in [
        {"id": 1, "gold": "Q76", "candidates": [{"entity_id": "Q6279", "score": 0.9}, {"entity_id": "Q76", "score": 0.9}]},
        {"id": 2, "gold": "Q6279", "nil": True, "candidates": [{"entity_id": "Q6279", "score": 0.2}]},
    ]) + "\n")
    r = score_predictions(p, None, "link", gold_format="inline")
    assert r["n"] == 2
    assert r["hits@1"] == 0.5  # the tie Q6279/Q76 ranks Q76 second (pessimistic)
    assert r["accuracy"] == 0.0  # 1 predicts Q6279, 2 predicts NIL
    r = score_predictions(p, None, "link", gold_format="inline", ties="optimistic")
    assert r["hits@1"] == 1.0


def test_link_errors(tmp_path):
    gold = _mentions(tmp_path)
    p = tmp_path / "pred.jsonl"
    p.write_text(json.dumps({"id": "zz", "prediction": "Q1"}) + "\n")
    with pytest.raises(InputError, match="E632"):
        score_predictions(p, gold, "link")
    with pytest.raises(InputError, match="E631"):
        score_predictions(p, gold, "nel")
    with pytest.raises(InputError, match="E632"):
        score_predictions(p, None, "link")
    preds, bad = read_link_predictions(p)
    assert list(preds) == ["zz"] and not bad


def test_cli_eval_score(tmp_path):
    from typer.testing import CliRunner

    from pixlink.cli.main import app

    gold = _mentions(tmp_path)
    p = tmp_path / "pred.jsonl"
    p.write_text(json.dumps({"id": "a", "prediction": "Q76", "candidates": ["Q76"]}) + "\n")
    res = CliRunner().invoke(app, ["eval", "score", str(p), "--gold", str(gold), "--task", "link",
                                   "--out", str(tmp_path / "o"), "--json"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert r["hits@1"] == pytest.approx(1 / 3) and (tmp_path / "o" / "results.md").exists()
    assert "MRR@1" in (tmp_path / "o" / "results.md").read_text()
    res = CliRunner().invoke(app, ["eval", "score", str(p), "--gold", str(gold), "--task", "ocr"])
    assert res.exit_code == 2 and "E631" in res.output
