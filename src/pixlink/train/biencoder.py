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

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import Errors, InputError
from ..log import get_logger
from ..types import Mention
from . import data as D
from . import features as FT
from .loop import KS, CommonOptions, finish, finish_seed, prepare, rank_of_gold, ranking_figures, seed_all, train_seed

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
class Side:
    """The frozen vectors of a set of mentions or entities: ``space -> (N, D)`` (NaN rows = absent)."""

    vecs: dict[str, np.ndarray]

    def take(self, idx: Sequence[int] | np.ndarray, device: Any = "cpu") -> dict[str, Any]:
        import torch

        return {s: torch.from_numpy(np.ascontiguousarray(v[np.asarray(idx)])).to(device) for s, v in self.vecs.items()}


def _features(spaces: Sequence[str], backends: dict[str, Any], mentions: dict[str, list[Mention]], entities: list,
              opts: BiEncoderOptions, cache_dir: Any, progress: bool, sizes: dict[str, int]) -> tuple[dict[str, Side], Side]:
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
    return {k: Side(v) for k, v in men.items()}, Side(ent)


def frozen_scores(men: Side, ent: Side, idx: np.ndarray) -> np.ndarray:
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


def mine_hard_negatives(men: Side, ent: Side, gold: np.ndarray, k: int, chunk: int = 512) -> np.ndarray:
    """``(N, k)`` entity rows: each mention's ``k`` best-ranked wrong entities under the frozen
    encoders (-1 where fewer exist)."""
    n = len(gold)
    out = np.full((n, k), -1, dtype=np.int64)
    if k == 0:
        return out
    for s in range(0, n, chunk):
        idx = np.arange(s, min(n, s + chunk))
        sc = frozen_scores(men, ent, idx)
        sc[np.arange(len(idx)), gold[idx]] = -np.inf
        top = np.argsort(-sc, axis=1)[:, :k]
        out[idx, : top.shape[1]] = top
    return out


def evaluate(head: Any, men: Side, ent: Side, gold: np.ndarray, chunk: int = 256, ks: Sequence[int] = KS,
             keep_scores: int = 0) -> tuple[dict[str, float], dict[str, Any]]:
    """Rank every mention's gold among all entities with the head; figures + raw scores of gold
    and of the ``keep_scores`` best wrong entities (for calibration)."""
    import torch

    dev = next(head.parameters()).device
    with torch.inference_mode():
        e_emb = {}
        for s in head.spaces:
            if s in ent.vecs:
                e_emb[s] = head.embed("entity", s, torch.from_numpy(ent.vecs[s]).to(dev))
        ranks = np.full(len(gold), np.inf)
        pos, neg = [], []
        for st in range(0, len(gold), chunk):
            idx = np.arange(st, min(len(gold), st + chunk))
            total = count = None
            for s, (e, pe) in e_emb.items():
                m, pm = head.embed("mention", s, torch.from_numpy(men.vecs[s][idx]).to(dev))
                ok = (pm[:, None] & pe[None, :]).float()
                c = (m @ e.T) * ok
                total = c if total is None else total + c
                count = ok if count is None else count + ok
            sc = (total / count.clamp(min=1.0)).cpu().numpy()
            sc[count.cpu().numpy() == 0] = -np.inf
            ranks[idx] = rank_of_gold(sc, gold[idx])
            if keep_scores:
                for r, g in enumerate(gold[idx]):
                    row = sc[r]
                    pos.append(float(row[g]))
                    row2 = row.copy()
                    row2[g] = -np.inf
                    neg.extend(float(x) for x in np.sort(row2)[::-1][:keep_scores] if np.isfinite(x))
    return ranking_figures(ranks, ks), {"pos": pos, "neg": neg, "ranks": ranks}


def train_biencoder(
    train: Sequence[Mention], dev: Sequence[Mention], kb_dir: str | Path, out: str | Path,
    options: BiEncoderOptions | None = None, *, profile: Any = "offline", test: Sequence[Mention] | None = None,
    cache_dir: str | Path | None = None, progress: bool = True, resume: bool = False, overwrite: bool = False,
    data_info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train the bi-encoder (see the module docstring); returns the results (also written to
    ``out/results.json``)."""
    from ..link.rerank import SPACE_ROLES, BiEncoderConfig, BiEncoderHead, space_model_ids

    opts = options or BiEncoderOptions()
    su = prepare(opts, train, dev, test, kb_dir, out, profile, resume, overwrite, opts.max_kb_entities)
    spaces = opts.space_list
    backends = {s: su.profile.get(SPACE_ROLES[s]) for s in spaces}
    sizes: dict[str, int] = {}
    su.clock.start("features")
    men, ent = _features(spaces, backends, su.parts, su.entities, opts, cache_dir, progress, sizes)
    feat_seconds = su.clock.stop("features")
    su.clock.start("mining")
    hard = mine_hard_negatives(men["train"], ent, su.gold["train"], opts.hard_negatives)
    su.clock.stop("mining")
    head_cfg = BiEncoderConfig(dims={s: int(ent.vecs[s].shape[1]) for s in spaces}, hidden=opts.hidden,
                               shared=opts.shared)
    info = {
        "kind": "biencoder", "task": opts.task if opts.spaces is None else None, "head": head_cfg.to_dict(),
        "features": {s: {"role": SPACE_ROLES[s], "model_ids": space_model_ids(s, backends[s])} for s in spaces},
        "view": opts.view, "crop_margin": opts.crop_margin, "frozen_encoders": True, "options": opts.to_dict(),
        "profile": getattr(su.profile, "name", str(profile)), "device": su.device, "data": su.data(kb_dir, data_info),
    }
    gold = su.gold

    def step(head: Any, idx: np.ndarray) -> Any:
        import torch
        from torch.nn import functional as F

        g = gold["train"][idx]
        cand = np.unique(np.concatenate([g, hard[idx].reshape(-1)]))
        cand = cand[cand >= 0]
        col = {int(e): i for i, e in enumerate(cand)}
        dev = next(head.parameters()).device
        score, _ = head(men["train"].take(idx, dev), ent.take(cand, dev))
        return F.cross_entropy(score / opts.temperature, torch.tensor([col[int(x)] for x in g], device=dev))

    runs = []
    for seed in opts.seeds:
        seed_all(seed)
        head = BiEncoderHead(head_cfg).to(su.device).eval()
        untrained = evaluate(head, men["dev"], ent, gold["dev"])[0]
        untrained_test = evaluate(head, men["test"], ent, gold["test"])[0] if "test" in men else None
        sdir = su.out / f"seed-{seed}"
        run = train_seed(seed, opts, head, sdir, info, len(gold["train"]), step,
                         lambda h: evaluate(h, men["dev"], ent, gold["dev"])[0], label="biencoder", clock=su.clock,
                         resume=resume, progress=progress, initial=untrained)
        fin = finish_seed(sdir, lambda h: evaluate(h, men["dev"], ent, gold["dev"], keep_scores=3),
                          (lambda h: evaluate(h, men["test"], ent, gold["test"])[0]) if "test" in men else None,
                          su.device)
        runs.append({"seed": seed, **run, **fin, "untrained_dev": untrained,
                     **({"untrained_test": untrained_test} if untrained_test else {})})
    results = {
        "kind": "biencoder", "task": info["task"], "spaces": list(spaces),
        "untrained": {"dev": runs[0]["untrained_dev"], **({"test": runs[0]["untrained_test"]} if "test" in men else {})},
        "data": info["data"], "options": opts.to_dict(),
        "features": {"seconds": round(feat_seconds, 3), "bytes_on_disk": sizes,
                     "items": len(su.entities) + sum(len(v) for v in su.parts.values()),
                     "cache_dir": str(Path(cache_dir) if cache_dir else FT.default_cache_dir())},
    }
    return finish(su, runs, opts.select, results)


__all__ = ["BiEncoderOptions", "train_biencoder", "mine_hard_negatives", "evaluate", "Side", "frozen_scores"]
