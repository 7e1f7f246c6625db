"""The packaged sentence encoders (minilm, mpnet, e5_small) run for real."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import need_backend, unavailable

from pixlink.errors import InputError, ModelUnavailableError
from pixlink.models import registry
from pixlink.models import roles as R
from pixlink.models.backends import text as T

NAMES = ("minilm", "mpnet", "e5_small")

ANCHOR = "A man is playing a guitar on stage."
PARAPHRASE = "Someone performs music with a guitar in front of an audience."
UNRELATED = "The central bank raised interest rates by half a point."


@pytest.fixture(scope="module", params=NAMES)
def encoder(request):
    enc = need_backend(R.TEXT_EMBED, request.param)
    yield enc
    del enc


def test_backends_are_registered_packaged():
    for name in NAMES:
        spec = registry.get_spec(R.TEXT_EMBED, name)
        assert spec.kind == "packaged"
        assert spec.license


@pytest.mark.slow
def test_paraphrase_nearer_than_unrelated(encoder):
    assert isinstance(encoder, R.TextEncoder)
    v = encoder.encode([ANCHOR, PARAPHRASE, UNRELATED])
    assert v.shape == (3, encoder.dim) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    sim = v @ v.T
    assert sim[0, 1] > sim[0, 2] + 0.1, sim


@pytest.mark.slow
def test_batch_equals_one_by_one(encoder):
    texts = ["short", "a much longer sentence about the Eiffel Tower in Paris, France", "Obama"]
    together = encoder.encode(texts, batch_size=3)
    alone = np.concatenate([encoder.encode([t], batch_size=1) for t in texts])
    np.testing.assert_allclose(together, alone, atol=2e-4)


@pytest.mark.slow
def test_bad_input(encoder):
    empty = encoder.encode([])
    assert empty.shape == (0, encoder.dim) and empty.dtype == np.float32
    with pytest.raises(InputError, match=r"\[E320\].*single string"):
        encoder.encode("a sentence, not a list")
    with pytest.raises(InputError, match=r"\[E320\].*text 1"):
        encoder.encode(["fine", None])


@pytest.mark.slow
def test_e5_query_side_retrieves_the_right_passage():
    enc = need_backend(R.TEXT_EMBED, "e5_small")
    passages = [
        "The Eiffel Tower is 330 metres tall and stands in Paris.",
        "Barack Obama was the 44th president of the United States.",
        "Photosynthesis turns light into chemical energy in plants.",
    ]
    q = enc.encode(["how tall is the eiffel tower"], query=True)
    p = enc.encode(passages)
    assert int(np.argmax(p @ q[0])) == 0
    # The prefix changes the vector: query and passage sides differ for the same text.
    same_as_passage = enc.encode(["how tall is the eiffel tower"])
    assert float(q[0] @ same_as_passage[0]) < 0.999
    assert enc.model_id.startswith("intfloat/multilingual-e5-small")


def test_mpnet_parts_are_found_in_order():
    try:
        parts = T.mpnet_part_files()
    except ModelUnavailableError as exc:
        unavailable(str(exc))
    assert [p.name for p in parts] == [f"all-mpnet-base-v2.zip.{i:03d}" for i in range(1, 6)]
    assert all(p.stat().st_size > 0 for p in parts)


def test_mpnet_unfinished_folder_is_reported_not_loaded(tmp_path):
    (tmp_path / "models" / T.MPNET_DIRNAME).mkdir(parents=True)
    with pytest.raises(ModelUnavailableError, match=r"\[E322\]"):
        T.assemble_mpnet(cache=tmp_path)
