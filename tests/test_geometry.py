import numpy as np
import pytest

from pixlink import geometry as geo
from pixlink.errors import InputError


def test_box_iou_hand_computed():
    # 2x2 boxes overlapping in a 1x1 square: 1 / (4 + 4 - 1)
    assert geo.box_iou([0, 0, 2, 2], [1, 1, 3, 3]) == pytest.approx(1 / 7)
    assert geo.box_iou([0, 0, 2, 2], [0, 0, 2, 2]) == 1.0


def test_boxes_touching_at_an_edge_have_zero_iou():
    assert geo.box_iou([0, 0, 2, 2], [2, 0, 4, 2]) == 0.0
    assert geo.box_iou_matrix(np.array([[0, 0, 2, 2]]), np.array([[2, 0, 4, 2], [1, 0, 3, 2]])).tolist() == [
        [0.0, pytest.approx(1 / 3)]
    ]


def test_rle_round_trip_and_box():
    m = np.zeros((5, 7), dtype=bool)
    m[1:3, 2:6] = True
    rle = geo.mask_to_rle(m)
    assert rle["size"] == [5, 7] and isinstance(rle["counts"], str)
    back = geo.rle_to_mask(rle)
    assert (back == m).all()
    assert geo.mask_to_box(m).tolist() == [2, 1, 6, 3]
    # uncompressed RLE (list counts, column-major) decodes to the same mask
    flat = m.flatten(order="F").astype(int)
    counts, cur, run = [], 0, 0
    for v in flat:
        if v == cur:
            run += 1
        else:
            counts.append(run)
            cur, run = v, 1
    counts.append(run)
    assert (geo.rle_to_mask({"size": [5, 7], "counts": counts}) == m).all()


def test_bad_rle_and_masks_raise_clear_errors():
    with pytest.raises(InputError, match="E007"):
        geo.rle_to_mask({"size": [5, 7], "counts": [1, 2]})
    with pytest.raises(InputError, match="E004"):
        geo.as_mask(np.zeros((3, 3)))
    with pytest.raises(InputError, match="E005"):
        geo.as_mask(np.ones((3, 3)), image_size=(4, 3))


def test_box_to_mask_matches_box():
    m = geo.box_to_mask(np.array([1.0, 2.0, 4.0, 5.0]), (6, 6))
    assert m.sum() == 9
    assert geo.mask_to_box(m).tolist() == [1, 2, 4, 5]


def test_mask_iou():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[:2] = True
    b[1:3] = True
    assert geo.mask_iou(a, b) == pytest.approx(4 / 12)
