"""The ``instance`` signal end to end: ``kb embed`` builds its vectors (under the head's model id),
the offline linker runs it on a region and scores candidates with it, and the fusion weighs it."""

from __future__ import annotations

import pytest
from helpers import need_backend, need_composite


@pytest.fixture(scope="module")
def composite(tmp_path_factory):
    need_composite()
    need_backend("instance_embed", "efficientnet_lite_instance")
    from pixlink.demo.composite import build_kb, small_set
    from pixlink.link.embed import embed_kb
    from pixlink.models import Profile

    root = tmp_path_factory.mktemp("instance_signal")
    cs = small_set(root, n_logos=24, n_queries=8, n_nil=0, seed=5)
    kb = build_kb(cs, root / "kb")
    report = embed_kb(kb, Profile("offline"), ["instance"], progress=False)
    return cs, kb, report


def test_kb_vectors_and_links(composite):
    from pixlink.link import Linker, LinkerConfig

    cs, kb, report = composite
    assert report["instance"]["vectors"] == 24 and "instance-head-" in report["instance"]["model_id"]
    linker = Linker.from_kb(kb, "offline", LinkerConfig(signals=("instance",), segment=False))
    assert linker.uncalibrated == ()
    ranks = []
    for m in cs.mentions("test"):
        link = linker.link(m.image, m.region, k=5)
        assert link.signals["instance"] == "efficientnet_lite_instance"
        ids = [c.entity_id for c in link.candidates]
        assert all("instance" in c.signals for c in link.candidates)
        ranks.append(ids.index(m.gold) + 1 if m.gold in ids else None)
    # 24 logos: the right one is among the five best for most queries
    assert sum(r is not None for r in ranks) >= 6, ranks
