"""Score fusion: per-signal calibration, weights, and the NIL decision.

Each signal ``s`` gives a raw score ``x`` for a (mention, entity) pair (a cosine, a face
similarity, a lexical match score). Fusion maps it to a calibrated probability that the pair
is a match, ``p_s = sigmoid(a_s * (x - c_s))``, and fuses the signals that *apply* to the entity
as a weighted mean::

    fused(e) = sum_s w_s * p_s(e) / sum_s w_s        over signals that ran and apply to e

A signal applies to an entity when the entity has something to compare with (an image signal
applies only to entities with images); a signal that did not run (no caption, no face in the
region) applies to none. The face signal is stricter: when a face was found in the region, an
entity with no face photo is *unverified* and gets the signal's ``missing_prior`` (0.3) in
place of a score, so that a name in the caption alone does not outrank a face that matches,
while an entity with no photo (Rose Leslie in the linking checks) can still be linked when
the caption names it. A decisive signal (a face match, or a face *mismatch*) dominates
through its weight. The NIL answer is given when the best fused score is below
``nil_threshold``.

Defaults are set by hand from measurements on the shared photos and documented in
docs/linking.md; :meth:`Fusion.fit` learns ``a_s, c_s`` (1-D logistic regression per signal)
and ``w_s`` (from each signal's discriminability) from labelled links, and
:meth:`Fusion.calibrate_nil` picks the threshold that maximises accuracy on labelled mentions
including NIL ones. Parameters save to and load from JSON.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..errors import Errors, InputError


@dataclass
class SignalCalibration:
    """``p = sigmoid(slope * (x - center))``, and the signal's weight in the fused mean.

    ``missing_prior``: the probability used when the signal ran for the mention but the entity
    has nothing to compare with (a face was found in the region, the entity has no face
    photo). ``None`` leaves the signal out for that entity instead.
    """

    center: float
    slope: float
    weight: float
    missing_prior: float | None = None

    def prob(self, x: np.ndarray | float) -> np.ndarray:
        z = self.slope * (np.asarray(x, dtype=np.float64) - self.center)
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


# Hand-set defaults (see docs/linking.md for the measurements behind them). A key
# "signal:backend" overrides "signal" for that backend: raw scores of different models live on
# different scales (a CLIP match is ~0.3, a ConSE match ~0.7).
# - face: cosine of dlib 128-d descriptors; on the shared photos the same person gives 0.94-1.00
#   and different people 0.78-0.89: the centre sits between.
# - v2v: cosine of image embeddings of region and entity image. EfficientNet-Lite's pooled
#   features are weak for instance matching (same flag in a scene 0.27-0.69, unrelated 0.3-0.5).
# - v2t: cosine in the joint image-text space. The offline ConSE bridge scores 0.4-0.6 for
#   anything vaguely related, so its centre is high and its weight low.
# - lexical: 1.0 for an exact label/alias match of a mention in the text, lower for BM25 hits.
# - dense_text: cosine of caption and entity text sentence embeddings.
# - type: 0 when the entity's P31 types do not fit what the region shows (a face, and the
#   entity is typed but not as a person); never positive evidence.
DEFAULT_CALIBRATION: dict[str, SignalCalibration] = {
    "face": SignalCalibration(center=0.915, slope=60.0, weight=4.0, missing_prior=0.3),
    "v2v": SignalCalibration(center=0.80, slope=20.0, weight=1.5),
    "v2v:efficientnet_lite": SignalCalibration(center=0.70, slope=15.0, weight=1.0),
    "v2t": SignalCalibration(center=0.27, slope=25.0, weight=1.0),
    "v2t:conse_efficientnet": SignalCalibration(center=0.65, slope=10.0, weight=0.5),
    "lexical": SignalCalibration(center=0.60, slope=12.0, weight=2.0),
    "dense_text": SignalCalibration(center=0.55, slope=10.0, weight=0.5),
    "type": SignalCalibration(center=0.5, slope=10.0, weight=1.0),
    "rerank": SignalCalibration(center=0.0, slope=1.0, weight=2.0),
}


@dataclass
class Fusion:
    """Calibrated weighted-mean fusion with a NIL threshold."""

    calibration: dict[str, SignalCalibration] = field(default_factory=lambda: dict(DEFAULT_CALIBRATION))
    nil_threshold: float = 0.4

    def cal(self, signal: str, backend: str | None = None) -> SignalCalibration | None:
        """The calibration of ``signal`` for ``backend`` (``"signal:backend"`` first)."""
        if backend is not None and f"{signal}:{backend}" in self.calibration:
            return self.calibration[f"{signal}:{backend}"]
        return self.calibration.get(signal)

    def fuse(self, signals: dict[str, float], unverified: Iterable[str] = (),
             backends: dict[str, str] | None = None) -> tuple[float, dict[str, float]]:
        """Fused score of one candidate from its applicable signals' raw scores.

        ``unverified``: signals that ran for the mention but have nothing for this entity;
        those with a ``missing_prior`` count with that probability. ``backends`` maps a signal
        to the backend that produced it (for backend-specific calibrations).
        Returns ``(fused, probs)`` where ``probs`` are the per-signal calibrated probabilities.
        A candidate with no applicable signal gets 0.
        """
        num = 0.0
        den = 0.0
        probs: dict[str, float] = {}
        backends = backends or {}
        for name, x in signals.items():
            cal = self.cal(name, backends.get(name))
            if cal is None:
                continue
            p = float(cal.prob(x))
            probs[name] = p
            num += cal.weight * p
            den += cal.weight
        for name in unverified:
            cal = self.cal(name, backends.get(name))
            if cal is None or cal.missing_prior is None or name in signals:
                continue
            probs[name] = cal.missing_prior
            num += cal.weight * cal.missing_prior
            den += cal.weight
        return (num / den if den > 0 else 0.0), probs

    # -- learning --------------------------------------------------------------------------
    def fit(self, examples: Iterable[tuple[dict[str, float], bool]], l2: float = 1e-2, iters: int = 500) -> "Fusion":
        """Learn each signal's calibration and weight from labelled (signals, is_match) pairs.

        Per signal: a 1-D logistic regression of is_match on the raw score (gradient descent
        with a small L2 penalty), giving ``slope`` and ``center``; the weight is the signal's
        ranking quality, ``max(AUC - 0.5, 0.01) * 4``. Signals with fewer than 5 positive and 5
        negative examples keep their current calibration.
        """
        per: dict[str, tuple[list[float], list[int]]] = {}
        for sig, y in examples:
            for name, x in sig.items():
                xs, ys = per.setdefault(name, ([], []))
                xs.append(float(x))
                ys.append(int(y))
        new = dict(self.calibration)
        for name, (xs, ys) in per.items():
            x = np.asarray(xs)
            y = np.asarray(ys, dtype=np.float64)
            if y.sum() < 5 or (1 - y).sum() < 5:
                continue
            mu, sd = x.mean(), x.std() + 1e-9
            z = (x - mu) / sd
            w, b = 0.0, 0.0
            for _ in range(iters):
                p = 1.0 / (1.0 + np.exp(-(w * z + b)))
                gw = np.mean((p - y) * z) + l2 * w
                gb = np.mean(p - y)
                w -= 1.0 * gw
                b -= 1.0 * gb
            slope = w / sd
            center = mu - b * sd / w if abs(w) > 1e-9 else mu
            weight = max(_auc(x, y) - 0.5, 0.01) * 4.0
            new[name] = SignalCalibration(center=float(center), slope=float(slope), weight=float(weight))
        self.calibration = new
        return self

    def calibrate_nil(self, top_scores: Sequence[float], top_correct: Sequence[bool], gold_is_nil: Sequence[bool]) -> float:
        """Pick the NIL threshold that maximises accuracy over labelled mentions.

        For each mention: ``top_scores`` the best fused score, ``top_correct`` whether the top
        candidate is the gold entity, ``gold_is_nil`` whether the gold answer is NIL. A
        mention is right when (score >= t and top is correct) or (score < t and gold is NIL).
        """
        s = np.asarray(top_scores, dtype=np.float64)
        c = np.asarray(top_correct, dtype=bool)
        n = np.asarray(gold_is_nil, dtype=bool)
        if len(s) == 0:
            raise InputError(Errors.E410.format(reason="no labelled mentions to calibrate on"))
        cands = np.unique(np.concatenate([s, s + 1e-6, [0.0, 1.0 + 1e-6]]))
        best_t, best_acc = self.nil_threshold, -1.0
        for t in cands:
            acc = float(np.mean(np.where(s >= t, c, n)))
            if acc > best_acc + 1e-12:
                best_t, best_acc = float(t), acc
        self.nil_threshold = best_t
        return best_t

    # -- persistence -----------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"nil_threshold": self.nil_threshold, "calibration": {k: asdict(v) for k, v in self.calibration.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "Fusion":
        try:
            cal = {k: SignalCalibration(**v) for k, v in d["calibration"].items()}
            return cls(calibration=cal, nil_threshold=float(d["nil_threshold"]))
        except (KeyError, TypeError) as exc:
            raise InputError(Errors.E410.format(reason=f"fusion parameters are malformed ({exc})")) from exc

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> "Fusion":
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(Errors.E410.format(reason=f"cannot read {path}: {exc}")) from exc


def _auc(x: np.ndarray, y: np.ndarray) -> float:
    """ROC AUC by the rank-sum formula (ties get average ranks)."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    sx = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sx[j + 1] == sx[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1
        i = j + 1
    npos = y.sum()
    nneg = len(y) - npos
    return float((ranks[y == 1].sum() - npos * (npos + 1) / 2) / (npos * nneg))
