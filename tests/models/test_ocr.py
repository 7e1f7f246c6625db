"""RapidOCR reads text rendered into an image, with its wheel's own models."""

from __future__ import annotations

import os

import numpy as np
import pytest
from helpers import need_backend, need_module
from PIL import Image, ImageDraw, ImageFont

from pixlink.errors import InputError
from pixlink.geometry import box_iou
from pixlink.models import roles as R
from pixlink.models.backends.ocr import packaged_models

LINES = (("Barack Obama visits Paris", (30, 40), 40, (180, 0, 0)), ("GATE 24B", (320, 130), 36, (0, 0, 160)))


def _font(size: int) -> ImageFont.FreeTypeFont:
    matplotlib = need_module("matplotlib", "its DejaVu font renders the test text")
    path = os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans.ttf")
    if not os.path.isfile(path):
        pytest.skip(f"no TTF font at {path}")
    return ImageFont.truetype(path, size)


def _rendered():
    """A 640x220 RGB image with two coloured lines, and each line's XYXY ink box."""
    im = Image.new("RGB", (640, 220), (255, 255, 240))
    draw = ImageDraw.Draw(im)
    boxes = []
    for text, xy, size, colour in LINES:
        font = _font(size)
        draw.text(xy, text, font=font, fill=colour)
        boxes.append(np.array(draw.textbbox(xy, text, font=font), dtype=np.float64))
    return np.asarray(im), boxes


@pytest.fixture(scope="module")
def reader():
    return need_backend(R.OCR, "rapidocr")


def _norm(s: str) -> str:
    return "".join(s.split()).lower()


@pytest.mark.slow
def test_reads_rendered_text_with_boxes(reader):
    assert isinstance(reader, R.OCRModel)
    img, boxes = _rendered()
    lines = reader.read(img)
    assert len(lines) == 2, lines
    for line, (text, *_), box in zip(lines, LINES, boxes):  # top to bottom
        assert _norm(line.text) == _norm(text), line
        assert 0.5 < line.score <= 1.0
        assert box_iou(line.box, box) > 0.5, (line.box, box)


@pytest.mark.slow
def test_blank_image_and_bad_input(reader):
    assert reader.read(np.full((120, 200, 3), 255, np.uint8)) == []
    with pytest.raises(InputError, match=r"\[E001\]"):
        reader.read(np.zeros((20, 20, 3), np.float64))
    with pytest.raises(InputError, match=r"\[E001\]"):
        reader.read("/nonexistent/image.png")


def test_models_come_from_the_wheel():
    need_module("rapidocr", "the ocr backend's models ship in its wheel")
    files = packaged_models()
    assert set(files) == {"Det", "Cls", "Rec"}
    assert all(p.is_file() and p.suffix == ".onnx" for p in files.values())
    with pytest.raises(InputError, match=r"\[E320\]"):
        need_backend(R.OCR, "rapidocr", text_score=1.5)
