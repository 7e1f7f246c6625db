import numpy as np
import pytest

from pixlink.errors import InputError
from pixlink.link.fusion import SHIPPED, Fusion, NilClass, SignalCalibration


def test_fuse_is_weighted_mean_of_applicable_signals():
    f = Fusion(calibration={"a": SignalCalibration(0.5, 1000.0, 3.0), "b": SignalCalibration(0.5, 1000.0, 1.0)})
    fused, probs = f.fuse({"a": 0.9, "b": 0.1})
    assert probs == {"a": pytest.approx(1.0), "b": pytest.approx(0.0)}
    assert fused == pytest.approx(0.75)
    # a signal that does not apply is left out, not counted as zero
    assert f.fuse({"b": 0.9})[0] == pytest.approx(1.0)
    assert f.fuse({})[0] == 0.0


def test_fit_learns_a_separating_center_and_ranks_informative_signals_higher():
    rng = np.random.default_rng(0)
    ex = []
    for _ in range(200):
        ex.append(({"good": rng.normal(0.8, 0.05), "noise": rng.normal(0.5, 0.1)}, True))
        ex.append(({"good": rng.normal(0.4, 0.05), "noise": rng.normal(0.5, 0.1)}, False))
    f = Fusion(calibration={}).fit(ex)
    assert 0.5 < f.calibration["good"].center < 0.7
    assert f.calibration["good"].slope > 0
    assert f.calibration["good"].weight > 5 * f.calibration["noise"].weight


def test_calibrate_nil_maximises_accuracy():
    f = Fusion()
    # two right links with high scores, two NIL mentions with low scores
    g = f.calibrate_nil([0.9, 0.8, 0.3, 0.2], [True, True, False, False], [False, False, True, True])
    assert 0.3 < g.nil_threshold <= 0.8
    assert f.nil_threshold == 0.4  # a new fusion; the old one is unchanged
    # a wrong top link above the right ones cannot be fixed by a threshold: NIL below 0.5 only
    h = f.calibrate_nil([0.9, 0.7, 0.6, 0.2], [False, True, True, False], [False, False, False, True])
    assert 0.2 < h.nil_threshold <= 0.6
    with pytest.raises(InputError, match="E410"):
        f.calibrate_nil([], [], [])


def test_round_trip(tmp_path):
    f = Fusion(nil_threshold=0.42)
    f.save(tmp_path / "f.json")
    g = Fusion.load(tmp_path / "f.json")
    assert g.nil_threshold == 0.42 and g.calibration["face"] == f.calibration["face"]
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(InputError, match="E410"):
        Fusion.load(tmp_path / "bad.json")


def test_unverified_signal_uses_its_missing_prior_only_when_it_has_one():
    f = Fusion(calibration={"face": SignalCalibration(0.5, 1000.0, 4.0, missing_prior=0.25),
                            "lexical": SignalCalibration(0.5, 1000.0, 2.0)})
    # named in the caption, no face photo while a face was found: pulled down by the prior
    fused, probs = f.fuse({"lexical": 0.9}, unverified=["face"])
    assert probs["face"] == 0.25 and fused == pytest.approx((4 * 0.25 + 2 * 1.0) / 6)
    # a signal without a prior is simply left out
    g = Fusion(calibration={"v2v": SignalCalibration(0.5, 1000.0, 1.0), "lexical": SignalCalibration(0.5, 1000.0, 2.0)})
    assert g.fuse({"lexical": 0.9}, unverified=["v2v"])[0] == pytest.approx(1.0)


def test_a_signal_yielding_to_face_is_left_out_where_a_face_scored():
    f = Fusion(calibration={"face": SignalCalibration(0.5, 1000.0, 4.0, missing_prior=0.25),
                            "instance": SignalCalibration(0.5, 1000.0, 2.0, yields_to=["face"])})
    assert f.calibration["instance"].yields_to == ("face",)
    # the face compared with the entity's face photo: the instance score says nothing
    fused, probs = f.fuse({"face": 0.9, "instance": 0.1})
    assert fused == pytest.approx(1.0) and "instance" not in probs
    # a logo candidate in the same face query: face unverified (its prior), instance counts
    fused, probs = f.fuse({"instance": 0.9}, unverified=["face"])
    assert fused == pytest.approx((4 * 0.25 + 2 * 1.0) / 6) and probs["instance"] == 1.0
    # the fit neither learns from nor forgets it
    ex = [({"instance": 0.9, "face": 0.1}, False)] * 10 + [({"instance": 0.9}, True)] * 10 + \
         [({"instance": 0.1}, False)] * 10
    fitted = f.fit(ex)
    assert fitted.calibration["instance"].yields_to == ("face",)
    assert fitted.calibration["instance"].prob(0.9) > 0.8  # with the 10 face-scored negatives it would be 0.5
    g = Fusion.from_dict(f.to_dict())
    assert g.calibration["instance"] == f.calibration["instance"]


def test_fit_writes_backend_specific_keys_and_keeps_missing_prior():
    rng = np.random.default_rng(1)
    ex = []
    for _ in range(100):
        ex.append(({"v2v": rng.normal(0.9, 0.03), "face": rng.normal(0.97, 0.01)}, True))
        ex.append(({"v2v": rng.normal(0.5, 0.05), "face": rng.normal(0.85, 0.02)}, False))
    base = Fusion.shipped("offline")
    fitted = base.fit(ex, backends={"v2v": "efficientnet_lite", "face": "dlib"})
    # the linker looks up "v2v:efficientnet_lite" first: the fitted entry must be that one
    assert fitted.cal("v2v", "efficientnet_lite") is fitted.calibration["v2v:efficientnet_lite"]
    assert 0.6 < fitted.cal("v2v", "efficientnet_lite").center < 0.85
    assert fitted.cal("v2v", "efficientnet_lite") != base.cal("v2v", "efficientnet_lite")
    assert fitted.calibration["face:dlib"].missing_prior == base.calibration["face"].missing_prior
    assert base.calibration == Fusion.shipped("offline").calibration  # fit changed nothing in place
    assert fitted.backends["v2v"] == "efficientnet_lite"


def test_gate_scales_the_mean_instead_of_joining_it():
    f = Fusion(calibration={"a": SignalCalibration(0.5, 1000.0, 1.0),
                            "g": SignalCalibration(0.5, 1000.0, 1.0, gate=True)})
    assert f.fuse({"a": 0.9})[0] == pytest.approx(1.0)
    assert f.fuse({"a": 0.9, "g": 0.9})[0] == pytest.approx(1.0)
    assert f.fuse({"a": 0.9, "g": 0.1})[0] == pytest.approx(0.0)
    assert f.fuse({"g": 0.9})[0] == 0.0  # a gate alone is no evidence


def test_shipped_parameters_are_chosen_by_backends():
    assert Fusion.for_backends({"v2v": "efficientnet_lite", "v2t": "conse_efficientnet"}).name == "offline"
    assert Fusion.for_backends({"v2v": "clip_vision", "v2t": "clip"}).name == "hub"
    assert Fusion.for_backends({"v2v": "something_else"}).name == "offline"
    with pytest.raises(InputError, match="E410"):
        Fusion.shipped("nope")
    f = Fusion.shipped("hub")
    with pytest.raises(InputError, match="E410"):
        f.with_nil_threshold(3.0)
    assert f.with_nil_threshold(0.7).nil_threshold == 0.7 and f.nil_threshold == 0.4


def test_every_signal_has_a_shipped_calibration_and_a_missing_one_is_said(tmp_path, caplog):
    """A signal without a calibration adds nothing to a fused score: every registered signal has
    one in each shipped set, and a linker given a fusion without one says so (log and output)."""
    from pixlink.link import Linker, LinkerConfig
    from pixlink.link.signals import signal_names
    from pixlink.models import Profile

    for name in SHIPPED:
        missing = [s for s in signal_names() if not Fusion.shipped(name).calibrates(s)]
        assert not missing, (name, missing)
    shipped = Fusion.shipped("offline")
    partial = Fusion(calibration={k: v for k, v in shipped.calibration.items() if k != "lexical"}, name="partial")

    class _KB:
        path, build_id = tmp_path, None

    with caplog.at_level("WARNING", logger="pixlink"):
        linker = Linker(_KB(), Profile("offline"), LinkerConfig(signals=["lexical"]), fusion=partial)
    assert linker.uncalibrated == ("lexical",)
    assert "no calibration for lexical" in caplog.text
    assert Linker(_KB(), Profile("offline"), LinkerConfig(signals=["lexical"]), fusion=shipped).uncalibrated == ()


def test_a_nil_class_holds_mentions_whose_signals_it_covers_to_its_own_threshold(tmp_path):
    f = Fusion(nil_threshold=0.4, nil_classes=[NilClass("image", ("v2v", "instance", "local"), 0.2)])
    assert f.nil_threshold_for({"v2v": "efficientnet_lite", "instance": "x"}) == 0.2
    assert f.nil_threshold_for(["v2v", "face"]) == 0.4  # a face ran: the default
    assert f.nil_threshold_for([]) == 0.4  # nothing ran: no class
    # saved and read back; one threshold for everything drops the classes
    f.save(tmp_path / "f.json")
    g = Fusion.load(tmp_path / "f.json")
    assert g.nil_classes == f.nil_classes and g.nil_threshold_for(["local"]) == 0.2
    assert f.with_nil_threshold(0.3).nil_threshold_for(["local"]) == 0.3
    # a class's threshold is fitted on its own mentions; the default stays
    h = f.calibrate_nil([0.3, 0.25, 0.1, 0.05], [True, True, False, False], [False, False, True, True], nil_class="image")
    assert 0.1 < h.nil_threshold_for(["local"]) <= 0.25 and h.nil_threshold == 0.4
    with pytest.raises(InputError, match="E410"):
        f.calibrate_nil([0.3], [True], [False], nil_class="faces")
    bad = f.to_dict() | {"nil_classes": [{"name": "image", "signals": ["v2v"], "threshold": 1.5}]}
    with pytest.raises(InputError, match="E410"):
        Fusion.from_dict(bad)


def test_a_nil_class_threshold_follows_the_kb_size_inside_the_measured_range(tmp_path):
    c = NilClass("image", ("v2v",), 0.18, size_slope=0.025, size_reference=3493, size_range=(175, 3493))
    assert c.threshold_at(None) == c.threshold_at(3493) == 0.18
    assert c.threshold_at(349) == pytest.approx(0.18 + 0.025 * np.log(349 / 3493))
    # clipped to the sizes the slope was measured over: nothing claimed outside them
    assert c.threshold_at(51) == c.threshold_at(175) < c.threshold_at(349)
    assert c.threshold_at(6_000_000) == 0.18
    f = Fusion(nil_classes=[c])
    assert f.nil_threshold_for(["v2v"], 349) == c.threshold_at(349)
    assert Fusion.from_dict(f.to_dict()).nil_classes == (c,)
    # fitted on another KB, the threshold is that KB's own: the rule is dropped; on its own KB, kept
    g = f.calibrate_nil([0.3, 0.05], [True, False], [False, True], nil_class="image", kb_entities=60)
    assert g.nil_classes[0].size_slope == 0.0 and g.nil_threshold_for(["v2v"], 3493) == g.nil_classes[0].threshold
    h = f.calibrate_nil([0.3, 0.05], [True, False], [False, True], nil_class="image", kb_entities=3493)
    assert h.nil_classes[0].size_slope == 0.025
    with pytest.raises(InputError, match="E410"):
        NilClass("image", ("v2v",), 0.18, size_slope=0.025, size_reference=100, size_range=(175, 3493))
