"""Classical proposals (segment_all "classical_proposals") on a real photo: deduplicated,
ranked masks that find the faces."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import need_backend

from pixlink import geometry as geo
from pixlink.errors import InputError

OBAMA_FACE = [230, 10, 400, 230]  # two_people.jpg, hand-drawn, loose
BIDEN_FACE = [760, 0, 930, 230]


@pytest.fixture(scope="module")
def proposals(two_people):
    gen = need_backend("segment_all", "classical_proposals")
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


def test_generate_is_deterministic_and_respects_max_masks(proposals, two_people):
    gen, masks = proposals
    few = gen.generate(two_people, max_masks=3)
    assert len(few) == 3
    for a, b in zip(few, masks[:3]):  # the best three, the same pixels each time
        assert a.score == b.score and (a.mask == b.mask).all()
