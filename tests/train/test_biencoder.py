"""VNEL's bi-encoder: an untrained head is the frozen encoders; on real photos, training moves
Hits@1 up from the untrained model on held-out views (a test that fails when nothing is
learnt); the checkpoint reloaded scores identically; a stopped run resumes to the same model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pixlink.errors import InputError
from pixlink.link.rerank import BiEncoderConfig, BiEncoderHead, load_checkpoint
from pixlink.train.biencoder import BiEncoderOptions, Side, evaluate, train_biencoder
from pixlink.train.data import read_dataset


def test_untrained_head_is_the_frozen_cosine():
    g = torch.Generator().manual_seed(0)
    m = torch.nn.functional.normalize(torch.randn(3, 8, generator=g), dim=1)
    e = torch.nn.functional.normalize(torch.randn(5, 8, generator=g), dim=1)
    e[2] = float("nan")  # an entity without this space's input
    head = BiEncoderHead(BiEncoderConfig(dims={"v2v": 8}, hidden=4))
    score, per = head({"v2v": m}, {"v2v": e})
    frozen = m @ torch.nan_to_num(e).T
    ok = [0, 1, 3, 4]
    assert torch.allclose(score[:, ok], frozen[:, ok], atol=1e-6) and torch.all(score[:, 2] == 0)


def test_options_are_checked():
    with pytest.raises(InputError, match="E770"):
        BiEncoderOptions(task="v2x").check()
    with pytest.raises(InputError, match="E770"):
        BiEncoderOptions(spaces=("t2t", "ocr")).check()
    with pytest.raises(InputError, match="E770"):
        BiEncoderOptions(seeds=(1, 1)).check()
    assert BiEncoderOptions(task="v2vtel").space_list == ("v2v", "v2t")


@pytest.mark.slow
def test_training_on_real_photos_moves_hits_up(learnset, efficientnet, tmp_path):
    parts = {k: read_dataset(str(v))[0] for k, v in learnset["parts"].items()}
    opts = BiEncoderOptions(task="v2vel", epochs=8, batch_size=16, seeds=(0, 1), hard_negatives=2)
    res = train_biencoder(parts["train"], parts["dev"], learnset["kb"], tmp_path / "m", opts, profile="offline",
                          test=parts["test"], cache_dir=tmp_path / "cache", progress=False)
    before = res["untrained"]["test"]["hits@1"]
    after = res["test"]["hits@1"]["mean"]
    assert res["untrained"]["test"]["n"] == 48 and len(res["seeds"]) == 2
    assert before < 0.95  # the frozen encoder does not already solve the composites
    # training must at least halve the errors on views it never saw (it fails when nothing is learnt)
    assert (1 - after) <= 0.5 * (1 - before) and after >= before + 0.05, (before, after)
    assert res["test"]["hits@1"]["sd"] >= 0.0 and res["train_samples_per_second"] > 0
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["features"]["v2v"]["model_ids"]["mention"].startswith("efficientnet-lite0")
    assert saved["data"]["train"]["hash"] and saved["pixlink_version"] and saved["calibration"]["slope"] > 0
    assert saved["best"]["epoch"] >= 1 and len(saved["epochs"]) >= saved["best"]["epoch"]

    # the checkpoint reloaded gives identical scores (the test figures of its seed, recomputed)
    from pixlink.kb import KB
    from pixlink.train import features as FT

    cfg, head = load_checkpoint(tmp_path / "m")
    kb = KB.open(learnset["kb"])
    ents = list(kb.iter_entities())
    row = {e.id: i for i, e in enumerate(ents)}
    from pixlink.models import Profile

    b = Profile("offline").get("image_embed")
    ev = FT.unpack_vectors(FT.space_vectors("v2v", b, "entity", ents, cache_dir=tmp_path / "cache",
                                            progress=False).rows(np.arange(len(ents))))
    from pixlink.train.data import data_hash

    te = parts["test"]
    mv = FT.unpack_vectors(FT.space_vectors("v2v", b, "mention", te, key_prefix=f"{data_hash(te)}:",
                                            cache_dir=tmp_path / "cache", progress=False).rows(np.arange(len(te))))
    fig, _ = evaluate(head, Side({"v2v": mv}), Side({"v2v": ev}), np.array([row[m.gold] for m in te]))
    best = next(r for r in res["seeds"] if r["seed"] == res["best_seed"])
    assert fig == best["test"]


@pytest.mark.slow
def test_text_biencoder_resumes_to_the_same_model(mel_small, minilm, tmp_path):
    opts = dict(task="text", batch_size=32, seeds=(0,), hard_negatives=2, lr=1e-3)
    full = train_biencoder(mel_small["train"], mel_small["dev"], mel_small["kb"], tmp_path / "full",
                           BiEncoderOptions(epochs=3, **opts), cache_dir=tmp_path / "cache", progress=False)
    train_biencoder(mel_small["train"], mel_small["dev"], mel_small["kb"], tmp_path / "half",
                    BiEncoderOptions(epochs=1, **opts), cache_dir=tmp_path / "cache", progress=False)
    resumed = train_biencoder(mel_small["train"], mel_small["dev"], mel_small["kb"], tmp_path / "half",
                              BiEncoderOptions(epochs=3, **opts), cache_dir=tmp_path / "cache", progress=False,
                              resume=True)
    a = [e["dev"] for e in full["seeds"][0]["epochs"]]
    b = [e["dev"] for e in resumed["seeds"][0]["epochs"]]
    assert len(a) == len(b) == 3
    for x, y in zip(a, b):
        assert x == pytest.approx(y, abs=1e-6)
    with pytest.raises(InputError, match="E776"):
        train_biencoder(mel_small["train"], mel_small["dev"], mel_small["kb"], tmp_path / "full",
                        BiEncoderOptions(epochs=1, **opts), cache_dir=tmp_path / "cache", progress=False)
    # the features were computed once: the second and third runs only read them
    assert full["features"]["items"] > 0
