"""Score fusion: per-signal calibration, weights, gates, and the NIL decision.

Each signal ``s`` gives a raw score ``x`` for a (mention, entity) pair (a cosine, a face
similarity, a lexical match score). Fusion maps it to a calibrated probability that the pair
is a match, ``p_s = sigmoid(a_s * (x - c_s))``, and fuses the signals that *apply* to the
entity as a weighted mean, scaled by the *gate* signals::

    fused(e) = [sum_s w_s * p_s(e) / sum_s w_s] * prod_g p_g(e)

over the mean signals ``s`` that ran and apply to ``e``, and the gate signals ``g`` that scored
``e`` (``mention_type``: a LOC mention and a person entity). A signal applies to an entity when
the entity has something to compare with (an image signal applies only to entities with
images); a signal that did not run applies to none. The face signal is stricter: when a face
was found in the region, an entity with no face photo is *unverified* and gets the signal's
``missing_prior`` in place of a score, so that a name in the caption alone does not outrank a
face that matches. A signal may *yield* to others (``yields_to``): it is left out for an entity
that one of those scored — the instance head, trained on logos and flags and never on people,
says nothing beside a face that was compared with the entity's face photo, so its weight can be
fitted for objects without diluting a face's evidence. The NIL answer is given when the best fused score is below
``nil_threshold``, or below the threshold of the mention's NIL class (:class:`NilClass`: the
mentions for which only some signals ran, such as a region with no face and no caption, whose
fused scores sit on a scale of their own).

Parameters are data, not code: one JSON per backend set ships in ``link/data/fusion/``
(``offline.json``, ``hub.json``), and :meth:`Fusion.for_backends` picks the one made for the
backends that run. A key ``"signal:backend"`` overrides ``"signal"`` for that backend (a ConSE
cosine is not a CLIP cosine). The shipped values were set by hand on the shared photos, which
the tests also use (docs/linking.md says so); :meth:`Fusion.fit` learns a replacement from
labelled links and :meth:`Fusion.calibrate_nil` the threshold (``pixlink link calibrate``).

A :class:`Fusion` is never changed by its users: :meth:`fit`, :meth:`with_nil_threshold`
return new objects, so one fusion can be shared by many linkers and threads.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..errors import Errors, InputError
from ..vecmath import auc, fit_logistic, sigmoid

SHIPPED = ("offline", "hub")
"""The fusion files shipped in ``link/data/fusion/`` (``<name>.json``); the first is the default."""


@dataclass(frozen=True)
class SignalCalibration:
    """``p = sigmoid(slope * (x - center))``, and the signal's part in the fused score.

    Attributes:
        weight: the signal's weight in the fused mean (ignored for a gate).
        missing_prior: the probability used when the signal ran for the mention but the entity
            has nothing to compare with (a face was found, the entity has no face photo).
            ``None`` leaves the signal out for that entity instead.
        gate: the signal multiplies the fused mean by ``p`` instead of joining it.
        yields_to: signals that, when they scored an entity, leave this one out of that
            entity's fused score (``instance`` yields to ``face``: a head that never saw people
            says nothing beside a face compared with the entity's face photo).
    """

    center: float
    slope: float
    weight: float
    missing_prior: float | None = None
    gate: bool = False
    yields_to: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # JSON gives a list; a tuple keeps the calibration hashable and immutable
        object.__setattr__(self, "yields_to", tuple(self.yields_to))

    def prob(self, x: np.ndarray | float) -> np.ndarray:
        return sigmoid(self.slope * (np.asarray(x, dtype=np.float64) - self.center))

    def yields_in(self, signals: Mapping[str, float]) -> bool:
        """Whether the signal is left out of a candidate scored by ``signals`` (one of its
        ``yields_to`` scored it)."""
        return any(y in signals for y in self.yields_to)


@dataclass(frozen=True)
class NilClass:
    """Mentions with a NIL threshold of their own: those for which only ``signals`` ran.

    A fused score is a weighted mean over the signals that apply, so its scale depends on which
    signals had something to say: a region with no face and no caption is scored by image
    signals alone, whose right links sit lower than a face's or a name's. Such a class gets the
    threshold fitted on mentions of that kind (``nil_classes`` of the fusion JSON).

    The best threshold also depends on the KB's size: the more entities, the more look-alikes
    a NIL mention meets, and the higher its best wrong score. ``size_slope`` moves the threshold
    by that much per e-fold of KB entities away from ``size_reference`` (the KB it was fitted
    on), the size clipped into ``size_range`` (the sizes the slope was measured over; none is
    claimed outside them).

    Attributes:
        name: what the class is (``"image"``; ``pixlink link calibrate`` reports by it).
        signals: the signals a mention of the class may have run; a mention belongs to the
            class when every signal that ran for it is one of these.
        threshold: its NIL threshold (for a KB of ``size_reference`` entities).
        size_slope: the threshold's change per e-fold of KB entities (0: none).
        size_reference: the KB size ``threshold`` was fitted at.
        size_range: ``(smallest, largest)`` KB sizes the slope holds for.
    """

    name: str
    signals: tuple[str, ...]
    threshold: float
    size_slope: float = 0.0
    size_reference: int | None = None
    size_range: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "signals", tuple(self.signals))
        object.__setattr__(self, "threshold", _threshold(self.threshold))
        if self.size_range is not None:
            object.__setattr__(self, "size_range", tuple(int(v) for v in self.size_range))
        if self.size_slope and (self.size_reference is None or self.size_range is None
                                or not 1 <= self.size_range[0] <= self.size_reference <= self.size_range[1]):
            raise InputError(Errors.E410.format(
                reason=f"NIL class {self.name!r}: a size_slope needs a size_reference inside its size_range "
                       f"(got {self.size_reference!r}, {self.size_range!r})"))

    def threshold_at(self, kb_entities: int | None) -> float:
        """The threshold for a KB of ``kb_entities`` entities (``None``: unknown, the fitted one)."""
        if not self.size_slope or kb_entities is None or kb_entities < 1:
            return self.threshold
        assert self.size_range is not None and self.size_reference is not None
        n = min(max(int(kb_entities), self.size_range[0]), self.size_range[1])
        return float(min(max(self.threshold + self.size_slope * math.log(n / self.size_reference), 0.0), 1.0))

    def fitted_at(self, threshold: float, kb_entities: int | None) -> "NilClass":
        """This class with ``threshold`` fitted on a KB of ``kb_entities`` entities: the size rule
        is dropped (the threshold is that KB's own) unless the KB is the reference one."""
        if kb_entities is None or kb_entities == self.size_reference:
            return replace(self, threshold=threshold)
        return replace(self, threshold=threshold, size_slope=0.0, size_reference=None, size_range=None)

    def covers(self, ran: Iterable[str]) -> bool:
        """Whether a mention for which the signals ``ran`` ran belongs to the class."""
        ran = set(ran)
        return bool(ran) and ran <= set(self.signals)


def _threshold(t: Any) -> float:
    if isinstance(t, bool) or not isinstance(t, numbers.Real) or not 0.0 <= float(t) <= 1.0 + 1e-6:
        raise InputError(Errors.E410.format(reason=f"a NIL threshold must be a number in [0, 1], got {t!r}"))
    return float(t)


@dataclass(frozen=True)
class Fusion:
    """Calibrated weighted-mean fusion with gates and a NIL threshold (immutable).

    Attributes:
        calibration: key (``"signal"`` or ``"signal:backend"``) -> its calibration.
        nil_threshold: a best fused score below it answers NIL (unless a NIL class covers the
            mention).
        nil_classes: mentions with thresholds of their own (:class:`NilClass`; the first
            that covers a mention's signals decides).
        name: where the parameters come from (a shipped set's name or a file path).
        backends: signal -> backend the parameters were set or fitted for.
    """

    calibration: Mapping[str, SignalCalibration] = field(default_factory=lambda: dict(_shipped(SHIPPED[0]).calibration))
    nil_threshold: float = 0.4
    name: str = "default"
    backends: Mapping[str, str] = field(default_factory=dict)
    nil_classes: tuple[NilClass, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "nil_classes", tuple(self.nil_classes))

    def nil_class(self, ran: Iterable[str]) -> NilClass | None:
        """The NIL class of a mention for which the signals ``ran`` ran (``None``: the default)."""
        ran = list(ran)
        return next((c for c in self.nil_classes if c.covers(ran)), None)

    def nil_threshold_for(self, ran: Iterable[str], kb_entities: int | None = None) -> float:
        """The NIL threshold of a mention for which the signals ``ran`` ran, in a KB of
        ``kb_entities`` entities (a class's size rule; ``None``: not applied)."""
        c = self.nil_class(ran)
        return c.threshold_at(kb_entities) if c is not None else self.nil_threshold

    def cal(self, signal: str, backend: str | None = None) -> SignalCalibration | None:
        """The calibration of ``signal`` for ``backend`` (``"signal:backend"`` first)."""
        if backend is not None and f"{signal}:{backend}" in self.calibration:
            return self.calibration[f"{signal}:{backend}"]
        return self.calibration.get(signal)

    def calibrates(self, signal: str) -> bool:
        """Whether ``signal`` has a calibration here, for any backend (``"signal"`` or
        ``"signal:backend"``): without one its scores add nothing to a fused score."""
        return any(k == signal or k.startswith(signal + ":") for k in self.calibration)

    def fuse(self, signals: Mapping[str, float], unverified: Iterable[str] = (),
             backends: Mapping[str, str] | None = None) -> tuple[float, dict[str, float]]:
        """Fused score of one candidate from its applicable signals' raw scores.

        ``unverified``: signals that ran for the mention but have nothing for this entity;
        those with a ``missing_prior`` count with that probability. ``backends`` maps a signal
        to the backend that produced it (for backend-specific calibrations).
        Returns ``(fused, probs)`` where ``probs`` are the per-signal calibrated probabilities.
        A signal whose ``yields_to`` names a signal in ``signals`` is left out (not in
        ``probs`` either). A candidate with no applicable mean signal gets 0.
        """
        num = den = 0.0
        gate = 1.0
        probs: dict[str, float] = {}
        backends = backends or {}
        for name, x in signals.items():
            cal = self.cal(name, backends.get(name))
            if cal is None or cal.yields_in(signals):
                continue
            p = float(cal.prob(x))
            probs[name] = p
            if cal.gate:
                gate *= p
                continue
            num += cal.weight * p
            den += cal.weight
        for name in unverified:
            cal = self.cal(name, backends.get(name))
            if cal is None or cal.missing_prior is None or name in signals or cal.gate:
                continue
            probs[name] = cal.missing_prior
            num += cal.weight * cal.missing_prior
            den += cal.weight
        return ((num / den) * gate if den > 0 else 0.0), probs

    def with_nil_threshold(self, threshold: float) -> "Fusion":
        """A copy with one NIL threshold for every mention (its NIL classes dropped)."""
        return replace(self, nil_threshold=_threshold(threshold), nil_classes=())

    # -- learning --------------------------------------------------------------------------
    def fit(self, examples: Iterable[tuple[Mapping[str, float], bool]], backends: Mapping[str, str] | None = None,
            l2: float = 1.0, iters: int = 100, min_class: int = 5) -> "Fusion":
        """A new fusion whose signals are calibrated on labelled ``(raw signals, is_match)`` pairs.

        Per (non-gate) signal: a 1-D logistic regression of is_match on the raw score
        (:func:`~pixlink.vecmath.fit_logistic`: maximum likelihood to convergence, ``l2`` a
        penalty on the standardised slope against the summed log-loss) gives ``slope`` and
        ``center``; the weight is the signal's ranking quality, ``max(AUC - 0.5, 0.01) * 4``.
        The fitted entry is written under ``"signal:backend"`` when ``backends`` names the
        signal's backend (so it is the one the linker looks up for that backend, not shadowed by
        an older backend-specific entry), else under ``"signal"``; ``missing_prior`` and ``gate``
        are kept from the entry it replaces. Signals with fewer than ``min_class`` positive or
        negative examples keep their calibration; a signal is not fitted on the examples where it
        yields to another.
        """
        backends = dict(backends or {})
        per: dict[str, tuple[list[float], list[int]]] = {}
        for sig, y in examples:
            for name, x in sig.items():
                old = self.cal(name, backends.get(name))
                if old is not None and old.yields_in(sig):
                    continue  # left out of this candidate's fused score: not fitted on it either
                xs, ys = per.setdefault(name, ([], []))
                xs.append(float(x))
                ys.append(int(bool(y)))
        new = dict(self.calibration)
        for name, (xs, ys) in per.items():
            old = self.cal(name, backends.get(name))
            if old is not None and old.gate:
                continue
            x = np.asarray(xs)
            y = np.asarray(ys, dtype=np.float64)
            if y.sum() < min_class or (1 - y).sum() < min_class:
                continue
            slope, center = fit_logistic(x, y, l2=l2, iters=iters)
            a = auc(x, y)
            weight = max(a - 0.5, 0.01) * 4.0
            key = f"{name}:{backends[name]}" if backends.get(name) else name
            new[key] = SignalCalibration(center=float(center), slope=float(slope), weight=float(weight),
                                         missing_prior=old.missing_prior if old else None,
                                         yields_to=old.yields_to if old else ())
        return replace(self, calibration=new, backends={**dict(self.backends), **backends}, name=f"{self.name}+fit")

    def calibrate_nil(self, top_scores: Sequence[float], top_correct: Sequence[bool],
                      gold_is_nil: Sequence[bool], nil_class: str | None = None,
                      kb_entities: int | None = None) -> "Fusion":
        """A copy with the NIL threshold that maximises accuracy over labelled mentions (that
        of the NIL class named ``nil_class`` when given, the default one otherwise; the
        mentions should then be the class's). ``kb_entities``: the size of the KB the mentions
        were linked in (a class fitted on another KB than its reference drops its size rule,
        :meth:`NilClass.fitted_at`).

        For each mention: ``top_scores`` the best fused score, ``top_correct`` whether the top
        candidate is the gold entity, ``gold_is_nil`` whether the gold answer is NIL. A
        mention is right when (score >= t and top is correct) or (score < t and gold is NIL).
        Among equally accurate thresholds the one in the middle of the widest gap is taken.
        """
        s = np.asarray(top_scores, dtype=np.float64)
        c = np.asarray(top_correct, dtype=bool)
        n = np.asarray(gold_is_nil, dtype=bool)
        if len(s) == 0:
            raise InputError(Errors.E410.format(reason="no labelled mentions to calibrate on"))
        edges = np.unique(np.concatenate([s, [0.0, 1.0 + 1e-6]]))
        best_acc, best = -1.0, [self.nil_threshold]
        for t in edges:
            acc = float(np.mean(np.where(s >= t, c, n)))
            if acc > best_acc + 1e-12:
                best_acc, best = acc, [float(t)]
            elif abs(acc - best_acc) <= 1e-12:
                best.append(float(t))
        # thresholds between two consecutive scores are equivalent: take the middle of the gap
        # below the first best edge, so that a score a little under a right link is not cut
        t = best[0]
        below = s[s < t]
        if len(below):
            t = (t + float(below.max())) / 2.0
        t = min(t, 1.0)
        if nil_class is None:
            return replace(self, nil_threshold=_threshold(t))
        if not any(c.name == nil_class for c in self.nil_classes):
            raise InputError(Errors.E410.format(reason=f"no NIL class {nil_class!r}; classes: "
                                                       f"{[c.name for c in self.nil_classes]}"))
        return replace(self, nil_classes=tuple(c.fitted_at(t, kb_entities) if c.name == nil_class else c
                                               for c in self.nil_classes))

    # -- persistence -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = {"name": self.name, "backends": dict(self.backends), "nil_threshold": self.nil_threshold,
             "calibration": {k: asdict(v) for k, v in self.calibration.items()}}
        if self.nil_classes:
            d["nil_classes"] = [asdict(c) for c in self.nil_classes]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], name: str | None = None) -> "Fusion":
        try:
            cal = {k: SignalCalibration(**v) for k, v in d["calibration"].items()}
            classes = tuple(NilClass(**c) for c in d.get("nil_classes") or ())
            return cls(calibration=cal, nil_threshold=_threshold(d["nil_threshold"]), nil_classes=classes,
                       name=str(name or d.get("name") or "file"), backends=dict(d.get("backends") or {}))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError(Errors.E410.format(reason=f"fusion parameters are malformed ({exc!r})")) from exc

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "Fusion":
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(Errors.E410.format(reason=f"cannot read {path}: {exc}")) from exc
        return cls.from_dict(d, name=str(path))

    @classmethod
    def shipped(cls, name: str = SHIPPED[0]) -> "Fusion":
        """The shipped parameters ``name`` (one of :data:`SHIPPED`)."""
        if name not in SHIPPED:
            raise InputError(Errors.E410.format(reason=f"no shipped fusion {name!r}; shipped: {SHIPPED}"))
        return _shipped(name)

    @classmethod
    def for_backends(cls, backends: Mapping[str, str]) -> "Fusion":
        """The shipped parameters made for the most of these ``signal -> backend`` pairs (the
        default set, ``offline``, when none matches)."""
        best, best_n = SHIPPED[0], 0
        for name in SHIPPED:
            f = _shipped(name)
            n = sum(1 for s, b in backends.items() if f.backends.get(s) == b)
            if n > best_n:
                best, best_n = name, n
        return _shipped(best)


_CACHE: dict[str, Fusion] = {}


def _shipped(name: str) -> Fusion:
    if name not in _CACHE:
        text = resources.files("pixlink.link").joinpath("data", "fusion", f"{name}.json").read_text()
        _CACHE[name] = Fusion.from_dict(json.loads(text), name=name)
    return _CACHE[name]
