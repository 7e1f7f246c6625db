"""The GMNER cascade's plumbing with small fake backends (real-model runs are in
test_pipeline_offline.py)."""

import numpy as np
import pytest

from pixlink.errors import InputError
from pixlink.models import Profile, register_backend
from pixlink.models.roles import Detection, MaskPrediction
from pixlink.ner.gmner import GMNERConfig, GMNERPipeline, GroundabilityClassifier, calibrate_threshold
from pixlink.ner.gmner.formats import bio_tags, riveg_line, voc_xml


class FakeNER:
    name = "fake_ner"
    model_id = "test/fake-ner"
    labels = ("PER", "LOC", "ORG", "MISC")

    def tag_tokens(self, tokens):
        out = []
        for toks in tokens:
            spans = []
            for i, t in enumerate(toks):
                if t == "Philadelphia" and i + 1 < len(toks) and toks[i + 1] == "Phillies":
                    spans.append((i, i + 2, "ORG"))
                if t == "Instagram":
                    spans.append((i, i + 1, "MISC"))
            out.append(spans)
        return out


class FakeDetector:
    name = "fake_detect"
    model_id = "test/fake-detect"

    def detect(self, image, phrases, threshold=0.1):
        h, w = image.shape[:2]
        return [Detection(np.array([10, 20, w / 2, h / 2]), 0.9, p, source="fake") for p in phrases if "Phillies" in p]


class FakeSegmenter:
    name = "fake_seg"
    model_id = "test/fake-seg"
    prompt_kinds = frozenset({"box"})

    def embed_image(self, image):
        return image.shape[:2]

    def predict(self, handle, box=None, points=None, point_labels=None, multimask=False):
        m = np.zeros(handle, bool)
        x1, y1, x2, y2 = (int(v) for v in box)
        m[y1 + 5 : y2 - 5, x1 + 5 : x2 - 5] = True
        return [MaskPrediction(m, 0.8)]


def _always(): return None


register_backend("ner", "test_fake_ner", "classical", _always)(lambda **kw: FakeNER())
register_backend("detect", "test_fake_detect", "classical", _always)(lambda **kw: FakeDetector())
register_backend("segment", "test_fake_seg", "classical", _always)(lambda **kw: FakeSegmenter())


@pytest.fixture
def pipeline():
    prof = Profile("offline", overrides={"ner": "test_fake_ner", "detect": "test_fake_detect", "segment": "test_fake_seg"})
    return GMNERPipeline(prof, config=GMNERConfig(expansion_sources=("template",)))


def test_cascade_on_the_real_riveg_tweet(pipeline, shared_data):
    img = shared_data("riveg", "16_05_01_127.jpg")
    res = pipeline.run(img, text="The Philadelphia Phillies are a good baseball team .")
    assert [(e.text, e.type) for e in res.entities] == [("Philadelphia Phillies", "ORG")]
    ent = res.entities[0]
    assert ent.expansion == "Philadelphia Phillies (ORG) - an organization"
    assert ent.groundable and ent.region is not None and ent.region.mask is not None
    assert ent.region.mask.shape == ent.region.image_size
    assert set(res.backends) >= {"ner", "detect", "segment"}


def test_ungroundable_entities_get_no_region_and_scheme_is_applied(pipeline, shared_data):
    img = shared_data("riveg", "16_05_01_127.jpg")
    res = pipeline.run(img, text="Follow us on Instagram")
    assert [(e.text, e.type, e.groundable, e.region) for e in res.entities] == [("Instagram", "OTHER", False, None)]
    pipeline.config = GMNERConfig(label_scheme="MISC", expansion_sources=("template",))
    assert pipeline.run(img, text="Follow us on Instagram").entities[0].type == "MISC"


def test_bad_input(pipeline, tmp_path):
    with pytest.raises(InputError, match="E550"):
        pipeline.run(None, text="   ")
    (tmp_path / "x.jpg").write_bytes(b"not an image")
    with pytest.raises(InputError, match="E001"):
        pipeline.run(tmp_path / "x.jpg", text="The Philadelphia Phillies")
    long = ("word " * 300).strip()
    res = pipeline.run(None, text=long)
    assert res.entities == [] and any("cut from 300" in n for n in res.notes)
    # issue #11: a 50 kB text hung the cascade; it is refused at once with its length and the limit
    with pytest.raises(InputError, match="E554") as err:
        pipeline.run(None, text="The Philadelphia Phillies " * 2000)
    assert "52000" in str(err.value) and "4000" in str(err.value)
    with pytest.raises(InputError, match="E554"):
        pipeline.run(None, tokens=["Phillies"] * 3000)


def test_batch_keeps_good_posts(pipeline, tmp_path):
    from pixlink.types import Post

    (tmp_path / "bad.jpg").write_bytes(b"nope")
    posts = [Post("a", ["The", "Philadelphia", "Phillies"]), Post("b", ["x"], image=str(tmp_path / "bad.jpg")),
             Post("c", ["no", "entity"])]
    out = pipeline.run_batch(posts)
    assert [i for i, _ in out.results] == [0, 2] and out.errors[0].item_id == "b"


def test_formats(pipeline, shared_data):
    img = shared_data("riveg", "16_05_01_127.jpg")
    res = pipeline.run(img, text="The Philadelphia Phillies are a good baseball team .")
    line = riveg_line("16_05_01_127.jpg", res.entities[0])
    assert line.startswith("16_05_01_127.jpg###Philadelphia Phillies(ORG)###an organization###2###&[10.0, 20.0,")
    assert bio_tags(5, res.entities) == ["O", "B-ORG", "I-ORG", "O", "O"]
    xml = voc_xml("16_05_01_127.jpg", res.entities[0].region.image_size, res.entities)
    assert "<name>Philadelphia Phillies</name>" in xml and "<xmin>10</xmin>" in xml


def test_threshold_calibration_and_classifier():
    t = calibrate_threshold([0.9, 0.8, 0.1, 0.05], [True, True, False, False])
    assert 0.1 < t <= 0.8
    rng = np.random.default_rng(0)
    X = np.array([GroundabilityClassifier.features([s], "PER", 1) for s in rng.uniform(0, 1, 200)])
    y = X[:, 0] > 0.5
    clf = GroundabilityClassifier().fit(X, y)
    acc = float(np.mean((clf.predict_proba(X) > 0.5) == y))
    assert acc > 0.9
