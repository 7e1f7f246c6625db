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


# ------------------------------------------------------------------------------------------------
# what a training run does around its model
# ------------------------------------------------------------------------------------------------


@dataclass
class Setup:
    """A training run's inputs, prepared by :func:`prepare`: the output folder, the clock, the
    device and profile, the KB with every entity (``row``: id -> position), the usable mentions
    of each part (``parts``, subsampled to ``max_train`` / ``max_dev``), what was left out and
    why, and the gold entities' positions (``gold``)."""

    out: Path
    clock: Clock
    device: str
    profile: Any
    kb: Any
    entities: list
    row: dict[str, int]
    parts: dict[str, list]
    why: dict[str, dict[str, int]]
    gold: dict[str, np.ndarray]

    def data(self, kb_dir: str | Path, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """The ``data`` block of a checkpoint: per part its path (from ``extra``), hash, size and
        what was left out; the KB's path, build and size."""
        from .data import data_hash

        out: dict[str, Any] = {}
        for k, v in self.parts.items():
            out[k] = {**(extra or {}).get(k, {}), "hash": data_hash(v), "n": len(v), "left_out": self.why.get(k, {})}
        out["kb"] = {"path": str(Path(kb_dir).resolve()), "build_id": self.kb.build_id, "n_entities": len(self.entities)}
        return out


def check_out(out: Path, resume: bool, overwrite: bool) -> None:
    """E776 when ``out`` holds a trained model and neither ``resume`` nor ``overwrite`` is set;
    ``overwrite`` removes the model, its results and the seeds' folders."""
    import shutil

    if (out / "config.json").exists() or (out / "results.json").exists():
        if overwrite:
            for name in ("model.safetensors", "config.json", "results.json"):
                if (out / name).exists():
                    (out / name).unlink()
            for d in out.glob("seed-*"):
                shutil.rmtree(d)
        elif not resume:
            raise InputError(Errors.E776.format(path=str(out)))


def prepare(opts: CommonOptions, train: Sequence[Any], dev: Sequence[Any], test: Sequence[Any] | None,
            kb_dir: str | Path, out: str | Path, profile: Any, resume: bool, overwrite: bool,
            max_kb_entities: int) -> Setup:
    """Check the options and the output folder, open the KB (every entity is ranked: E771 above
    ``max_kb_entities``), keep the usable mentions (:func:`pixlink.train.data.usable`)."""
    from ..kb import KB
    from ..models import Profile
    from .data import subsample, usable

    opts.check()
    out = Path(out)
    check_out(out, resume, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    device = torch_setup(opts)
    if isinstance(profile, Profile):
        prof = profile
    else:
        prof = Profile(profile, device=opts.device) if opts.device else Profile(profile)
    kb = KB.open(kb_dir)
    if len(kb) > max_kb_entities:
        raise InputError(Errors.E771.format(what=f"the KB {kb_dir}", reason=f"{len(kb)} entities; training ranks every "
                                                                            f"entity and takes at most {max_kb_entities}"))
    entities = list(kb.iter_entities())
    row = {e.id: i for i, e in enumerate(entities)}
    tr, why_tr = usable(train, kb)
    dv, why_dv = usable(dev, kb)
    tr, dv = subsample(tr, opts.max_train), subsample(dv, opts.max_dev)
    if not tr or not dv:
        raise InputError(Errors.E771.format(what="train/dev", reason=f"{len(tr)} train and {len(dv)} dev mentions have "
                                                                     f"their gold in the KB (left out: {why_tr}, {why_dv})"))
    parts: dict[str, list] = {"train": tr, "dev": dv}
    why = {"train": why_tr, "dev": why_dv}
    if test is not None:
        te, why["test"] = usable(test, kb)
        if te:
            parts["test"] = te
    gold = {k: np.array([row[m.gold] for m in v], dtype=np.int64) for k, v in parts.items()}
    return Setup(out, Clock(), device, prof, kb, entities, row, parts, why, gold)


def train_seed(seed: int, opts: CommonOptions, model: Any, sdir: Path, info: dict[str, Any], n_train: int,
               step: Any, dev_eval: Any, *, label: str, clock: Clock, resume: bool = False, progress: bool = True,
               initial: dict[str, float] | None = None) -> dict[str, Any]:
    """The epochs of one seed: shuffle, ``step(model, idx) -> loss`` per batch (AdamW), the dev
    figures ``dev_eval(model)`` after each epoch, the checkpoint of every better epoch, the
    resumable state after each epoch, ``patience``. ``initial``: the untrained model's dev
    figures (epoch 0 then counts as a candidate for the best, and is saved).

    Returns ``{"best_epoch", "epochs" (per-epoch records), "samples_per_second"}``."""
    from ..link.rerank import save_checkpoint
    from ..progress import progress as make_progress

    seed_all(seed)
    optim = make_optimizer(model, opts.lr, opts.weight_decay)
    sdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    start, history = 1, []
    best_val = select_value(initial, opts.select) if initial is not None else -np.inf
    best_epoch = 0
    if resume:
        st = load_state(sdir / "state", model, optim)
        if st is not None:
            start = int(st["epoch"]) + 1
            history = list(st.get("history") or [])
            best_val, best_epoch = float(st.get("best_val", best_val)), int(st.get("best_epoch", 0))
            if st.get("rng") is not None:
                rng.bit_generator.state = st["rng"]  # the shuffles go on as in an uninterrupted run
            log.info("%s seed %d: resuming after epoch %d", label, seed, start - 1)
    if initial is not None and best_epoch == 0 and not (sdir / "model.safetensors").exists():
        save_checkpoint(sdir, model, {**info, "seed": seed, "best": {"epoch": 0, "dev": initial}, "epochs": history})
    train_seconds, seen, stale = 0.0, 0, 0
    with make_progress(disable=not progress) as bar:
        task = bar.add_task(f"{label} seed {seed}", total=opts.epochs, rate="", completed=start - 1)
        for epoch in range(start, opts.epochs + 1):
            model.train()
            order = rng.permutation(n_train)
            losses = []
            t0 = time.perf_counter()
            for b in range(0, n_train, opts.batch_size):
                loss = step(model, order[b:b + opts.batch_size])
                optim.zero_grad()
                loss.backward()
                optim.step()
                losses.append(float(loss.detach()))
            dt = time.perf_counter() - t0
            train_seconds += dt
            seen += n_train
            model.eval()
            clock.start("dev")
            fig = dev_eval(model)
            clock.stop("dev")
            rec = {"epoch": epoch, "loss": float(np.mean(losses)), "seconds": round(dt, 3),
                   "samples_per_second": round(n_train / dt, 2) if dt > 0 else None, "dev": fig}
            history.append(rec)
            with open(sdir / "epochs.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(rec) + "\n")
            val = select_value(fig, opts.select)
            log.info("%s seed %d epoch %d: loss %.4f dev %s %.4f", label, seed, epoch, rec["loss"], opts.select, val)
            if val > best_val:
                best_val, best_epoch, stale = val, epoch, 0
                save_checkpoint(sdir, model, {**info, "seed": seed, "best": {"epoch": epoch, "dev": fig}, "epochs": history})
            else:
                stale += 1
            save_state(sdir / "state", model, optim, epoch, {"history": history, "best_val": best_val,
                                                              "best_epoch": best_epoch, "rng": rng.bit_generator.state})
            bar.update(task, advance=1, description=f"{label} seed {seed} (dev {opts.select} {val:.4f})")
            if opts.patience and stale >= opts.patience:
                log.info("%s seed %d: no better dev %s for %d epochs; stopping", label, seed, opts.select, stale)
                break
    if not (sdir / "model.safetensors").exists():
        raise InputError(Errors.E775.format(path=str(sdir), reason="no epoch was trained (epochs already done?)"))
    return {"best_epoch": best_epoch, "epochs": history,
            "samples_per_second": round(seen / train_seconds, 2) if train_seconds > 0 else None}


def finish_seed(sdir: Path, dev_scores: Any, test_eval: Any | None, device: str = "cpu") -> dict[str, Any]:
    """After a seed's epochs: its best checkpoint scores dev (``dev_scores(model) -> (figures,
    {"pos", "neg"})``), is calibrated on those scores and scores test (``test_eval(model)``);
    the checkpoint is written again with ``calibration`` (and ``test``). Returns ``{"dev",
    "test"?, "calibration"}``."""
    from ..link.rerank import load_checkpoint, save_checkpoint

    cfg, model = load_checkpoint(sdir, device)
    dev_fig, sc = dev_scores(model)
    cal = calibration(sc["pos"], sc["neg"])
    test_fig = test_eval(model) if test_eval is not None else None
    save_checkpoint(sdir, model, {**{k: v for k, v in cfg.items() if k not in ("format", "pixlink_version")},
                                  "calibration": cal, **({"test": test_fig} if test_fig else {})})
    return {"dev": dev_fig, **({"test": test_fig} if test_fig else {}), "calibration": cal}


def finish(setup: Setup, runs: list[dict[str, Any]], select: str, results: dict[str, Any]) -> dict[str, Any]:
    """The best seed on dev becomes the model (its files copied into ``out``); the figures over
    seeds (mean +- sd), the samples per second and the clock join ``results``, written to
    ``out/results.json``."""
    import shutil

    best = max(runs, key=lambda r: select_value(r["dev"], select))
    for name in ("model.safetensors", "config.json"):
        shutil.copyfile(setup.out / f"seed-{best['seed']}" / name, setup.out / name)
    sps = [r["samples_per_second"] for r in runs if r.get("samples_per_second")]
    out = {"out": str(setup.out), "best_seed": best["seed"], **results, "seeds": runs,
           "dev": mean_sd([r["dev"] for r in runs]),
           **({"test": mean_sd([r["test"] for r in runs])} if all("test" in r for r in runs) else {}),
           "train_samples_per_second": round(float(np.mean(sps)), 2) if sps else None,
           "seconds": setup.clock.t, "device": setup.device}
    write_json(setup.out / "results.json", out)
    setup.kb.close()
    return out


def write_json(path: Path, obj: Any) -> None:
    from ..io import dumps

    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(dumps(obj, indent=True) + "\n", encoding="utf-8")
    tmp.replace(path)


__all__ = ["CommonOptions", "options_from", "torch_setup", "seed_all", "make_optimizer", "rank_of_gold",
           "ranking_figures", "select_value", "calibration", "mean_sd", "save_state", "load_state", "Clock",
           "write_json", "KS", "Setup", "prepare", "check_out", "train_seed", "finish_seed", "finish"]
