"""pixlink.spans: BIO <-> spans, the type names of the datasets, and span_prf on cases computed
by hand."""

from __future__ import annotations

import pytest

from pixlink.errors import InputError
from pixlink.spans import (
    DATASET_TYPES, SCHEMES, UNIFIED_TYPES, align_type, bio_tagset, bio_to_spans, check_scheme, rename_type,
    span_prf, spans_to_bio, unify_type,
)
from pixlink.types import NamedEntity


def test_bio_round_trip():
    tags = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC"]
    sp, rep = bio_to_spans(tags)
    assert sp == [(0, 2, "PER"), (3, 4, "LOC"), (4, 6, "LOC")] and rep == []
    assert spans_to_bio(6, sp) == tags
    # entities (NamedEntity) are spans too; order does not matter
    assert spans_to_bio(6, [NamedEntity(4, 6, "LOC"), NamedEntity(0, 2, "PER"), NamedEntity(3, 4, "LOC")]) == tags
    assert bio_to_spans([]) == ([], []) and spans_to_bio(2, []) == ["O", "O"]


def test_i_without_b_starts_an_entity_as_conlleval_reads_it():
    sp, rep = bio_to_spans(["I-ORG", "I-ORG", "O", "I-PER", "B-LOC", "I-PER", "I-LOC"])
    assert sp == [(0, 2, "ORG"), (3, 4, "PER"), (4, 5, "LOC"), (5, 6, "PER"), (6, 7, "LOC")]
    assert rep == [0, 3, 5, 6]


def test_bad_tags_and_spans_are_coded_value_errors():
    for bad in (["E-PER"], ["O", "B-"], ["PER"], ["B_PER"]):
        with pytest.raises(InputError, match="E014") as exc:
            bio_to_spans(bad)
        assert isinstance(exc.value, ValueError) and repr(bad[-1]) in str(exc.value)
    with pytest.raises(ValueError, match="E015.*overlaps"):
        spans_to_bio(3, [(0, 2, "PER"), (1, 3, "LOC")])
    with pytest.raises(InputError, match="E015.*outside"):
        spans_to_bio(3, [(2, 4, "PER")])
    with pytest.raises(InputError, match="E015"):
        spans_to_bio(3, [(1, 1, "PER")])


def test_type_names():
    assert align_type("MISC", DATASET_TYPES["twitter2015"]) == "OTHER"
    assert align_type("OTHER", DATASET_TYPES["twitter2017"]) == "MISC"
    assert align_type("PER", DATASET_TYPES["gmner"]) == "PER"
    assert align_type("MISC", None) == "MISC"
    assert align_type("MISC", ("PER", "LOC")) == "MISC"
    assert rename_type("MISC", "twitter2015") == "OTHER"
    assert rename_type("OTHER", "twitter2017") == "MISC"
    assert rename_type("MISC", None) == "MISC"
    assert rename_type("PER", "OTHER") == "PER"
    assert unify_type("OTHER") == "MISC" and unify_type("LOC") == "LOC"
    # every dataset is a scheme, and a scheme names the fourth type as its dataset does
    for name, types in DATASET_TYPES.items():
        assert SCHEMES[name] == types[3]
        assert [rename_type(t, name) for t in UNIFIED_TYPES] == list(types)
    with pytest.raises(InputError, match="E502"):
        check_scheme("conll2003")
    assert bio_tagset(("PER", "ORG")) == ["O", "B-PER", "I-PER", "B-ORG", "I-ORG"]


def test_eval_metrics_scores_with_the_same_function():
    from pixlink.eval import metrics

    assert metrics.span_prf is span_prf


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
