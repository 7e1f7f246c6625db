"""Evaluation metrics, defined as the papers define them.

Named entities (MNER)
    :func:`span_prf`: entity-level micro precision / recall / F1 with exact match of span
    and type, and the same per type (conlleval; the UMT / GMNER scripts compute
    ``p = correct / predicted``, ``r = correct / gold``, ``f1 = 2pr / (p + r)``). It lives with
    the other span helpers in :mod:`pixlink.spans` (the tagger's training scores with it too)
    and is re-exported here with :func:`prf`.

Entity linking
    :func:`link_metrics`: accuracy, Hits@k (= Recall@k), MRR@k, MRR, mean rank, NIL accuracy,
    per split; :func:`gold_rank` states how score ties rank. A ranking cut at k (a linker that
    returns its top k) gives MRR@k, never the MRR over the whole KB: it is then named ``mrr@k``
    (``cut_at``), and ``mrr`` is left out.

Grounded NER
    :func:`grounded_prf`: MNER / GMNER / EEG / SMNER / EES P/R/F1 (Yu et al. 2023; Li et al.
    2024, RiVEG) at any IoU threshold; :func:`f1_vs_iou`; :func:`mask_miou`.

Conventions for every P/R/F1 here: a ratio with a zero denominator is 0.0 (no prediction
gives precision 0, no gold entity gives recall 0) as in conlleval and the GMNER scripts;
the raw counts are always returned beside the ratios so a reader can tell "0 of 0" from
"0 of 10".
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Sequence

from ..errors import Errors, InputError
from ..spans import check_aligned, prf, span_prf

__all__ = [
    "span_prf", "prf", "link_metrics", "gold_rank", "grounded_prf", "region_correct", "region_iou", "f1_vs_iou", "iou_rule",
    "mask_miou", "VARIANTS", "DEFAULT_KS", "TIES",
]


# --------------------------------------------------------------------------------------------
# Entity linking: accuracy, Hits@k / Recall@k, MRR@k, MRR, mean rank, NIL accuracy
# --------------------------------------------------------------------------------------------

DEFAULT_KS: tuple[int, ...] = (1, 3, 5, 10, 20)
TIES = ("pessimistic", "optimistic", "average", "order")


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int,)) or k < 1:
        raise InputError(Errors.E605.format(k=k))
    return int(k)


def gold_rank(
    candidates: Sequence[str], gold: str | None, scores: Sequence[float] | None = None, ties: str = "pessimistic",
) -> float | None:
    """1-based rank of ``gold`` among ``candidates`` (ranked best first), ``None`` if absent.

    With ``scores`` (aligned with ``candidates``), candidates whose score equals the gold's are
    ties, resolved by ``ties``:

    * ``"pessimistic"`` (default): every tie ranks before the gold (a tie never earns credit),
      ``rank = #{score > s_gold} + #{score == s_gold}``;
    * ``"optimistic"``: ``rank = 1 + #{score > s_gold}``;
    * ``"average"``: the mean of the two (may be fractional);
    * ``"order"``: the position in ``candidates`` (the linker's own tie-break).

    Without ``scores`` the rank is the position in the list. A gold listed twice counts at its
    best position.
    """
    if ties not in TIES:
        raise InputError(Errors.E604.format(reason=f"ties={ties!r}; expected one of {TIES}"))
    if gold is None:
        return None
    try:
        pos = list(candidates).index(gold)
    except ValueError:
        return None
    if scores is None or ties == "order":
        return float(pos + 1)
    if len(scores) != len(candidates):
        raise InputError(Errors.E604.format(
            reason=f"{len(scores)} scores for {len(candidates)} candidates; they must be aligned"))
    s = float(scores[pos])
    higher = sum(1 for i, x in enumerate(scores) if float(x) > s and candidates[i] != gold)
    equal = sum(1 for i, x in enumerate(scores) if float(x) == s and candidates[i] != gold)
    if ties == "optimistic":
        return float(1 + higher)
    if ties == "pessimistic":
        return float(1 + higher + equal)
    return 1 + higher + equal / 2.0


def _mean(xs: Sequence[float]) -> float | None:
    return float(sum(xs) / len(xs)) if xs else None


_FAILED = object()


def _failed_as_wrong(it: dict[str, Any]) -> dict[str, Any]:
    if not it.get("error"):
        return it
    return {**it, "prediction": _FAILED, "candidates": [], "scores": None}


def link_metrics(
    items: Sequence[dict[str, Any]], ks: Sequence[int] = DEFAULT_KS, ties: str = "pessimistic",
    by_split: bool = True, cut_at: int | None = None,
) -> dict[str, Any]:
    """Linking figures as the MEL / VNEL papers report them.

    Args:
        items: one dict per mention: ``gold`` (entity id, ``None`` = NIL), ``prediction`` (the
            linker's answer, ``None`` = NIL), ``candidates`` (entity ids ranked best first),
            optional ``scores`` (aligned with candidates, used for ties), ``labelled``
            (default True; unlabelled items are counted and skipped), ``split`` (optional),
            ``error`` (optional: when set, the system failed on the item, which then counts as
            wrong everywhere, also for a NIL gold, and ranks nowhere).
        ks: the k of Hits@k and MRR@k.
        ties: how score ties rank (:func:`gold_rank`).
        cut_at: the candidate lists hold at most this many entities (the system's top k), so
            the mean reciprocal rank is MRR@cut_at: it is reported as ``mrr@<cut_at>`` and
            ``mrr`` is left out, with ``ranking_cut_at`` saying so. ``None``: the lists rank
            the whole KB, ``mrr`` is the MRR.

    Returns: ``n`` (labelled items), ``n_unlabelled``, ``n_linkable`` (gold not NIL), ``n_nil``;

        * ``accuracy``: ``prediction == gold`` over labelled items, NIL included (a NIL gold
          is right only when the prediction is NIL);
        * ``hits@k`` (= Recall@k: one gold per mention): share of linkable items whose gold
          ranks <= k among the candidates (the ranking, not the NIL decision);
        * ``mrr@k``: mean of ``1/rank`` if ``rank <= k`` else 0; ``mrr``: mean of ``1/rank``
          over all linkable items, 0 when the gold was not retrieved (only for uncut rankings,
          see ``cut_at``);
        * ``mean_rank``: mean rank over linkable items whose gold was retrieved (the others
          are counted in ``n_not_retrieved``);
        * ``nil_accuracy``: share of NIL-gold items predicted NIL;
        * ``per_split``: the same per ``split`` value, when items carry splits.

        A figure with no item to average over (e.g. Hits@k when every gold is NIL) is
        ``None`` (JSON ``null``), never 0.
    """
    ks = tuple(_check_k(k) for k in ks)
    if cut_at is not None:
        cut_at = _check_k(cut_at)
    items = [_failed_as_wrong(it) for it in items]
    labelled = [it for it in items if it.get("labelled", True)]
    linkable = [it for it in labelled if it.get("gold") is not None]
    nil_items = [it for it in labelled if it.get("gold") is None]
    ranks: list[float | None] = [
        gold_rank(it.get("candidates") or [], it["gold"], it.get("scores"), ties) for it in linkable
    ]
    out: dict[str, Any] = {
        "n": len(labelled), "n_unlabelled": len(items) - len(labelled),
        "n_linkable": len(linkable), "n_nil": len(nil_items),
        "accuracy": _mean([float(it.get("prediction") == it.get("gold")) for it in labelled]),
    }
    for k in ks:
        out[f"hits@{k}"] = _mean([float(r is not None and r <= k) for r in ranks])
    for k in ks:
        out[f"mrr@{k}"] = _mean([1.0 / r if r is not None and r <= k else 0.0 for r in ranks])
    mrr = _mean([1.0 / r if r is not None else 0.0 for r in ranks])
    if cut_at is None:
        out["mrr"] = mrr
    else:
        # the lists hold the top cut_at only: their MRR is MRR@cut_at (a gold ranked lower than
        # cut_at, absent from the list, counts 0 as it does in MRR@k)
        out[f"mrr@{cut_at}"] = _mean([1.0 / r if r is not None and r <= cut_at else 0.0 for r in ranks])
        out["ranking_cut_at"] = cut_at
    found = [r for r in ranks if r is not None]
    out["mean_rank"] = _mean(found)
    out["n_not_retrieved"] = len(ranks) - len(found)
    out["nil_accuracy"] = _mean([float(it.get("prediction") is None) for it in nil_items])
    out["n_failed"] = sum(1 for it in labelled if it.get("prediction") is _FAILED)
    if by_split:
        splits = sorted({str(it["split"]) for it in labelled if it.get("split") is not None})
        if splits:
            out["per_split"] = {
                s: link_metrics([it for it in labelled if str(it.get("split")) == s], ks, ties, by_split=False,
                                cut_at=cut_at)
                for s in splits
            }
    return out


# --------------------------------------------------------------------------------------------
# Grounded NER: GMNER / EEG (boxes), SMNER / EES (masks)
# --------------------------------------------------------------------------------------------

VARIANTS: dict[str, dict[str, Any]] = {
    "mner": {"typed": True, "grounded": False, "region": "box"},
    "gmner": {"typed": True, "grounded": True, "region": "box"},
    "eeg": {"typed": False, "grounded": True, "region": "box"},
    "smner": {"typed": True, "grounded": True, "region": "mask"},
    "ees": {"typed": False, "grounded": True, "region": "mask"},
}
"""The named variants of :func:`grounded_prf`: MNER (span + type), GMNER (span + type + box),
EEG (span + box), SMNER (span + type + mask), EES (span + mask)."""


def _as_mask(m: Any) -> Any:
    import numpy as np

    from ..geometry import rle_to_mask

    if isinstance(m, dict):
        return rle_to_mask(m)
    return np.asarray(m, dtype=bool)


def region_iou(pred: Any, gold: Any, region: str = "box") -> float:
    """IoU of a predicted and a gold region: XYXY boxes (``region="box"``) or ``(H, W)`` masks /
    COCO RLE (``region="mask"``), with :mod:`pixlink.geometry`."""
    from ..geometry import box_iou, mask_iou

    if region == "box":
        return box_iou(pred, gold)
    if region == "mask":
        return mask_iou(_as_mask(gold), _as_mask(pred))
    raise InputError(Errors.E604.format(reason=f"region={region!r}; expected 'box' or 'mask'"))


def _norm_gold(x: Any) -> tuple[Any, str, list[Any]]:
    try:
        key, typ, regions = x
    except (TypeError, ValueError) as exc:
        raise InputError(Errors.E604.format(reason=f"gold {x!r} is not (key, type, regions)")) from exc
    regs = [] if regions is None else list(regions)
    return (tuple(key) if isinstance(key, list) else key), str(typ), regs


def _norm_pred(x: Any) -> tuple[Any, str, Any]:
    try:
        key, typ, region = x
    except (TypeError, ValueError) as exc:
        raise InputError(Errors.E604.format(reason=f"prediction {x!r} is not (key, type, region)")) from exc
    return (tuple(key) if isinstance(key, list) else key), str(typ), region


def region_correct(pred_region: Any, gold_regions: Sequence[Any], iou_threshold: float = 0.5,
                   region: str = "box", inclusive: bool = False) -> bool:
    """The GMNER region rule (Yu et al., ACL 2023 Findings; NUSTM/GMNER ``model/metrics.py``).

    Right when the gold entity has no region and the prediction is ``None``, or when the gold
    has regions and the predicted one has IoU ``> iou_threshold`` with any of them
    (``>=`` with ``inclusive=True``, as RiVEG's ``statistic/statistic.py`` tests it). A
    prediction with a region for an ungroundable gold, or ``None`` for a groundable one, is wrong.
    """
    if not gold_regions:
        return pred_region is None
    if pred_region is None:
        return False
    for g in gold_regions:
        iou = region_iou(pred_region, g, region)
        if iou > iou_threshold or (inclusive and iou >= iou_threshold):
            return True
    return False


def grounded_prf(
    gold: Sequence[Iterable[Any]], pred: Sequence[Iterable[Any]], variant: str = "gmner",
    iou_threshold: float = 0.5, inclusive: bool = False,
) -> dict[str, Any]:
    """Entity-level P/R/F1 of grounded NER: MNER, GMNER, EEG, SMNER, EES (:data:`VARIANTS`).

    Definitions (Yu et al. 2023, "Grounded Multimodal Named Entity Recognition on Social
    Media", and NUSTM/GMNER ``model/metrics.py::_compute_tp_fn_fp``; Li et al. 2024, RiVEG,
    ``statistic/statistic.py``): a predicted entity is correct when its span matches a gold
    entity's span, its type matches (not for EEG/EES) and its region is right by
    :func:`region_correct` (not for MNER). ``P = correct / #pred``, ``R = correct / #gold``.

    Args:
        gold: per item, a list of ``(key, type, regions)``: ``key`` is a token span
            ``(start, end)`` (or the entity text, as RiVEG's label files match on text);
            ``regions`` the gold boxes (XYXY) or masks (``(H, W)`` bool / COCO RLE), empty or
            ``None`` when the entity is not groundable.
        pred: per item, a list of ``(key, type, region)`` with ``region`` one box / mask or
            ``None`` (predicted not groundable).
        variant: ``"mner"``, ``"gmner"``, ``"eeg"``, ``"smner"`` or ``"ees"``.
        iou_threshold: IoU above which a region is right (any threshold; default 0.5).
        inclusive: count IoU equal to the threshold as right (RiVEG's script uses ``>=``).

    Matching is one-to-one: a gold entity is used by at most one prediction (the first that
    matches). With token-span keys this equals the NUSTM script (spans of a BIO sequence are
    unique); with text keys it is stricter than RiVEG's script when the same entity text
    occurs twice in a tweet.

    Returns:
        ``precision, recall, f1, n_correct, n_pred, n_gold`` plus ``n_gold_groundable``,
        ``n_correct_groundable`` / ``n_correct_ungroundable`` (NUSTM's ``uc`` / ``nc``),
        ``n_span_correct`` and ``n_span_type_correct`` (``sc`` / ``tc``), ``variant``,
        ``iou_threshold``, and ``per_type``.
    """
    if variant not in VARIANTS:
        raise InputError(Errors.E604.format(reason=f"variant {variant!r}; expected one of {list(VARIANTS)}"))
    check_aligned(gold, pred)
    v = VARIANTS[variant]
    typed, grounded, region = v["typed"], v["grounded"], v["region"]
    n_correct = n_pred = n_gold = n_gold_g = c_g = c_ng = n_span = n_span_type = 0
    per_c: Counter = Counter()
    per_p: Counter = Counter()
    per_g: Counter = Counter()
    for g_item, p_item in zip(gold, pred):
        golds = [_norm_gold(x) for x in g_item]
        preds = [_norm_pred(x) for x in p_item]
        n_gold += len(golds)
        n_pred += len(preds)
        n_gold_g += sum(1 for g in golds if g[2])
        for g in golds:
            per_g[g[1]] += 1
        used = [False] * len(golds)
        for key, typ, reg in preds:
            per_p[typ] += 1
            same_key = [i for i, g in enumerate(golds) if g[0] == key]
            if same_key:
                n_span += 1
                if any(golds[i][1] == typ for i in same_key):
                    n_span_type += 1
            for i in same_key:
                gk, gt, gregs = golds[i]
                if used[i] or (typed and gt != typ):
                    continue
                if grounded and not region_correct(reg, gregs, iou_threshold, region, inclusive):
                    continue
                used[i] = True
                n_correct += 1
                per_c[gt if typed else typ] += 1
                if gregs:
                    c_g += 1
                else:
                    c_ng += 1
                break
    out: dict[str, Any] = {"n": len(gold), "variant": variant, "iou_threshold": iou_threshold if grounded else None,
                           "iou_inclusive": bool(inclusive) if grounded else None}
    out.update(prf(n_correct, n_pred, n_gold))
    out.update({
        "n_gold_groundable": n_gold_g, "n_correct_groundable": c_g, "n_correct_ungroundable": c_ng,
        "n_span_correct": n_span, "n_span_type_correct": n_span_type,
    })
    if typed:
        out["per_type"] = {t: prf(per_c[t], per_p[t], per_g[t]) for t in sorted(set(per_g) | set(per_p))}
    return out


def iou_rule(iou_threshold: float, inclusive: bool = False) -> str:
    """How a region was judged, in words for a report: ``"IoU > 0.5 (GMNER, NUSTM script)"`` or
    ``"IoU >= 0.5 (RiVEG script)"``."""
    if inclusive:
        return f"IoU >= {iou_threshold:g} (inclusive, as RiVEG's statistic/statistic.py)"
    return f"IoU > {iou_threshold:g} (strict, as the GMNER paper's NUSTM/GMNER metrics.py)"


def f1_vs_iou(
    gold: Sequence[Iterable[Any]], pred: Sequence[Iterable[Any]], variant: str = "gmner",
    thresholds: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9), inclusive: bool = False,
) -> list[dict[str, float]]:
    """``[{"iou": t, "precision", "recall", "f1"}]`` of :func:`grounded_prf` at each threshold
    (``inclusive``: IoU equal to the threshold counts, RiVEG's rule)."""
    out = []
    for t in thresholds:
        r = grounded_prf(gold, pred, variant, iou_threshold=float(t), inclusive=inclusive)
        out.append({"iou": float(t), "precision": r["precision"], "recall": r["recall"], "f1": r["f1"]})
    return out


def mask_miou(gold: Sequence[Iterable[Any]], pred: Sequence[Iterable[Any]], typed: bool = True) -> dict[str, Any]:
    """Mean mask IoU of the groundable gold entities (SMNER).

    For each gold entity with a mask, the IoU of the mask predicted for the same span (and
    type when ``typed``) — the best over its gold masks — or 0 when no such prediction or no
    mask was predicted. ``miou`` averages over all groundable gold entities; ``miou_matched``
    over those whose span was predicted with a mask (segmentation quality alone).
    Inputs as :func:`grounded_prf` with masks as regions.
    """
    check_aligned(gold, pred)
    all_iou: list[float] = []
    matched: list[float] = []
    for g_item, p_item in zip(gold, pred):
        preds = [_norm_pred(x) for x in p_item]
        for key, typ, gregs in (_norm_gold(x) for x in g_item):
            if not gregs:
                continue
            cand = [r for k, t, r in preds if k == key and (not typed or t == typ) and r is not None]
            if not cand:
                all_iou.append(0.0)
                continue
            best = max(region_iou(cand[0], g, "mask") for g in gregs)
            all_iou.append(best)
            matched.append(best)
    return {"miou": _mean(all_iou), "miou_matched": _mean(matched), "n_groundable": len(all_iou),
            "n_matched": len(matched)}
