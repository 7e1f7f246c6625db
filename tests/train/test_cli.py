"""``pixlink train``: split a real dataset, train from the files it wrote, show the model, and
link with it through ``eval link --reranker``."""

from __future__ import annotations

import json

import pytest
from helpers import shared
from typer.testing import CliRunner

from pixlink.cli.main import app
from pixlink.train.data import write_mentions

runner = CliRunner()


def test_split_command(tmp_path):
    data = shared("melbench", "Richpedia-MEL.json")
    res = runner.invoke(app, ["train", "split", f"richpediamel:{data}", "--out", str(tmp_path / "s"), "--json"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    n = {k: v["n"] for k, v in r["parts"].items()}
    assert sum(n.values()) == 17805 and n["train"] == round(0.7 * 17805)
    first = (tmp_path / "s" / "test.mentions.jsonl").read_text().splitlines()[0]
    assert json.loads(first)["split"] == "test"
    again = runner.invoke(app, ["train", "split", f"richpediamel:{data}", "--out", str(tmp_path / "t"), "--json"])
    assert again.exit_code == 0 and (tmp_path / "t" / "test.mentions.jsonl").read_text() == (tmp_path / "s" / "test.mentions.jsonl").read_text()
    bad = runner.invoke(app, ["train", "split", f"richpediamel:{data}", "--out", str(tmp_path / "u"), "--ratios", "7:x"])
    assert bad.exit_code == 2 and "E777" in bad.output


def test_bad_options_are_refused_before_any_model_loads(tmp_path):
    res = runner.invoke(app, ["train", "biencoder", "--train", "a.jsonl", "--dev", "b.jsonl", "--kb", str(tmp_path),
                              "--out", str(tmp_path / "m"), "--task", "v2x"])
    assert res.exit_code == 2 and "E770" in res.output
    res = runner.invoke(app, ["train", "iier", "--train", "a.jsonl", "--dev", "b.jsonl", "--kb", str(tmp_path),
                              "--out", str(tmp_path / "m"), "--seeds", "0,x"])
    assert res.exit_code == 2 and "E770" in res.output
    res = runner.invoke(app, ["train", "show", str(tmp_path)])
    assert res.exit_code == 2 and "E772" in res.output


@pytest.mark.slow
def test_train_show_and_eval_with_the_reranker(mel_small, minilm, tmp_path):
    files = {k: write_mentions(mel_small[k], tmp_path / f"{k}.mentions.jsonl") for k in ("train", "dev", "test")}
    res = runner.invoke(app, ["train", "biencoder", "--train", str(files["train"]), "--dev", str(files["dev"]),
                              "--test", str(files["test"]), "--kb", str(mel_small["kb"]), "--out", str(tmp_path / "m"),
                              "--epochs", "2", "--batch-size", "32", "--cache-dir", str(tmp_path / "cache"), "--json"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert r["kind"] == "biencoder" and "test" in r and r["data"]["train"]["path"] == str(files["train"])
    show = runner.invoke(app, ["train", "show", str(tmp_path / "m"), "--json"])
    assert show.exit_code == 0 and json.loads(show.stdout)["kind"] == "biencoder"
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"signals": ["lexical"]}))
    ev = runner.invoke(app, ["eval", "link", str(files["test"]), "--kb", str(mel_small["kb"]), "--profile", "offline",
                             "--config", str(cfg), "--reranker", str(tmp_path / "m"), "--out", str(tmp_path / "ev"),
                             "--k", "10", "--json"])
    assert ev.exit_code == 0, ev.output
    e = json.loads(ev.stdout)
    assert e["n"] == len(mel_small["test"]) and "mrr@10" in e and "mrr" not in e
    preds = [json.loads(x) for x in (tmp_path / "ev" / "predictions.jsonl").read_text().splitlines()]
    assert json.loads((tmp_path / "ev" / "run.json").read_text())["reranker"] == str((tmp_path / "m").resolve())
    assert preds and all(p["error"] is None for p in preds)


def test_vnel_tasks_and_orders_of_eval_link():
    from pixlink.cli.eval import _vnel_overrides
    from pixlink.errors import InputError
    from pixlink.link import LinkerConfig

    assert _vnel_overrides("v2vel", None) == {"signals": ("v2v",)}
    o = _vnel_overrides("v2vtel", "v2t:v2v")
    assert o == {"signals": ("v2v", "v2t"), "mode": "rerank", "recall_signal": "v2t", "rerank_signal": "v2v"}
    o2 = _vnel_overrides("v2vtel", "v2v:v2t")
    assert (o2["recall_signal"], o2["rerank_signal"]) == ("v2v", "v2t")
    LinkerConfig(**o)  # a valid configuration
    for task, order in (("v2xel", None), ("v2vel", "v2t:v2v"), (None, "v2t"), (None, "v2t:v2t")):
        with pytest.raises(InputError, match="E010"):
            _vnel_overrides(task, order)
