"""Long posts are tagged in overlapping windows of whole words, then merged.

The encoder reads at most ``budget`` sub-words at once (the backbone's ``max_length`` less its
special tokens). A post that fits is one window: it is tagged exactly as before. A longer post
is cut into windows of consecutive words, each within the budget, each overlapping the next by
about ``overlap x budget`` sub-words (:func:`overlapping_windows`); every window is encoded and
decoded on its own (its CRF probabilities are those of the window), and the entities are merged
deterministically (:func:`merge_window_spans`): the overlap of two windows is cut in its middle,
an entity belongs to the window that owns its first word, and an entity that overlaps one
already kept (an entity crossing the cut) is dropped. So every word is tagged from a window in
which it has at least half the overlap as context on either side.
"""

from __future__ import annotations

from typing import Any, Sequence


def overlapping_windows(pieces: Sequence[int], budget: int, overlap: float = 0.25) -> list[tuple[int, int]]:
    """Word ranges ``[a, b)`` covering ``len(pieces)`` words, each holding at most ``budget``
    sub-words (``pieces[i]`` = sub-words of word i; a single word above the budget is a window
    alone), consecutive windows sharing about ``overlap * budget`` sub-words of words.

    ``[(0, n)]`` when the whole post fits. Each window starts and ends after the one before (it
    holds at least the first word that one did not), so the list always ends, at ``n``.
    """
    n = len(pieces)
    if sum(pieces) <= budget:
        return [(0, n)]
    out: list[tuple[int, int]] = []
    a = 0
    while True:
        used, b = 0, a
        while b < n and (b == a or used + pieces[b] <= budget):
            used += pieces[b]
            b += 1
        out.append((a, b))
        if b >= n:
            return out
        # step back from b over at most overlap x budget sub-words, leaving room for word b
        shared, nxt = 0, b
        room = min(overlap * budget, budget - pieces[b])
        while nxt - 1 > a and shared + pieces[nxt - 1] <= room:
            nxt -= 1
            shared += pieces[nxt]
        a = nxt


def merge_window_spans(windows: Sequence[tuple[int, int]], spans: Sequence[Sequence[tuple[Any, ...]]]
                       ) -> list[tuple[Any, ...]]:
    """One post's entities from its windows' entities (post word offsets, ``(start, end, ...)``).

    The overlap of windows k and k+1 is cut at its middle ``(a[k+1] + b[k]) // 2``; window k
    owns the words between its two cuts. An entity is kept from the window owning its first
    word, unless it overlaps an entity kept before it. The result is sorted by start.
    """
    cuts = [(windows[k + 1][0] + windows[k][1]) // 2 for k in range(len(windows) - 1)]
    out: list[tuple[Any, ...]] = []
    covered = 0
    for k, (_window, window_spans) in enumerate(zip(windows, spans, strict=True)):
        lo = cuts[k - 1] if k > 0 else 0
        hi = cuts[k] if k < len(cuts) else None
        for sp in sorted(window_spans, key=lambda x: (x[0], x[1])):
            start, end = int(sp[0]), int(sp[1])
            if start < lo or (hi is not None and start >= hi) or start < covered:
                continue
            out.append(tuple(sp))
            covered = end
    return out
