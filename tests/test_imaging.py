"""pixlink.imaging: pixel bounds of a box, crops and the red-box prompt (ground floor, shared by
the region views and the VLM backend)."""

from __future__ import annotations

import numpy as np
import pytest

from pixlink.errors import InputError
from pixlink.imaging import RED, crop_box, pixel_box, red_box


def test_pixel_box_covers_the_box_grows_by_margin_and_clips():
    assert pixel_box(np.array([10.2, 5.0, 19.5, 15.0]), (40, 50)) == (10, 5, 20, 15)
    assert pixel_box(np.array([10.0, 10.0, 20.0, 20.0]), (40, 50), margin=0.5) == (5, 5, 25, 25)
    assert pixel_box(np.array([-5.0, -5.0, 100.0, 100.0]), (40, 50)) == (0, 0, 50, 40)
    with pytest.raises(InputError, match="E003"):
        pixel_box(np.array([60.0, 10.0, 70.0, 20.0]), (40, 50))


def test_crop_box_is_the_pixels_of_the_box():
    img = np.arange(40 * 50 * 3, dtype=np.uint8).reshape(40, 50, 3)
    c = crop_box(img, np.array([10.0, 5.0, 20.0, 15.0]))
    assert c.shape == (10, 10, 3) and c.flags["C_CONTIGUOUS"]
    assert (c == img[5:15, 10:20]).all()


def test_red_box_draws_the_border_only_and_leaves_the_input_alone():
    img = np.full((60, 80, 3), 100, np.uint8)
    out = red_box(img, np.array([10.0, 10.0, 40.0, 30.0]), thickness=2)
    assert out is not img and (img == 100).all()
    assert tuple(out[10, 20]) == RED and tuple(out[29, 20]) == RED  # top and bottom edges
    assert tuple(out[20, 10]) == RED and tuple(out[20, 39]) == RED  # left and right edges
    assert (out[20, 25] == 100).all() and (out[50, 70] == 100).all()  # inside and outside untouched


def test_colour_layers_give_a_flat_logo_on_texture_as_a_clean_silhouette():
    """A red disc pasted on random grey texture: one layer is the disc alone (black on white),
    whatever the texture does around it."""
    from pixlink.imaging import colour_layers

    rng = np.random.default_rng(3)
    img = rng.integers(60, 200, (120, 160, 1), dtype=np.uint8).repeat(3, axis=2)  # grey noise
    yy, xx = np.mgrid[0:120, 0:160]
    disc = (xx - 70) ** 2 + (yy - 60) ** 2 <= 30**2
    img[disc] = (200, 20, 30)
    layers = colour_layers(img, 4)
    assert layers and all(s.shape == img.shape and s.dtype == np.uint8 for s in layers)
    ious = [float(((s[..., 0] < 128) & disc).sum() / ((s[..., 0] < 128) | disc).sum()) for s in layers]
    assert max(ious) > 0.95  # the disc's layer is the disc
    best = layers[int(np.argmax(ious))][..., 0]
    assert (best[disc] < 128).mean() > 0.97 and (best[~disc] > 128).mean() > 0.99  # black on white
    flat = np.full((50, 50, 3), 128, np.uint8)
    assert colour_layers(flat, 4) == [] and colour_layers(img, 1) == []
