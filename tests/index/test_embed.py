"""The KB embedding cache: batches, resume after an exception or a kill, bad items reported
(any PixlinkError about one item), payload changes re-encoded, models kept apart, and the index
built from a store (tagged with the KB build)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixlink.errors import Errors, IndexError_, InputError, KBError, ModelUnavailableError, PixlinkError
from pixlink.index.dense import DenseIndex
from pixlink.index.embed import (
    build_index_from_store,
    embed_items,
    entity_of_key,
    image_items,
    image_key,
    text_items,
)
from pixlink.io import image_size, load_image
from pixlink.types import Entity

D = 16


def text_vec(text: str) -> np.ndarray:
    """A deterministic (D,) vector of a text: character trigram hashing (a real, if tiny, encoder)."""
    v = np.zeros(D, dtype=np.float32)
    t = f"  {text.lower()}  "
    for i in range(len(t) - 2):
        h = int.from_bytes(hashlib.blake2b(t[i : i + 3].encode(), digest_size=4).digest(), "little")
        v[h % D] += 1.0 if (h >> 16) & 1 else -1.0
    return v


class TextEncoder:
    """Counts its calls; raises RuntimeError on call number ``fail_at`` (1-based) if set."""

    def __init__(self, fail_at: int | None = None):
        self.calls = 0
        self.items = 0
        self.fail_at = fail_at

    def __call__(self, texts):
        self.calls += 1
        if self.fail_at is not None and self.calls == self.fail_at:
            raise RuntimeError("simulated crash in the encoder")
        self.items += len(texts)
        return np.stack([text_vec(t) for t in texts])


def items(n: int, prefix: str = "Q"):
    return [(f"{prefix}{i}", f"entity number {i} of the test knowledge base") for i in range(n)]


def test_resume_after_encoder_crash(tmp_path):
    its = items(1000)
    enc = TextEncoder(fail_at=6)
    with pytest.raises(RuntimeError, match="simulated crash"):
        embed_items(its, enc, cache_dir=tmp_path, model_id="m", batch_size=64, progress=False, flush_every=128)
    # five batches of 64 were encoded before the crash; they were saved even though the
    # last flush point had not been reached
    enc2 = TextEncoder()
    store = embed_items(its, enc2, cache_dir=tmp_path, model_id="m", batch_size=64, progress=False)
    assert store.reused == 5 * 64 and store.computed == 1000 - 5 * 64 == enc2.items
    assert store.keys == [k for k, _ in its] and not store.errors
    want = np.stack([text_vec(t) for _, t in its])
    np.testing.assert_array_equal(store.vectors(), want)
    # a third run computes nothing
    enc3 = TextEncoder()
    again = embed_items(iter(its), enc3, cache_dir=tmp_path, model_id="m", progress=False)
    assert enc3.calls == 0 and again.reused == 1000 and again.computed == 0
    np.testing.assert_array_equal(again.vectors(), want)
    chunks = list(again.iter_chunks(300))
    assert [len(k) for k, _ in chunks] == [300, 300, 300, 100]
    np.testing.assert_array_equal(np.concatenate([v for _, v in chunks]), want)
    np.testing.assert_array_equal(again.vector("Q17"), want[17])


KILL_SCRIPT = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    from test_embed import items, text_vec
    from pixlink.index.embed import embed_items
    calls = 0
    def encode(texts):
        global calls
        calls += 1
        if calls == 8:
            os._exit(9)  # killed: no exception handler, no finally, no flush runs
        return np.stack([text_vec(t) for t in texts])
    embed_items(items(1000), encode, cache_dir={cache!r}, model_id="m", batch_size=50, flush_every=100,
                progress=False)
    """
)


def test_resume_after_kill(tmp_path):
    script = KILL_SCRIPT.format(tests=str(Path(__file__).parent), cache=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    # 7 batches of 50 were encoded; flushes happen at 100, 200, 300 vectors: 300 survive
    enc = TextEncoder()
    store = embed_items(items(1000), enc, cache_dir=tmp_path, model_id="m", batch_size=50, progress=False)
    assert store.reused == 300 and store.computed == 700 == enc.items
    np.testing.assert_array_equal(store.vectors(), np.stack([text_vec(t) for _, t in items(1000)]))


def color_features(paths):
    """A real image encoder: per-channel mean and std of the pixels plus a 10-bin grey histogram
    (D = 16), read with pixlink.io.load_image (E001 for an unreadable file)."""
    out = []
    for p in paths:
        img = load_image(p).astype(np.float32) / 255.0
        grey = img.mean(axis=2)
        hist = np.histogram(grey, bins=10, range=(0, 1))[0] / grey.size
        out.append(np.concatenate([img.mean(axis=(0, 1)), img.std(axis=(0, 1)), hist]).astype(np.float32))
    return np.stack(out)


@pytest.fixture
def image_kb(tmp_path):
    """12 entities with 1-3 real PNG images each; one image is a truncated file, one is missing."""
    rng = np.random.default_rng(0)
    img_dir = tmp_path / "images"
    img_dir.mkdir()
    entities = []
    for e in range(12):
        refs = []
        for j in range(1 + e % 3):
            p = img_dir / f"e{e}_{j}.png"
            base = rng.integers(0, 256, 3)
            arr = np.clip(base + rng.normal(0, 20, (24, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(p)
            refs.append(str(p))
        entities.append(Entity(id=f"Q{e}", label=f"thing {e}", description=f"a test entity {e}" if e % 2 else "",
                               images=tuple(refs)))
    bad = img_dir / "e4_1.png"  # truncate one file: not a readable image any more
    bad.write_bytes(bad.read_bytes()[:40])
    entities[7] = Entity(id="Q7", label="thing 7", images=(str(img_dir / "missing.png"),))
    return entities, tmp_path


def test_bad_images_are_reported_and_the_rest_kept(image_kb):
    entities, tmp = image_kb
    its = list(image_items(entities))
    assert its[0] == (image_key("Q0", its[0][1]), its[0][1])
    calls = []

    def encode(paths):
        calls.append(len(paths))
        return color_features(paths)

    store = embed_items(its, encode, cache_dir=tmp / "cache", model_id="colors", batch_size=4, progress=False)
    bad_keys = {e.item_id for e in store.errors}
    assert bad_keys == {image_key("Q4", str(tmp / "images" / "e4_1.png")), image_key("Q7", str(tmp / "images" / "missing.png"))}
    assert all(e.code == "E001" for e in store.errors)
    assert sorted(e.index for e in store.errors) == sorted(i for i, (k, _) in enumerate(its) if k in bad_keys)
    assert len(store) == len(its) - 2 and store.keys == [k for k, _ in its if k not in bad_keys]
    assert 1 in calls  # the failing batches were re-encoded item by item
    assert store.notes and "2 items got no vector" in store.notes[-1]
    good = [p for k, p in its if k not in bad_keys]
    np.testing.assert_allclose(store.vectors(), color_features(good), rtol=1e-6)
    # a re-run retries only the failed items (they may have been fixed)
    calls.clear()
    again = embed_items(its, encode, cache_dir=tmp / "cache", model_id="colors", batch_size=4, progress=False)
    assert again.reused == len(its) - 2 and again.computed == 0 and len(again.errors) == 2

    # the index of the image space: several images per entity -> one hit per entity
    idx = build_index_from_store(again, tmp / "kb" / "vectors" / "entity_image" / "colors", "entity_image",
                                 progress=False)
    assert idx.model_id == "colors" and idx.n_entities == 11 and len(idx) == len(its) - 2
    assert idx.meta["max_vectors_per_entity"] == 3
    q = color_features([entities[5].images[2]])
    scores, found = idx.search(q, k=11)
    assert found[0][0] == "Q5" and len(set(found[0])) == 11 and "Q7" not in found[0]
    np.testing.assert_allclose(scores[0, 0], 1.0, atol=2e-3)
    report = (idx.path / "embed_report.json").read_text()
    assert "E001" in report


def test_changed_payload_is_encoded_again_and_models_are_apart(tmp_path):
    its = items(200)
    embed_items(its, TextEncoder(), cache_dir=tmp_path, model_id="m", progress=False)
    changed = list(its)
    changed[10] = ("Q10", "a new description of entity ten")
    changed[150] = ("Q150", "another change")
    enc = TextEncoder()
    store = embed_items(changed, enc, cache_dir=tmp_path, model_id="m", progress=False)
    assert store.computed == 2 and store.reused == 198
    np.testing.assert_array_equal(store.vector("Q10"), text_vec("a new description of entity ten"))
    other = TextEncoder()
    store2 = embed_items(its, other, cache_dir=tmp_path, model_id="m-other", progress=False)
    assert store2.computed == 200 and store2.reused == 0 and store2.path != store.path


def test_deleted_shard_is_encoded_again_and_noted(tmp_path):
    its = items(300)
    first = embed_items(its, TextEncoder(), cache_dir=tmp_path, model_id="m", flush_every=100, progress=False)
    shards = sorted((first.path / "shards").glob("*.npy"))
    assert len(shards) == 3
    lost = np.load(shards[1]).shape[0]  # flushes happen at batch ends: 128, 128, 44 vectors
    shards[1].unlink()
    enc = TextEncoder()
    store = embed_items(its, enc, cache_dir=tmp_path, model_id="m", progress=False)
    assert store.computed == lost == enc.items == 128 and store.reused == 300 - lost
    assert any("deleted shard" in n for n in store.notes)
    np.testing.assert_array_equal(store.vectors(), np.stack([text_vec(t) for _, t in its]))


def test_encoder_contract_and_item_errors(tmp_path):
    with pytest.raises(InputError) as e:
        embed_items(items(10), lambda t: np.zeros((len(t) + 1, D)), cache_dir=tmp_path, model_id="m", progress=False)
    assert e.value.code == "E242"
    embed_items(items(5), TextEncoder(), cache_dir=tmp_path, model_id="m2", progress=False)
    with pytest.raises(InputError) as e:  # the cache of m2 is 16-d: another width is a different model
        embed_items(items(8), lambda t: np.ones((len(t), 8)), cache_dir=tmp_path, model_id="m2", progress=False)
    assert e.value.code == "E242"

    def nan_for_odd(texts):
        v = np.stack([text_vec(t) for t in texts])
        v[[i for i, t in enumerate(texts) if t.endswith("odd")]] = np.nan
        return v

    its = [("a", "x even"), ("b", "y odd"), "not a pair", ("", "empty key"), ("c", 3.5), ("a", "dup"), ("d", "z even")]
    store = embed_items(its, nan_for_odd, cache_dir=tmp_path, model_id="m3", progress=False)
    assert store.keys == ["a", "d"] and store.duplicates == 1
    assert {(e.index, e.code) for e in store.errors} == {(1, "E243"), (2, "E244"), (3, "E244"), (4, "E245")}
    with pytest.raises(IndexError_) as e:
        build_index_from_store(embed_items([("k", "odd")], nan_for_odd, cache_dir=tmp_path, model_id="m3",
                                           progress=False), tmp_path / "ix", "entity_text")
    assert e.value.code == "E246"


def test_text_items_and_keys():
    ents = [Entity(id="Q1", label="Paris", description="capital of France"), Entity(id="Q2", label="Seine")]
    assert list(text_items(ents)) == [("Q1", "Paris: capital of France"), ("Q2", "Seine")]
    assert entity_of_key(image_key("Q1", "a.jpg")) == "Q1" and entity_of_key("Q2") == "Q2"


def test_text_store_to_index_round_trip(tmp_path):
    ents = [Entity(id=f"Q{i}", label=f"entity {i}", description=f"described as number {i * 7}") for i in range(300)]
    store = embed_items(text_items(ents), TextEncoder(), cache_dir=tmp_path / "c", model_id="tri", total=300,
                        progress=False)
    idx = build_index_from_store(store, tmp_path / "ix", "entity_text", progress=False)
    assert idx.backend == "exact" and len(idx) == 300  # auto: a small KB gets the exact backend
    q = np.stack([text_vec("entity 42: described as number 294")])
    _, found = idx.search(q, 3)
    assert found[0][0] == "Q42"
    with pytest.raises(IndexError_) as e:
        DenseIndex.open(idx.path, expect_model_id="some/other-model")
    assert e.value.code == "E222"


def test_any_item_error_is_recorded_and_the_run_goes_on(image_kb):
    """Issue #11: one oversized reference image aborted `kb embed`. Any PixlinkError the
    encoder raises about one item (not only InputError) becomes that item's error; a model
    that cannot run at all still stops the run, keeping what was computed."""
    entities, tmp = image_kb
    big = tmp / "images" / "e2_0.png"  # replace one image by a large one
    Image.fromarray(np.full((600, 800, 3), 200, np.uint8)).save(big)
    its = [(k, p) for k, p in image_items(entities) if "e4_1" not in p and "missing" not in p]
    budget = 100_000  # pixels

    def encode(paths):
        for p in paths:
            h, w = image_size(p)
            if h * w > budget:
                raise PixlinkError(Errors.E308.format(backend="colors", what=f"image {p}",
                                                      reason=f"{h}x{w} px is over the {budget} px budget"))
            if p.endswith("e8_1.png"):
                raise KBError(Errors.E112.format(ref=p, id="Q8", where=" (moved since the KB was built)"))
        return color_features(paths)

    store = embed_items(its, encode, cache_dir=tmp / "cache", model_id="colors-budget", batch_size=4, progress=True)
    errs = {e.item_id: e.code for e in store.errors}
    assert errs == {image_key("Q2", str(big)): "E308", image_key("Q8", str(tmp / "images" / "e8_1.png")): "E112"}
    assert len(store) == len(its) - 2 and store.computed == len(its) - 2
    good = [p for k, p in its if k not in errs]
    np.testing.assert_allclose(store.vectors(), color_features(good), rtol=1e-6)
    assert "2 items got no vector" in store.notes[-1]

    calls = {"n": 0}

    def unavailable(paths):
        calls["n"] += 1
        if calls["n"] == 3:
            raise ModelUnavailableError(Errors.E321.format(backend="colors", reason="weights deleted", hint="reinstall"))
        return color_features(paths)

    good_items = [(k, p) for k, p in its if k not in errs]
    with pytest.raises(ModelUnavailableError):
        embed_items(good_items, unavailable, cache_dir=tmp / "cache", model_id="colors-gone", batch_size=4,
                    progress=False)
    again = embed_items(good_items, color_features, cache_dir=tmp / "cache", model_id="colors-gone", batch_size=4,
                        progress=False)
    assert calls["n"] == 3 and again.reused == 8 and again.computed == len(good) - 8  # two batches were kept


def test_index_from_store_records_the_kb_build(tmp_path):
    ents = [Entity(id=f"Q{i}", label=f"entity {i}") for i in range(50)]
    store = embed_items(text_items(ents), TextEncoder(), cache_dir=tmp_path / "c", model_id="tri", progress=False)
    idx = build_index_from_store(store, tmp_path / "ix", "entity_text", kb_build_id="kb-2026-01", progress=False)
    assert idx.kb_build_id == "kb-2026-01"
    assert DenseIndex.open(tmp_path / "ix", expect_model_id="tri", expect_kb_build_id="kb-2026-01").n_entities == 50
    with pytest.raises(IndexError_) as e:
        DenseIndex.open(tmp_path / "ix", expect_model_id="tri", expect_kb_build_id="kb-2026-02")
    assert e.value.code == "E250"
