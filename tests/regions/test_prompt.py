import numpy as np

from pixlink.errors import Errors, ModelUnavailableError
from pixlink.models.roles import MaskPrediction
from pixlink.regions import SegmenterSession
from pixlink.types import Region


class BoxOnly:
    """A segmenter that fills the prompt box; counts how often it embeds an image."""

    name = "boxonly"
    model_id = "test/boxonly"
    prompt_kinds = frozenset({"box"})

    def __init__(self):
        self.embeds = 0

    def embed_image(self, image):
        self.embeds += 1
        return image.shape[:2]

    def predict(self, handle, box=None, points=None, point_labels=None, multimask=False):
        if box is None:
            raise ModelUnavailableError(Errors.E300.format(role="segment", profile="test", reason="box only"))
        m = np.zeros(handle, bool)
        x1, y1, x2, y2 = (int(v) for v in box)
        m[y1:y2, x1:x2] = True
        return [MaskPrediction(m, 0.9)]


class PointDisk(BoxOnly):
    name = "pointdisk"
    prompt_kinds = frozenset({"box", "points"})

    def predict(self, handle, box=None, points=None, point_labels=None, multimask=False):
        if points is None:
            return super().predict(handle, box=box)
        yy, xx = np.mgrid[: handle[0], : handle[1]]
        x, y = points[0]
        return [MaskPrediction((xx - x) ** 2 + (yy - y) ** 2 <= 25, 0.8)]


def test_embedding_is_computed_once_per_image():
    seg = BoxOnly()
    sess = SegmenterSession([seg])
    img = np.zeros((40, 40, 3), np.uint8)
    r1 = sess.segment(img, Region.from_box([1, 1, 10, 10], image_size=(40, 40)))
    r2 = sess.segment(img, Region.from_box([5, 5, 20, 30], image_size=(40, 40)))
    assert seg.embeds == 1 and r1.embedded and not r2.embedded
    assert r2.region.mask.sum() == 15 * 25 and r2.region.source == "boxonly"
    other = np.ones((40, 40, 3), np.uint8)
    sess.segment(other, Region.from_box([1, 1, 10, 10], image_size=(40, 40)))
    assert seg.embeds == 2


def test_points_fall_back_to_a_segmenter_that_takes_them_and_say_so():
    sess = SegmenterSession([BoxOnly(), PointDisk()])
    img = np.zeros((40, 40, 3), np.uint8)
    res = sess.segment(img, Region.from_points([[20, 20]], image_size=(40, 40)))
    assert res.segmenter == "pointdisk" and res.region.mask[20, 20]
    assert any("fallback to pointdisk" in n and "boxonly does not take points" in n for n in res.notes)


def test_no_capable_segmenter_keeps_the_prompt_and_notes_it():
    sess = SegmenterSession([BoxOnly()])
    img = np.zeros((40, 40, 3), np.uint8)
    res = sess.segment(img, Region.from_points([[20, 20]], image_size=(40, 40)))
    assert res.region.mask is None and any("stays a points" in n for n in res.notes)


def test_given_mask_is_used_as_is():
    seg = BoxOnly()
    m = np.zeros((10, 10), bool)
    m[2:4, 2:4] = True
    res = SegmenterSession([seg]).segment(np.zeros((10, 10, 3), np.uint8), Region.from_mask(m))
    assert res.region.mask is not None and res.region.mask.sum() == 4 and seg.embeds == 0
