"""geometry.nms: the one box NMS of the package (detectors, proposals)."""

from __future__ import annotations

import numpy as np
import pytest

from pixlink import geometry as geo
from pixlink.errors import InputError


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10.5]], float)
    scores = np.array([0.8, 0.9, 0.1, 0.85])
    keep = geo.nms(boxes, scores, 0.5)
    assert keep.dtype == np.int64 and keep.tolist() == [1, 2]  # 0 and 3 overlap box 1 (IoU 0.68, 0.72)
    assert geo.nms(boxes, scores, 0.7).tolist() == [1, 0, 2]  # 3 overlaps 1 by 0.72 > 0.7; 0 only by 0.68
    assert geo.nms(boxes, scores, 1.0).tolist() == [1, 3, 0, 2]  # nothing is dropped: best first


def test_nms_ties_keep_input_order_and_edge_cases():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]], float)
    assert geo.nms(boxes, np.zeros(3), 0.9).tolist() == [0, 2]
    assert geo.nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []
    with pytest.raises(InputError):
        geo.nms(boxes, np.zeros(2), 0.5)


def test_nms_matches_a_brute_force_greedy_reference():
    rng = np.random.default_rng(0)
    xy = rng.random((60, 2)) * 100
    boxes = np.concatenate([xy, xy + 5 + rng.random((60, 2)) * 30], axis=1)
    scores = rng.random(60)
    ref, order = [], list(np.argsort(-scores, kind="stable"))
    for i in order:
        if all(geo.box_iou(boxes[i], boxes[k]) <= 0.3 for k in ref):
            ref.append(int(i))
    assert geo.nms(boxes, scores, 0.3).tolist() == ref
