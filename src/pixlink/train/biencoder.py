"""VNEL's bi-encoders: residual adapters on frozen encoders, trained with in-batch InfoNCE and
hard negatives (``pixlink train biencoder``).

Sun et al. (Findings of EMNLP 2022, "Visual Named Entity Linking: A New Dataset and A
Baseline") link a person box to a KB by frozen encoders whose outputs pass small residual
adapters ``F = f + ReLU(f W1) W2``, L2-normalised and compared by cosine, trained with a
contrastive (InfoNCE) loss. pixlink's version (:class:`pixlink.link.rerank.BiEncoderHead`):

* spaces by task (:data:`pixlink.link.rerank.TASKS`): V2VEL ``v2v``, V2TEL ``v2t``, V2VTEL
  ``v2v + v2t``; ``face``; ``text`` (``t2t``: the MEL text-only experiment);
* loss: for a batch of ``B`` mentions, the candidate entities are the batch's gold entities
  and each mention's ``hard_negatives`` best-ranked wrong entities under the frozen encoders
  (mined once from all KB entities: the same vectors ``pixlink kb embed`` indexes);
  ``L = CE(s(m, E_batch) / temperature, gold)``;
* ``W2`` starts at zero: epoch 0 *is* the frozen encoders, so the first dev line is the
  untrained model's;
* dev figures each epoch rank the gold among **all** KB entities (Hits@1/3/5/10/20, MRR); the
  best epoch is saved; several seeds give mean +- sd; the head's score is calibrated on dev
  for the linker's fusion.

Outputs in ``out``: ``model.safetensors`` + ``config.json`` (the best seed's best epoch; load
it with ``LinkerConfig(reranker=out)``), ``results.json``, and per seed ``seed-<s>/`` (its
checkpoint, ``epochs.jsonl``, and ``state/`` to resume).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import Errors, InputError
from ..log import get_logger
from ..types import Mention
from . import data as D
from . import features as FT
from .loop import (KS, Clock, CommonOptions, calibration, load_state, make_optimizer, mean_sd, rank_of_gold,
                   ranking_figures, save_state, seed_all, select_value, torch_setup, write_json)

log = get_logger("pixlink.train.biencoder")


@dataclass
class BiEncoderOptions(CommonOptions):
    """Options of :func:`train_biencoder` (and those of :class:`~pixlink.train.loop.CommonOptions`).

    Attributes:
        task: ``text``, ``v2vel``, ``v2tel``, ``v2vtel``, ``face`` or ``person``.
        spaces: the spaces, overriding ``task``.
        hidden: the adapters' hidden width.
        shared: one adapter for both sides of a space (VNEL: separate).
        temperature: InfoNCE temperature.
        hard_negatives: mined wrong entities added per mention to the batch's candidates.
        view: the mention's image view (``crop``, ``masked_crop``, ``red_box``, ``image``).
        crop_margin: the crop's margin (fraction of the box).
        max_kb_entities: refuse a KB larger than this (every entity is embedded and ranked).
    """

    lr: float = 1e-3
    task: str = "text"
    spaces: tuple[str, ...] | None = None
    hidden: int = 256
    shared: bool = False
    temperature: float = 0.05
    hard_negatives: int = 4
    view: str = "crop"
    crop_margin: float = 0.1
    max_kb_entities: int = 200_000

    def check(self) -> None:
        from ..link.rerank import SPACES, TASKS, VIEWS

        super().check()
        if self.spaces is None:
            if self.task not in TASKS:
                raise InputError(Errors.E770.format(option="task", value=self.task, reason=f"one of {sorted(TASKS)}"))
        else:
            self.spaces = tuple(self.spaces)
            bad = [s for s in self.spaces if s not in SPACES]
            if bad or not self.spaces:
                raise InputError(Errors.E770.format(option="spaces", value=list(self.spaces), reason=f"from {SPACES}"))
        if not self.temperature > 0:
            raise InputError(Errors.E770.format(option="temperature", value=self.temperature, reason="> 0"))
        if self.hard_negatives < 0 or self.hidden < 1:
            raise InputError(Errors.E770.format(option="hard_negatives/hidden", value=(self.hard_negatives, self.hidden),
                                                reason="hard_negatives >= 0, hidden >= 1"))
        if self.view not in VIEWS:
            raise InputError(Errors.E770.format(option="view", value=self.view, reason=f"one of {VIEWS}"))

    @property
    def space_list(self) -> tuple[str, ...]:
        from ..link.rerank import TASKS

        return tuple(self.spaces) if self.spaces is not None else TASKS[self.task]

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["spaces"] = list(self.spaces) if self.spaces is not None else None
        return d


# ------------------------------------------------------------------------------------------------


@dataclass
class _Side:
    """The frozen vectors of a set of mentions or entities: ``space -> (N, D)`` (NaN rows = absent)."""

    vecs: dict[str, np.ndarray]

    def take(self, idx: Sequence[int] | np.ndarray) -> dict[str, Any]:
        import torch

        return {s: torch.from_numpy(np.ascontiguousarray(v[np.asarray(idx)])) for s, v in self.vecs.items()}


def _features(spaces: Sequence[str], backends: dict[str, Any], mentions: dict[str, list[Mention]], entities: list,
              opts: BiEncoderOptions, cache_dir: Any, progress: bool, sizes: dict[str, int]) -> tuple[dict[str, _Side], _Side]:
    ent: dict[str, np.ndarray] = {}
    men: dict[str, dict[str, np.ndarray]] = {k: {} for k in mentions}
    for s in spaces:
        pk = FT.space_vectors(s, backends[s], "entity", entities, cache_dir=cache_dir, progress=progress)
        ent[s] = FT.unpack_vectors(pk.rows(np.arange(len(entities))))
        sizes[f"entity:{s}"] = pk.nbytes_on_disk()
        for part, ms in mentions.items():
            pm = FT.space_vectors(s, backends[s], "mention", ms, key_prefix=f"{D.data_hash(ms)}:", view=opts.view,
                                  margin=opts.crop_margin, cache_dir=cache_dir, progress=progress)
            men[part][s] = FT.unpack_vectors(pm.rows(np.arange(len(ms))))
            sizes[f"{part}:{s}"] = pm.nbytes_on_disk()
            if pm.missing:
                log.warning("%s: %d %s mentions could not be encoded for %s (first: %s)", part, len(pm.missing),
                            part, s, next(iter(pm.missing.values())))
    return {k: _Side(v) for k, v in men.items()}, _Side(ent)


def _frozen_scores(men: _Side, ent: _Side, idx: np.ndarray) -> np.ndarray:
    """Mean frozen cosine over the spaces both sides have: ``(len(idx), E)``."""
    total = None
    count = None
    for s, mv in men.vecs.items():
        m = np.nan_to_num(mv[idx])
        e = np.nan_to_num(ent.vecs[s])
        pm = ~np.isnan(mv[idx]).any(1)
        pe = ~np.isnan(ent.vecs[s]).any(1)
        ok = (pm[:, None] & pe[None, :]).astype(np.float32)
        c = (m @ e.T) * ok
        total = c if total is None else total + c
        count = ok if count is None else count + ok
    return total / np.maximum(count, 1.0)


def mine_hard_negatives(men: _Side, ent: _Side, gold: np.ndarray, k: int, chunk: int = 512) -> np.ndarray:
    """``(N, k)`` entity rows: each mention's ``k`` best-ranked wrong entities under the frozen
    encoders (-1 where fewer exist)."""
    n = len(gold)
    out = np.full((n, k), -1, dtype=np.int64)
    if k == 0:
        return out
    for s in range(0, n, chunk):
        idx = np.arange(s, min(n, s + chunk))
        sc = _frozen_scores(men, ent, idx)
        sc[np.arange(len(idx)), gold[idx]] = -np.inf
        top = np.argsort(-sc, axis=1)[:, :k]
        out[idx, : top.shape[1]] = top
    return out


def evaluate(head: Any, men: _Side, ent: _Side, gold: np.ndarray, chunk: int = 256, ks: Sequence[int] = KS,
             keep_scores: int = 0) -> tuple[dict[str, float], dict[str, Any]]:
    """Rank every mention's gold among all entities with the head; figures + raw scores of gold
    and of the ``keep_scores`` best wrong entities (for calibration)."""
    import torch

    with torch.inference_mode():
        e_emb = {}
        for s in head.spaces:
            if s in ent.vecs:
                e_emb[s] = head.embed("entity", s, torch.from_numpy(ent.vecs[s]))
        ranks = np.full(len(gold), np.inf)
        pos, neg = [], []
        for st in range(0, len(gold), chunk):
            idx = np.arange(st, min(len(gold), st + chunk))
            total = count = None
            for s, (e, pe) in e_emb.items():
                m, pm = head.embed("mention", s, torch.from_numpy(men.vecs[s][idx]))
                ok = (pm[:, None] & pe[None, :]).float()
                c = (m @ e.T) * ok
                total = c if total is None else total + c
                count = ok if count is None else count + ok
            sc = (total / count.clamp(min=1.0)).numpy()
            sc[count.numpy() == 0] = -np.inf
            ranks[idx] = rank_of_gold(sc, gold[idx])
            if keep_scores:
                for r, g in enumerate(gold[idx]):
                    row = sc[r]
                    pos.append(float(row[g]))
                    row2 = row.copy()
                    row2[g] = -np.inf
                    neg.extend(float(x) for x in np.sort(row2)[::-1][:keep_scores] if np.isfinite(x))
    return ranking_figures(ranks, ks), {"pos": pos, "neg": neg, "ranks": ranks}


def _check_out(out: Path, resume: bool, overwrite: bool) -> None:
    if (out / "config.json").exists() or (out / "results.json").exists():
        if overwrite:
            for name in ("model.safetensors", "config.json", "results.json"):
                if (out / name).exists():
                    (out / name).unlink()
            for d in out.glob("seed-*"):
                shutil.rmtree(d)
        elif not resume:
            raise InputError(Errors.E776.format(path=str(out)))


def _kb_entities(kb: Any, limit: int) -> list:
    n = len(kb)
    if n > limit:
        raise InputError(Errors.E771.format(what=f"the KB {kb.path}", reason=f"{n} entities; training ranks every "
                                                                             f"entity and takes at most {limit} "
                                                                             "(max_kb_entities)"))
    return list(kb.iter_entities())


def train_biencoder(
    train: Sequence[Mention], dev: Sequence[Mention], kb_dir: str | Path, out: str | Path,
    options: BiEncoderOptions | None = None, *, profile: Any = "offline", test: Sequence[Mention] | None = None,
    cache_dir: str | Path | None = None, progress: bool = True, resume: bool = False, overwrite: bool = False,
    data_info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train the bi-encoder (see the module docstring); returns the results (also written to
    ``out/results.json``)."""
    import torch

    from ..kb import KB
    from ..link.rerank import SPACE_ROLES, BiEncoderConfig, BiEncoderHead, save_checkpoint, space_model_ids
    from ..models import Profile
    from ..progress import progress as make_progress

    opts = options or BiEncoderOptions()
    opts.check()
    out = Path(out)
    _check_out(out, resume, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    clock = Clock()
    device = torch_setup(opts)
    prof = profile if isinstance(profile, Profile) else Profile(profile, device=opts.device) if opts.device else Profile(profile)
    kb = KB.open(kb_dir)
    entities = _kb_entities(kb, opts.max_kb_entities)
    row = {e.id: i for i, e in enumerate(entities)}
    tr, why_tr = D.usable(train, kb)
    dv, why_dv = D.usable(dev, kb)
    tr = D.subsample(tr, opts.max_train)
    dv = D.subsample(dv, opts.max_dev)
    if not tr or not dv:
        raise InputError(Errors.E771.format(what="train/dev", reason=f"{len(tr)} train and {len(dv)} dev mentions have "
                                                                     f"their gold in the KB (left out: {why_tr}, {why_dv})"))
    te, why_te = D.usable(test, kb) if test is not None else ([], {})
    spaces = opts.space_list
    backends = {s: prof.get(SPACE_ROLES[s]) for s in spaces}
    parts = {"train": tr, "dev": dv, **({"test": te} if te else {})}
    sizes: dict[str, int] = {}
    clock.start("features")
    men, ent = _features(spaces, backends, parts, entities, opts, cache_dir, progress, sizes)
    feat_seconds = clock.stop("features")
    gold = {k: np.array([row[m.gold] for m in v], dtype=np.int64) for k, v in parts.items()}
    clock.start("mining")
    hard = mine_hard_negatives(men["train"], ent, gold["train"], opts.hard_negatives)
    clock.stop("mining")
    dims = {s: int(ent.vecs[s].shape[1]) for s in spaces}
    head_cfg = BiEncoderConfig(dims=dims, hidden=opts.hidden, shared=opts.shared)
    features = {s: {"role": SPACE_ROLES[s], "model_ids": space_model_ids(s, backends[s])} for s in spaces}
    info = {
        "kind": "biencoder", "task": opts.task if opts.spaces is None else None, "head": head_cfg.to_dict(),
        "features": features, "view": opts.view, "crop_margin": opts.crop_margin, "frozen_encoders": True,
        "options": opts.to_dict(), "profile": getattr(prof, "name", str(profile)), "device": device,
        "data": {
            "train": {**(data_info or {}).get("train", {}), "hash": D.data_hash(tr), "n": len(tr), "left_out": why_tr},
            "dev": {**(data_info or {}).get("dev", {}), "hash": D.data_hash(dv), "n": len(dv), "left_out": why_dv},
            "kb": {"path": str(Path(kb_dir).resolve()), "build_id": kb.build_id, "n_entities": len(entities)},
        },
    }
    if te:
        info["data"]["test"] = {**(data_info or {}).get("test", {}), "hash": D.data_hash(te), "n": len(te), "left_out": why_te}

    runs = []
    for seed in opts.seeds:
        runs.append(_train_seed(seed, opts, head_cfg, info, men, ent, gold, hard, out / f"seed-{seed}", resume,
                                progress, clock, make_progress))
    best = max(runs, key=lambda r: select_value(r["dev"], opts.select))
    for name in ("model.safetensors", "config.json"):
        shutil.copyfile(out / f"seed-{best['seed']}" / name, out / name)
    n_feat_items = len(entities) + sum(len(v) for v in parts.values())
    results = {
        "kind": "biencoder", "task": info["task"], "spaces": list(spaces), "out": str(out), "best_seed": best["seed"],
        "untrained": {"dev": runs[0]["untrained_dev"], **({"test": runs[0]["untrained_test"]} if te else {})},
        "seeds": runs,
        "dev": mean_sd([r["dev"] for r in runs]),
        **({"test": mean_sd([r["test"] for r in runs])} if te else {}),
        "data": info["data"], "options": opts.to_dict(),
        "features": {"seconds": round(feat_seconds, 3), "bytes_on_disk": sizes, "items": n_feat_items,
                     "cache_dir": str(Path(cache_dir) if cache_dir else FT.default_cache_dir())},
        "train_samples_per_second": round(float(np.mean([r["samples_per_second"] for r in runs])), 2),
        "seconds": clock.t, "device": device,
    }
    write_json(out / "results.json", results)
    kb.close()
    return results


def _train_seed(seed: int, opts: BiEncoderOptions, head_cfg: Any, info: dict[str, Any], men: dict[str, _Side],
                ent: _Side, gold: dict[str, np.ndarray], hard: np.ndarray, sdir: Path, resume: bool, progress: bool,
                clock: Clock, make_progress: Any) -> dict[str, Any]:
    import torch
    from torch.nn import functional as F

    from ..link.rerank import BiEncoderHead, save_checkpoint

    seed_all(seed)
    head = BiEncoderHead(head_cfg)
    optim = make_optimizer(head, opts.lr, opts.weight_decay)
    sdir.mkdir(parents=True, exist_ok=True)
    epochs_path = sdir / "epochs.jsonl"
    start = 1
    rng = np.random.default_rng(seed)
    history: list[dict[str, Any]] = []
    head.eval()
    untrained, _ = evaluate(head, men["dev"], ent, gold["dev"])
    untrained_test = evaluate(head, men["test"], ent, gold["test"])[0] if "test" in men else None
    best_val, best_epoch = select_value(untrained, opts.select), 0
    if resume:
        st = load_state(sdir / "state", head, optim)
        if st is not None:
            start = int(st["epoch"]) + 1
            history = list(st.get("history") or [])
            best_val, best_epoch = float(st.get("best_val", best_val)), int(st.get("best_epoch", 0))
            if st.get("rng") is not None:
                rng.bit_generator.state = st["rng"]  # the shuffles go on as in an uninterrupted run
            log.info("seed %d: resuming after epoch %d", seed, start - 1)
    if best_epoch == 0 and not (sdir / "model.safetensors").exists():
        save_checkpoint(sdir, head, {**info, "seed": seed, "best": {"epoch": 0, "dev": untrained}, "epochs": history})
    n = len(gold["train"])
    train_seconds = 0.0
    seen = 0
    stale = 0
    with make_progress(disable=not progress) as bar:
        task = bar.add_task(f"biencoder seed {seed}", total=opts.epochs, rate="", completed=start - 1)
        for epoch in range(start, opts.epochs + 1):
            head.train()
            order = rng.permutation(n)
            losses = []
            t0 = time.perf_counter()
            for b in range(0, n, opts.batch_size):
                idx = order[b:b + opts.batch_size]
                g = gold["train"][idx]
                cand = np.unique(np.concatenate([g, hard[idx].reshape(-1)]))
                cand = cand[cand >= 0]
                col = {int(e): i for i, e in enumerate(cand)}
                target = torch.tensor([col[int(x)] for x in g])
                score, _ = head(men["train"].take(idx), ent.take(cand))
                loss = F.cross_entropy(score / opts.temperature, target)
                optim.zero_grad()
                loss.backward()
                optim.step()
                losses.append(float(loss.detach()))
            dt = time.perf_counter() - t0
            train_seconds += dt
            seen += n
            head.eval()
            clock.start("dev")
            fig, _ = evaluate(head, men["dev"], ent, gold["dev"])
            clock.stop("dev")
            rec = {"epoch": epoch, "loss": float(np.mean(losses)), "seconds": round(dt, 3),
                   "samples_per_second": round(n / dt, 2) if dt > 0 else None, "dev": fig}
            history.append(rec)
            with open(epochs_path, "a", encoding="utf-8") as fh:
                import json

                fh.write(json.dumps(rec) + "\n")
            log.info("seed %d epoch %d: loss %.4f dev hits@1 %.4f mrr %.4f", seed, epoch, rec["loss"], fig["hits@1"],
                     fig["mrr"])
            val = select_value(fig, opts.select)
            if val > best_val:
                best_val, best_epoch, stale = val, epoch, 0
                save_checkpoint(sdir, head, {**info, "seed": seed, "best": {"epoch": epoch, "dev": fig}, "epochs": history})
            else:
                stale += 1
            save_state(sdir / "state", head, optim, epoch, {"history": history, "best_val": best_val, "rng": rng.bit_generator.state,
                                                             "best_epoch": best_epoch})
            bar.update(task, advance=1, description=f"biencoder seed {seed} (dev {opts.select} {val:.4f})")
            if opts.patience and stale >= opts.patience:
                log.info("seed %d: no better dev %s for %d epochs; stopping", seed, opts.select, stale)
                break
    # the best epoch, calibrated on dev, evaluated on test
    from ..link.rerank import load_checkpoint

    cfg, best_head = load_checkpoint(sdir)
    dev_fig, dev_sc = evaluate(best_head, men["dev"], ent, gold["dev"], keep_scores=3)
    cal = calibration(dev_sc["pos"], dev_sc["neg"])
    test_fig = evaluate(best_head, men["test"], ent, gold["test"])[0] if "test" in men else None
    save_checkpoint(sdir, best_head, {**{k: v for k, v in cfg.items() if k not in ("format", "pixlink_version")},
                                      "calibration": cal, "epochs": history,
                                      **({"test": test_fig} if test_fig else {})})
    return {"seed": seed, "best_epoch": best_epoch, "dev": dev_fig, **({"test": test_fig} if test_fig else {}),
            "untrained_dev": untrained, **({"untrained_test": untrained_test} if untrained_test else {}),
            "calibration": cal, "epochs": history,
            "samples_per_second": round(seen / train_seconds, 2) if train_seconds > 0 else None}


__all__ = ["BiEncoderOptions", "train_biencoder", "mine_hard_negatives", "evaluate"]
