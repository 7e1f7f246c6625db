"""The instance head (role ``instance_embed``): the shipped file loads and says what it was trained
on; on composites of logos it never saw in training, it puts a logo in a photo nearer its own
reference than the backbone's pooled features do; a wrong head file is refused."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import need_backend, need_composite

from pixlink.errors import InputError


@pytest.fixture(scope="module")
def encoder():
    return need_backend("instance_embed", "efficientnet_lite_instance")


def test_shipped_head_loads_and_names_its_training(encoder):
    assert encoder.dim == 256 and encoder.layers == (6, 10, 13, 16, 17) and encoder.grid_layers == (6, 10, 13, 16)
    assert "instance-head-" in encoder.model_id and encoder.backbone.model_id in encoder.model_id
    info = encoder.info
    assert "CALIBRATION entities only" in info["trained_on"] and len(info["entities"]) > 500
    img = np.zeros((40, 60, 3), np.uint8)
    img[:, 20:] = (200, 30, 30)
    e = encoder.encode_images([img, img[:, ::-1].copy()]).embeds
    assert e.shape == (2, 256) and np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert encoder.encode_images([]).embeds.shape == (0, 256)
    with pytest.raises(InputError, match="E353"):
        encoder.encode_images([img], layers=(3,))


def test_a_head_of_other_layers_is_refused(tmp_path):
    need_backend("image_embed", "efficientnet_lite")
    from pixlink.models.backends.instance_head import InstanceEncoder
    from pixlink.train.instance_head import save_head

    save_head(tmp_path / "h.safetensors", np.zeros((8, 100), np.float32), {"layers": [6, 10]})
    with pytest.raises(InputError, match="E353.*100-d"):
        InstanceEncoder(head=tmp_path / "h.safetensors")
    with pytest.raises(InputError, match="E353.*no such file"):
        InstanceEncoder(head=tmp_path / "absent.safetensors")
    with pytest.raises(InputError, match="E010.*layers"):
        save_head(tmp_path / "x.safetensors", np.zeros((2, 2), np.float32), {})


def test_a_global_only_head_is_fed_the_global_pools(tmp_path):
    """Heads written before the layout pools (no ``grid_layers`` in their metadata) keep working:
    their input is the global half alone, the same numbers as the backbone's own pools give."""
    need_backend("image_embed", "efficientnet_lite")
    from pixlink.models.backends.instance_head import LAYERS, InstanceEncoder
    from pixlink.train.instance_head import save_head
    from pixlink.vecmath import l2_normalise

    w = np.random.default_rng(0).normal(size=(8, 1984)).astype(np.float32)
    save_head(tmp_path / "old.safetensors", w, {"layers": list(LAYERS)})
    enc = InstanceEncoder(head=tmp_path / "old.safetensors")
    assert enc.grid_layers == () and enc.dim == 8
    rng = np.random.default_rng(1)
    imgs = [rng.integers(0, 255, (60 + 9 * i, 50, 3), dtype=np.uint8) for i in range(3)]
    f = enc.backbone.encode_images(imgs, layers=LAYERS)
    x = np.concatenate([l2_normalise(f.cls_layers[l]) for l in LAYERS], axis=1) / np.sqrt(len(LAYERS))
    assert np.allclose(enc.encode_images(imgs).embeds, l2_normalise(x @ w.T), atol=1e-5)


def test_layout_pools_see_where_things_are():
    """The grid half tells a left-right mirror apart, the global half cannot; rows are unit."""
    from pixlink.models.backends.instance_head import global_pools, grid_pools, pool_maps

    m = np.random.default_rng(2).random((1, 3, 4, 6)).astype(np.float32)
    maps = {5: np.concatenate([m, m[..., ::-1]])}  # an image and its mirror
    g, s = global_pools(maps, (5,)), grid_pools(maps, (5,))
    assert g.shape == (2, 3) and s.shape == (2, 12)
    assert np.allclose(g[0], g[1]) and not np.allclose(s[0], s[1])
    assert np.allclose(s[0].reshape(2, 2, 3)[:, ::-1], s[1].reshape(2, 2, 3))  # cells swap left and right
    x = pool_maps(maps, (5,), (5,))
    assert x.shape == (2, 15) and np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-6)


def test_unseen_logos_in_photos_find_their_own_image(encoder, tmp_path_factory):
    """Composite queries of logos that are NOT among the head's training entities, against 40
    references: the head ranks the right one first more often than the backbone's pooled
    features (v2v's space) do, and for most queries."""
    need_composite()
    from pixlink.demo.composite import small_set
    from pixlink.io import load_image
    from pixlink.link import LinkerConfig
    from pixlink.regions.views import crop

    cs = small_set(tmp_path_factory.mktemp("instance"), n_logos=40, n_queries=24, n_nil=0, seed=11)
    seen = set(encoder.info["entities"])
    refs = [r for r in cs.references]
    ids = [r.entity_id for r in refs]
    ms = [m for m in cs.mentions("test") if m.gold not in seen]
    assert len(ms) >= 15  # the seed draws mostly test-split logos of the full set
    views = [crop(load_image(m.image), m.region, LinkerConfig().crop_margin) for m in ms]  # as the linker cuts it
    images = [load_image(r.images[0]) for r in refs]
    gold = np.array([ids.index(m.gold) for m in ms])

    def hits(q, r):
        return float((np.argmax(q @ r.T, axis=1) == gold).mean())

    head = hits(encoder.encode_images(views).embeds, encoder.encode_images(images).embeds)
    base = hits(encoder.backbone.encode_images(views).embeds, encoder.backbone.encode_images(images).embeds)
    assert head > base and head >= 0.6, (head, base)
