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


class SlowArrayHandle(BoxOnly):
    """Embeds into a (H, W, 16) float32 array (known bytes), slowly, so that threads overlap."""

    name = "slowarray"

    def embed_image(self, image):
        import time

        self.embeds += 1
        time.sleep(0.05)
        return {"shape": image.shape[:2], "feat": np.zeros((*image.shape[:2], 16), np.float32)}

    def predict(self, handle, box=None, points=None, point_labels=None, multimask=False):
        return super().predict(handle["shape"], box=box)


def test_many_threads_share_a_session_and_each_image_is_embedded_once():
    from concurrent.futures import ThreadPoolExecutor

    seg = SlowArrayHandle()
    sess = SegmenterSession([seg], cache_size=8)
    imgs = [np.full((30 + i, 40, 3), i, np.uint8) for i in range(3)]

    def run(j):
        img = imgs[j % 3]
        box = [1 + j % 5, 1, 20, 20]
        return sess.segment(img, Region.from_box(box, image_size=img.shape[:2])).region.mask.sum()

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(run, range(48)))
    assert seg.embeds == 3  # one per distinct image, although 16 threads asked for each at once
    assert got == [run(j) for j in range(48)]


def test_the_cache_is_bounded_in_bytes_as_well_as_in_count():
    seg = SlowArrayHandle()
    one = 40 * 40 * 16 * 4  # bytes of one handle's array
    sess = SegmenterSession([seg], cache_size=100, max_bytes=int(2.5 * one))
    for i in range(5):
        img = np.full((40, 40, 3), i, np.uint8)
        sess.segment(img, Region.from_box([1, 1, 9, 9], image_size=(40, 40)))
    assert len(sess) == 2 and sess.cached_bytes <= 2.5 * one
    # the two most recent stay: asking again does not embed
    sess.segment(np.full((40, 40, 3), 4, np.uint8), Region.from_box([1, 1, 9, 9], image_size=(40, 40)))
    assert seg.embeds == 5
    # an embedding larger than the whole budget is used but not kept
    small = SegmenterSession([SlowArrayHandle()], max_bytes=one // 2)
    small.segment(np.zeros((40, 40, 3), np.uint8), Region.from_box([1, 1, 9, 9], image_size=(40, 40)))
    assert len(small) == 0 and small.cached_bytes == 0
