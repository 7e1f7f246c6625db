import numpy as np
import pytest

from pixlink.errors import InputError
from pixlink.regions import crop, mask_pool, masked_crop, red_box
from pixlink.types import Region


def _image(h=60, w=80):
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)


def test_crop_follows_box_and_margin():
    img = _image()
    r = Region.from_box([10, 20, 30, 40], image_size=(60, 80))
    assert crop(img, r, margin=0.0).shape == (20, 20, 3)
    assert (crop(img, r, margin=0.0) == img[20:40, 10:30]).all()
    # 10% margin of a 20-px box is 2 px each side
    assert crop(img, r, margin=0.1).shape == (24, 24, 3)


def test_masked_crop_blanks_outside_the_mask():
    img = _image()
    m = np.zeros((60, 80), bool)
    m[25:35, 15:25] = True
    r = Region.from_mask(m)
    out = masked_crop(img, r, margin=0.0, fill=7)
    assert out.shape == (10, 10, 3)
    assert (out == img[25:35, 15:25]).all()  # mask fills its own box
    m2 = m.copy()
    m2[25, 15] = False
    out2 = masked_crop(img, Region.from_mask(m2), margin=0.0, fill=7)
    assert (out2[0, 0] == 7).all() and (out2[1, 1] == img[26, 16]).all()


def test_red_box_draws_only_the_border_in_red():
    img = np.full((50, 50, 3), 128, np.uint8)
    out = red_box(img, np.array([10, 10, 40, 40]), thickness=2)
    assert (out[10, 20] == [255, 0, 0]).all()
    assert (out[25, 25] == 128).all()  # inside untouched
    assert (img == 128).all()  # input not modified


def test_mask_pool_weights_patches_by_coverage():
    tokens = np.arange(4 * 3, dtype=np.float32).reshape(4, 3)  # 2x2 grid
    mask = np.zeros((20, 20), bool)
    mask[:10, :10] = True  # exactly the top-left patch
    assert mask_pool(tokens, (2, 2), mask).tolist() == tokens[0].tolist()
    mask[:10, :] = True  # the top row: mean of patches 0 and 1
    assert np.allclose(mask_pool(tokens, (2, 2), mask), tokens[:2].mean(0))
    with pytest.raises(InputError):
        mask_pool(tokens, (3, 3), mask)
