"""The ``local`` signal and the reference detector on a small generated composite set: icons of
the icon package pasted into scikit-image photos (scale, rotation, perspective, blur, JPEG,
occlusion), with the placement known. The KB side is built through ``kb embed`` (resumable)."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import need_composite

from pixlink.errors import InputError

N_LOGOS, N_QUERIES, N_NIL = 24, 8, 2


@pytest.fixture(scope="module")
def composite(tmp_path_factory):
    need_composite()
    from pixlink.demo.composite import build_kb, small_set
    from pixlink.link.embed import embed_kb
    from pixlink.models import Profile

    root = tmp_path_factory.mktemp("composite")
    cs = small_set(root, n_logos=N_LOGOS, n_queries=N_QUERIES, n_nil=N_NIL, seed=3)
    kb_dir = build_kb(cs, root / "kb")
    report = embed_kb(kb_dir, Profile("offline"), ["local"], progress=False)["local"]
    return cs, kb_dir, report


@pytest.fixture(scope="module")
def linker(composite):
    from pixlink.link import Linker, LinkerConfig

    return Linker.from_kb(composite[1], "offline", LinkerConfig(signals=("local",), segment=False))


@pytest.fixture(scope="module")
def links(composite, linker):
    cs = composite[0]
    return [(m, linker.link(m.image, m.region, k=5)) for m in cs.mentions("test")]


def _top_local(link):
    """The best ``local`` candidate and its raw score (a log-odds: may be negative), or
    ``(None, -inf)`` when nothing verified."""
    c = sorted((c for c in link.candidates if "local" in c.signals), key=lambda c: -c.signals["local"])
    return (c[0].entity_id, c[0].signals["local"]) if c else (None, float("-inf"))


def test_kb_side_is_built_and_resumes(composite):
    from pixlink.link.embed import embed_kb
    from pixlink.models import Profile

    cs, kb_dir, report = composite
    assert report["images"] == N_LOGOS - N_NIL and report["entities"] == N_LOGOS - N_NIL
    assert report["vectors"] > 20 * report["images"]
    assert not report["errors"]
    again = embed_kb(kb_dir, Profile("offline"), ["local"], progress=False)["local"]
    # the store is up to date: nothing is extracted again
    assert again["images"] == report["images"] and again["vectors"] == report["vectors"]
    assert again["extracted"] == 0 and again.get("up_to_date")


def test_local_signal_finds_the_pasted_logo(links):
    found = [m.gold == _top_local(lk)[0] for m, lk in links if m.gold]
    assert len(found) == N_QUERIES - N_NIL
    # occlusion, blur, JPEG 35 and small sizes make some hard (Hits@1 of ``local`` alone on the
    # composite benchmark: see docs/instance-matching.md); at least half must be found
    assert sum(found) >= 0.5 * len(found), found
    for m, lk in links:
        assert lk.signals.get("local") == "sift"


def test_nil_queries_score_below_found_logos(links):
    right = [_top_local(lk)[1] for m, lk in links if m.gold and _top_local(lk)[0] == m.gold]
    nil = [_top_local(lk)[1] for m, lk in links if not m.gold]
    assert len(nil) == N_NIL
    assert max(nil) < np.median(right)


def test_reference_detector_box_and_mask(composite, linker):
    from pixlink.geometry import box_iou, rle_to_mask
    from pixlink.link.signals.local import locate

    cs = composite[0]
    ious, miou = [], []
    for m in cs.mentions("test"):
        if not m.gold:
            continue
        hit = locate(linker, m.image, m.gold)  # the whole image: where is this entity?
        if hit is None:
            ious.append(0.0)
            continue
        assert hit.entity_id == m.gold and hit.mask is not None
        ious.append(box_iou(hit.box, list(m.region.bbox)))
        gt = rle_to_mask(m.meta["gt_mask"])
        miou.append((gt & hit.mask).sum() / max((gt | hit.mask).sum(), 1))
    assert np.mean(np.array(ious) >= 0.5) >= 0.5, ious
    # thin logo strokes from a 64-px thumbnail: the warped support is coarse (see the docs)
    assert len(miou) >= 2 and np.median(miou) >= 0.25, miou


def test_find_instances_on_the_whole_image(composite, linker):
    from pixlink.link.signals.local import find_instances

    cs = composite[0]
    ms = [m for m in cs.mentions("test") if m.gold][:4]
    hits = [find_instances(linker, m.image, k=3) for m in ms]
    assert sum(any(h.entity_id == m.gold for h in hs) for m, hs in zip(ms, hits)) >= 2
    for hs in hits:
        assert all(a.score >= b.score for a, b in zip(hs, hs[1:]))


def test_locate_an_entity_without_features_is_an_error(composite, linker):
    from pixlink.link.signals.local import locate

    cs = composite[0]
    m = cs.mentions("test")[0]
    with pytest.raises(InputError, match="E420"):
        locate(linker, m.image, "logo_not_in_the_kb")


def test_without_a_store_the_named_signal_fails(tmp_path, composite):
    """A KB without local features: naming the signal is an error (E405); unnamed, the signal
    notes that it did not run and scores nothing (the other profiles' answers are unchanged:
    tests/link/test_linker*.py run on KBs without a store)."""
    from pixlink.errors import KBError
    from pixlink.kb import build_kb_from_entities
    from pixlink.link import Linker, LinkerConfig
    from pixlink.link.query import Query
    from pixlink.link.signals.local import LocalSignal

    cs = composite[0]
    build_kb_from_entities(cs.kb_entities()[:5], tmp_path / "kb", name="no-local")
    with pytest.raises(KBError, match="E405"):  # refused when built: not at the first query
        Linker.from_kb(tmp_path / "kb", "offline", LinkerConfig(signals=("local",), segment=False))
    lk2 = Linker.from_kb(tmp_path / "kb", "offline", LinkerConfig(signals=("lexical",), segment=False))
    sig, q = LocalSignal(), Query()
    assert sig.store(lk2, q, lk2.profile.get("local_features")) is None
    assert any("kb embed" in n for n in q.notes)


def _logo(composite):
    from pixlink.link.signals.local import reference_image

    cs = composite[0]
    ref = next(r for r in cs.references if not r.nil)
    return reference_image(ref.images[0])


def test_reference_views_add_features_in_the_references_own_pixels(composite):
    from pixlink.link.signals.local import LocalOptions, reference_features
    from pixlink.models import Profile

    be = Profile("offline").get("local_features")
    rgb, support = _logo(composite)
    assert not support.all()  # an icon on white: the background views apply
    plain = reference_features(be, rgb, support, LocalOptions(kb_backgrounds=(), kb_small_sides=()))
    direct = be.extract(rgb, max_features=LocalOptions().kb_max_features)
    assert np.array_equal(plain.descriptors, direct.descriptors) and np.allclose(plain.xy, direct.xy)
    views = reference_features(be, rgb, support, LocalOptions())
    assert len(views) > len(plain)
    h, w = rgb.shape[:2]
    assert views.image_size == (h, w)
    assert (views.xy[:, 0] >= -1).all() and (views.xy[:, 0] <= w + 1).all()
    assert (views.xy[:, 1] >= -1).all() and (views.xy[:, 1] <= h + 1).all()
    # the shrunk views' keypoints are mapped back: they lie on the object, as the image's own do
    import cv2

    near = cv2.dilate(support.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
    xi = np.clip(np.round(views.xy).astype(int), 0, [w - 1, h - 1])
    assert near[xi[:, 1], xi[:, 0]].mean() > 0.9
    assert len(views) <= LocalOptions().kb_max_features


def test_reference_view_options_are_checked():
    from pixlink.errors import PixlinkError
    from pixlink.link.signals.local import LocalOptions

    assert LocalOptions(kb_small_sides=[64]).kb_small_sides == (64,)
    for bad in ({"kb_small_sides": [8]}, {"kb_backgrounds": [300]}, {"kb_backgrounds": "0"}, {"kb_small_sides": [True]},
                {"colour_layers": 1}, {"colour_layers": 17}, {"colour_layers": 2.5}, {"score": "votes"},
                {"score_weights": (1.0, 2.0)}, {"score_weights": (1.0, 2.0, float("nan"), 0.0)}, {"score_weights": "1,2,3,4"}):
        with pytest.raises(PixlinkError, match="E010"):
            LocalOptions(**bad)


def test_verification_score_weighs_coverage_and_box_and_fails_to_minus_infinity():
    """The learned score of a verification: more inliers, more of the reference explained and an
    outline that fills the region's box each raise it; ``score="inliers"`` is the count alone;
    a failed verification is never a candidate."""
    from pixlink.index.local import Verification
    from pixlink.link.signals.local import LocalOptions, effective_inliers, verification_score

    o = LocalOptions()

    def v(inliers, cov, iou, colour=1.0):
        return Verification(image=0, entity_id="e", matches=100, inliers=inliers, homography=np.eye(3), colour=colour,
                            extra={"ref_coverage": cov, "box_iou": iou, "inlier_ratio": inliers / 100})

    base = verification_score(v(10, 0.2, 0.5), o)
    assert verification_score(v(30, 0.2, 0.5), o) > base
    assert verification_score(v(10, 0.6, 0.5), o) > base
    assert verification_score(v(10, 0.2, 0.9), o) > base
    assert verification_score(v(10, 0.2, 0.5, colour=0.0), o) < base  # colour halves the inliers at most
    counted = LocalOptions(score="inliers")
    assert verification_score(v(10, 0.2, 0.5), counted) == effective_inliers(v(10, 0.2, 0.5), True) == 10.0
    failed = Verification(image=0, entity_id="e", reason="no homography")
    assert verification_score(failed, o) == float("-inf") and verification_score(failed, counted) == float("-inf")
