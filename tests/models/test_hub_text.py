"""Hub text backends on tiny random models loaded from a directory: the causal LM (chat template,
greedy decoding) and a sentence-transformers encoder (normalised, query prompt)."""

from __future__ import annotations

import numpy as np
import pytest

from pixlink.errors import InputError
from pixlink.models import Profile
from pixlink.models.tiny import build_tiny

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    return build_tiny("llama", tmp_path_factory.mktemp("tiny_lm") / "llama")


@pytest.fixture(scope="module")
def lm(lm_dir):
    return Profile("hub", options={"generate": {"model": str(lm_dir)}}).get("generate")


@pytest.fixture(scope="module")
def st(tmp_path_factory):
    d = build_tiny("sentence_transformer", tmp_path_factory.mktemp("tiny_st") / "st")
    return Profile("hub", options={"text_embed": {"model": str(d)}}).get("text_embed")


def _prompt_ids(gen, fn):
    seen = []
    hook = gen._net.register_forward_pre_hook(
        lambda _m, args, kwargs: seen.append(kwargs["input_ids"].clone()) if not seen else None, with_kwargs=True)
    try:
        out = fn()
    finally:
        hook.remove()
    return out, seen[0]


def test_generate_through_the_chat_template(lm):
    assert lm.name == "hub_lm" and lm.chat
    out, ids = _prompt_ids(lm, lambda: lm.generate("Barack Obama (PER) -", max_new_tokens=5))
    prompt = lm.tokenizer.decode(ids[0])
    assert prompt == "<|im_start|>user\nBarack Obama (PER) -<|im_end|>\n<|im_start|>assistant\n"
    assert isinstance(out, str) and len(out) <= 5
    assert lm.generate("Barack Obama (PER) -", max_new_tokens=5) == out  # greedy: deterministic


def test_raw_prompt_without_chat(lm_dir):
    from pixlink.models.backends.hub_text import make_hub_lm

    raw = make_hub_lm(model=str(lm_dir), chat=False)
    _, ids = _prompt_ids(raw, lambda: raw.generate("Paris (LOC) -", max_new_tokens=2))
    assert raw.tokenizer.decode(ids[0]) == "Paris (LOC) -"
    a = raw.generate("Paris (LOC) -", max_new_tokens=8, temperature=1.5)
    assert isinstance(a, str)
    with pytest.raises(InputError, match="E313"):
        raw.generate("x", max_new_tokens=0)
    with pytest.raises(InputError, match="E313"):
        raw.generate("x", temperature=-1)
    with pytest.raises(InputError, match="E308"):
        raw.generate("   ")


def test_sentence_transformer(st):
    assert st.name == "hub_sentence_transformer" and st.dim == 32
    e = st.encode(["a cat", "the red car", "a cat"])
    assert e.shape == (3, 32) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(e[0], e[2], atol=1e-6)
    assert not np.allclose(e[0], e[1])
    assert st.encode([]).shape == (0, 32)
    with pytest.raises(InputError, match="E308"):
        st.encode("a cat")


def test_query_side_uses_the_models_query_prompt(st):
    assert st.query_prompt == "query: "
    q = st.encode(["a cat"], query=True)
    np.testing.assert_allclose(q, st.encode(["query: a cat"]), atol=1e-5)
    assert not np.allclose(q, st.encode(["a cat"]))
