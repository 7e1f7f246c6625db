"""Text generation: the template generator (no model) and Gemma 3 270M from its packaged GGUF.

The Gemma test converts the GGUF once into <PIXLINK_CACHE>/models (~45-70 s on 2 idle cores,
139-155 s on a busy shared one; peak RSS up to 3.3 GB). The folder is the persistent model
cache, so every later run and session reuses it and loads in a few seconds.
"""

from __future__ import annotations

import pytest
from helpers import need_backend, need_module

from pixlink.errors import InputError, ModelUnavailableError
from pixlink.models import registry
from pixlink.models import roles as R
from pixlink.models.backends import generate as G


@pytest.fixture(scope="module")
def template():
    return registry.get_spec(R.GENERATE, "template").factory()


def test_template_expansions(template):
    assert isinstance(template, R.TextGenerator)
    assert template.expand("Barack Obama", "PER") == "Barack Obama (PER) - a person"
    assert template.expand("Paris", "LOC", "capital of France.") == "Paris (LOC) - a place, capital of France"
    assert template.expand("UNICEF", "ORG") == "UNICEF (ORG) - an organization"
    # generate() completes exactly the prompts expansion_prompt builds, with or without a description
    assert template.generate(G.expansion_prompt("Garfield Park", "LOC")) == " a place"
    assert template.generate(G.expansion_prompt("Garfield Park", "LOC", "park in Chicago")) == " a place, park in Chicago"
    custom = registry.get_spec(R.GENERATE, "template").factory(type_phrases={"PER": "a famous person"})
    assert custom.expand("Kit Harington", "PER") == "Kit Harington (PER) - a famous person"


def test_template_bad_input(template):
    with pytest.raises(InputError, match=r"\[E325\]"):
        template.generate("Tell me a story about a dragon.")
    with pytest.raises(InputError, match=r"\[E320\]"):
        template.generate("   ")
    with pytest.raises(InputError, match=r"\[E323\].*DRAGON"):
        template.expand("Smaug", "DRAGON")
    with pytest.raises(InputError, match=r"\[E320\].*entity name"):
        template.expand("", "PER")
    with pytest.raises(InputError, match=r"\[E320\].*entity type"):
        template.expand("Paris", "LOC (city)")


def test_expansion_prompt_is_few_shot():
    p = G.expansion_prompt("Kevin Durant", "PER")
    lines = p.splitlines()
    assert lines[-1] == "Kevin Durant (PER) -"
    assert sum(" - " in ln for ln in lines[:-1]) >= 3  # examples a base model can follow
    assert G.expansion_prompt("Kevin Durant", "PER", "basketball player").splitlines()[-1] == (
        "Kevin Durant (PER; basketball player) -")


def test_unfinished_conversion_is_reported(tmp_path):
    G.gemma_dir(tmp_path).mkdir(parents=True)
    with pytest.raises(ModelUnavailableError, match=r"\[E322\]"):
        G.convert_gemma(cache=tmp_path)
    with pytest.raises(InputError, match=r"\[E323\]"):
        G.convert_gemma(cache=tmp_path, dtype="int4")


@pytest.fixture(scope="module")
def gemma():
    torch = need_module("torch", "gemma3_270m runs on torch")
    threads = torch.get_num_threads()
    # One thread: on a shared, oversubscribed CPU two threads ran ~10x slower (see the docs).
    torch.set_num_threads(1)
    try:
        yield need_backend(R.GENERATE, "gemma3_270m")
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_gemma_generates_an_expansion(gemma):
    assert isinstance(gemma, R.TextGenerator)
    line = gemma.expand("Barack Obama", "PER", max_new_tokens=16)
    assert line.startswith("Barack Obama (PER) - ") and len(line) > len("Barack Obama (PER) - ") + 3
    assert "\n" not in line
    free = gemma.generate("The capital of France is", max_new_tokens=8)
    assert free.strip()
    one_line = gemma.generate(G.expansion_prompt("Paris", "LOC"), max_new_tokens=24, stop=("\n",))
    assert one_line.strip() and "\n" not in one_line
    with pytest.raises(InputError, match=r"\[E320\]"):
        gemma.generate("")
    with pytest.raises(InputError, match=r"\[E320\]"):
        gemma.generate("hello", max_new_tokens=0)
