"""What both trainers share: options, the optimiser, ranking figures, the score calibration,
resumable state, and the mean +- sd over seeds.

The optimiser is MIMIC/IIER's: AdamW, betas (0.9, 0.999), eps 1e-4, weight decay 1e-4 except on
biases and LayerNorm weights. Resumable state (``<out>/seed-<s>/state/``) is the last epoch's
weights, the optimiser's moments and the epoch counter, as safetensors + JSON (no pickles); a
run started again with ``resume=True`` continues after the last finished epoch.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..errors import Errors, InputError
from ..log import get_logger

log = get_logger("pixlink.train")

KS = (1, 3, 5, 10, 20)
"""The k of Hits@k reported per epoch (MIMIC's table: 1, 3, 5; and 10, 20)."""


@dataclass
class CommonOptions:
    """Options both trainers take (saved in the checkpoint's ``config.json``).

    Attributes:
        epochs: passes over the training mentions (IIER/MIMIC: 20).
        batch_size: mentions per step (IIER/MIMIC: 128); the in-batch negatives are the other
            mentions' gold entities.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay (not on biases and norms).
        seeds: one training per seed; the figures are reported as mean +- sd over them, and
            the best seed on dev is kept as the model.
        select: the dev figure that picks the best epoch (``mrr`` or ``hits@1``).
        patience: stop a seed after this many epochs without a better dev figure (0: never).
        max_train: use at most this many training mentions (drawn with seed 0); None = all.
        max_dev: likewise for dev.
        device: torch device (``auto``/``cpu``/``cuda[:N]``; None = PIXLINK_DEVICE, else auto).
        threads: torch CPU threads (None: torch's default).
    """

    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-5
    weight_decay: float = 1e-4
    seeds: tuple[int, ...] = (0,)
    select: str = "mrr"
    patience: int = 0
    max_train: int | None = None
    max_dev: int | None = None
    device: str | None = None
    threads: int | None = None

    def check(self) -> None:
        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(Errors.E770.format(option=name, value=v, reason="an integer >= 1"))
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise InputError(Errors.E770.format(option="lr", value=self.lr, reason="a number > 0"))
        if self.weight_decay < 0:
            raise InputError(Errors.E770.format(option="weight_decay", value=self.weight_decay, reason=">= 0"))
        self.seeds = tuple(int(s) for s in self.seeds)
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise InputError(Errors.E770.format(option="seeds", value=self.seeds, reason="distinct integers, at least one"))
        if self.select not in ("mrr", "hits@1"):
            raise InputError(Errors.E770.format(option="select", value=self.select, reason="mrr or hits@1"))
        for name in ("max_train", "max_dev", "threads"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise InputError(Errors.E770.format(option=name, value=v, reason="an integer >= 1 or none"))
        if self.patience < 0:
            raise InputError(Errors.E770.format(option="patience", value=self.patience, reason=">= 0"))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["seeds"] = list(self.seeds)
        return d


def options_from(cls: type, values: Mapping[str, Any]) -> Any:
    """``cls(**values)`` with E770 naming an unknown option."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise InputError(Errors.E770.format(option=unknown, value="?", reason=f"known options: {sorted(known)}"))
    return cls(**values)


# ------------------------------------------------------------------------------------------------
# torch set-up
# ------------------------------------------------------------------------------------------------


def torch_setup(opts: CommonOptions) -> str:
    """Resolve the device and set the thread count; returns the device string."""
    import torch

    from ..device import resolve_device

    if opts.threads is not None:
        torch.set_num_threads(int(opts.threads))
    return resolve_device(opts.device)


def seed_all(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def make_optimizer(model: Any, lr: float, weight_decay: float) -> Any:
    """MIMIC/IIER's AdamW: no decay on biases and LayerNorm weights; betas (0.9, 0.999), eps 1e-4."""
    import torch

    norm_params = {id(p) for m in model.modules() if isinstance(m, torch.nn.LayerNorm) for p in m.parameters()}
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if name.endswith("bias") or id(p) in norm_params else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-4)


# ------------------------------------------------------------------------------------------------
# figures
# ------------------------------------------------------------------------------------------------


def rank_of_gold(scores: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """1-based rank of each row's gold column (``gold[i]`` = column, -1 = not among the
    columns: rank inf); ties count against the gold (pessimistic, as ``eval link``)."""
    out = np.full(len(scores), np.inf)
    for i, g in enumerate(gold):
        if g < 0:
            continue
        s = scores[i]
        sg = s[g]
        if np.isnan(sg):
            continue
        out[i] = 1 + np.sum(s > sg) + np.sum(s == sg) - 1
    return out


def ranking_figures(ranks: np.ndarray, ks: Sequence[int] = KS, cut: int | None = None) -> dict[str, float]:
    """Hits@k and MRR of gold ranks (``inf`` = not ranked). With ``cut`` (a ranking of the top
    ``cut`` candidates only) MRR is named ``mrr@cut``."""
    r = np.asarray(ranks, dtype=np.float64)
    out: dict[str, float] = {"n": int(len(r))}
    for k in ks:
        out[f"hits@{k}"] = float(np.mean(r <= k)) if len(r) else float("nan")
    rr = np.where(np.isfinite(r), 1.0 / r, 0.0)
    out["mrr" if cut is None else f"mrr@{cut}"] = float(rr.mean()) if len(r) else float("nan")
    return out


def select_value(fig: Mapping[str, float], select: str) -> float:
    """The dev figure ``select`` (``mrr`` matches ``mrr@k`` too)."""
    if select in fig:
        return float(fig[select])
    if select == "mrr":
        for k, v in fig.items():
            if k.startswith("mrr@"):
                return float(v)
    raise KeyError(select)


def calibration(pos: Iterable[float], neg: Iterable[float]) -> dict[str, float]:
    """The head's score calibration on dev (:meth:`pixlink.link.fusion.Fusion.fit` on raw scores
    of gold entities vs. the best-ranked wrong ones): ``{"center", "slope", "weight", "auc"}``."""
    from ..link.fusion import Fusion, SignalCalibration
    from ..link.rerank import DEFAULT_CALIBRATION, RERANK_SIGNAL
    from ..vecmath import auc

    xs = [(float(x), True) for x in pos] + [(float(x), False) for x in neg]
    xs = [(x, y) for x, y in xs if math.isfinite(x)]
    base = Fusion(calibration={RERANK_SIGNAL: SignalCalibration(**DEFAULT_CALIBRATION)}, name="rerank")
    fitted = base.fit([({RERANK_SIGNAL: x}, y) for x, y in xs])
    cal = fitted.calibration[RERANK_SIGNAL]
    a = auc(np.array([x for x, _ in xs]), np.array([y for _, y in xs], dtype=float)) if xs else float("nan")
    return {"center": round(cal.center, 6), "slope": round(cal.slope, 6), "weight": round(cal.weight, 6),
            "auc": round(float(a), 6), "n_pos": sum(1 for _, y in xs if y), "n_neg": sum(1 for _, y in xs if not y)}


def mean_sd(runs: Sequence[Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """``{figure: {"mean", "sd", "n"}}`` over seeds (sd with n-1; 0 for one seed)."""
    keys = [k for k in runs[0] if isinstance(runs[0][k], (int, float)) and k != "n"] if runs else []
    out = {}
    for k in keys:
        vals = np.array([float(r[k]) for r in runs if k in r], dtype=np.float64)
        out[k] = {"mean": float(vals.mean()), "sd": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0, "n": int(len(vals))}
    return out


# ------------------------------------------------------------------------------------------------
# resumable state
# ------------------------------------------------------------------------------------------------


def save_state(path: Path, model: Any, optimizer: Any, epoch: int, info: dict[str, Any]) -> None:
    """Weights, AdamW moments and the epoch, as safetensors + JSON (renamed into place)."""
    import torch
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    steps = {}
    params = [p for g in optimizer.param_groups for p in g["params"]]
    for i, p in enumerate(params):
        st = optimizer.state.get(p)
        if not st:
            continue
        tensors[f"opt.{i}.exp_avg"] = st["exp_avg"].detach().cpu().contiguous()
        tensors[f"opt.{i}.exp_avg_sq"] = st["exp_avg_sq"].detach().cpu().contiguous()
        steps[str(i)] = float(st["step"].item() if torch.is_tensor(st["step"]) else st["step"])
    tmp = path / "state.safetensors.tmp"
    save_file(tensors, str(tmp))
    tmp.replace(path / "state.safetensors")
    meta = {"epoch": int(epoch), "steps": steps, **info}
    (path / "state.json.tmp").write_text(json.dumps(meta, indent=2, default=str))
    (path / "state.json.tmp").replace(path / "state.json")


def load_state(path: Path, model: Any, optimizer: Any) -> dict[str, Any] | None:
    """Restore what :func:`save_state` wrote; None when there is nothing to resume."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not (path / "state.json").is_file() or not (path / "state.safetensors").is_file():
        return None
    try:
        meta = json.loads((path / "state.json").read_text())
        tensors = load_file(str(path / "state.safetensors"))
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True)
    except (OSError, json.JSONDecodeError, SafetensorError, RuntimeError) as exc:
        raise InputError(Errors.E775.format(path=str(path), reason=str(exc)[:300])) from exc
    params = [p for g in optimizer.param_groups for p in g["params"]]
    for i, p in enumerate(params):
        if f"opt.{i}.exp_avg" in tensors:
            optimizer.state[p] = {"step": torch.tensor(meta["steps"][str(i)]),
                                  "exp_avg": tensors[f"opt.{i}.exp_avg"].to(p.device),
                                  "exp_avg_sq": tensors[f"opt.{i}.exp_avg_sq"].to(p.device)}
    return meta


class Clock:
    """Seconds spent per phase (features, training, evaluation), for the results."""

    def __init__(self) -> None:
        self.t: dict[str, float] = {}
        self._start: dict[str, float] = {}

    def start(self, name: str) -> None:
        self._start[name] = time.perf_counter()

    def stop(self, name: str) -> float:
        dt = time.perf_counter() - self._start.pop(name)
        self.t[name] = round(self.t.get(name, 0.0) + dt, 3)
        return dt


def write_json(path: Path, obj: Any) -> None:
    from ..io import dumps

    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(dumps(obj, indent=True) + "\n", encoding="utf-8")
    tmp.replace(path)


__all__ = ["CommonOptions", "options_from", "torch_setup", "seed_all", "make_optimizer", "rank_of_gold",
           "ranking_figures", "select_value", "calibration", "mean_sd", "save_state", "load_state", "Clock",
           "write_json", "KS"]
