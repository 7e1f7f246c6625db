"""GrabCut (segment "grabcut") on a real photo: masks of the object inside the box, clicks,
determinism, and the prompts it refuses."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import need_backend

from pixlink import geometry as geo
from pixlink.errors import InputError

OBAMA_FACE = [230, 10, 400, 230]  # two_people.jpg, hand-drawn, loose
BIDEN_FACE = [760, 0, 930, 230]
OBAMA_TIE = [270, 250, 330, 500]
OBAMA = [10, 0, 560, 661]


@pytest.fixture(scope="module")
def grabcut():
    return need_backend("segment", "grabcut")


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


def test_grabcut_box_over_the_whole_image(grabcut, two_people):
    """A whole-image box (a grounder's answer for a scene) left GrabCut no background to fit
    its colour models: it raised E353 and lost the item. The frame is probable background now."""
    H, W = two_people.shape[:2]
    (p,) = grabcut.predict(grabcut.embed_image(two_people), box=[0, 0, W, H])
    assert p.mask.shape == (H, W) and 0.05 < p.mask.mean() < 0.98
    # a person (the largest foreground component is kept) is foreground, not the frame's colours
    assert p.mask[120, 315] or p.mask[110, 845]
    assert not p.mask[:3, :].any()  # the sky above them is not (the bottom edge is their bodies)


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
