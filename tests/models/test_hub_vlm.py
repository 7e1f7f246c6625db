"""The hub VLM describer on a tiny random Idefics3 (SmolVLM's architecture) loaded from a
directory: the red box is drawn into the pixels the model sees, the prompt goes through the
processor's chat template, decoding is greedy and bounded."""

from __future__ import annotations

import numpy as np
import pytest

from pixlink.errors import InputError
from pixlink.models import Profile
from pixlink.models.backends.hub_vlm import DETECTIVE_QUESTION, detective_question
from pixlink.models.tiny import build_tiny

torch = pytest.importorskip("torch")

BOX = np.array([20.0, 10.0, 70.0, 45.0])


@pytest.fixture(scope="module")
def vlm(tmp_path_factory):
    d = build_tiny("idefics3", tmp_path_factory.mktemp("tiny_vlm") / "idefics3")
    return Profile("hub", options={"describe": {"model": str(d)}}).get("describe")


@pytest.fixture
def image():
    return np.full((60, 100, 3), 128, dtype=np.uint8)


def _capture_inputs(vlm, fn):
    """Run ``fn`` and return its result with the model inputs the processor built for it."""
    seen = []
    original = vlm.processor.apply_chat_template

    def recording(*args, **kwargs):
        out = original(*args, **kwargs)
        seen.append({"pixel_values": out["pixel_values"].clone(), "input_ids": out["input_ids"].clone()})
        return out

    vlm.processor.apply_chat_template = recording
    try:
        out = fn()
    finally:
        vlm.processor.apply_chat_template = original
    assert len(seen) == 1
    return out, seen[0]


def test_red_box_is_drawn_into_what_the_model_sees(vlm, image):
    marked = vlm.mark(image, BOX)
    assert marked.shape == image.shape and marked.dtype == np.uint8
    assert (marked[25, 20] == [255, 0, 0]).all() and (marked[10, 40] == [255, 0, 0]).all()  # left and top edges
    assert (marked[25, 45] == 128).all() and (marked[5, 5] == 128).all()  # inside and outside untouched
    assert vlm.mark(image, None) is image
    _, with_box = _capture_inputs(vlm, lambda: vlm.describe(image, BOX, max_new_tokens=2))
    _, without = _capture_inputs(vlm, lambda: vlm.describe(image, None, max_new_tokens=2))
    assert with_box["pixel_values"].shape == without["pixel_values"].shape
    assert not torch.allclose(with_box["pixel_values"], without["pixel_values"])


def test_prompt_uses_the_chat_template_and_the_detective_question(vlm, image):
    answer, seen = _capture_inputs(vlm, lambda: vlm.describe(image, BOX, max_new_tokens=4))
    prompt = vlm.processor.tokenizer.decode(seen["input_ids"][0])
    assert prompt.startswith("<|im_start|>User:") and prompt.rstrip().endswith("Assistant:")
    assert DETECTIVE_QUESTION in prompt and "<image>" in prompt
    assert isinstance(answer, str)
    # byte-level vocabulary: each generated token decodes to at most one character
    assert len(answer) <= 4


def test_greedy_is_deterministic_and_bounded(vlm, image):
    a = vlm.describe(image, BOX, question="Who is in the red box?", max_new_tokens=6)
    b = vlm.describe(image, BOX, question="Who is in the red box?", max_new_tokens=6)
    assert a == b
    with pytest.raises(InputError, match="E313"):
        vlm.describe(image, BOX, max_new_tokens=0)
    with pytest.raises(InputError, match="E308"):
        vlm.describe(image, BOX, question="  ")
    with pytest.raises(InputError, match="E003"):
        vlm.describe(image, [200, 200, 300, 300])


def test_detective_question_names_the_sentence():
    q = detective_question("Obama visits Paris")
    assert "red box" in q and '"Obama visits Paris"' in q and "Entity Type" in q
    assert detective_question(None) == DETECTIVE_QUESTION
