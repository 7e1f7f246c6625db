import numpy as np
import pytest

from pixlink.vecmath import auc, fit_logistic, sigmoid


@pytest.mark.parametrize("slope,center", [(12.5, 0.81), (1.0, -0.05), (-6.5, -0.27)])
def test_fit_logistic_recovers_the_parameters_of_rare_positives(slope, center):
    # a linker's candidates: most are wrong, the right ones sit at the high end of the scores
    rng = np.random.default_rng(7)
    x = center - rng.normal(2.5, 1.2, 20000) / slope  # below the centre when the slope is positive
    y = (rng.random(len(x)) < sigmoid(slope * (x - center))).astype(float)
    assert 0.01 < y.mean() < 0.15
    got_slope, got_center = fit_logistic(x, y)
    assert got_slope == pytest.approx(slope, rel=0.1)
    assert got_center == pytest.approx(center, abs=0.15 / abs(slope))


def test_fit_logistic_stays_finite_when_the_classes_separate():
    x = np.r_[np.linspace(0.0, 0.4, 10), np.linspace(0.6, 1.0, 10)]
    y = np.r_[np.zeros(10), np.ones(10)]
    for l2 in (1.0, 1e-6):  # a weak penalty lets the slope grow large, never past finite
        slope, center = fit_logistic(x, y, l2=l2)
        assert np.isfinite(slope) and slope > 0 and 0.4 < center < 0.6


def test_auc_counts_ties_as_half():
    assert auc(np.array([0.1, 0.5, 0.5, 0.9]), np.array([0, 0, 1, 1])) == pytest.approx(0.875)
