"""Linking metrics on cases computed by hand: ranks, ties, NIL, splits."""

from __future__ import annotations

import pytest

from pixlink.errors import InputError
from pixlink.eval.metrics import gold_rank, link_metrics


def test_gold_rank_positions_and_absent():
    assert gold_rank(["a", "b", "c"], "c") == 3
    assert gold_rank(["a", "b"], "z") is None
    assert gold_rank(["a"], None) is None


def test_ties_in_scores():
    cands, scores = ["a", "b", "g", "c"], [0.9, 0.5, 0.5, 0.5]
    # one strictly higher, two equal
    assert gold_rank(cands, "g", scores, "pessimistic") == 4
    assert gold_rank(cands, "g", scores, "optimistic") == 2
    assert gold_rank(cands, "g", scores, "average") == 3
    assert gold_rank(cands, "g", scores, "order") == 3
    with pytest.raises(InputError, match="E604"):
        gold_rank(cands, "g", [1.0], "pessimistic")
    with pytest.raises(InputError, match="E604"):
        gold_rank(cands, "g", scores, "random")


def test_hand_computed_link_metrics():
    items = [
        {"gold": "A", "prediction": "A", "candidates": ["A", "B", "C"], "split": "seen"},  # rank 1
        {"gold": "B", "prediction": "C", "candidates": ["C", "D", "B"], "split": "seen"},  # rank 3
        {"gold": "E", "prediction": "X", "candidates": ["X"], "split": "unseen"},           # not retrieved
        {"gold": None, "prediction": None, "candidates": ["Q"], "split": "unseen"},          # NIL right
        {"gold": None, "prediction": "Q", "candidates": ["Q"], "split": "unseen"},           # NIL wrong
        {"gold": "Z", "prediction": "Z", "candidates": ["Z"], "labelled": False},           # skipped
    ]
    r = link_metrics(items, ks=(1, 3))
    assert (r["n"], r["n_unlabelled"], r["n_linkable"], r["n_nil"]) == (5, 1, 3, 2)
    assert r["accuracy"] == pytest.approx(2 / 5)  # A right, NIL right
    assert r["hits@1"] == pytest.approx(1 / 3)
    assert r["hits@3"] == pytest.approx(2 / 3)
    assert r["mrr@1"] == pytest.approx(1 / 3)
    assert r["mrr@3"] == pytest.approx((1 + 1 / 3) / 3)
    assert r["mrr"] == pytest.approx((1 + 1 / 3 + 0) / 3)
    assert r["mean_rank"] == pytest.approx(2.0) and r["n_not_retrieved"] == 1
    assert r["nil_accuracy"] == pytest.approx(0.5)
    seen, unseen = r["per_split"]["seen"], r["per_split"]["unseen"]
    assert seen["hits@1"] == 0.5 and seen["nil_accuracy"] is None
    assert unseen["hits@3"] == 0.0 and unseen["nil_accuracy"] == 0.5 and unseen["n"] == 3


def test_all_nil_and_empty():
    r = link_metrics([{"gold": None, "prediction": None, "candidates": []}] * 3)
    assert r["hits@1"] is None and r["mrr"] is None and r["mean_rank"] is None
    assert r["nil_accuracy"] == 1.0 and r["accuracy"] == 1.0
    r = link_metrics([])
    assert r["n"] == 0 and r["accuracy"] is None


def test_ties_change_hits():
    items = [{"gold": "g", "prediction": "a", "candidates": ["a", "g"], "scores": [0.7, 0.7]}]
    assert link_metrics(items, ks=(1,))["hits@1"] == 0.0
    assert link_metrics(items, ks=(1,), ties="optimistic")["hits@1"] == 1.0
    assert link_metrics(items, ks=(1,), ties="average")["mrr"] == pytest.approx(1 / 1.5)


@pytest.mark.parametrize("k", [0, -1, 1.5, "3", True])
def test_bad_k(k):
    with pytest.raises(InputError, match="E605"):
        link_metrics([], ks=(k,))


def test_failed_items_count_as_wrong_even_for_nil_gold():
    items = [
        {"gold": None, "prediction": None, "candidates": [], "error": {"code": "E302"}},
        {"gold": "A", "prediction": None, "candidates": ["A"], "error": {"code": "E302"}},
        {"gold": "A", "prediction": "A", "candidates": ["A"]},
    ]
    r = link_metrics(items, ks=(1,))
    assert r["n_failed"] == 2 and r["accuracy"] == pytest.approx(1 / 3)
    assert r["nil_accuracy"] == 0.0 and r["hits@1"] == 0.5


def test_mrr_named_at_k_when_the_ranking_is_cut():
    items = [{"gold": "a", "prediction": "a", "candidates": ["a", "b"]},
             {"gold": "c", "prediction": "b", "candidates": ["b", "c"]},
             {"gold": "d", "prediction": "b", "candidates": ["b", "x"]}]
    full = link_metrics(items, ks=(1,))
    assert "mrr" in full and "ranking_cut_at" not in full
    cut = link_metrics(items, ks=(1,), cut_at=2)
    assert "mrr" not in cut and cut["ranking_cut_at"] == 2
    assert cut["mrr@2"] == pytest.approx((1 + 0.5 + 0) / 3)
    split = link_metrics([{**it, "split": "s"} for it in items], ks=(1,), cut_at=2)
    assert "mrr" not in split["per_split"]["s"] and split["per_split"]["s"]["mrr@2"] == cut["mrr@2"]
