"""A trained head in the linker: its score among the signals, the order it gives, the spec that
carries it to other processes, and the refusals (a malformed checkpoint, other encoders)."""

from __future__ import annotations

import json
import pickle
import shutil

import pytest

from pixlink.errors import InputError
from pixlink.link import Linker, LinkerConfig
from pixlink.link.rerank import RERANK_SIGNAL, RerankOptions, load_checkpoint
from pixlink.train.biencoder import BiEncoderOptions, train_biencoder


@pytest.fixture(scope="module")
def text_head(mel_small, minilm, tmp_path_factory):
    out = tmp_path_factory.mktemp("head") / "m"
    train_biencoder(mel_small["train"], mel_small["dev"], mel_small["kb"], out,
                    BiEncoderOptions(task="text", epochs=2, batch_size=32, hard_negatives=2),
                    cache_dir=out.parent / "cache", progress=False)
    return out


def test_options():
    assert RerankOptions.from_config("/x").path == "/x"
    o = RerankOptions.from_config({"path": "/x", "top_k": 5, "mode": "replace"})
    assert (o.top_k, o.mode) == (5, "replace")
    for bad in ({"path": "/x", "mode": "vote"}, {"path": "/x", "top_k": 0}, {"path": "/x", "depth": 2}, 3):
        with pytest.raises(InputError, match="E010"):
            RerankOptions.from_config(bad)
    with pytest.raises(InputError, match="E010"):
        LinkerConfig(reranker={"top_k": 3})


def test_linker_reranks_with_its_score_among_the_signals(mel_small, text_head):
    m = mel_small["test"][0]
    plain = Linker.from_kb(mel_small["kb"], "offline", LinkerConfig(signals=("lexical",)))
    cfg = LinkerConfig(signals=("lexical",), reranker={"path": str(text_head), "top_k": 10, "mode": "replace"})
    linker = Linker.from_kb(mel_small["kb"], "offline", cfg)
    a = plain.link(text=m.text, surface=m.surface, k=20)
    b = linker.link(text=m.text, surface=m.surface, k=20)
    assert RERANK_SIGNAL in b.signals and RERANK_SIGNAL not in a.signals
    assert "rerank" in b.timings
    top = [c for c in b.candidates if RERANK_SIGNAL in c.signals]
    assert len(top) == min(10, len(a.candidates)) and all(RERANK_SIGNAL not in c.signals for c in b.candidates[len(top):])
    raws = [c.signals[RERANK_SIGNAL] for c in top]
    assert raws == sorted(raws, reverse=True)  # replace mode: the head's order
    assert {c.entity_id for c in top} == {c.entity_id for c in a.candidates[:10]}
    scores = [c.score for c in b.candidates]
    assert scores == sorted(scores, reverse=True)
    # the same linker sent to another process (its spec) answers the same
    again = pickle.loads(pickle.dumps(linker))
    assert again.config.reranker == cfg.reranker
    c = again.link(text=m.text, surface=m.surface, k=20)
    assert [(x.entity_id, x.score, x.signals.get(RERANK_SIGNAL)) for x in c.candidates] == \
           [(x.entity_id, x.score, x.signals.get(RERANK_SIGNAL)) for x in b.candidates]


def test_fuse_mode_keeps_the_nil_threshold_meaningful(mel_small, text_head):
    m = mel_small["test"][1]
    linker = Linker.from_kb(mel_small["kb"], "offline", LinkerConfig(signals=("lexical",), reranker=str(text_head)))
    r = linker.link(text=m.text, surface=m.surface, k=5)
    assert all(0.0 <= c.score <= 1.0 for c in r.candidates)
    assert r.prediction is None or r.candidates[0].score >= r.nil_threshold


def test_refusals(mel_small, text_head, tmp_path):
    with pytest.raises(InputError, match="E772"):
        load_checkpoint(tmp_path)
    bad = tmp_path / "other"
    shutil.copytree(text_head, bad, ignore=shutil.ignore_patterns("seed-*"))
    cfg = json.loads((bad / "config.json").read_text())
    cfg["features"]["t2t"]["model_ids"] = {"mention": "someone/else", "entity": "someone/else"}
    (bad / "config.json").write_text(json.dumps(cfg))
    linker = Linker.from_kb(mel_small["kb"], "offline", LinkerConfig(signals=("lexical",), reranker=str(bad)))
    with pytest.raises(InputError, match="E773"):
        linker.link(text="Obama", surface="Obama")
    (bad / "model.safetensors").write_bytes(b"not weights")
    with pytest.raises(InputError, match="E772"):
        load_checkpoint(bad)
