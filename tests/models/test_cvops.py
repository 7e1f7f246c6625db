"""The image and mask operations the classical backends and SAM share (pixlink.models.cvops)."""

from __future__ import annotations

import numpy as np
import pytest

from pixlink.models.cvops import colour_separation, fill_holes, mask_nms, resize_max, upsample_mask


def test_mask_nms_drops_duplicates_keeps_distinct():
    a = np.zeros((3, 10, 10), bool)
    a[0, :5] = True
    a[1, :5] = True
    a[1, 5, :3] = True  # near-duplicate of 0 (IoU 50/53)
    a[2, 6:] = True
    assert mask_nms(a, np.array([0.5, 0.9, 0.7]), 0.7) == [1, 2]
    assert mask_nms(a, np.array([0.5, 0.9, 0.7]), 0.99) == [1, 2, 0]
    assert mask_nms(a, np.array([0.5, 0.9, 0.7]), 0.99, limit=2) == [1, 2]
    # ties keep the input order; empty masks are never kept
    b = np.concatenate([a, np.zeros((1, 10, 10), bool)])
    assert mask_nms(b, np.array([0.5, 0.5, 0.5, 0.9]), 0.7) == [0, 2]
    assert mask_nms(np.zeros((0, 4, 4), bool), np.zeros(0), 0.5) == []


def test_mask_nms_agrees_with_pairwise_iou_on_random_masks():
    rng = np.random.default_rng(1)
    masks = rng.random((40, 16, 16)) < rng.random((40, 1, 1))
    scores = rng.random(40)
    keep = mask_nms(masks, scores, 0.4)
    assert keep == sorted(keep, key=lambda i: -scores[i])
    for n, i in enumerate(keep):  # no two kept masks overlap by more than the threshold
        for j in keep[:n]:
            inter = np.logical_and(masks[i], masks[j]).sum()
            assert inter / np.logical_or(masks[i], masks[j]).sum() <= 0.4
    dropped = [i for i in range(40) if i not in keep and masks[i].any()]
    for i in dropped:  # every dropped mask overlaps a better kept one by more than the threshold
        assert any(scores[j] >= scores[i] and np.logical_and(masks[i], masks[j]).sum()
                   / np.logical_or(masks[i], masks[j]).sum() > 0.4 for j in keep)


def test_resize_upsample_fill_and_colour_separation():
    img = np.zeros((100, 300, 3), np.uint8)
    small, s = resize_max(img, 150)
    assert small.shape == (50, 150, 3) and s == pytest.approx(0.5)
    same, s1 = resize_max(img, 400)
    assert same is img and s1 == 1.0
    m = np.zeros((10, 20), bool)
    m[2:8, 5:15] = True
    up = upsample_mask(m, (20, 40))
    assert up.shape == (20, 40) and up[10, 20] and not up[0, 0]
    ring = np.zeros((9, 9), bool)
    ring[1:8, 1:8] = True
    ring[3:6, 3:6] = False  # a hole
    filled = fill_holes(ring)
    assert filled[4, 4] and not filled[0, 0] and filled.sum() == 49
    img = np.zeros((20, 20, 3), np.uint8)
    img[:, :10] = (255, 0, 0)
    img[:, 10:] = (0, 0, 255)
    left = np.zeros((20, 20), bool)
    left[:, :10] = True
    assert colour_separation(img, left, ~left) > 0.9
    assert colour_separation(img, left[:, ::-1] & left, left) == 0.0  # no pixels on one side
