"""Linker behaviour on small KBs with fake encoders (fast); real models are in
test_linker_photos.py."""

import hashlib

import numpy as np
import pytest

from pixlink.errors import InputError, KBError
from pixlink.kb import build_kb_from_entities
from pixlink.link import Linker, LinkerConfig
from pixlink.link.embed import embed_kb
from pixlink.models import Profile, register_backend
from pixlink.models.roles import ImageFeatures
from pixlink.types import Entity, Mention, Region


def _vec(text: str, dim: int = 16) -> np.ndarray:
    """A deterministic unit vector per word bag (texts sharing words are near)."""
    v = np.zeros(dim, np.float32)
    for w in text.lower().replace(":", " ").split():
        h = int(hashlib.md5(w.encode()).hexdigest(), 16)
        v[h % dim] += 1.0
    n = np.linalg.norm(v)
    return v / n if n else v


class FakeText:
    name = "fake_text"
    dim = 16

    def __init__(self, model_id="test/fake-text-a"):
        self.model_id = model_id

    def encode(self, texts, batch_size=32, query=False):
        return np.stack([_vec(t) for t in texts])


class FakeImage:
    """Image embedding = normalised mean colour (so a red crop is near a red reference)."""

    name = "fake_image"
    model_id = "test/fake-image"
    dim = 3

    def encode_images(self, images, layers=(), batch_size=16):
        v = np.stack([im.reshape(-1, 3).mean(0) + 1e-3 for im in images]).astype(np.float32)
        return ImageFeatures(embeds=v / np.linalg.norm(v, axis=1, keepdims=True))


def _ok():
    return None


register_backend("text_embed", "test_fake_text_a", "classical", _ok)(lambda **kw: FakeText("test/fake-text-a"))
register_backend("text_embed", "test_fake_text_b", "classical", _ok)(lambda **kw: FakeText("test/fake-text-b"))
register_backend("image_embed", "test_fake_image", "classical", _ok)(lambda **kw: FakeImage())


def _profile(text="test_fake_text_a"):
    return Profile("offline", overrides={"text_embed": text, "image_embed": "test_fake_image"})


@pytest.fixture
def small_kb(tmp_path):
    from PIL import Image

    red = tmp_path / "red.png"
    blue = tmp_path / "blue.png"
    Image.new("RGB", (32, 32), (220, 20, 20)).save(red)
    Image.new("RGB", (32, 32), (20, 20, 220)).save(blue)
    ents = [
        Entity("Q1", "Red Square", description="square in Moscow red", images=(str(red),)),
        Entity("Q2", "Blue Lagoon", description="geothermal spa in Iceland blue", images=(str(blue),)),
        Entity("Q3", "Green Park", description="park in London green"),
        Entity("Q4", "Missing Picture", description="an entity whose image file is gone",
               images=(str(tmp_path / "gone.png"),)),
    ]
    kb_dir = tmp_path / "kb"
    build_kb_from_entities(ents, kb_dir)
    report = embed_kb(kb_dir, _profile(), ["dense_text", "v2v"], cache_dir=tmp_path / "cache", progress=False)
    return kb_dir, report


def _img(color, size=(40, 60)):
    a = np.zeros((*size, 3), np.uint8)
    a[:] = color
    return a


def test_embed_reports_bad_items_and_indexes_the_rest(small_kb):
    _, report = small_kb
    assert report["dense_text"]["vectors"] == 4
    assert report["v2v"]["vectors"] == 2 and report["v2v"]["entities"] == 2
    assert [e["item_id"].split("\t")[0] for e in report["v2v"]["errors"]] == ["Q4"]


def test_image_region_links_to_the_entity_with_the_matching_image(small_kb):
    kb_dir, _ = small_kb
    cfg = LinkerConfig(signals=("v2v", "dense_text", "lexical"), segment=False, signal_options={"lexical": {"ner": False}})
    linker = Linker.from_kb(kb_dir, profile=_profile(), config=cfg)
    img = _img((0, 0, 0))
    img[10:30, 10:40] = (200, 30, 30)
    link = linker.link(img, {"box": [10, 10, 40, 30]}, k=3)
    assert link.candidates[0].entity_id == "Q1"
    assert "v2v" in link.candidates[0].signals and link.backends["image_embed"] == "test_fake_image"
    assert set(link.timings) >= {"load", "v2v", "fuse"}


def test_caption_names_an_entity_without_image(small_kb):
    kb_dir, _ = small_kb
    cfg = LinkerConfig(signals=("lexical", "dense_text"), segment=False, signal_options={"lexical": {"ner": False}})
    linker = Linker.from_kb(kb_dir, profile=_profile(), config=cfg)
    link = linker.link(None, None, text="Green Park", k=3)
    assert link.prediction == "Q3" and link.candidates[0].signals["lexical"] > 0.5


def test_nothing_good_enough_is_nil(small_kb):
    kb_dir, _ = small_kb
    cfg = LinkerConfig(signals=("lexical",), segment=False, signal_options={"lexical": {"ner": False}})
    link = Linker.from_kb(kb_dir, profile=_profile(), config=cfg).link(None, None, text="zebra crossing", k=3)
    assert link.nil and link.prediction is None


def test_bad_inputs_have_clear_errors_and_a_batch_keeps_going(small_kb, tmp_path):
    kb_dir, _ = small_kb
    cfg = LinkerConfig(signals=("v2v",), segment=False, signal_options={"lexical": {"ner": False}})
    linker = Linker.from_kb(kb_dir, profile=_profile(), config=cfg)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    img = _img((200, 30, 30))
    with pytest.raises(InputError, match="E001"):
        linker.link(tmp_path / "broken.jpg", {"box": [0, 0, 5, 5]})
    with pytest.raises(InputError, match="E003"):
        linker.link(img, {"box": [100, 100, 200, 200]})
    with pytest.raises(InputError, match="E004"):
        linker.link(img, {"mask": np.zeros((40, 60), bool)})
    with pytest.raises(InputError, match="E005"):
        linker.link(img, {"mask": np.ones((10, 10), bool)})
    with pytest.raises(InputError, match="E400"):
        linker.link(None, None, text=None)
    from PIL import Image

    good = tmp_path / "good.png"
    Image.fromarray(img).save(good)
    mentions = [
        Mention("a", image=str(good), region=Region.from_box([0, 0, 10, 10])),
        Mention("b", image=str(tmp_path / "broken.jpg"), region=Region.from_box([0, 0, 10, 10])),
        Mention("c", image=str(good), region=Region.from_box([500, 500, 600, 600])),
        Mention("d", image=str(good)),
    ]
    out = linker.link_batch(mentions, k=2)
    assert [i for i, _ in out.results] == [0, 3]
    assert {(e.item_id, e.code) for e in out.errors} == {("b", "E001"), ("c", "E003")}


def test_a_required_signal_without_its_vectors_is_an_error_naming_both_models(small_kb):
    kb_dir, _ = small_kb
    cfg = LinkerConfig(signals=("dense_text",), segment=False, signal_options={"lexical": {"ner": False}})
    linker = Linker.from_kb(kb_dir, profile=_profile("test_fake_text_b"), config=cfg)
    with pytest.raises(KBError, match="E405") as err:
        linker.link(None, None, text="Red Square")
    assert "test/fake-text-b" in str(err.value) and "test/fake-text-a" in str(err.value)


def test_vectors_of_another_model_skip_an_optional_signal_with_a_note(small_kb):
    """Issue #11: vectors made for one signal must not fail another signal of the same space."""
    kb_dir, _ = small_kb
    cfg = LinkerConfig(segment=False, signal_options={"lexical": {"ner": False}})  # every signal, none required
    linker = Linker.from_kb(kb_dir, profile=_profile("test_fake_text_b"), config=cfg)
    link = linker.link(None, None, text="Red Square")
    assert link.prediction == "Q1"
    note = next(n for n in link.notes if n.startswith("dense_text:"))
    assert "test/fake-text-b" in note and "test/fake-text-a" in note and "pixlink kb embed" in note
    assert "dense_text" not in link.signals and "lexical" in link.signals


def test_missing_vectors_skip_the_signal_with_a_note(tmp_path):
    kb_dir = tmp_path / "kb"
    build_kb_from_entities([Entity("Q1", "Red Square", description="square")], kb_dir)
    cfg = LinkerConfig(segment=False, signal_options={"lexical": {"ner": False}})
    link = Linker.from_kb(kb_dir, profile=_profile(), config=cfg).link(None, None, text="Red Square")
    assert link.prediction == "Q1"
    assert any("no entity_text vectors" in n and "pixlink kb embed" in n for n in link.notes)
    # named explicitly, the signal is required: with no vectors of its space at all, the linker
    # is refused when it is built, not at the first query that reaches the signal
    cfg = LinkerConfig(signals=("dense_text", "lexical"), segment=False, signal_options={"lexical": {"ner": False}})
    with pytest.raises(KBError, match="E405") as err:
        Linker.from_kb(kb_dir, profile=_profile(), config=cfg)
    assert "'dense_text'" in str(err.value) and "entity_text" in str(err.value)
    # so is a named image signal that no query of a text-only run would ever have reached
    cfg = LinkerConfig(signals=("lexical", "face"), segment=False, signal_options={"lexical": {"ner": False}})
    with pytest.raises(KBError, match="E405") as err:
        Linker.from_kb(kb_dir, profile=_profile(), config=cfg)
    assert "'face'" in str(err.value) and "entity_face" in str(err.value)


def test_rerank_mode_orders_recalled_candidates_by_the_second_signal(small_kb):
    kb_dir, _ = small_kb
    cfg = LinkerConfig(signals=("dense_text", "v2v"), mode="rerank", recall_signal="dense_text", rerank_signal="v2v",
                       segment=False, signal_options={"lexical": {"ner": False}})
    linker = Linker.from_kb(kb_dir, profile=_profile(), config=cfg)
    # the caption recalls both coloured entities; the blue image decides
    link = linker.link(_img((20, 20, 220)), None, text="red blue", k=4)
    assert link.candidates[0].entity_id == "Q2"
    assert "v2v" in link.candidates[0].signals and "dense_text" in link.candidates[0].signals


def test_backends_and_notes_describe_each_call_only(small_kb):
    """Issue #10: a service's answer must not list models that an earlier request used."""
    kb_dir, _ = small_kb
    cfg = LinkerConfig(segment=False, signal_options={"lexical": {"ner": False}})
    linker = Linker.from_kb(kb_dir, profile=_profile(), config=cfg)
    with_image = linker.link(_img((200, 30, 30)), {"box": [0, 0, 30, 20]}, text="Red Square", k=2)
    assert with_image.backends["image_embed"] == "test_fake_image" and "v2v" in with_image.signals
    text_only = linker.link(None, None, text="Green Park", k=2)
    assert "image_embed" not in text_only.backends and "v2v" not in text_only.signals
    assert text_only.backends["text_embed"] == "test_fake_text_a"
    assert not any(n.startswith("face") or n.startswith("v2") for n in text_only.notes), text_only.notes


def test_the_linker_never_changes_the_fusion_it_is_given(small_kb):
    from pixlink.link import Fusion

    kb_dir, _ = small_kb
    fusion = Fusion.shipped("offline")
    linker = Linker.from_kb(kb_dir, profile=_profile(), config=LinkerConfig(nil_threshold=0.9, segment=False),
                            fusion=fusion)
    assert linker.fusion.nil_threshold == 0.9 and fusion.nil_threshold == 0.4
    assert Fusion.shipped("offline").nil_threshold == 0.4


def test_mention_type_gates_entities_of_an_incompatible_class(tmp_path):
    """Issue #11: a mention's type and the entity's KB classes must agree."""
    kb_dir = tmp_path / "kb"
    build_kb_from_entities([
        Entity("Q61", "Washington, D.C.", aliases=("Washington",), description="capital city of the United States",
               types=("Q5119",)),
        Entity("Q23", "George Washington", description="first president of the United States", types=("Q5",)),
        Entity("Q1223", "Washington", description="state of the United States", types=("Q35657",)),
    ], kb_dir)
    linker = Linker.from_kb(kb_dir, profile=_profile(), config=LinkerConfig(
        signals=("lexical", "mention_type"), segment=False, signal_options={"lexical": {"ner": False}}))
    untyped = linker.link(None, None, text="Washington", surface="Washington", k=3)
    assert untyped.prediction in ("Q1223", "Q61") and "mention_type" not in untyped.signals
    as_person = linker.link(None, None, text="Washington", surface="Washington", mention_type="PER", k=3)
    # the places are gated down to NIL; the person's name is only a weak BM25 match of "Washington"
    assert as_person.prediction in (None, "Q23"), as_person.candidates
    gated = {c.entity_id: c for c in as_person.candidates}
    assert gated["Q61"].signals["mention_type"] == 0.0 and "mention_type" not in gated["Q23"].signals
    assert gated["Q61"].score < 0.2 < {c.entity_id: c for c in untyped.candidates}["Q61"].score
    as_place = linker.link(None, None, text="Washington", surface="Washington", mention_type="LOC", k=3)
    assert as_place.prediction in ("Q1223", "Q61")
    assert {c.entity_id: c for c in as_place.candidates}["Q23"].score < 0.2


def test_a_spec_round_trips_and_a_pickled_linker_is_rebuilt_from_it(small_kb):
    import pickle

    from pixlink.link import LinkerSpec

    kb_dir, _ = small_kb
    spec = LinkerSpec(kb=str(kb_dir), profile="offline",
                      overrides={"text_embed": "test_fake_text_a", "image_embed": "test_fake_image"},
                      config=LinkerConfig(segment=False, signal_options={"lexical": {"ner": False}}).to_dict())
    again = LinkerSpec.from_json(spec.to_json())
    assert again == spec
    linker = spec.build()
    img = _img((200, 30, 30))
    want = linker.link(img, {"box": [0, 0, 30, 20]}, text="red", k=3).to_dict()
    clone = pickle.loads(pickle.dumps(linker))
    assert clone is not linker and clone.spec == spec
    got = clone.link(img, {"box": [0, 0, 30, 20]}, text="red", k=3).to_dict()
    for d in (want, got):
        d.pop("timings")
    assert got == want
    with pytest.raises(InputError, match="E406"):
        LinkerSpec.from_dict({"kb": str(kb_dir), "profile": "offline", "colour": "red"})
    with pytest.raises(InputError, match="E406"):
        LinkerSpec.from_json("{not json")
    with pytest.raises(InputError, match="E010"):
        LinkerSpec(kb=str(kb_dir), config={"signals": ["smell"]})


def test_one_linker_answers_many_threads_as_it_answers_one(small_kb):
    from concurrent.futures import ThreadPoolExecutor

    kb_dir, _ = small_kb
    linker = Linker.from_kb(kb_dir, profile=_profile(), config=LinkerConfig(
        segment=False, signal_options={"lexical": {"ner": False}}))
    queries = [((200, 30, 30), "red square"), ((20, 20, 220), "blue lagoon"), ((10, 200, 10), "Green Park"),
               ((0, 0, 0), "zebra")]

    def run(i):
        colour, text = queries[i % len(queries)]
        d = linker.link(_img(colour), {"box": [5, 5, 50, 30]}, text=text, k=3).to_dict()
        d.pop("timings")
        return d

    serial = [run(i) for i in range(len(queries))]
    for _ in range(3):
        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(run, range(8 * len(queries))))
        assert got == [serial[i % len(queries)] for i in range(8 * len(queries))]


def test_calibrate_fits_on_labelled_mentions_and_improves_held_out_accuracy(tmp_path):
    """A fusion that answers NIL to everything (v2v centre 1.2, out of reach) is fitted back to a useful one."""
    from PIL import Image

    from pixlink.link import Fusion, SignalCalibration
    from pixlink.link.calibrate import calibrate
    from pixlink.link.fusion import NilClass

    rng = np.random.default_rng(3)
    colours = {f"Q{i}": tuple(int(c) for c in rng.integers(0, 256, 3)) for i in range(1, 13)}
    ents = []
    for qid, col in colours.items():
        p = tmp_path / f"{qid}.png"
        Image.new("RGB", (24, 24), col).save(p)
        ents.append(Entity(qid, f"thing {qid}", images=(str(p),)))
    kb_dir = tmp_path / "kb"
    build_kb_from_entities(ents, kb_dir)
    embed_kb(kb_dir, _profile(), ["v2v"], cache_dir=tmp_path / "cache", progress=False)
    mentions = []
    for j in range(60):
        if j % 4 == 3:  # a colour far from every entity's: the answer is NIL
            col, gold = (255, 255, 255) if j % 8 == 3 else (0, 0, 0), None
        else:
            gold = f"Q{1 + j % 12}"
            col = tuple(int(np.clip(c + rng.normal(0, 6), 0, 255)) for c in colours[gold])
        img = np.zeros((30, 30, 3), np.uint8)
        img[:] = col
        path = tmp_path / f"m{j}.png"
        Image.fromarray(img).save(path)
        mentions.append(Mention(f"m{j}", image=str(path), gold=gold))
    # and its NIL class of image-only mentions (all of these) is held to an unreachable threshold
    bad = Fusion(calibration={"v2v": SignalCalibration(center=1.2, slope=50.0, weight=1.0)}, nil_threshold=0.5,
                 nil_classes=[NilClass("image", ("v2v",), 0.99)])
    linker = Linker.from_kb(kb_dir, profile=_profile(), config=LinkerConfig(signals=("v2v",), segment=False),
                            fusion=bad)
    report = calibrate(linker, mentions, holdout=0.3, seed=0)
    assert report.n_heldout == 18 and report.n_fit == 42 and report.n_failed == 0
    assert report.before["accuracy"] < 0.5 < report.after["accuracy"], (report.before, report.after)
    assert report.after["nil_accuracy"] > 0.5 and report.after["hits@1"] >= report.before["hits@1"]
    fitted = report.fusion
    assert fitted.cal("v2v", "test_fake_image") is not None and linker.fusion is bad
    fitted.save(tmp_path / "fusion.json")
    again = Linker.from_kb(kb_dir, profile=_profile(), config=LinkerConfig(
        signals=("v2v",), segment=False, fusion_path=str(tmp_path / "fusion.json")))
    assert again.fusion.calibration == fitted.calibration
    # the class's threshold was fitted on its 42 mentions, and a link reports the one that decided it
    assert report.nil_thresholds["image"]["n"] == 42
    assert (fitted.nil_classes[0].threshold < 0.99
            and again.link(mentions[0].image).nil_threshold == fitted.nil_classes[0].threshold)
    # a class with a KB-size rule holds this 12-entity KB's mentions to the threshold for 12
    sized = Fusion(calibration=fitted.calibration, nil_classes=[
        NilClass("image", ("v2v",), 0.5, size_slope=0.1, size_reference=100, size_range=(10, 100))])
    small = Linker.from_kb(kb_dir, profile=_profile(), config=LinkerConfig(signals=("v2v",), segment=False),
                           fusion=sized)
    assert small.kb_entities == 12
    assert small.link(mentions[0].image).nil_threshold == pytest.approx(0.5 + 0.1 * np.log(12 / 100))
    with pytest.raises(InputError, match="E407"):
        calibrate(linker, mentions[:2])


def test_a_rebuilt_kb_never_answers_from_the_old_builds_vectors(small_kb, tmp_path):
    """Issue #11: `kb build --force` kept vectors/ and the linker answered entities no longer in the KB."""
    import shutil

    from pixlink.errors import IndexError_

    kb_dir, _ = small_kb
    old_vectors = tmp_path / "old_vectors"
    shutil.copytree(kb_dir / "vectors", old_vectors)
    build_kb_from_entities([Entity("Q9", "Purple Rain", description="an album")], kb_dir, overwrite=True)
    assert not (kb_dir / "vectors").exists()  # --force removes what it replaces
    cfg = LinkerConfig(segment=False, signal_options={"lexical": {"ner": False}})
    link = Linker.from_kb(kb_dir, profile=_profile(), config=cfg).link(_img((200, 30, 30)), None, text="red square")
    assert all(c.entity_id == "Q9" for c in link.candidates)
    # old vectors put back by hand are refused, not used
    shutil.copytree(old_vectors, kb_dir / "vectors")
    with pytest.raises(IndexError_, match="E250"):
        Linker.from_kb(kb_dir, profile=_profile(), config=cfg).link(_img((200, 30, 30)), None, text="red square")
