"""Reverse annotation's parts without models: items, text references, the filter rules."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pixlink.annotate.items import AnnotationItem, read_items
from pixlink.annotate.references import extension_reference, hypernyms, intension_references, load_templates, text_prompt
from pixlink.annotate.rules import (AnnotateConfig, agreement, correction_box, is_dense, open_and_count,
                                    touches_all_borders)
from pixlink.errors import InputError
from pixlink.kb import build_kb_from_entities
from pixlink.types import Entity


def test_items_are_read_and_bad_lines_reported(tmp_path):
    p = tmp_path / "items.jsonl"
    p.write_text("\n".join([
        json.dumps({"id": "a", "image": "pic.jpg", "entity": "Q1", "question": "what is this?"}),
        json.dumps({"image": "pic.jpg", "entity": "Q2"}),            # no id: the line number is the id
        json.dumps({"id": "a", "image": "pic.jpg", "entity": "Q3"}),  # duplicate id
        json.dumps({"id": "b", "image": 7, "entity": "Q1"}),          # image not a string
        json.dumps({"id": "c", "image": "x.jpg", "entity": "Q1", "colour": "red"}),  # unknown field
        "{not json",
    ]) + "\n")
    items, errors = read_items(p)
    assert [i.id for i in items] == ["a", "line2"]
    assert items[0].image == str(tmp_path / "pic.jpg")  # relative to the file's folder
    assert {e.index for e in errors} == {3, 4, 5, 6} and all(e.code in ("E710", "E011") for e in errors)
    assert items[0].digest != AnnotationItem("a", str(tmp_path / "pic.jpg"), "Q1", question="what?").digest
    with pytest.raises(InputError, match="E711"):
        read_items(tmp_path / "none.jsonl")


def test_text_references_from_the_kb_hierarchy(tmp_path):
    build_kb_from_entities([
        Entity("Q388450", "crow", types=("Q5113",)), Entity("Q5113", "bird", parents=("Q729",)),
        Entity("Q729", "animal"),
    ], tmp_path / "kb")
    from pixlink.kb import KB

    kb = KB.open(tmp_path / "kb")
    hypers = hypernyms(kb, "Q388450")
    assert hypers == ["bird", "animal"]
    t = load_templates()
    refs = [r.text for r in intension_references("crow", hypers, t)]
    assert refs == ["a bird", "a bird named 'crow'", "a animal"]
    assert text_prompt("crow", hypers, t) == "A bird named 'crow'"


@pytest.mark.parametrize("question,expected", [
    ("what is the little girl wearing in her hair?", "the object the little girl is wearing in her hair"),
    ("what kind of bird is this?", "the bird"),
    ("What breed of dog is this?", "the dog"),
    ("what is the name of this building?", "the building"),
    ("what model of aircraft is shown in the picture?", "the aircraft in the picture"),
    ("which mountain is this?", "the mountain"),
])
def test_relational_expressions_by_rule(question, expected):
    ref = extension_reference(question)
    assert ref is not None and ref.text == expected and ref.source == "rule:pattern"
    assert extension_reference("what is this?") is None and extension_reference(None) is None


def test_agreement_correction_density_inversion():
    cfg = AnnotateConfig()
    a = np.zeros((100, 100), bool)
    a[20:60, 20:60] = True
    b = np.zeros((100, 100), bool)
    b[30:70, 30:70] = True
    assert agreement(a, [b]) == pytest.approx(900 / 2300) and agreement(a, []) is None
    # the most confident box that intersects (holds half of) the mask, not the most confident box
    assert correction_box(a, [[80, 80, 99, 99], [10, 10, 50, 50], [25, 25, 40, 40]], [0.9, 0.6, 0.5]) == (
        [10.0, 10.0, 50.0, 50.0], 0.6)
    assert correction_box(a, [[80, 80, 99, 99]], [0.9]) is None
    assert correction_box(a, [[55, 0, 99, 99]], [0.9]) is None  # grazes the mask's edge only
    grid = [[x, y, x + 30, y + 30] for x in (0, 35, 70) for y in (0, 35, 70)]
    assert is_dense(grid, [0.5] * 9, (100, 100), cfg)
    assert not is_dense(grid[:2], [0.5] * 2, (100, 100), cfg)
    assert not is_dense(grid, [0.05] * 9, (100, 100), cfg)  # below min_score they do not count
    specks = np.zeros((200, 200), bool)
    specks[::20, ::20] = True  # 100 one-pixel specks: opened away
    specks[50:150, 50:150] = True
    opened, n = open_and_count(specks, 5)
    assert n == 1 and opened[100, 100] and not opened[0, 0]
    assert touches_all_borders(~a) and not touches_all_borders(a)
    with pytest.raises(InputError, match="E713"):
        AnnotateConfig(agree_iou=1.5)
    with pytest.raises(InputError, match="E713"):
        AnnotateConfig(references=("label", "smell"))
