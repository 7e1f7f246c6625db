"""span_prf on cases computed by hand."""

from __future__ import annotations

import pytest

from pixlink.errors import InputError
from pixlink.eval.metrics import span_prf
from pixlink.types import NamedEntity


def test_hand_computed_micro_and_per_type():
    gold = [[(0, 2, "PER"), (3, 4, "LOC")], [(1, 2, "ORG")], []]
    pred = [[(0, 2, "PER"), (3, 4, "ORG")], [(1, 3, "ORG")], [(0, 1, "PER")]]
    r = span_prf(gold, pred)
    # correct: (0,2,PER) only. pred 4, gold 3 -> P=1/4, R=1/3, F=2*(1/12)/(7/12)=2/7
    assert r["n"] == 3 and r["n_correct"] == 1 and r["n_pred"] == 4 and r["n_gold"] == 3
    assert r["precision"] == pytest.approx(0.25)
    assert r["recall"] == pytest.approx(1 / 3)
    assert r["f1"] == pytest.approx(2 / 7)
    per = r["per_type"]
    assert per["PER"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "n_correct": 1, "n_pred": 2, "n_gold": 1})
    assert per["LOC"]["recall"] == 0.0 and per["LOC"]["n_pred"] == 0 and per["LOC"]["precision"] == 0.0
    assert per["ORG"]["n_pred"] == 2 and per["ORG"]["n_correct"] == 0


def test_no_gold_entities_and_no_predictions():
    r = span_prf([[], []], [[], []])
    assert (r["precision"], r["recall"], r["f1"], r["n_gold"]) == (0.0, 0.0, 0.0, 0)
    r = span_prf([[], []], [[(0, 1, "PER")], []])
    assert r["precision"] == 0.0 and r["n_pred"] == 1


def test_perfect_and_types_filter_and_named_entities():
    gold = [[NamedEntity(0, 2, "PER"), NamedEntity(2, 3, "MISC")]]
    pred = [[(0, 2, "PER"), (2, 3, "OTHER")]]
    r = span_prf(gold, pred)
    assert r["f1"] == pytest.approx(0.5)
    r = span_prf(gold, pred, types=["PER", "LOC"])
    assert r["f1"] == 1.0 and set(r["per_type"]) == {"PER", "LOC"}
    assert r["per_type"]["LOC"]["n_gold"] == 0


def test_duplicates_count_as_multiset():
    r = span_prf([[(0, 1, "PER")]], [[(0, 1, "PER"), (0, 1, "PER")]])
    assert r["n_correct"] == 1 and r["precision"] == 0.5 and r["recall"] == 1.0


def test_misaligned_or_bad_input():
    with pytest.raises(InputError, match="E604"):
        span_prf([[]], [[], []])
    with pytest.raises(InputError, match="E604"):
        span_prf([[(0, 1)]], [[]])
