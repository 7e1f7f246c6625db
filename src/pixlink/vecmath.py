"""Small numeric helpers shared by every layer: L2 normalisation, the logistic function, AUC,
a 1-D logistic fit.

Shapes: vectors are ``(D,)`` or ``(N, D)`` float arrays; normalisation is along the last axis.
"""

from __future__ import annotations

import numpy as np


def l2_normalise(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """``x`` (``(D,)`` or ``(N, D)``) divided by its L2 norm along the last axis, as float32.

    A zero row stays zero (its norm is clamped to ``eps``), never NaN.
    """
    a = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(a, axis=-1, keepdims=True)
    return a / np.maximum(n, eps)


def sigmoid(z: np.ndarray | float) -> np.ndarray:
    """The logistic function, clipped so that large ``|z|`` never overflows."""
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(z, dtype=np.float64), -50, 50)))


def auc(x: np.ndarray, y: np.ndarray) -> float:
    """ROC AUC of scores ``x`` for binary labels ``y`` by the rank-sum formula (ties get
    average ranks). ``nan`` when ``y`` has only one class."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    npos = y.sum()
    nneg = len(y) - npos
    if npos == 0 or nneg == 0:
        return float("nan")
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
    return float((ranks[y == 1].sum() - npos * (npos + 1) / 2) / (npos * nneg))


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, iters: int = 100,
                 tol: float = 1e-10) -> tuple[float, float]:
    """``(slope, center)`` of ``P(y = 1 | x) = sigmoid(slope * (x - center))`` by penalised
    maximum likelihood (Newton's method on the standardised score, run until the step is below
    ``tol`` or ``iters`` steps).

    The penalty ``l2 * w**2 / 2`` on the standardised slope ``w`` is added to the *summed*
    log-loss (a Gaussian prior of variance ``1 / l2``), so its pull fades as examples grow and
    only keeps the fit finite when the classes separate; the intercept is not penalised.

    Args:
        x: ``(N,)`` raw scores. y: ``(N,)`` labels in {0, 1}; both classes present.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    mu, sd = float(x.mean()), float(x.std()) + 1e-9
    z = (x - mu) / sd
    X = np.stack([z, np.ones_like(z)], axis=1)
    theta = np.zeros(2)
    reg = np.diag([l2, 0.0])

    def loss(t: np.ndarray) -> float:
        a = X @ t  # log(1 + e^a) - y a, summed, without overflow; plus the penalty
        return float(np.sum(np.logaddexp(0.0, a) - y * a) + 0.5 * l2 * t[0] ** 2)

    current = loss(theta)
    for _ in range(iters):
        p = sigmoid(X @ theta)
        grad = X.T @ (p - y) + reg @ theta
        hess = (X * (p * (1 - p))[:, None]).T @ X + reg + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        for _ in range(30):  # Newton's step, halved until the loss does not rise (it is convex)
            new = loss(theta - step)
            if new <= current + 1e-12:
                break
            step = step / 2.0
        theta, current = theta - step, new
        if float(np.abs(step).max()) < tol:
            break
    w, b = float(theta[0]), float(theta[1])
    slope = w / sd
    center = mu - b * sd / w if abs(w) > 1e-9 else mu
    return slope, center
