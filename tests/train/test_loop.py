"""The trainers' shared parts on hand-computed cases: ranks, figures, mean ± sd, the score
calibration, and resumable optimiser state."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pixlink.train.loop import (calibration, load_state, make_optimizer, mean_sd, rank_of_gold, ranking_figures,
                                save_state)


def test_ranks_are_pessimistic_and_absent_gold_is_not_ranked():
    scores = np.array([[0.9, 0.5, 0.5, 0.1], [0.2, 0.8, 0.3, 0.0], [1.0, 0.0, 0.0, 0.0]])
    ranks = rank_of_gold(scores, np.array([1, 1, -1]))
    assert ranks.tolist() == [3.0, 1.0, float("inf")]  # a tie counts against the gold
    fig = ranking_figures(ranks, ks=(1, 3))
    assert fig["hits@1"] == pytest.approx(1 / 3) and fig["hits@3"] == pytest.approx(2 / 3)
    assert fig["mrr"] == pytest.approx((1 / 3 + 1 + 0) / 3)
    cut = ranking_figures(ranks, ks=(1,), cut=4)
    assert "mrr" not in cut and cut["mrr@4"] == fig["mrr"]


def test_mean_sd_over_seeds():
    out = mean_sd([{"hits@1": 0.5, "n": 10}, {"hits@1": 0.7, "n": 10}])
    assert out["hits@1"]["mean"] == pytest.approx(0.6) and out["hits@1"]["sd"] == pytest.approx(np.sqrt(0.02))
    assert mean_sd([{"hits@1": 0.5}])["hits@1"]["sd"] == 0.0


def test_calibration_orders_scores():
    rng = np.random.default_rng(0)
    cal = calibration(rng.normal(1.0, 0.3, 200), rng.normal(0.0, 0.3, 600))
    assert cal["slope"] > 0 and 0.2 < cal["center"] < 0.8 and cal["auc"] > 0.95
    assert cal["n_pos"] == 200 and cal["n_neg"] == 600


def test_resumed_optimiser_continues_exactly(tmp_path):
    def model():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 1))

    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(1))

    def step(m, o):
        loss = m(x).pow(2).mean()
        o.zero_grad()
        loss.backward()
        o.step()

    a = model()
    oa = make_optimizer(a, 1e-2, 1e-4)
    for _ in range(4):
        step(a, oa)
    b = model()
    ob = make_optimizer(b, 1e-2, 1e-4)
    for _ in range(2):
        step(b, ob)
    save_state(tmp_path, b, ob, 2, {"note": "x"})
    c = model()
    oc = make_optimizer(c, 1e-2, 1e-4)
    meta = load_state(tmp_path, c, oc)
    assert meta["epoch"] == 2 and meta["note"] == "x"
    for _ in range(2):
        step(c, oc)
    for pa, pc in zip(a.parameters(), c.parameters()):
        assert torch.allclose(pa, pc, atol=1e-7)
    # AdamW groups: no decay on biases and norms
    groups = {g["weight_decay"]: len(g["params"]) for g in oa.param_groups}
    assert groups == {1e-4: 2, 0.0: 4}
    assert load_state(tmp_path / "none", c, oc) is None
