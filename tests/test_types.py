import numpy as np
import pytest

from pixlink.errors import InputError
from pixlink.types import Candidate, Entity, Link, Mention, Region


def test_region_validates_box_against_image():
    r = Region.from_box([10, 10, 50, 40], image_size=(100, 200))
    assert r.kind == "box" and r.bbox.tolist() == [10, 10, 50, 40]
    with pytest.raises(InputError, match="E003"):
        Region.from_box([250, 10, 300, 40], image_size=(100, 200))
    with pytest.raises(InputError, match="E002"):
        Region.from_box([50, 10, 10, 40])
    clipped = Region.from_box([-5, -5, 50, 40], image_size=(100, 200), clip=True)
    assert clipped.box.tolist() == [0, 0, 50, 40]


def test_region_mask_round_trip_through_dict():
    m = np.zeros((20, 30), bool)
    m[5:10, 3:12] = True
    r = Region.from_mask(m)
    assert r.image_size == (20, 30) and r.bbox.tolist() == [3, 5, 12, 10]
    back = Region.from_dict(r.to_dict())
    assert (back.mask == m).all() and back.kind == "mask"


def test_region_rejects_empty_and_wrong_sized_masks():
    with pytest.raises(InputError, match="E004"):
        Region.from_mask(np.zeros((4, 4), bool))
    with pytest.raises(InputError, match="E005"):
        Region(image_size=(5, 5), mask=np.ones((4, 4), bool))
    with pytest.raises(InputError, match="E008"):
        Region(image_size=(5, 5))


def test_points_outside_image_rejected():
    with pytest.raises(InputError, match="E006"):
        Region.from_points([[300, 1]], image_size=(100, 200))
    r = Region.from_points([[3, 4]], image_size=(100, 200))
    assert r.point_labels.tolist() == [1]


def test_link_prediction_and_nil():
    c = [Candidate("Q76", 0.9), Candidate("Q6279", 0.2)]
    assert Link(c).prediction == "Q76"
    assert Link(c, nil=True).prediction is None
    assert Link([]).prediction is None


def test_entity_names_and_dict():
    e = Entity("Q76", "Barack Obama", aliases=("Obama", "Barack Obama", ""), types=["Q5"])
    assert e.names() == ["Barack Obama", "Obama"]
    assert Entity.from_dict(e.to_dict()) == e
    with pytest.raises(InputError):
        Entity("", "x")


def test_mention_round_trip():
    m = Mention("1", image="a.jpg", region=Region.from_box([1, 2, 3, 4]), text="hi", gold=None)
    d = Mention.from_dict(m.to_dict())
    assert d.region.bbox.tolist() == [1, 2, 3, 4] and d.gold is None
