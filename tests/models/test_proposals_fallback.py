"""The weak detector (detect "proposals_fallback"): upper bodies for people, ConSE-scored
proposals for things, and the phrase helpers of the offline detectors."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import need_backend

from pixlink import geometry as geo
from pixlink.errors import InputError

OBAMA_FACE = [230, 10, 400, 230]  # two_people.jpg, hand-drawn, loose
BIDEN_FACE = [760, 0, 930, 230]


@pytest.fixture(scope="module")
def detector():
    return need_backend("detect", "proposals_fallback", max_region_boxes=12)


@pytest.mark.slow
def test_fallback_detector_answers_people_with_upper_bodies_and_things_with_scored_proposals(detector, two_people):
    H, W = two_people.shape[:2]
    dets = detector.detect(two_people, ["a man", "a wristwatch"], threshold=0.0)
    people = [d for d in dets if d.phrase == "a man"]
    things = [d for d in dets if d.phrase == "a wristwatch"]
    if detector.faces is not None:
        assert len(people) == 2 and all(d.source == "fallback:faces->upper_body" for d in people)
        for face in (OBAMA_FACE, BIDEN_FACE):  # each face lies in one upper-body box
            assert sum(geo.box_iou(d.box, face) > 0 and d.box[0] <= face[0] + 40 and d.box[2] >= face[2] - 40
                       for d in people) == 1
    assert 1 <= len(things) <= detector.max_per_phrase
    assert all(d.source.startswith("fallback:proposals+conse") for d in things)
    assert [d.score for d in things] == sorted((d.score for d in things), reverse=True)
    for d in dets:
        assert 0.0 <= d.score <= 1.0 and geo.box_inside(d.box, (H, W)) and d.label
    with pytest.raises(InputError) as ei:
        detector.detect(two_people, ["a man", "  "])
    assert ei.value.code == "E380"


def test_person_phrases_and_upper_body_boxes():
    from pixlink.models.backends.proposals_fallback import is_person_phrase, upper_body_box

    assert is_person_phrase("a man in a suit") and is_person_phrase("Obama person")
    assert not is_person_phrase("a wristwatch") and not is_person_phrase("Barack Obama")
    b = upper_body_box(np.array([100.0, 50.0, 140.0, 100.0]), (400, 300))
    np.testing.assert_allclose(b, [60.0, 35.0, 180.0, 225.0])
    assert upper_body_box(np.array([0.0, 0.0, 40.0, 50.0]), (100, 100))[0] == 0.0


def test_offline_profile_picks_these_backends():
    from pixlink.models import Profile, list_backends

    prof = Profile("offline")
    assert prof.choose("segment_all").backend == "classical_proposals"
    names = {s.name for s in list_backends("detect")}
    # coco_fallback (NanoDet + faces + proposals) comes first; proposals_fallback is its weight-free part
    assert {"coco_fallback", "proposals_fallback"} <= names
    from pixlink.models.registry import PREFERENCES

    assert PREFERENCES["offline"]["detect"][:2] == ("coco_fallback", "proposals_fallback")
    assert {s.name for s in list_backends("segment")} >= {"litemedsam", "grabcut"}
