"""The overlays of :mod:`pixlink.viz`: drawn pixels are where the mask and the box are, every
supported extension writes a file that reads back, and a path pixlink should not write is refused
before anything is created."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pixlink.errors import InputError
from pixlink.types import Candidate, Link, NamedEntity, Region
from pixlink.viz import OVERLAY_EXTENSIONS, PALETTE, draw_region, entities_overlay, link_overlay

H, W = 120, 200
GREY = 128


def _image() -> np.ndarray:
    return np.full((H, W, 3), GREY, np.uint8)


def _mask() -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[40:80, 60:110] = True
    return m


def test_mask_fill_covers_the_mask_and_nothing_else():
    mask = _mask()
    region = Region(image_size=(H, W), mask=mask)
    color = PALETTE[0]
    out = np.asarray(draw_region(Image.fromarray(_image()), region, color).convert("RGB")).astype(int)
    changed = np.any(out != GREY, axis=-1)
    # every mask pixel is tinted towards the colour (alpha 0.45 over grey), or on its edge drawn
    # in the colour itself by the outline of the region's box
    interior = np.zeros_like(mask)
    interior[43:77, 63:107] = True  # the mask (rows 40-79, columns 60-109) less its 3-pixel edge
    edge = mask & ~interior
    assert np.all(np.any(out[edge] != GREY, axis=-1))
    inside = out[interior]
    for c in range(3):
        expected = GREY + 0.45 * (color[c] - GREY)
        assert np.all(np.abs(inside[:, c] - expected) <= 2), (c, inside[:, c].min(), inside[:, c].max(), expected)
    # outside the mask only the outline of its bounding box is drawn (a few pixels wide)
    bx1, by1, bx2, by2 = (int(v) for v in region.bbox)
    ring = np.zeros((H, W), bool)
    ring[max(by1 - 3, 0):by2 + 3, max(bx1 - 3, 0):bx2 + 3] = True
    assert not np.any(changed & ~ring)
    assert not np.any(changed[:30, :]) and not np.any(changed[:, 130:])


def test_link_overlay_draws_the_box_where_it_is(tmp_path):
    box = [30.0, 20.0, 90.0, 70.0]
    link = Link(candidates=[Candidate("Q76", 0.9, label="Barack Obama")], region=Region(image_size=(H, W), box=box))
    path = link_overlay(_image(), [link], tmp_path / "o.png")
    out = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert out.shape == (H, W, 3)
    color = np.array(PALETTE[0])
    # the box's left and top edges are drawn in the first colour
    assert np.all(out[25:65, 30] == color), out[25:65, 30][:3]
    assert np.all(out[20, 35:85] == color)
    # the inside of the box is untouched (no mask), and so is a far corner
    assert np.all(out[35:55, 45:75] == GREY)
    assert np.all(out[H - 5:, W - 5:] == GREY)


def test_entities_overlay_marks_only_grounded_entities(tmp_path):
    grounded = NamedEntity(0, 2, "PER", "Barack Obama", groundable=True,
                           region=Region(image_size=(H, W), box=[120, 50, 180, 110]))
    not_grounded = NamedEntity(3, 5, "LOC", "White House", groundable=False)
    path = entities_overlay(_image(), [grounded, not_grounded], tmp_path / "e.jpg")
    out = np.asarray(Image.open(path).convert("RGB")).astype(int)
    color = np.array(PALETTE[0])
    assert np.all(np.abs(out[60:100, 120] - color) <= 40)  # JPEG: close to the colour
    assert np.all(np.abs(out[5:30, 5:100] - GREY) <= 6)  # the left part has nothing drawn


@pytest.mark.parametrize("ext", sorted(OVERLAY_EXTENSIONS))
def test_every_supported_extension_writes_a_readable_file(tmp_path, ext):
    link = Link(candidates=[], nil=True, region=Region(image_size=(H, W), box=[10, 10, 60, 60]))
    path = link_overlay(_image(), [link], tmp_path / f"overlay{ext.upper() if ext == '.png' else ext}")
    with Image.open(path) as im:
        assert im.size == (W, H)
        assert im.format == OVERLAY_EXTENSIONS[ext]


@pytest.mark.parametrize("name", ["o.xyz", "o.pdf", "overlay"])
def test_unknown_extension_is_refused(tmp_path, name):
    with pytest.raises(InputError, match=r"\[E703\]"):
        link_overlay(_image(), [], tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_missing_directory_is_refused_and_not_created(tmp_path):
    target = tmp_path / "no" / "such" / "o.png"
    with pytest.raises(InputError, match=r"\[E704\].*does not exist"):
        link_overlay(_image(), [], target)
    assert not (tmp_path / "no").exists()
    (tmp_path / "taken.png").mkdir()
    with pytest.raises(InputError, match=r"\[E704\].*is a directory"):
        entities_overlay(_image(), [], tmp_path / "taken.png")
