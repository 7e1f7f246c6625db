"""Small numeric helpers shared by every layer: L2 normalisation, the logistic function, AUC.

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
