"""Train IIER's interaction units (``pixlink train iier``), as VP-MEL specifies them.

Setup (the paper's released code, :mod:`pixlink.link.iier` has the equations):

* inputs: the mention text ``words [SEP] sentence`` (+ the Detective-VLM's ``"{Entity Name}
  {Entity Type}"`` answer, appended), the entity text ``name [SEP] attributes``, 40 tokens; the
  mention image as the visual prompt view (``red_box``: the region drawn in red on the whole
  image; ablation ``image``: no visual prompt), the entity's first image; visual features from
  the CLS tokens of a shallow and three deep layers (CLIP: hidden states 4, 10, 11, 12) and the
  last layer's patches;
* ``d_v = d_c = 96``; loss ``L_O + lam (L_V + L_T + L_C)`` over in-batch negatives (the other
  mentions' gold entities), ``lam = 1``, no temperature; AdamW lr 1e-5, batch 128, 20 epochs;
  five seeds reported as mean +- sd (``seeds=(0, 1, 2, 3, 4)``).

Departures (said in the checkpoint too): the encoders are frozen and their features cached (see
:mod:`pixlink.link.iier`); dev and test rank the gold among the top ``candidates`` entities a
frozen encoder retrieves from the whole KB (scoring every KB entity with the units is the
paper's GPU setting, far beyond a CPU), so MRR is ``mrr@<candidates>`` and the figures are
bounded by the retrieval's Hits@candidates, which the results report (``retrieval``).

Ablations as options: ``units=("tfi",)`` (the text path: no image features at all),
``view="image"`` (no visual prompt), ``detective=None`` (no VLM text), ``layers`` (layer choice).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import Errors, InputError
from ..log import get_logger
from ..types import Mention
from . import data as D
from . import features as FT
from .biencoder import Side, frozen_scores
from .loop import KS, CommonOptions, finish, finish_seed, prepare, rank_of_gold, ranking_figures, seed_all, train_seed

log = get_logger("pixlink.train.iier")

EFFICIENTNET_LAYERS = (4, 11, 15, 16)
"""The offline image encoder's (EfficientNet-Lite0) "shallow + deep" choice: block 4 and the last
three blocks (its 17 stages in place of CLIP's 12 layers)."""


@dataclass
class IIEROptions(CommonOptions):
    """Options of :func:`train_iier` (and those of :class:`~pixlink.train.loop.CommonOptions`;
    defaults as the paper: 20 epochs, lr 1e-5, batch 128).

    Attributes:
        units: the interaction units (``("tfi",)``: the text path, no image features).
        text_role: the role whose text encoder gives the token features: ``text_embed``
            (MiniLM/mpnet offline) or ``image_text`` (CLIP's text tower, as the paper).
        image_role: the image encoder's role: ``image_embed`` (EfficientNet-Lite offline; CLIP's
            vision tower on the hub) or ``image_text``.
        layers: the image layers whose CLS tokens are concatenated (default: CLIP 4, 10, 11,
            12; EfficientNet-Lite :data:`EFFICIENTNET_LAYERS`).
        max_length: text tokens (40).
        view: the mention's visual prompt: ``red_box`` (the paper), ``image`` (ablation: no
            visual prompt), ``crop``.
        detective: the Detective-VLM text: ``describe`` / ``offline`` / ``auto`` or None (ablation:
            no VLM text).
        lam, temperature: the loss (paper: 1, 1).
        mask_padding: see :mod:`pixlink.link.iier`.
        d_v, d_c, d_image_global: widths (paper: 96, 96, 512).
        candidates: dev/test rank the gold among this many entities retrieved from the whole KB.
        candidate_space: the frozen space that retrieves them (``t2t``, ``v2v``, ``v2t``).
        hard_negatives: mined wrong entities added to a batch's candidates (paper: 0).
        max_kb_entities: refuse a larger KB.
    """

    units: tuple[str, ...] = ("tfi", "vfi", "cmfi")
    text_role: str = "text_embed"
    image_role: str = "image_embed"
    layers: tuple[int, ...] | None = None
    max_length: int = 40
    view: str = "red_box"
    crop_margin: float = 0.1
    detective: str | None = None
    lam: float = 1.0
    temperature: float = 1.0
    mask_padding: bool = True
    d_v: int = 96
    d_c: int = 96
    d_image_global: int = 512
    candidates: int = 50
    candidate_space: str = "t2t"
    hard_negatives: int = 0
    max_kb_entities: int = 200_000

    def check(self) -> None:
        from ..link.iier import DETECTIVE_MODES, UNITS
        from ..link.rerank import SPACES, VIEWS

        super().check()
        self.units = tuple(self.units)
        if not self.units or any(u not in UNITS for u in self.units):
            raise InputError(Errors.E770.format(option="units", value=list(self.units), reason=f"from {UNITS}"))
        if self.text_role not in ("text_embed", "image_text") or self.image_role not in ("image_embed", "image_text"):
            raise InputError(Errors.E770.format(option="text_role/image_role", value=(self.text_role, self.image_role),
                                                reason="text_embed|image_text and image_embed|image_text"))
        if self.view not in VIEWS:
            raise InputError(Errors.E770.format(option="view", value=self.view, reason=f"one of {VIEWS}"))
        if self.detective is not None and self.detective not in DETECTIVE_MODES:
            raise InputError(Errors.E770.format(option="detective", value=self.detective,
                                                reason=f"one of {DETECTIVE_MODES} or none"))
        if self.candidate_space not in SPACES:
            raise InputError(Errors.E770.format(option="candidate_space", value=self.candidate_space,
                                                reason=f"one of {SPACES}"))
        for name in ("candidates", "max_length", "d_v", "d_c", "d_image_global"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(Errors.E770.format(option=name, value=v, reason="an integer >= 1"))
        if self.lam < 0 or not self.temperature > 0 or self.hard_negatives < 0:
            raise InputError(Errors.E770.format(option="lam/temperature/hard_negatives",
                                                value=(self.lam, self.temperature, self.hard_negatives),
                                                reason="lam >= 0, temperature > 0, hard_negatives >= 0"))

    @property
    def uses_image(self) -> bool:
        return any(u in self.units for u in ("vfi", "cmfi"))

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["units"] = list(self.units)
        d["layers"] = list(self.layers) if self.layers is not None else None
        return d


def default_layers(backend: Any) -> tuple[int, ...]:
    """IIER's layer choice for an image encoder: CLIP ViT-B/32's (4, 10, 11, 12), scaled to
    the encoder's depth, or EfficientNet-Lite's :data:`EFFICIENTNET_LAYERS`."""
    from ..link.iier import CLIP_IIER_LAYERS

    if getattr(backend, "name", "") == "efficientnet_lite":
        return EFFICIENTNET_LAYERS
    n = int(getattr(backend, "num_layers", 12))
    if n == 12:
        return CLIP_IIER_LAYERS
    return tuple(sorted({max(1, round(x * n / 12)) for x in CLIP_IIER_LAYERS}))


# ------------------------------------------------------------------------------------------------


def _detective(mentions: list[Mention], mode: str | None, prof: Any, kb_dir: Any, cache_dir: Path) -> dict[str, str]:
    """Detective-VLM answers per mention id (cached in ``cache_dir/detective-<mode>.jsonl``)."""
    if not mode:
        return {}
    from ..link.iier import detective_text
    from ..link.linker import Linker
    from .features import mention_input, mention_payload

    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"detective-{mode}.jsonl"
    known: dict[str, dict[str, str]] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                known[rec["payload"]] = rec
    linker = Linker.from_kb(kb_dir, prof) if mode in ("offline", "auto") else None
    out = {}
    sources: dict[str, int] = {}
    with open(path, "a", encoding="utf-8") as fh:
        for m in mentions:
            payload = mention_payload(m)
            rec = known.get(payload)
            if rec is None:
                text, src = detective_text(mention_input(payload), prof, mode=mode, linker=linker)
                rec = {"payload": payload, "text": text, "source": src}
                fh.write(json.dumps(rec) + "\n")
                known[payload] = rec
            out[m.id] = rec["text"]
            sources[rec["source"]] = sources.get(rec["source"], 0) + 1
    log.info("detective text (%s): %s", mode, sources)
    return out


@dataclass
class _IIERData:
    """Features of one part (mentions) or of the entities, held as float16 (half the memory;
    the cache's precision) and handed to the model as float32."""

    cls: np.ndarray
    tok: np.ndarray
    mask: np.ndarray
    img_cls: np.ndarray | None = None
    img_tok: np.ndarray | None = None

    def take(self, idx: Any, device: Any = "cpu") -> dict[str, Any]:
        import torch

        idx = np.asarray(idx)

        def t(a: np.ndarray) -> Any:
            return torch.from_numpy(a[idx].astype(np.float32)).to(device)

        d = {"text_cls": t(self.cls), "text_tokens": t(self.tok), "text_mask": t(self.mask)}
        if self.img_cls is not None:
            d["image_cls"] = t(self.img_cls)
            d["image_tokens"] = t(self.img_tok)
        return d


def _load_iier(text_pk: Any, tl: Any, img: tuple[Any, Any] | None, n: int, chunk: int = 2048) -> _IIERData:
    d = _IIERData(np.zeros((n, tl.d), np.float16), np.zeros((n, tl.length, tl.d_tokens), np.float16),
                  np.zeros((n, tl.length), np.float16))
    if img is not None:
        lay = img[1]
        d.img_cls = np.zeros((n, lay.d_cls), np.float16)
        d.img_tok = np.zeros((n, lay.patches, lay.d_patch), np.float16)
    for s in range(0, n, chunk):
        idx = np.arange(s, min(n, s + chunk))
        c, t, m = tl.split(text_pk.rows(idx))
        d.cls[idx], d.tok[idx], d.mask[idx] = c, t, m
        if img is not None:
            _present, ic, it = img[1].split(img[0].rows(idx))
            d.img_cls[idx], d.img_tok[idx] = ic, it
    return d


def score_candidates(model: Any, men: _IIERData, ent: _IIERData, cands: np.ndarray, chunk: int = 1) -> np.ndarray:
    """``(N, K)`` IIER scores of each mention's ``K`` candidate entity rows (-1 = none: NaN).

    ``chunk`` mentions are scored together against the union of their candidates (the units
    score every pair of a batch); 1 scores exactly each mention's own ``K``."""
    import torch

    out = np.full(cands.shape, np.nan, dtype=np.float32)
    with torch.inference_mode():
        for s in range(0, len(cands), chunk):
            idx = np.arange(s, min(len(cands), s + chunk))
            c = cands[idx]
            uniq = np.unique(c[c >= 0])
            if not len(uniq):
                continue
            col = {int(e): i for i, e in enumerate(uniq)}
            dev = next(model.parameters()).device
            sc = model(men.take(idx, dev), ent.take(uniq, dev))[0].cpu().numpy()
            for r in range(len(idx)):
                for j, e in enumerate(c[r]):
                    if e >= 0:
                        out[idx[r], j] = sc[r, col[int(e)]]
    return out


def evaluate_candidates(model: Any, men: _IIERData, ent: _IIERData, cands: np.ndarray, gold: np.ndarray,
                        keep_scores: int = 0) -> tuple[dict[str, float], dict[str, Any]]:
    """Figures of IIER re-ranking each mention's candidates (gold absent = not ranked)."""
    sc = score_candidates(model, men, ent, cands)
    K = cands.shape[1]
    gcol = np.array([(list(c).index(g) if g in c else -1) for c, g in zip(cands, gold)])
    sc = np.where(np.isnan(sc), -np.inf, sc)
    ranks = rank_of_gold(sc, gcol)
    pos, neg = [], []
    if keep_scores:
        for r, gc in enumerate(gcol):
            if gc >= 0:
                pos.append(float(sc[r, gc]))
            row = sc[r].copy()
            if gc >= 0:
                row[gc] = -np.inf
            neg.extend(float(x) for x in np.sort(row)[::-1][:keep_scores] if np.isfinite(x))
    # hits@K: the share whose gold is among the candidates at all (the bound of the re-ranking)
    return ranking_figures(ranks, tuple(sorted({k for k in KS if k <= K} | {K})), cut=K), {"pos": pos, "neg": neg}


def train_iier(
    train: Sequence[Mention], dev: Sequence[Mention], kb_dir: str | Path, out: str | Path,
    options: IIEROptions | None = None, *, profile: Any = "offline", test: Sequence[Mention] | None = None,
    cache_dir: str | Path | None = None, progress: bool = True, resume: bool = False, overwrite: bool = False,
    data_info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train IIER (see the module docstring); returns the results (also ``out/results.json``)."""
    from ..link.iier import IIER, IIERConfig, TextTokenEncoder, entity_text, iier_loss, mention_text
    from ..link.rerank import SPACE_ROLES

    opts = options or IIEROptions()
    su = prepare(opts, train, dev, test, kb_dir, out, profile, resume, overwrite, opts.max_kb_entities)
    prof, entities, parts, gold, clock = su.profile, su.entities, su.parts, su.gold, su.clock
    cache = Path(cache_dir) if cache_dir is not None else FT.default_cache_dir()
    sizes: dict[str, int] = {}

    # 1. candidates of dev/test (and mined negatives of train) from a frozen space over the whole KB
    clock.start("features")
    cspace = opts.candidate_space
    cb = prof.get(SPACE_ROLES[cspace])
    ek = FT.space_vectors(cspace, cb, "entity", entities, cache_dir=cache, progress=progress)
    ent_vec = Side({cspace: FT.unpack_vectors(ek.rows(np.arange(len(entities))))})
    cands: dict[str, np.ndarray] = {}
    retrieval: dict[str, dict[str, float]] = {}
    for k, ms in parts.items():
        pm = FT.space_vectors(cspace, cb, "mention", ms, key_prefix=f"{D.data_hash(ms)}:", view="crop",
                              cache_dir=cache, progress=progress)
        mv = Side({cspace: FT.unpack_vectors(pm.rows(np.arange(len(ms))))})
        K = opts.candidates if k != "train" else max(opts.hard_negatives + 1, 1)
        top = np.zeros((len(ms), K), dtype=np.int64)
        ranks = np.full(len(ms), np.inf)
        for s in range(0, len(ms), 512):
            idx = np.arange(s, min(len(ms), s + 512))
            sc = frozen_scores(mv, ent_vec, idx)
            top[idx] = np.argsort(-sc, axis=1)[:, :K]
            ranks[idx] = rank_of_gold(sc, gold[k][idx])
        cands[k] = top
        if k != "train":
            retrieval[k] = ranking_figures(ranks)
    needed = sorted(set(gold["train"].tolist()) | set(cands["train"].reshape(-1).tolist())
                    | {int(e) for k in ("dev", "test") if k in cands for e in cands[k].reshape(-1)})
    sub = {e: i for i, e in enumerate(needed)}
    ents = [entities[i] for i in needed]
    remap = np.vectorize(lambda e: sub.get(int(e), -1), otypes=[np.int64])
    gold_s = {k: remap(v) for k, v in gold.items()}
    cand_s = {k: remap(v) for k, v in cands.items()}

    # 2. IIER's features
    tb = prof.get(opts.text_role)
    enc = TextTokenEncoder.from_backend(tb, opts.max_length)
    extra = _detective([m for v in parts.values() for m in v], opts.detective, prof, kb_dir, cache)
    feats: dict[str, _IIERData] = {}
    img_backend = prof.get(opts.image_role) if opts.uses_image else None
    layers = tuple(opts.layers) if opts.layers is not None else (default_layers(img_backend) if img_backend else ())
    for k, ms in parts.items():
        texts = [mention_text(m.surface, m.text, extra.get(m.id)) for m in ms]
        pk, tl = FT.iier_text(enc, "mention", ms, texts, key_prefix=f"{D.data_hash(ms)}:", cache_dir=cache,
                              progress=progress)
        sizes[f"{k}:text"] = pk.nbytes_on_disk()
        img = None
        if img_backend is not None:
            img = FT.iier_image(img_backend, "mention", ms, layers, view=opts.view, margin=opts.crop_margin,
                                key_prefix=f"{D.data_hash(ms)}:", cache_dir=cache, progress=progress)
            sizes[f"{k}:image"] = img[0].nbytes_on_disk()
        feats[k] = _load_iier(pk, tl, img, len(ms))
    pk, tl = FT.iier_text(enc, "entity", ents, [entity_text(e.label, e.description) for e in ents], cache_dir=cache,
                          progress=progress)
    sizes["entity:text"] = pk.nbytes_on_disk()
    img = None
    if img_backend is not None:
        img = FT.iier_image(img_backend, "entity", ents, layers, cache_dir=cache, progress=progress)
        sizes["entity:image"] = img[0].nbytes_on_disk()
    ent_feats = _load_iier(pk, tl, img, len(ents))
    feat_seconds = clock.stop("features")

    cfg = IIERConfig(d_text=int(ent_feats.cls.shape[1]),
                     d_tokens=int(ent_feats.tok.shape[2]) if ent_feats.tok.shape[2] != ent_feats.cls.shape[1] else None,
                     d_cls_layers=tuple(int(x) for x in _layer_widths(img_backend, layers)) if img_backend else (1,),
                     d_patch=int(ent_feats.img_tok.shape[2]) if img_backend else 1, d_image_global=opts.d_image_global,
                     d_v=opts.d_v, d_c=opts.d_c, units=opts.units, mask_padding=opts.mask_padding)
    info = {
        "kind": "iier", "head": cfg.to_dict(), "frozen_encoders": True, "view": opts.view,
        "crop_margin": opts.crop_margin, "detective": opts.detective,
        "features": {"text": {"role": opts.text_role, "kind": enc.kind, "max_length": enc.max_length,
                              "model_id": str(tb.model_id)},
                     **({"image": {"role": opts.image_role, "model_id": str(img_backend.model_id),
                                   "layers": list(layers)}} if img_backend is not None else {})},
        "options": opts.to_dict(), "profile": getattr(prof, "name", str(profile)), "device": su.device,
        "data": su.data(kb_dir, data_info), "candidates": {"k": opts.candidates, "space": cspace, "retrieval": retrieval},
    }

    def step(model: Any, idx: np.ndarray) -> Any:
        import torch

        g = gold_s["train"][idx]
        extra = cand_s["train"][idx][:, : opts.hard_negatives].reshape(-1) if opts.hard_negatives else np.array([], np.int64)
        cand = np.unique(np.concatenate([g, extra]))
        cand = cand[cand >= 0]
        col = {int(e): i for i, e in enumerate(cand)}
        dev = next(model.parameters()).device
        score, units = model(feats["train"].take(idx, dev), ent_feats.take(cand, dev))
        loss, _parts = iier_loss(score, units, torch.tensor([col[int(x)] for x in g], device=dev), lam=opts.lam,
                                 temperature=opts.temperature)
        return loss

    def ev(part: str, keep: int = 0) -> Any:
        return lambda model: evaluate_candidates(model, feats[part], ent_feats, cand_s[part], gold_s[part], keep)

    runs = []
    for seed in opts.seeds:
        seed_all(seed)
        sdir = su.out / f"seed-{seed}"
        run = train_seed(seed, opts, IIER(cfg).to(su.device), sdir, info, len(gold_s["train"]), step, lambda m: ev("dev")(m)[0],
                         label="iier", clock=clock, resume=resume, progress=progress)
        fin = finish_seed(sdir, ev("dev", 3), (lambda m: ev("test")(m)[0]) if "test" in feats else None, su.device)
        runs.append({"seed": seed, **run, **fin})
    results = {
        "kind": "iier", "units": list(opts.units), "retrieval": retrieval, "data": info["data"],
        "options": opts.to_dict(), "candidates": info["candidates"],
        "features": {"seconds": round(feat_seconds, 3), "bytes_on_disk": sizes,
                     "items": len(ents) + sum(len(v) for v in parts.values()), "cache_dir": str(cache)},
    }
    return finish(su, runs, opts.select, results)


def _layer_widths(backend: Any, layers: Sequence[int]) -> list[int]:
    from ..link.iier import image_features

    c = [image_features(backend, [np.zeros((32, 32, 3), np.uint8)], [layer])[0].shape[1] for layer in layers]
    return c


__all__ = ["IIEROptions", "train_iier", "evaluate_candidates", "score_candidates", "default_layers", "EFFICIENTNET_LAYERS"]
