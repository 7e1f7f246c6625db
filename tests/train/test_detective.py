"""IIER's Detective-VLM text: the answer parsed as IIER appends it, and offline (no VLM ships in a
package) the face-match name and the OCR text standing in, labelled so, on real photos."""

from __future__ import annotations

import json

import pytest
from helpers import need_backend, shared

from pixlink.errors import InputError, ModelUnavailableError
from pixlink.io import load_image
from pixlink.link.iier import detective_text, parse_detective
from pixlink.link.rerank import MentionInput
from pixlink.types import Region


def test_answers_are_parsed_as_name_then_type():
    assert parse_detective("The entity type is a person, and the entity name is Lin Dan.") == "Lin Dan person"
    assert parse_detective("Entity Type: athlete. Entity Name: Lee Chong Wei") == "Lee Chong Wei athlete"
    assert parse_detective("a man in a red shirt\nsecond line") == "a man in a red shirt"
    assert parse_detective("") == ""


def test_text_only_mentions_and_bad_modes():
    assert detective_text(MentionInput(text="Obama spoke"), profile=None) == ("", "none")
    with pytest.raises(InputError, match="E770"):
        detective_text(MentionInput(text="x"), profile=None, mode="oracle")


@pytest.mark.slow
def test_offline_stand_in_names_the_face(tmp_path):
    need_backend("faces", "dlib")
    from pixlink.kb import build_kb_from_entities
    from pixlink.link import Linker, LinkerConfig
    from pixlink.link.embed import embed_kb
    from pixlink.models import Profile

    photos = shared("photos")
    people = {"Q76": ("Barack Obama", "obama.jpg"), "Q6279": ("Joe Biden", "biden.jpg")}
    build_kb_from_entities([{"id": q, "label": n, "images": [str(photos / f)]} for q, (n, f) in people.items()],
                           tmp_path / "kb")
    embed_kb(tmp_path / "kb", "offline", signals=["face"], progress=False, cache_dir=tmp_path / "cache")
    linker = Linker.from_kb(tmp_path / "kb", "offline", LinkerConfig(segment=False))
    img = load_image(photos / "obama_and_biden.jpg")
    obama = MentionInput(image=img, region=Region(image_size=img.shape[:2], box=[1110, 360, 1380, 645]),
                         text="The president and his vice president")
    prof = Profile("offline")
    text, source = detective_text(obama, prof, mode="offline", linker=linker)
    assert "Barack Obama person" in text and source.startswith("offline stand-in") and "face" in source
    biden = MentionInput(image=img, region=Region(image_size=img.shape[:2], box=[715, 420, 945, 665]),
                         text="The president and his vice president")
    assert "Joe Biden person" in detective_text(biden, prof, mode="auto", linker=linker)[0]
    # a VLM is asked for by name and none can run here
    with pytest.raises(ModelUnavailableError):
        detective_text(MentionInput(image=img, region=obama.region, text="another sentence"), prof, mode="describe")
    assert json.dumps(detective_text(obama, prof, mode="offline", linker=linker))  # cached, plain strings
