"""Fit the fusion (per-signal calibration and the NIL threshold) on labelled mentions.

``pixlink link calibrate MENTIONS --kb KB --out fusion.json`` and :func:`calibrate`:

1. the labelled mentions (NIL ones included: their gold is ``None``) are split, with a fixed
   seed, into a *fit* part and a *held-out* part;
2. every mention is linked once with the linker as it is, keeping every scored candidate
   (``config.max_candidates``) with its raw per-signal scores;
3. on the fit part, each signal's calibration is fitted (:meth:`Fusion.fit`: one logistic
   regression per signal on (raw score, is the gold entity)), then the NIL thresholds that
   maximise accuracy (:func:`fit_nil`: each NIL class's on its own mentions, the default on
   the rest);
4. both fusions — the one the linker had and the fitted one — re-score the held-out part's
   candidates from the same raw scores, and the report gives accuracy (NIL answers counted),
   Hits@1 and NIL accuracy of each.

Re-scoring from raw scores is exact: fusion is a function of the raw signals of a candidate,
the signals that ran for the mention and the backends that made them, all of which a
:class:`~pixlink.types.Link` carries.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..errors import Errors, InputError
from ..types import Link, Mention
from .fusion import Fusion
from .signals import dense_signals


@dataclass
class CalibrationReport:
    """What :func:`calibrate` did and measured.

    Attributes:
        fusion: the fitted fusion (save it with ``fusion.save(path)``).
        n_mentions: labelled mentions given; ``n_fit`` / ``n_heldout`` after the split;
            ``n_failed`` could not be linked (see ``errors``).
        n_examples: (candidate, is-gold) pairs the calibration was fitted on.
        before, after: held-out figures of the linker's fusion and of the fitted one:
            ``accuracy`` (top answer right, NIL answers included), ``hits@1`` (over mentions
            whose gold is an entity, ignoring NIL), ``nil_accuracy`` (over NIL golds), ``n``.
        backends: signal -> backend the fit was made for.
        nil_thresholds: per NIL class (``"default"`` for the default threshold) the fitted
            threshold and ``n``, the mentions it was fitted on (0: too few, kept).
    """

    fusion: Fusion
    n_mentions: int
    n_fit: int
    n_heldout: int
    n_failed: int
    n_examples: int
    before: dict[str, float]
    after: dict[str, float]
    backends: dict[str, str] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    seed: int = 0
    holdout: float = 0.3
    nil_thresholds: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"n_mentions": self.n_mentions, "n_fit": self.n_fit, "n_heldout": self.n_heldout,
                "n_failed": self.n_failed, "n_examples": self.n_examples, "before": self.before, "after": self.after,
                "backends": self.backends, "seed": self.seed, "holdout": self.holdout, "errors": self.errors,
                "nil_thresholds": self.nil_thresholds,
                "fusion": self.fusion.to_dict()}


def rescore(link: Link, fusion: Fusion, kb_entities: int | None = None) -> tuple[str | None, float, str | None]:
    """``(prediction, top score, top candidate)`` of ``link``'s candidates under ``fusion``
    (``kb_entities``: the size of the KB it was linked in, for a NIL class's size rule)."""
    best_id, best = None, -1.0
    for eid, fused in candidate_scores(link, fusion):
        if fused > best or (fused == best and best_id is not None and eid < best_id):
            best_id, best = eid, fused
    if best_id is None:
        return None, 0.0, None
    return (best_id if best >= fusion.nil_threshold_for(link.signals, kb_entities) else None), best, best_id


def candidate_scores(link: Link, fusion: Fusion) -> list[tuple[str, float]]:
    """``(entity id, fused score)`` of each of ``link``'s candidates under ``fusion``, from its raw
    signals (a dense signal that ran but did not score a candidate counts as unverified)."""
    dense = set(dense_signals())
    ran = [s for s in link.signals if s in dense]
    return [(c.entity_id, fusion.fuse(c.signals, unverified=[s for s in ran if s not in c.signals],
                                      backends=link.signals)[0]) for c in link.candidates]


def nil_fitted(fusion: Fusion, links: Sequence[tuple[Mention, Link]], nil_class: str | None = None,
               kb_entities: int | None = None) -> Fusion:
    """``fusion`` with the NIL threshold (of ``nil_class``, else the default one) that is best on
    the labelled ``links`` (:meth:`Fusion.calibrate_nil` on their top candidates)."""
    tops = [rescore(link, fusion.with_nil_threshold(0.0)) for _, link in links]
    return fusion.calibrate_nil([t[1] for t in tops], [t[2] == m.gold for t, (m, _) in zip(tops, links)],
                                [m.gold is None for m, _ in links], nil_class=nil_class, kb_entities=kb_entities)


def fit_nil(fusion: Fusion, links: Sequence[tuple[Mention, Link]], min_mentions: int = 10,
            kb_entities: int | None = None) -> tuple[Fusion, dict[str, dict[str, Any]]]:
    """``fusion`` with its NIL thresholds fitted on labelled links (:meth:`Fusion.calibrate_nil`):
    each NIL class's on the mentions it covers, when there are at least ``min_mentions`` of
    them (else it is kept); the default one on the other mentions, or on all of them when fewer
    than ``min_mentions`` are outside every class. ``kb_entities``: the size of the KB the
    mentions were linked in (a class fitted there holds for that KB: its size rule is dropped
    unless it is the class's reference KB, :meth:`~pixlink.link.fusion.NilClass.fitted_at`).

    Returns the fusion and, per class (``"default"`` for the default threshold), the threshold
    (for this KB) and the number of mentions it was fitted on (0: kept as it was).
    """
    groups: dict[str | None, list[tuple[Mention, Link]]] = {}
    for m, link in links:
        c = fusion.nil_class(link.signals)
        groups.setdefault(c.name if c is not None else None, []).append((m, link))
    out, report = fusion, {}
    for c in fusion.nil_classes:
        mine = groups.get(c.name, [])
        if len(mine) >= min_mentions:
            out = nil_fitted(out, mine, c.name, kb_entities)
        report[c.name] = {"threshold": next(x for x in out.nil_classes if x.name == c.name).threshold_at(kb_entities),
                          "n": len(mine) if len(mine) >= min_mentions else 0}
    rest = groups.get(None, [])
    rest = rest if len(rest) >= min_mentions else list(links)
    out = nil_fitted(out, rest, None, kb_entities)
    report["default"] = {"threshold": out.nil_threshold, "n": len(rest)}
    return out, report


def figures(links: Sequence[tuple[Mention, Link]], fusion: Fusion, kb_entities: int | None = None) -> dict[str, float]:
    """Accuracy (NIL included), Hits@1 (entity golds) and NIL accuracy of ``fusion`` (for a KB of
    ``kb_entities`` entities)."""
    right = hits = n_ent = nil_right = n_nil = 0
    for m, link in links:
        pred, _, top = rescore(link, fusion, kb_entities)
        right += pred == m.gold
        if m.gold is None:
            n_nil += 1
            nil_right += pred is None
        else:
            n_ent += 1
            hits += top == m.gold
    n = len(links)
    return {"n": n, "accuracy": round(right / n, 4) if n else float("nan"),
            "hits@1": round(hits / n_ent, 4) if n_ent else float("nan"),
            "nil_accuracy": round(nil_right / n_nil, 4) if n_nil else float("nan"), "n_nil": n_nil}


def calibrate(linker: Any, mentions: Sequence[Mention], *, holdout: float = 0.3, seed: int = 0, min_class: int = 5,
              progress: bool = False) -> CalibrationReport:
    """Fit ``linker``'s fusion on labelled ``mentions`` and measure it on a held-out part.

    Args:
        linker: a :class:`~pixlink.link.Linker` (its fusion is the starting point; unchanged).
        mentions: labelled mentions; ``gold=None`` means the answer is NIL.
        holdout: the fraction held out for the before/after figures (0 fits on everything and
            reports figures on the fit part itself, which says so by ``n_heldout == 0``).
        seed: the split's seed.
        min_class: a signal needs this many matching and non-matching pairs to be fitted.
    """
    labelled = [m for m in mentions if m.labelled]
    if len(labelled) < 4:
        raise InputError(Errors.E407.format(reason=f"{len(labelled)} labelled mentions; at least 4 are needed"))
    if not 0.0 <= holdout < 1.0:
        raise InputError(Errors.E010.format(what="holdout", value=holdout, reason="a fraction in [0, 1)"))
    order = np.random.default_rng(seed).permutation(len(labelled))
    n_held = int(round(holdout * len(labelled)))
    held_idx, fit_idx = set(order[:n_held].tolist()), order[n_held:]
    k = linker.config.max_candidates
    batch = linker.link_batch(labelled, k=k, progress=progress)
    linked = {i: link for i, link in batch.results}
    fit = [(labelled[i], linked[i]) for i in sorted(fit_idx.tolist()) if i in linked]
    held = [(labelled[i], linked[i]) for i in sorted(held_idx) if i in linked]
    if not fit:
        raise InputError(Errors.E407.format(reason="no mention of the fit part could be linked"))
    examples = [(c.signals, c.entity_id == m.gold) for m, link in fit for c in link.candidates]
    votes: dict[str, Counter] = {}
    for _, link in fit:
        for s, b in link.signals.items():
            votes.setdefault(s, Counter())[b] += 1
    backends = {s: c.most_common(1)[0][0] for s, c in votes.items() if c.most_common(1)[0][0] != "kb"}
    n_kb = linker.kb_entities
    fitted, nil_report = fit_nil(linker.fusion.fit(examples, backends=backends, min_class=min_class), fit,
                                 kb_entities=n_kb)
    judge = held or fit
    return CalibrationReport(
        fusion=fitted, n_mentions=len(labelled), n_fit=len(fit), n_heldout=len(held), n_failed=len(batch.errors),
        n_examples=len(examples), before=figures(judge, linker.fusion, n_kb), after=figures(judge, fitted, n_kb),
        backends=backends, errors=[e.to_dict() for e in batch.errors], seed=seed, holdout=holdout,
        nil_thresholds=nil_report)
