"""Open-vocabulary detectors on tiny random models: boxes in original-pixel XYXY (OWLv2's square
padding undone), phrases mapped back, per-phrase NMS, phrase validation."""

from __future__ import annotations

import numpy as np
import pytest

from pixlink.errors import InputError
from pixlink.models import Profile
from pixlink.models import roles as R
from pixlink.models.backends.hub_detect import nms_per_phrase
from pixlink.models.tiny import build_tiny

torch = pytest.importorskip("torch")

H, W = 60, 120  # wide image: OWLv2 pads it to 120 x 120


@pytest.fixture(scope="module")
def owl_dir(tmp_path_factory):
    """Tiny OWLv2 whose box head outputs 0, so each patch's box is exactly its prior
    (``sigmoid(box_bias)``: a patch-sized box on the patch grid of the padded square)."""
    from transformers import Owlv2ForObjectDetection

    d = build_tiny("owlv2", tmp_path_factory.mktemp("tiny_owl") / "owlv2")
    m = Owlv2ForObjectDetection.from_pretrained(d)
    with torch.no_grad():
        m.box_head.dense2.weight.zero_()
        m.box_head.dense2.bias.zero_()
    m.save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def gd_dir(tmp_path_factory):
    return build_tiny("grounding_dino", tmp_path_factory.mktemp("tiny_gd") / "gd")


@pytest.fixture
def image():
    return np.random.default_rng(2).integers(0, 256, (H, W, 3), dtype=np.uint8)


def test_owlv2_boxes_are_original_pixels_of_the_padded_square(owl_dir, image):
    det = Profile("hub", options={"detect": {"model": str(owl_dir), "nms_iou": None}}).get("detect")
    assert det.name == "owlv2"
    dets = det.detect(image, ["a cat", "the red car"], threshold=0.0)
    # expected: each patch prior, cxcywh in [0, 1] of the padded square of side max(H, W) = 120
    prior = torch.sigmoid(det._net.box_bias).numpy()  # (patches, 4)
    s = max(H, W)
    xyxy = np.stack([prior[:, 0] - prior[:, 2] / 2, prior[:, 1] - prior[:, 3] / 2,
                     prior[:, 0] + prior[:, 2] / 2, prior[:, 1] + prior[:, 3] / 2], axis=1) * s
    clipped = np.stack([np.clip(xyxy[:, 0], 0, W), np.clip(xyxy[:, 1], 0, H),
                        np.clip(xyxy[:, 2], 0, W), np.clip(xyxy[:, 3], 0, H)], axis=1)
    inside = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    assert 0 < inside.sum() < len(prior)  # the bottom half of the square is padding: dropped
    got = np.stack([d.box for d in dets])
    # one detection per patch inside the image (each patch's best phrase), boxes = the priors
    assert len(got) == inside.sum()
    dist = np.abs(got[:, None, :] - clipped[inside][None, :, :]).max(axis=2)
    assert dist.min(axis=1).max() < 1e-2 and dist.min(axis=0).max() < 1e-2
    assert all(d.box[2] <= W and d.box[3] <= H for d in dets)
    assert {d.phrase for d in dets} <= {"a cat", "the red car"}
    assert all(0.0 <= d.score <= 1.0 and d.source == "owlv2" and d.label == d.phrase for d in dets)
    # scaling by (H, W) instead of the padded side would have squashed boxes to half their height
    heights = got[:, 3] - got[:, 1]
    assert np.isclose(heights.max(), s * prior[:, 3].max(), atol=1e-2)


def test_owlv2_threshold_and_nms(owl_dir, image):
    det = Profile("hub", options={"detect": {"model": str(owl_dir)}}).get("detect")
    all_dets = det.detect(image, ["a cat"], threshold=0.0)
    assert all_dets and det.detect(image, ["a cat"], threshold=1.0) == []
    assert [d.score for d in all_dets] == sorted((d.score for d in all_dets), reverse=True)
    boxes = np.stack([d.box for d in all_dets])
    from pixlink.geometry import box_iou_matrix

    iou = box_iou_matrix(boxes, boxes)
    assert (iou[np.triu_indices(len(boxes), 1)] <= 0.5).all()


def test_nms_per_phrase_keeps_other_phrases():
    b = np.array([0.0, 0.0, 10.0, 10.0])
    dets = [R.Detection(b, 0.5, "cat"), R.Detection(b + 1, 0.9, "cat"), R.Detection(b, 0.4, "dog")]
    kept = nms_per_phrase(dets, 0.5)
    assert [(d.phrase, d.score) for d in kept] == [("cat", 0.9), ("dog", 0.4)]
    assert len(nms_per_phrase(dets, None)) == 3


@pytest.mark.parametrize("bad", [[], [""], "a cat", ["ok", "  "], [3]])
def test_bad_phrases_are_E312(owl_dir, image, bad):
    det = Profile("hub", options={"detect": {"model": str(owl_dir)}}).get("detect")
    with pytest.raises(InputError, match="E312"):
        det.detect(image, bad)


def test_grounding_dino(gd_dir, image):
    det = Profile("hub", overrides={"detect": "grounding_dino"}, options={"detect": {"model": str(gd_dir)}}).get("detect")
    text, tokens, enc = det._phrase_tokens(["A cat", "red. car"])
    assert text == "a cat. red  car."
    words = [det.processor.tokenizer.convert_ids_to_tokens(enc["input_ids"][i]) for i in sum(tokens, [])]
    assert words == ["a", "cat", "red", "car"] and len(tokens[0]) == 2
    dets = det.detect(image, ["a cat", "the red car"], threshold=0.0)
    assert dets and all(d.phrase in ("a cat", "the red car") and d.source == "grounding_dino" for d in dets)
    assert all(0 <= d.box[0] < d.box[2] <= W and 0 <= d.box[1] < d.box[3] <= H for d in dets)
    hi = det.detect(image, ["a cat", "the red car"], threshold=0.9)
    assert all(d.score > 0.9 for d in hi) and len(hi) <= len(dets)
    with pytest.raises(InputError, match="E312"):
        det.detect(image, [])
