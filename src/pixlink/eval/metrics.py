"""Evaluation metrics, defined as the papers define them.

Named entities (MNER)
    :func:`span_prf`: entity-level micro precision / recall / F1 with exact match of span
    and type, and the same per type (conlleval; the UMT / GMNER scripts compute
    ``p = correct / predicted``, ``r = correct / gold``, ``f1 = 2pr / (p + r)``).

Conventions for every P/R/F1 here: a ratio with a zero denominator is 0.0 (no prediction
gives precision 0, no gold entity gives recall 0) as in conlleval and the GMNER scripts;
the raw counts are always returned beside the ratios so a reader can tell "0 of 0" from
"0 of 10".
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Sequence

from ..errors import Errors, InputError

Span = tuple[int, int, str]


def _as_span(x: Any) -> Span:
    """``(start, end, type)`` from a tuple/list or anything with ``start``, ``end``, ``type``
    (a :class:`~pixlink.types.NamedEntity`)."""
    if hasattr(x, "start") and hasattr(x, "end") and hasattr(x, "type"):
        return (int(x.start), int(x.end), str(x.type))
    try:
        s, e, t = x
        return (int(s), int(e), str(t))
    except (TypeError, ValueError) as exc:
        raise InputError(Errors.E604.format(reason=f"{x!r} is not a (start, end, type) span")) from exc


def prf(correct: int, n_pred: int, n_gold: int) -> dict[str, float | int]:
    """Precision, recall and F1 from counts (0.0 for a zero denominator)."""
    p = correct / n_pred if n_pred else 0.0
    r = correct / n_gold if n_gold else 0.0
    f = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return {"precision": p, "recall": r, "f1": f, "n_correct": int(correct), "n_pred": int(n_pred), "n_gold": int(n_gold)}


def _check_lengths(gold: Sequence[Any], pred: Sequence[Any]) -> None:
    if len(gold) != len(pred):
        raise InputError(Errors.E604.format(
            reason=f"gold has {len(gold)} items but predictions have {len(pred)}; they must be aligned per item"))


def span_prf(
    gold: Sequence[Iterable[Any]], pred: Sequence[Iterable[Any]], types: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Entity-level micro P/R/F1 (exact span and type), overall and per type.

    Args:
        gold, pred: aligned per-item lists of spans ``(start, end_exclusive, type)`` (or
            :class:`~pixlink.types.NamedEntity`). A predicted span is correct when the same
            item has a gold span with the same start, end and type. Repeated identical spans
            count as many times as they appear on both sides (a multiset match).
        types: score only these types (spans of other types are ignored on both sides) and
            give per-type figures for each of them, even when absent. ``None``: every type
            seen in gold or predictions.

    Returns:
        ``{"n": items, "precision", "recall", "f1", "n_correct", "n_pred", "n_gold",
        "per_type": {type: {"precision", "recall", "f1", "n_correct", "n_pred", "n_gold"}}}``.

    Raises:
        InputError: E604 when gold and pred have different lengths or a span is malformed.
    """
    _check_lengths(gold, pred)
    keep = set(types) if types is not None else None
    correct: Counter = Counter()
    n_pred: Counter = Counter()
    n_gold: Counter = Counter()
    for g_item, p_item in zip(gold, pred):
        g = Counter(s for s in map(_as_span, g_item) if keep is None or s[2] in keep)
        p = Counter(s for s in map(_as_span, p_item) if keep is None or s[2] in keep)
        for s, c in g.items():
            n_gold[s[2]] += c
        for s, c in p.items():
            n_pred[s[2]] += c
        for s, c in (g & p).items():
            correct[s[2]] += c
    all_types = list(types) if types is not None else sorted(set(n_gold) | set(n_pred))
    out: dict[str, Any] = {"n": len(gold)}
    out.update(prf(sum(correct.values()), sum(n_pred.values()), sum(n_gold.values())))
    out["per_type"] = {t: prf(correct[t], n_pred[t], n_gold[t]) for t in all_types}
    return out
