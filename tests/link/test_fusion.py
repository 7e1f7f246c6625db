import numpy as np
import pytest

from pixlink.errors import InputError
from pixlink.link.fusion import Fusion, SignalCalibration


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
    t = f.calibrate_nil([0.9, 0.8, 0.3, 0.2], [True, True, False, False], [False, False, True, True])
    assert 0.3 < t <= 0.8
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
