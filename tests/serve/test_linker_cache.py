"""The linker with its per-image cache answers as without it, on the test photos, and does the
per-image work once: the service's speed path must not change the answers."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.data]

QUERIES = [  # (photo, prompt, expected top entity or None for NIL)
    ("obama_and_biden.jpg", {"box": [1110, 360, 1380, 645]}, "Q76"),
    ("obama_and_biden.jpg", {"box": [715, 420, 945, 665]}, "Q6279"),
    ("two_people.jpg", {"box": [235, 25, 430, 225]}, "Q76"),
    ("two_people.jpg", {"box": [760, 35, 985, 265]}, "Q6279"),
    ("kit_with_rose.jpg", {"box": [230, 70, 370, 220]}, "Q357607"),
    ("kit_with_rose.jpg", {"box": [65, 110, 170, 225]}, None),  # Rose Leslie has no photo: NIL
    ("kit_with_rose.jpg", {"box": [60, 500, 205, 590]}, None),  # her clutch bag
]


@pytest.fixture(scope="module")
def linkers(people_kb):
    from pixlink.link import Linker, LinkerConfig

    plain = Linker.from_kb(people_kb, profile="offline", config=LinkerConfig(segment=False))
    cached = Linker.from_kb(people_kb, profile="offline", config=LinkerConfig(segment=False))
    cache = cached.use_image_cache()
    return plain, cached, cache


@pytest.mark.parametrize("photo,prompt,expected", QUERIES)
def test_same_answers_with_the_cache(linkers, shared_data, photo, prompt, expected):
    from pixlink.io import load_image

    plain, cached, _ = linkers
    img = load_image(shared_data("photos", photo))
    a, b = plain.link(img, prompt, k=3), cached.link(img, prompt, k=3)
    assert a.prediction == b.prediction == expected, (a.to_dict()["candidates"][:2], b.to_dict()["candidates"][:2])
    assert [c.entity_id for c in a.candidates] == [c.entity_id for c in b.candidates]
    for ca, cb in zip(a.candidates, b.candidates):
        assert ("face" in ca.signals) == ("face" in cb.signals)
        if "face" in ca.signals:  # the same face: descriptors from the whole image vs the window
            assert abs(ca.signals["face"] - cb.signals["face"]) < 0.02, (ca.signals, cb.signals)


def test_per_image_work_is_done_once(linkers, shared_data):
    from pixlink.io import load_image
    from pixlink.regions import image_key

    _, cached, cache = linkers
    img = load_image(shared_data("photos", "obama_and_biden.jpg"))
    img = img[:, ::-1].copy()  # new pixels: nothing of it is cached yet
    key = cached.prepare_image(img)
    assert key == image_key(img) and key in cache
    misses = cache.stats()["misses"]
    for box in ([620, 360, 890, 645], [1055, 420, 1285, 665]):  # Obama's and Biden's heads, mirrored
        got = cached.link(img, {"box": box}, k=1)
        assert got.prediction in ("Q76", "Q6279") and "face" in got.candidates[0].signals
    assert cache.stats()["misses"] == misses  # the prompts found the faces and descriptors ready
