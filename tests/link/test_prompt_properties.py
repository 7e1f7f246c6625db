"""Property test (issue #11): every prompt — any box, any clicks, any mask — against any image
size either links or raises a coded pixlink error; never another exception, never a crash."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pixlink.errors import PixlinkError
from pixlink.kb import build_kb_from_entities
from pixlink.link import Linker, LinkerConfig
from pixlink.link.embed import embed_kb
from pixlink.models import Profile, register_backend
from pixlink.models.roles import ImageFeatures
from pixlink.types import Entity


class MeanColour:
    name = "prop_mean_colour"
    model_id = "test/prop-mean-colour"
    dim = 3

    def encode_images(self, images, layers=(), batch_size=16):
        v = np.stack([im.reshape(-1, 3).mean(0) + 1e-3 for im in images]).astype(np.float32)
        return ImageFeatures(embeds=v / np.linalg.norm(v, axis=1, keepdims=True))


register_backend("image_embed", "prop_mean_colour", "classical", lambda: None)(lambda **kw: MeanColour())


@pytest.fixture(scope="module")
def linkers(tmp_path_factory):
    from PIL import Image

    tmp = tmp_path_factory.mktemp("prop")
    ents = []
    for i, col in enumerate([(220, 20, 20), (20, 220, 20), (20, 20, 220)]):
        p = tmp / f"{i}.png"
        Image.new("RGB", (16, 16), col).save(p)
        ents.append(Entity(f"Q{i + 1}", f"colour {i}", images=(str(p),)))
    build_kb_from_entities(ents, tmp / "kb")
    prof = Profile("offline", overrides={"image_embed": "prop_mean_colour", "segment": "grabcut"})
    embed_kb(tmp / "kb", prof, ["v2v"], cache_dir=tmp / "cache", progress=False)
    plain = Linker(__import__("pixlink.kb", fromlist=["KB"]).KB.open(tmp / "kb"), prof,
                   LinkerConfig(signals=("v2v",), segment=False))
    segmenting = Linker(plain.kb, prof, LinkerConfig(signals=("v2v",), segment=True))
    return plain, segmenting


coord = st.one_of(st.floats(-50, 300, allow_nan=False), st.sampled_from([math.nan, math.inf, -math.inf, 0.0]),
                  st.integers(-10, 300))
sizes = st.tuples(st.integers(1, 96), st.integers(1, 96))


def _check(linker, img, prompt):
    try:
        link = linker.link(img, prompt, k=2)
    except PixlinkError as exc:
        assert exc.code and exc.code.startswith("E"), exc
        return
    assert link.region is not None and link.region.image_size == img.shape[:2]
    if link.region.mask is not None:
        assert link.region.mask.shape == img.shape[:2] and link.region.mask.any()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=sizes, box=st.lists(coord, min_size=0, max_size=6), segment=st.booleans())
def test_any_box(linkers, size, box, segment):
    img = np.full((*size, 3), 120, np.uint8)
    _check(linkers[int(segment)], img, {"box": box})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=sizes, points=st.lists(st.lists(coord, min_size=0, max_size=3), min_size=0, max_size=4),
       labels=st.one_of(st.none(), st.lists(st.integers(-1, 2), max_size=4)), segment=st.booleans())
def test_any_clicks(linkers, size, points, labels, segment):
    img = np.full((*size, 3), 120, np.uint8)
    _check(linkers[int(segment)], img, {"points": points, "labels": labels})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=sizes, mask_size=sizes, fill=st.floats(0, 1), seed=st.integers(0, 2**16))
def test_any_mask(linkers, size, mask_size, fill, seed):
    img = np.full((*size, 3), 120, np.uint8)
    mask = np.random.default_rng(seed).random(mask_size) < fill
    _check(linkers[0], img, {"mask": mask})
    from pixlink.geometry import mask_to_rle

    _check(linkers[0], img, {"mask": mask_to_rle(mask)})
