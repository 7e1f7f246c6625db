"""Windows of a long post (pixlink.ner.windows): cover every word within the budget, overlap,
and merge entities deterministically at the cuts."""

from __future__ import annotations

import random

from pixlink.ner.windows import merge_window_spans, overlapping_windows


def test_a_post_that_fits_is_one_window():
    assert overlapping_windows([1, 2, 3], budget=6) == [(0, 3)]
    assert overlapping_windows([], budget=6) == [(0, 0)]


def test_windows_cover_the_post_within_the_budget_and_overlap():
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(1, 400)
        pieces = [rng.choice([1, 1, 1, 2, 3, 7]) for _ in range(n)]
        budget = rng.randint(8, 60)
        overlap = rng.choice([0.0, 0.1, 0.25, 0.5])
        ws = overlapping_windows(pieces, budget, overlap)
        assert ws[0][0] == 0 and ws[-1][1] == n
        for a, b in ws:
            assert a < b and (sum(pieces[a:b]) <= budget or b == a + 1)
        for (a0, b0), (a1, b1) in zip(ws, ws[1:]):
            assert a0 < a1 <= b0 < b1  # consecutive, no gap, each starts later
            room = min(overlap * budget, budget - pieces[b0])
            if b0 - 1 > a0 and pieces[b0 - 1] <= room:
                assert a1 < b0  # they share words whenever a word fits the overlap
            assert sum(pieces[a1:b0]) <= room


def test_a_word_above_the_budget_is_a_window_alone():
    ws = overlapping_windows([2, 50, 2, 2], budget=10, overlap=0.25)
    assert (1, 2) in ws and ws[-1][1] == 4


def test_merge_cuts_each_overlap_in_its_middle():
    windows = [(0, 10), (6, 16)]  # the cut is at word 8
    w0 = [(2, 4, "A", 0.9), (7, 9, "B", 0.8), (9, 10, "C", 0.4)]  # C starts after the cut: window 1's
    w1 = [(7, 9, "B2", 0.7), (8, 11, "D", 0.6), (12, 14, "E", 0.5)]  # B2 starts before it: window 0's
    merged = merge_window_spans(windows, [w0, w1])
    # D starts in window 1's half but overlaps B, kept before it
    assert merged == [(2, 4, "A", 0.9), (7, 9, "B", 0.8), (12, 14, "E", 0.5)]
    # the same input gives the same answer whatever the order of each window's spans
    assert merge_window_spans(windows, [w0[::-1], w1[::-1]]) == merged
    assert merge_window_spans([(0, 5)], [[(1, 2, "X")]]) == [(1, 2, "X")]
