"""GMNER / EEG / SMNER / EES metrics on cases computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from pixlink.errors import InputError
from pixlink.eval.metrics import f1_vs_iou, grounded_prf, mask_miou, region_correct
from pixlink.geometry import mask_to_rle


def test_region_rule():
    g = [[0, 0, 10, 10]]
    assert region_correct(None, []) is True            # ungroundable, predicted None
    assert region_correct([0, 0, 10, 10], []) is False  # ungroundable, predicted a box
    assert region_correct(None, g) is False             # groundable, predicted None
    assert region_correct([0, 0, 10, 10], g) is True
    # IoU exactly 0.5: [0,0,10,10] vs [0,0,10,5] -> 50/100
    assert region_correct([0, 0, 10, 5], g) is False
    assert region_correct([0, 0, 10, 5], g, inclusive=True) is True
    # boxes touching at an edge: IoU 0, wrong even at threshold 0
    assert region_correct([10, 0, 20, 10], g, iou_threshold=0.0) is False
    # any of several gold boxes
    assert region_correct([50, 50, 60, 60], [[0, 0, 10, 10], [50, 50, 61, 60]]) is True


def _case():
    gold = [
        [((0, 2), "PER", [[0, 0, 10, 10]]), ((3, 4), "LOC", [])],
        [((1, 2), "ORG", [[0, 0, 4, 4], [20, 20, 30, 30]])],
        [],
    ]
    pred = [
        [((0, 2), "PER", [1, 1, 10, 10]),   # IoU .81 right
         ((3, 4), "ORG", None)],            # wrong type, region right
        [((1, 2), "ORG", [0, 0, 4, 2])],    # IoU .5 with first gold box: not > .5
        [((0, 1), "PER", None)],            # spurious
    ]
    return gold, pred


def test_gmner_eeg_mner_hand_computed():
    gold, pred = _case()
    g = grounded_prf(gold, pred, "gmner")
    assert (g["n_correct"], g["n_pred"], g["n_gold"]) == (1, 4, 3)
    assert g["precision"] == pytest.approx(0.25) and g["recall"] == pytest.approx(1 / 3)
    assert g["f1"] == pytest.approx(2 / 7)
    assert g["n_correct_groundable"] == 1 and g["n_correct_ungroundable"] == 0
    assert g["n_span_correct"] == 3 and g["n_span_type_correct"] == 2
    assert g["per_type"]["PER"]["n_correct"] == 1 and g["per_type"]["ORG"]["n_pred"] == 2

    e = grounded_prf(gold, pred, "eeg")         # types ignored: (3,4) now right
    assert e["n_correct"] == 2 and e["n_correct_ungroundable"] == 1 and "per_type" not in e
    m = grounded_prf(gold, pred, "mner")        # regions ignored: PER and ORG(1,2)
    assert m["n_correct"] == 2 and m["iou_threshold"] is None
    inc = grounded_prf(gold, pred, "gmner", inclusive=True)
    assert inc["n_correct"] == 2
    low = grounded_prf(gold, pred, "gmner", iou_threshold=0.4)
    assert low["n_correct"] == 2


def test_f1_vs_iou_is_monotone_on_case():
    gold, pred = _case()
    curve = f1_vs_iou(gold, pred, thresholds=(0.3, 0.5, 0.85))
    assert [c["iou"] for c in curve] == [0.3, 0.5, 0.85]
    assert [round(c["f1"], 6) for c in curve] == [round(2 * (2 / 4) * (2 / 3) / (2 / 4 + 2 / 3), 6),
                                                  round(2 / 7, 6), 0.0]


def test_no_gold_entities_and_one_to_one():
    r = grounded_prf([[]], [[]])
    assert r["f1"] == 0.0 and r["n_gold"] == 0
    # the same prediction twice: only one gold to match
    r = grounded_prf([[((0, 1), "PER", [])]], [[((0, 1), "PER", None), ((0, 1), "PER", None)]])
    assert r["n_correct"] == 1 and r["precision"] == 0.5 and r["recall"] == 1.0
    # text keys (RiVEG label files)
    r = grounded_prf([[("NBA", "ORG", [])]], [[("NBA", "ORG", None)]])
    assert r["f1"] == 1.0


def test_smner_masks_and_miou():
    m_gold = np.zeros((10, 10), bool)
    m_gold[0:4, 0:5] = True          # 20 px
    m_pred = np.zeros((10, 10), bool)
    m_pred[0:4, 0:4] = True          # 16 px inside: IoU .8
    other = np.zeros((10, 10), bool)
    other[8:10, 8:10] = True
    gold = [[((0, 1), "PER", [mask_to_rle(m_gold)]), ((2, 3), "LOC", [mask_to_rle(other)]), ((4, 5), "ORG", [])]]
    pred = [[((0, 1), "PER", m_pred), ((2, 3), "ORG", m_pred), ((4, 5), "ORG", None)]]
    s = grounded_prf(gold, pred, "smner")
    assert s["n_correct"] == 2  # PER by mask, ORG ungroundable
    e = grounded_prf(gold, pred, "ees")
    assert e["n_correct"] == 2  # (2,3) mask IoU 0 with the gold
    mi = mask_miou(gold, pred)
    # groundable golds: PER .8 ; LOC not predicted with its type -> 0
    assert mi["miou"] == pytest.approx(0.4) and mi["miou_matched"] == pytest.approx(0.8)
    assert mask_miou(gold, pred, typed=False)["miou"] == pytest.approx(0.4)  # (2,3) IoU 0


def test_bad_inputs():
    with pytest.raises(InputError, match="E604"):
        grounded_prf([[]], [[]], variant="nope")
    with pytest.raises(InputError, match="E604"):
        grounded_prf([[((0, 1), "PER")]], [[]])
    with pytest.raises(InputError, match="E604"):
        grounded_prf([[]], [[], []])
