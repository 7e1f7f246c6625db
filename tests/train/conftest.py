"""Fixtures of tests/train: real data made small — a text-only WikiMEL subset with the KB of
the entities it names, and a labelled set of real photos (``learnset.py``) with its KB."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from helpers import need_backend, need_module, shared

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def mel_small(tmp_path_factory):
    """WikiMEL, split 7:1:2 with seed 0 as MIMIC does, cut to 240 train / 60 dev / 60 test
    mentions; the KB holds every entity those mentions name (plus the other mentions' of the
    same records: distractors)."""
    from pixlink.eval.datasets.melbench import load_melbench, melbench_entities
    from pixlink.kb import build_kb_from_entities
    from pixlink.train.data import split_mentions, subsample

    res = load_melbench(shared("melbench", "Wikidata-MEL.json"))
    parts = split_mentions(res.items, seed=0)
    small = {"train": subsample(parts["train"], 240, seed=1), "dev": subsample(parts["dev"], 60, seed=1),
             "test": subsample(parts["test"], 60, seed=1)}
    # distractors: the entities of 600 other training mentions
    others = subsample(parts["train"], 840, seed=2)
    kb_dir = tmp_path_factory.mktemp("melkb") / "kb"
    build_kb_from_entities(melbench_entities([m for v in small.values() for m in v] + others), kb_dir)
    return {**small, "kb": kb_dir}


@pytest.fixture(scope="session")
def learnset(tmp_path_factory):
    """Real photos (shared people photos, scikit-image's photos) as 16 entities; composites of
    jittered views pasted into other photos as mentions: 5 train, 2 dev, 3 test per entity."""
    need_module("skimage", "the photos of things come with scikit-image (pixlink[demo])")
    need_module("cv2")
    from learnset import build

    from pixlink.kb import build_kb_from_entities

    out = tmp_path_factory.mktemp("learnset")
    r = build(out, shared("photos"), {"train": 5, "dev": 2, "test": 3}, seed=0)
    build_kb_from_entities(r["entities"], out / "kbdir")
    return {"kb": out / "kbdir", "parts": r["parts"], "root": out}


@pytest.fixture(scope="session")
def minilm():
    return need_backend("text_embed", "minilm")


@pytest.fixture(scope="session")
def efficientnet():
    return need_backend("image_embed", "efficientnet_lite")
