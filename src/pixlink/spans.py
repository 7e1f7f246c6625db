"""Token spans, BIO tags, entity type names and span P/R/F1: the one copy pixlink uses.

A *span* is ``(start, end_exclusive, type)`` over a post's tokens (:data:`Span`). The CoNLL files
of the MNER datasets write spans as BIO tags (``B-PER I-PER O ...``); :func:`bio_to_spans` reads
them as conlleval does and :func:`spans_to_bio` writes them.

Type names
    The datasets name the fourth type differently: ``OTHER`` (Twitter-2015, Twitter-GMNER,
    RiVEG) or ``MISC`` (Twitter-2017) (:data:`DATASET_TYPES`). The tagger is trained on
    :data:`UNIFIED_TYPES` (``PER/LOC/ORG/MISC``). Three helpers name a type:

    * :func:`unify_type` — as the tagger does (``OTHER`` -> ``MISC``);
    * :func:`rename_type` — as a *label scheme* asks (``"MISC"``, ``"OTHER"`` or a dataset name,
      :data:`SCHEMES`; :func:`check_scheme` refuses an unknown one with E502);
    * :func:`align_type` — as a *label set* names it (``MISC`` <-> ``OTHER`` by the set's own names).

Scores
    :func:`span_prf`: entity-level micro precision / recall / F1 with exact match of span and
    type, and the same per type (conlleval; the UMT / GMNER scripts compute ``p = correct /
    predicted``, ``r = correct / gold``, ``f1 = 2pr / (p + r)``); :func:`prf` from counts. A
    ratio with a zero denominator is 0.0, and the counts are returned beside the ratios.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Sequence

from .errors import Errors, InputError

Span = tuple[int, int, str]
"""``(start, end_exclusive, type)`` over tokens."""

# --------------------------------------------------------------------------------------------
# Type names
# --------------------------------------------------------------------------------------------

UNIFIED_TYPES: tuple[str, ...] = ("PER", "LOC", "ORG", "MISC")
"""The types the tagger is trained on and outputs by default."""

MISC_NAMES: tuple[str, ...] = ("MISC", "OTHER")
"""The two names of the fourth type (everything that is not a person, location or organisation)."""

DATASET_TYPES: dict[str, tuple[str, ...]] = {
    "twitter2015": ("PER", "LOC", "ORG", "OTHER"),
    "twitter2017": ("PER", "LOC", "ORG", "MISC"),
    "gmner": ("PER", "LOC", "ORG", "OTHER"),
    "riveg": ("PER", "LOC", "ORG", "OTHER"),
}
"""Entity types of each MNER / GMNER dataset, as the dataset names them."""

SCHEMES: dict[str, str] = {
    "MISC": "MISC", "OTHER": "OTHER",
    **{name: next(t for t in types if t in MISC_NAMES) for name, types in DATASET_TYPES.items()},
}
"""label scheme -> the name of the fourth type (the other three are always PER/LOC/ORG)."""


def check_scheme(scheme: str | None) -> str:
    """The name of the fourth type under ``scheme`` (None = ``MISC``); E502 if unknown."""
    if scheme is None:
        return "MISC"
    if scheme not in SCHEMES:
        raise InputError(Errors.E502.format(scheme=scheme, schemes=", ".join(SCHEMES)))
    return SCHEMES[scheme]


def unify_type(type_: str) -> str:
    """``OTHER`` -> ``MISC`` (the tagger's name); other types unchanged."""
    return "MISC" if type_ == "OTHER" else type_


def rename_type(type_: str, scheme: str | None) -> str:
    """``type_`` named as label scheme ``scheme`` names it: ``MISC``/``OTHER`` become the
    scheme's fourth type (``rename_type("MISC", "twitter2015") == "OTHER"``), other types are
    unchanged. E502 for an unknown scheme."""
    misc = check_scheme(scheme)
    return misc if type_ in MISC_NAMES else type_


def align_type(type_: str, labels: Sequence[str] | None) -> str:
    """Name ``type_`` as the label set ``labels`` does: MISC <-> OTHER, other types unchanged.

    ``align_type("MISC", DATASET_TYPES["twitter2015"]) == "OTHER"``;
    ``align_type("OTHER", DATASET_TYPES["twitter2017"]) == "MISC"``. With ``labels=None``
    or a label set that has neither name, the type is returned as it is.
    """
    if labels is None or type_ in labels or type_ not in MISC_NAMES:
        return type_
    for name in MISC_NAMES:
        if name in labels:
            return name
    return type_


# --------------------------------------------------------------------------------------------
# BIO tags
# --------------------------------------------------------------------------------------------


def bio_tagset(types: Sequence[str]) -> list[str]:
    """``["O", "B-T1", "I-T1", "B-T2", ...]``: the tag set of a tagger over ``types``."""
    return ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]


def is_bio(tag: str) -> bool:
    """True for ``O``, ``B-<type>`` and ``I-<type>``."""
    prefix, sep, typ = tag.partition("-")
    return tag == "O" or (bool(sep) and prefix in ("B", "I") and bool(typ))


def bio_to_spans(tags: Sequence[str]) -> tuple[list[Span], list[int]]:
    """Entity spans ``(start, end_exclusive, type)`` of a BIO tag sequence, conlleval style.

    A chunk starts at ``B-X``, or at an ``I-X`` that does not continue an ``X`` chunk (after
    ``O`` or after another type); it ends before ``O``, ``B-*`` or an ``I-Y`` of another type.
    Returns the spans and the token indices of the ``I-`` tags that started a chunk (the
    repairs). Raises :class:`InputError` (E014, a ``ValueError``) naming the tag and its token
    when a tag is not ``O``/``B-X``/``I-X``.
    """
    spans: list[Span] = []
    repaired: list[int] = []
    start = 0
    cur: str | None = None
    for i, tag in enumerate(tags):
        if tag == "O":
            if cur is not None:
                spans.append((start, i, cur))
            cur = None
            continue
        if not is_bio(tag):
            raise InputError(Errors.E014.format(tag=tag, index=i))
        prefix, _, typ = tag.partition("-")
        if prefix == "I" and cur == typ:
            continue
        if cur is not None:
            spans.append((start, i, cur))
        if prefix == "I":
            repaired.append(i)
        start, cur = i, typ
    if cur is not None:
        spans.append((start, len(tags), cur))
    return spans, repaired


def spans_to_bio(n_tokens: int, spans: Iterable[Any]) -> list[str]:
    """BIO tags of ``n_tokens`` tokens from spans ``(start, end_exclusive, type)`` (tuples or
    objects with ``start``/``end``/``type``, such as :class:`~pixlink.types.NamedEntity`).

    Raises :class:`InputError` (E015, a ``ValueError``) when a span falls outside the tokens or
    overlaps another: BIO cannot hold either."""
    tags = ["O"] * n_tokens
    for s, e, t in sorted(as_span(x) for x in spans):
        if not (0 <= s < e <= n_tokens):
            raise InputError(Errors.E015.format(span=(s, e, t), reason=f"it is outside the {n_tokens} tokens"))
        if any(tags[i] != "O" for i in range(s, e)):
            raise InputError(Errors.E015.format(span=(s, e, t), reason="it overlaps another span"))
        tags[s] = f"B-{t}"
        for i in range(s + 1, e):
            tags[i] = f"I-{t}"
    return tags


# --------------------------------------------------------------------------------------------
# Span precision / recall / F1
# --------------------------------------------------------------------------------------------


def as_span(x: Any) -> Span:
    """``(start, end, type)`` from a tuple/list or anything with ``start``, ``end``, ``type``
    (a :class:`~pixlink.types.NamedEntity`); E604 otherwise."""
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


def check_aligned(gold: Sequence[Any], pred: Sequence[Any]) -> None:
    """E604 unless ``gold`` and ``pred`` hold one entry per item each."""
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
    check_aligned(gold, pred)
    keep = set(types) if types is not None else None
    correct: Counter = Counter()
    n_pred: Counter = Counter()
    n_gold: Counter = Counter()
    for g_item, p_item in zip(gold, pred):
        g = Counter(s for s in map(as_span, g_item) if keep is None or s[2] in keep)
        p = Counter(s for s in map(as_span, p_item) if keep is None or s[2] in keep)
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
