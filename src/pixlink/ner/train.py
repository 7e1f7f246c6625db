"""Train the MNER head from CoNLL files: ``pixlink ner train --train A --dev D --out DIR``.

Steps (each logged):

1. read the train and dev files (:func:`pixlink.conll.read_conll`), map
   ``OTHER`` to ``MISC``, remove from training every tweet of any dev file (IMGID or
   normalised text) and duplicates (:func:`pixlink.ner.data.build_training_set`);
2. compute the frozen backbone's per-word features once (cached as ``.npy`` under
   ``cache_dir``, keyed by backbone and tokens, so a rerun skips this step);
3. train the head (:mod:`pixlink.ner.model`) with Adam; after each epoch decode every dev
   file and keep the epoch with the best micro F1 over all dev tweets pooled; stop after
   ``patience`` epochs without improvement. With ``heads=N`` this is done N times with seeds
   ``seed .. seed+N-1`` and the heads are decoded together (:func:`~pixlink.ner.model.build_ensemble`);
4. write ``DIR/model.safetensors`` (the head) and ``DIR/config.json`` (architecture,
   vocabularies, hyper-parameters, data counts, per-epoch dev figures, timings). The best
   model so far is written at every improvement, so an interrupted run leaves a usable model.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import Errors, InputError
from ..log import get_logger
from ..spans import UNIFIED_TYPES, bio_tagset, span_prf, unify_type
from ..types import Post
from . import model as M
from .data import bio_tags, build_training_set, read_files

log = get_logger(__name__)

FORMAT_VERSION = 1


@dataclass
class TrainOptions:
    """Hyper-parameters (CLI options; saved in config.json next to the weights)."""

    backbone: str = "mpnet"
    epochs: int = 40
    batch_size: int = 32
    lr: float = 2e-3
    proj: int = 256
    hidden: int = 128
    word_dim: int = 50
    min_word_count: int = 2
    char_dim: int = 32
    char_filters: int = 64
    dropout: float = 0.5
    word_dropout: float = 0.1
    patience: int = 8
    heads: int = 3
    seed: int = 13
    max_length: int = 256
    layers: list[int] | None = None
    threads: int | None = None
    condition: bool = True
    scheme_dim: int = 16
    scheme_dropout: float = 0.3

    def check(self) -> None:
        for name in ("epochs", "batch_size", "heads", "proj", "hidden", "char_dim", "char_filters", "min_word_count", "max_length"):
            if getattr(self, name) < 1:
                raise InputError(Errors.E507.format(option=name, value=getattr(self, name), reason="must be >= 1"))
        if self.word_dim < 0:
            raise InputError(Errors.E507.format(option="word_dim", value=self.word_dim, reason="must be >= 0"))
        if not (0.0 <= self.dropout < 1.0) or not (0.0 <= self.word_dropout < 1.0):
            raise InputError(Errors.E507.format(option="dropout", value=(self.dropout, self.word_dropout),
                                                reason="must be in [0, 1)"))
        if not (0.0 <= self.scheme_dropout <= 1.0):
            raise InputError(Errors.E507.format(option="scheme_dropout", value=self.scheme_dropout,
                                                reason="must be in [0, 1]"))
        if self.lr <= 0:
            raise InputError(Errors.E507.format(option="lr", value=self.lr, reason="must be > 0"))


def cached_features(backbone: Any, posts: Sequence[Post], cache_dir: Path | None, label: str) -> list[np.ndarray]:
    """Backbone features of ``posts``, read from / written to ``cache_dir`` (``.npy`` +
    offsets) when given."""
    if cache_dir is None:
        return backbone.features([p.tokens for p in posts], progress=True)
    key = hashlib.sha1((backbone.fingerprint() + json.dumps([p.tokens for p in posts])).encode()).hexdigest()[:16]
    data, offs = cache_dir / f"{label}-{key}.npy", cache_dir / f"{label}-{key}.offsets.npy"
    if data.exists() and offs.exists():
        log.info("features of %s read from cache %s", label, data)
        arr = np.load(data, mmap_mode="r")
        o = np.load(offs)
        return [np.asarray(arr[o[i] : o[i + 1]]) for i in range(len(posts))]
    t0 = time.time()
    feats = backbone.features([p.tokens for p in posts], progress=True)
    log.info("features of %d %s tweets in %.0f s", len(posts), label, time.time() - t0)
    cache_dir.mkdir(parents=True, exist_ok=True)
    o = np.cumsum([0] + [len(f) for f in feats])
    tmp = data.with_suffix(".tmp.npy")
    np.save(tmp, np.concatenate(feats, axis=0))
    np.save(offs, o)
    tmp.rename(data)
    return feats


def _items(posts: Sequence[Post], feats: Sequence[np.ndarray], cfg: dict[str, Any], with_tags: bool = True,
           schemes: Sequence[int] | None = None) -> list[dict[str, np.ndarray]]:
    tag_index = {t: i for i, t in enumerate(cfg["tags"])}
    out = []
    for i, (p, f) in enumerate(zip(posts, feats)):
        it = M.make_item(p.tokens, f, cfg, schemes[i] if schemes is not None else 0)
        if with_tags:
            it["tags"] = np.array([tag_index[t] for t in bio_tags(p)], dtype=np.int64)
        out.append(it)
    return out


def decode_items(head: Any, items: Sequence[dict[str, np.ndarray]], tags: Sequence[str], batch_size: int = 64
                 ) -> list[list[tuple[int, int, str, float | None]]]:
    """Entity spans ``(start, end_exclusive, type, probability)`` of each item (head in eval
    mode); the probability is the entity's marginal under the CRF (:meth:`~pixlink.ner.model.PathMarginals.entity`)."""
    import torch

    head.eval()
    out: list[list[tuple[int, int, str, float | None]]] = [[] for _ in items]
    order = sorted(range(len(items)), key=lambda i: len(items[i]["words"]))
    with torch.inference_mode():
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            batch = M.collate([items[i] for i in idx], with_tags=False)
            paths, margs = head.decode(batch)
            for i, pth, mg in zip(idx, paths, margs):
                out[i] = M.paths_to_spans(pth, tags, mg)
    return out


def save_model(states: Sequence[dict[str, Any]], cfg: dict[str, Any], out: Path) -> None:
    """``out/model.safetensors`` (float32; head i's tensors under ``heads.<i>.``) + ``out/config.json``."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    state = {f"heads.{i}.{k}": v.detach().contiguous().float() for i, st in enumerate(states) for k, v in st.items()}
    save_file(state, str(out / "model.safetensors.tmp"), metadata={"format": "pixlink-ner", "version": str(FORMAT_VERSION)})
    (out / "model.safetensors.tmp").replace(out / "model.safetensors")
    (out / "config.json").write_text(json.dumps(cfg, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def train(
    train_paths: Sequence[str | Path], dev_paths: Sequence[str | Path], out: str | Path,
    opts: TrainOptions | None = None, cache_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Train a head and write it to ``out``; returns the saved config (with figures)."""
    import torch

    from .backbone import Backbone

    opts = opts or TrainOptions()
    opts.check()
    if not train_paths:
        raise InputError(Errors.E504.format(what="at least one --train file", reason="none was given"))
    if not dev_paths:
        raise InputError(Errors.E504.format(what="at least one --dev file", reason="none was given (model selection)"))
    t_start = time.time()
    random.seed(opts.seed)
    np.random.seed(opts.seed)
    torch.manual_seed(opts.seed)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    train_sets = read_files(train_paths)
    dev_sets = read_files(dev_paths)
    source_scheme = {id(p): M.scheme_id(name.split("/")[0]) for name, ps in train_sets for p in ps}
    posts, report = build_training_set(train_sets, dev_sets)
    if not posts:
        raise InputError(Errors.E504.format(what="training tweets", reason="none is left after removing dev tweets"))
    log.info("training tweets: %s", json.dumps(report.to_dict()))

    chars = Counter(c for p in posts for w in p.tokens for c in w[: M.MAX_WORD_CHARS])
    char_vocab = {c: i + 2 for i, c in enumerate(sorted(c for c, n in chars.items() if n >= 2))}
    words = Counter(w for p in posts for w in p.tokens)
    word_vocab = {w: i + 2 for i, w in enumerate(sorted(w for w, n in words.items() if n >= opts.min_word_count))}
    if not opts.word_dim:
        word_vocab = {}

    backbone = Backbone(opts.backbone, max_length=opts.max_length, threads=opts.threads, layers=opts.layers)
    cache = Path(cache_dir) if cache_dir is not None else None
    t0 = time.time()
    train_feats = cached_features(backbone, posts, cache, "train")
    dev_feats = [cached_features(backbone, dp, cache, "dev") for _n, dp in dev_sets]
    t_features = time.time() - t0

    cfg: dict[str, Any] = {
        "format": "pixlink-ner", "version": FORMAT_VERSION,
        "backbone": opts.backbone, "backbone_model_id": backbone.model_id, "max_length": backbone.max_length,
        "n_layers": backbone.n_layers, "layers": backbone.layers, "dim": backbone.dim, "types": list(UNIFIED_TYPES),
        "tags": bio_tagset(UNIFIED_TYPES), "case_features": list(M.CASE_FEATURES),
        "max_word_chars": M.MAX_WORD_CHARS, "char_vocab": char_vocab, "word_vocab": word_vocab,
        "n_chars": len(char_vocab) + 2, "n_words": len(word_vocab) + 2, "char_dim": opts.char_dim,
        "char_filters": opts.char_filters, "word_dim": opts.word_dim, "proj": opts.proj, "hidden": opts.hidden,
        "dropout": opts.dropout, "options": asdict(opts),
        "n_schemes": (max(M.SCHEME_IDS.values()) + 1) if opts.condition else 0, "scheme_dim": opts.scheme_dim,
        "scheme_ids": dict(M.SCHEME_IDS) if opts.condition else {},
        "train_files": [str(p) for p in train_paths], "dev_files": [str(p) for p in dev_paths],
        "data": report.to_dict(),
    }
    train_items = _items(posts, train_feats, cfg, schemes=[source_scheme[id(p)] for p in posts])
    dev_items = [_items(dp, f, cfg, schemes=[M.scheme_id(n.split("/")[0])] * len(dp))
                 for (n, dp), f in zip(dev_sets, dev_feats)]
    dev_gold = [[[(e.start, e.end, unify_type(e.type)) for e in p.entities] for p in dp] for _n, dp in dev_sets]
    outp = Path(out)

    def dev_scores(model: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        per_file: dict[str, Any] = {}
        all_gold, all_pred = [], []
        for (name, _dp), items, gold in zip(dev_sets, dev_items, dev_gold):
            pred = [[(s, e, t) for s, e, t, _sc in sp] for sp in decode_items(model, items, cfg["tags"])]
            per_file[name] = span_prf(gold, pred, types=UNIFIED_TYPES)
            all_gold += gold
            all_pred += pred
        return span_prf(all_gold, all_pred, types=UNIFIED_TYPES), per_file

    done: list[dict[str, Any]] = []  # best state of each finished head
    records: list[dict[str, Any]] = []
    for h in range(opts.heads):
        # each head is seeded on its own: head h of `--heads N --seed S` is the single head of `--seed S+h`
        seed = opts.seed + h
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        head = M.build_head(cfg)
        n_params = sum(p.numel() for p in head.parameters())
        log.info("head %d/%d (seed %d): %d parameters", h + 1, opts.heads, seed, n_params)
        optim = torch.optim.Adam(head.parameters(), lr=opts.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(optim, mode="max", factor=0.5, patience=3)
        history: list[dict[str, Any]] = []
        rec: dict[str, Any] = {"seed": seed, "n_parameters": n_params, "history": history}
        best_f, bad = -1.0, 0
        best_state: dict[str, Any] = {}
        order = list(range(len(train_items)))
        for epoch in range(1, opts.epochs + 1):
            t_ep = time.time()
            head.train()
            random.shuffle(order)
            # batches of similar length (less padding), in random order
            chunks = [order[i : i + opts.batch_size * 20] for i in range(0, len(order), opts.batch_size * 20)]
            batches = []
            for ch in chunks:
                ch = sorted(ch, key=lambda i: len(train_items[i]["words"]))
                batches += [ch[i : i + opts.batch_size] for i in range(0, len(ch), opts.batch_size)]
            random.shuffle(batches)
            total = 0.0
            for bidx in batches:
                batch = M.collate([train_items[i] for i in bidx])
                if opts.word_dropout and opts.word_dim:
                    drop = torch.rand(batch["words"].shape) < opts.word_dropout
                    batch["words"] = batch["words"].masked_fill(drop & batch["mask"], M.UNK)
                if cfg["n_schemes"] and opts.scheme_dropout:
                    # also learn to tag without being told the convention (scheme 0)
                    batch["scheme"] = batch["scheme"].masked_fill(torch.rand(len(bidx)) < opts.scheme_dropout, 0)
                loss = head.loss(batch)
                optim.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(head.parameters(), 5.0)
                optim.step()
                total += float(loss.detach()) * len(bidx)
            pooled, per_file = dev_scores(head)
            f = pooled["f1"]
            sched.step(f)
            history.append({"epoch": epoch, "loss": total / len(order), "dev_f1": f,
                            "dev_f1_per_file": {n: r["f1"] for n, r in per_file.items()}, "seconds": time.time() - t_ep})
            log.info("head %d epoch %d loss %.3f dev F1 %.4f %s (%.0f s)", h + 1, epoch, history[-1]["loss"], f,
                     {n: round(v, 4) for n, v in history[-1]["dev_f1_per_file"].items()}, history[-1]["seconds"])
            if f > best_f:
                best_f, bad = f, 0
                best_state = {k: v.detach().clone() for k, v in head.state_dict().items()}
                rec.update({"best_epoch": epoch, "dev": {"pooled": pooled, "per_file": per_file}})
                # an interrupted run leaves the finished heads plus this head's best so far
                cfg.update({"n_heads": len(done) + 1, "heads": records + [rec], "partial": True,
                            "seconds": {"features": t_features, "total": time.time() - t_start}})
                save_model(done + [best_state], cfg, outp)
            else:
                bad += 1
                if bad >= opts.patience:
                    log.info("head %d: no dev improvement for %d epochs: stopping", h + 1, bad)
                    break
        done.append(best_state)
        records.append(rec)
        log.info("head %d: best dev F1 %.4f at epoch %d", h + 1, best_f, rec["best_epoch"])
    model = M.build_ensemble(cfg, len(done))
    model.load_state_dict({f"heads.{i}.{k}": v for i, st in enumerate(done) for k, v in st.items()}, strict=True)
    pooled, per_file = dev_scores(model)
    cfg.update({"n_heads": len(done), "heads": records, "partial": False, "dev": {"pooled": pooled, "per_file": per_file},
                "best_epoch": [r["best_epoch"] for r in records] if len(done) > 1 else records[0]["best_epoch"],
                "n_parameters": sum(r["n_parameters"] for r in records),
                "seconds": {"features": t_features, "total": time.time() - t_start}})
    save_model(done, cfg, outp)
    log.info("dev F1 %.4f (%d head%s); model in %s", pooled["f1"], len(done), "s" if len(done) > 1 else "", outp)
    return cfg
