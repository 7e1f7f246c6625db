"""IIER trained end to end on real data: the text path on WikiMEL (TFI alone), the full model
(TFI + VFI + CMFI on EfficientNet-Lite's layers, red-box views) on the real photos, a
checkpoint the linker loads, and the options' checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pixlink.errors import InputError
from pixlink.link import Linker, LinkerConfig
from pixlink.link.rerank import RERANK_SIGNAL, load_checkpoint
from pixlink.train.data import read_dataset
from pixlink.train.iier import EFFICIENTNET_LAYERS, IIEROptions, train_iier


def test_options_are_checked():
    for bad in (dict(units=("tfi", "xfi")), dict(view="zoom"), dict(detective="oracle"), dict(candidates=0),
                dict(temperature=0), dict(text_role="ocr")):
        with pytest.raises(InputError, match="E770"):
            IIEROptions(**bad).check()
    IIEROptions().check()
    assert (IIEROptions().lr, IIEROptions().batch_size, IIEROptions().epochs) == (1e-5, 128, 20)  # the paper's


@pytest.mark.slow
def test_text_path_on_wikimel(mel_small, minilm, tmp_path):
    res = train_iier(mel_small["train"], mel_small["dev"], mel_small["kb"], tmp_path / "m",
                     IIEROptions(units=("tfi",), epochs=3, batch_size=32, lr=1e-3, candidates=20, seeds=(0, 1)),
                     test=mel_small["test"], cache_dir=tmp_path / "cache", progress=False)
    assert set(res["test"]) >= {"hits@1", "hits@3", "hits@5", "mrr@20"} and "mrr" not in res["test"]
    assert len(res["seeds"]) == 2 and res["retrieval"]["test"]["hits@20"] > 0.5
    # the units re-rank what retrieval found: Hits@20 of the re-ranking equals retrieval's
    assert res["seeds"][0]["test"]["hits@20"] == pytest.approx(res["retrieval"]["test"]["hits@20"])
    for r in res["seeds"]:
        assert all(np.isfinite(e["loss"]) for e in r["epochs"])
        assert r["epochs"][-1]["loss"] < r["epochs"][0]["loss"]
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["kind"] == "iier" and cfg["head"]["units"] == ["tfi"] and cfg["features"]["text"]["max_length"] == 40
    assert cfg["features"]["text"]["model_id"] == "sentence-transformers/all-MiniLM-L6-v2"
    _, model = load_checkpoint(tmp_path / "m")
    assert not hasattr(model, "visual")
    # the linker runs it as its re-ranking stage
    m = mel_small["test"][0]
    linker = Linker.from_kb(mel_small["kb"], "offline",
                            LinkerConfig(signals=("lexical",), reranker={"path": str(tmp_path / "m"), "top_k": 5}))
    out = linker.link(text=m.text, surface=m.surface, k=10)
    assert sum(RERANK_SIGNAL in c.signals for c in out.candidates) == min(5, len(out.candidates))


@pytest.mark.slow
def test_full_iier_on_real_photos(learnset, efficientnet, minilm, tmp_path):
    parts = {k: read_dataset(str(v))[0] for k, v in learnset["parts"].items()}
    res = train_iier(parts["train"], parts["dev"], learnset["kb"], tmp_path / "m",
                     IIEROptions(epochs=4, batch_size=16, lr=1e-3, candidates=16, candidate_space="v2v"),
                     test=parts["test"], cache_dir=tmp_path / "cache", progress=False)
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["head"]["units"] == ["tfi", "vfi", "cmfi"] and cfg["view"] == "red_box"
    assert cfg["features"]["image"]["layers"] == list(EFFICIENTNET_LAYERS)
    assert len(cfg["head"]["d_cls_layers"]) == 4 and cfg["head"]["d_patch"] == 1280
    assert res["seeds"][0]["epochs"][-1]["loss"] < res["seeds"][0]["epochs"][0]["loss"]
    assert res["test"]["hits@16"]["mean"] == 1.0  # 16 candidates = the whole KB of 16 entities
    # the linker runs the full model on an image region (features of the region's red-box view)
    m = parts["test"][0]
    from pixlink.kb import KB
    from pixlink.link.embed import embed_kb

    embed_kb(learnset["kb"], "offline", signals=["v2v"], progress=False, cache_dir=tmp_path / "emb")
    linker = Linker.from_kb(learnset["kb"], "offline",
                            LinkerConfig(signals=("v2v",), segment=False,
                                         reranker={"path": str(tmp_path / "m"), "mode": "replace"}))
    out = linker.link(m.image, {"box": m.region.bbox.tolist()}, text=m.text, k=16)
    assert all(RERANK_SIGNAL in c.signals for c in out.candidates)
    assert KB.open(learnset["kb"]).get(out.candidates[0].entity_id) is not None
