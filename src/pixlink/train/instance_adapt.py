"""Adapt the ``instance`` head to one KB: the shipped recipe, trained on the KB's own references.

The shipped head (:mod:`pixlink.train.instance_head`) is trained on the composite set's
calibration entities, so that its figures are of entities it never saw. A user's KB is known
before any query, though: ``pixlink train instance-head KBDIR`` (:func:`adapt_instance_head`)
renders new photos of *every* reference image of the KB (pasted into scikit-image photos with the
composite set's recipe, :func:`pixlink.demo.composite.render_query`; a graphic on a plain
background is cut out, anything else pasted whole and waved like cloth half of the time,
:func:`~pixlink.demo.composite.kb_image_rgba`), trains a head on views of them, and writes it
into the KB (:data:`pixlink.link.kbhead.KB_HEAD`), where every linker over the KB and
``pixlink kb embed`` find it.

A head that has seen the references places right and wrong ones at other cosines than the
shipped head, so it carries its own calibration: ``held_out`` photos more (other seeds, one view
each, never trained on) give, for each, its entity's best cosine (a match) and the
``negatives`` best other entities' (non-matches); :meth:`~pixlink.link.fusion.Fusion.fit` fits
the ``instance`` entry on them, and its centre and slope go into the head's metadata with the
held-out Hits@1 / Hits@5 of the new head and of the shipped one on the same views.

Offline data building (ReFinED's split): features are cached in ``KBDIR/models/instance_head.work``
part by part, so a stopped run resumes (the folder is removed once the head is written);
``--overwrite`` starts over.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import Errors, InputError
from ..log import get_logger

log = get_logger(__name__)


@dataclass
class AdaptOptions:
    """The recipe of a KB's own head.

    Attributes:
        photos: new photos rendered of each KB reference image.
        crops: views cut from each photo (random margin, half masked to the object).
        partial: the share of views that show only a part of the object.
        held_out: photos (one view each, other seeds) for the calibration and the figures.
        negatives: wrong entities per held-out view in the calibration (its best-scored ones).
        start: ``"shipped"`` fine-tunes the shipped head (what a small KB needs: a few hundred
            views do not train 4,800 x 256 weights from nothing), ``"random"`` trains from scratch.
        epochs, lr, dim: the head's training (AdamW, ``epochs`` steps) and its output size.
        training: ``"full"`` (every step scores every view against every reference), ``"mini-batch"``
            (each step ``views_per_step`` views against their own references and
            ``references_per_step`` others drawn at random) or ``"auto"``: full batch when its
            estimate (:func:`training_memory_gb`) fits ``max_memory_gb``, else mini-batches
            (logged, and named in the report's ``fit``).
        views_per_step, references_per_step, passes: the mini-batches' sizes, and how many
            times each view is seen (``passes x views / views_per_step`` steps; ``epochs`` is the
            full batch's).
        batch_size: images per backbone call.
        part_size: reference images per cached part (a stopped run resumes part by part).
        workers: processes rendering photos.
        seed: the photos' seeds start here (the composite set's own queries use other seeds).
        max_memory_gb: a KB whose training (in the chosen mode) is estimated to need more is
            refused before anything is rendered (E421), with the estimate.
    """

    photos: int = 2
    crops: int = 2
    partial: float = 0.15
    held_out: int = 600
    negatives: int = 20
    start: str = "shipped"
    epochs: int = 300
    lr: float = 3e-4
    dim: int = 256
    training: str = "auto"
    views_per_step: int = 1024
    references_per_step: int = 1024
    passes: int = 100
    batch_size: int = 32
    part_size: int = 256
    workers: int = 1
    seed: int = 80_000_000
    max_memory_gb: float = 8.0

    def __post_init__(self) -> None:
        for k in ("photos", "crops", "epochs", "dim", "batch_size", "part_size", "workers", "views_per_step",
                  "references_per_step", "passes"):
            if int(getattr(self, k)) < 1:
                raise InputError(Errors.E010.format(what=k, value=getattr(self, k), reason="at least 1"))
        if self.start not in ("shipped", "random"):
            raise InputError(Errors.E010.format(what="start", value=self.start, reason="shipped or random"))
        if self.training not in TRAINING_MODES:
            raise InputError(Errors.E010.format(what="training", value=self.training,
                                                reason=" or ".join(TRAINING_MODES)))
        if int(self.held_out) < 0 or int(self.negatives) < 1 or not 0.0 <= float(self.partial) <= 1.0 \
                or not float(self.max_memory_gb) > 0:
            raise InputError(Errors.E010.format(what="instance head options", value=asdict(self),
                                                reason="held_out >= 0, negatives >= 1, partial in [0, 1], "
                                                       "max_memory_gb > 0"))


TRAINING_MODES = ("auto", "full", "mini-batch")


def training_memory_gb(n_references: int, options: AdaptOptions, dim_in: int = 4800,
                       mode: str = "full") -> float:
    """The training's main memory, GB: the views' and references' features (``(N, dim_in)`` and
    ``(M, dim_in)`` float32; N = references x photos x crops) and the logits with the softmax's
    gradient and intermediates: ``3 x (N, M)`` float32 in a full batch, ``3 x (B, B + K)`` and
    the step's gathered features in a mini-batch (B views, K sampled references)."""
    n = n_references * options.photos * options.crops
    held = (n + n_references) * dim_in * 4
    if mode == "full":
        return (held + 3 * n * n_references * 4) / 2**30
    b = min(options.views_per_step, n)
    k = b + min(options.references_per_step, n_references)
    return (held + 3 * b * k * 4 + 2 * (b + k) * dim_in * 4) / 2**30


def training_mode(n_references: int, options: AdaptOptions) -> str:
    """``"full"`` or ``"mini-batch"``: the option, or for ``"auto"`` full batch when it fits
    ``max_memory_gb``."""
    if options.training != "auto":
        return options.training
    return "full" if training_memory_gb(n_references, options) <= options.max_memory_gb else "mini-batch"


def kb_references(kb: Any) -> list[Any]:
    """One :class:`~pixlink.demo.composite.Reference` (kind ``"image"``) per local image of
    every KB entity that has one, in the KB's order."""
    from ..demo.composite import Reference

    refs = []
    for e in kb.entities_with_images(resolved_only=True):
        for path in e.images:
            if Path(path).is_file():
                refs.append(Reference(entity_id=e.id, label=e.label, kind="image", images=[str(path)], split="kb",
                                      nil=False, source=e.source or "kb"))
    return refs


def adapt_instance_head(kb_dir: str | Path, options: AdaptOptions | None = None, *, overwrite: bool = False,
                        keep_work: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train the KB's own instance head and write it to ``kb_dir``/:data:`~pixlink.link.kbhead.KB_HEAD`.

    Returns the report (also in the head's metadata): ``references``, ``entities``,
    ``views``, ``fit`` (the training loss), ``calibration`` (``center``, ``slope``),
    ``held_out`` (Hits@1 / Hits@5 of the new and the shipped head on the same held-out views),
    ``installed``, ``head`` (its file), ``seconds``. The head is installed only when its
    held-out Hits@1 is at least the shipped head's; else it is written beside
    (``instance_head.rejected.safetensors``), ``reason`` says why, and the KB keeps what it had.

    Raises E421 when the KB has fewer than two entities with a local image, or when the
    training would need more than ``max_memory_gb``. A run stopped part-way resumes from its
    cached parts (``overwrite`` discards them and a head already there; ``keep_work`` keeps them
    after the head is written, for another training of the same views)."""
    from ..kb import KB
    from ..link.kbhead import KB_HEAD
    from ..models.backends.efficientnet import EfficientNetLiteEncoder
    from ..models.backends.instance_head import GRID_LAYERS, HEAD_PATH, LAYERS, load_head, multilayer_features
    from ..progress import progress as make_progress
    from .instance_head import project, save_head, train_head

    o = options or AdaptOptions()
    t0 = time.perf_counter()
    with KB.open(kb_dir) as kb:
        refs = kb_references(kb)
        build_id = kb.build_id
    n_ent = len({r.entity_id for r in refs})
    if len(refs) < 2 or n_ent < 2:
        raise InputError(Errors.E421.format(kb=str(kb_dir), what="reference images",
                                            reason=f"{len(refs)} local image(s) of {n_ent} "
                                                   f"{'entity' if n_ent == 1 else 'entities'}; at least two entities "
                                                   "with an image are needed"))
    mode = training_mode(len(refs), o)
    need = training_memory_gb(len(refs), o, mode=mode)
    if need > o.max_memory_gb:
        raise InputError(Errors.E421.format(kb=str(kb_dir), what=f"room for a {mode} training",
                                            reason=f"{len(refs):,} reference images x {o.photos} photos x {o.crops} "
                                                   f"views need about {need:.3g} GB, above max_memory_gb "
                                                   f"{o.max_memory_gb:g}; fewer photos or views, or a larger limit"))
    if mode != "full" and o.training == "auto":
        log.warning("instance head: a full batch would need about %.3g GB (above max_memory_gb %g): training in "
                    "mini-batches of %d views against their own and %d sampled references (about %.3g GB)",
                    training_memory_gb(len(refs), o), o.max_memory_gb, o.views_per_step, o.references_per_step, need)
    head_path = Path(kb_dir) / KB_HEAD
    work = head_path.with_suffix(".work")
    if overwrite and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    _check_work(work, build_id, refs, o)
    enc = EfficientNetLiteEncoder()

    def feats(images: Sequence[np.ndarray]) -> np.ndarray:
        return multilayer_features(enc, images, LAYERS, GRID_LAYERS, o.batch_size)

    rows = list(range(len(refs)))
    parts = [rows[i:i + o.part_size] for i in range(0, len(rows), o.part_size)]
    rng = np.random.default_rng(o.seed)
    held_rows = sorted(rng.choice(len(refs), size=min(o.held_out, len(refs)), replace=False).tolist()) if o.held_out else []
    with make_progress(disable=not progress) as bar:
        task = bar.add_task("instance head: references", total=1, rate=f"{len(refs)} images")
        R = _cached(work / "references.npz", lambda: {"x": _reference_features(refs, feats)})["x"]
        bar.update(task, advance=1)
        task = bar.add_task("instance head: views", total=len(parts), rate="")
        X, Y = [], []
        for j, part in enumerate(parts):
            d = _cached(work / f"views-{j:05d}.npz",
                        lambda part=part: _view_features(refs, part, feats, R.shape[1], photos=o.photos, seed=o.seed,
                                                         crops=o.crops, partial=o.partial, workers=o.workers))
            X.append(d["x"])
            Y.append(d["row"])
            bar.update(task, advance=1, rate=f"{sum(len(y) for y in Y)} views")
        task = bar.add_task("instance head: held-out views", total=1, rate="")
        H = _cached(work / "held_out.npz",
                    lambda: _view_features(refs, held_rows, feats, R.shape[1], photos=1, seed=o.seed + 7_000_000,
                                           crops=1, partial=0.0, workers=o.workers))
        bar.update(task, advance=1)
    x, y = np.concatenate(X), np.concatenate(Y)
    if len(x) == 0:
        raise InputError(Errors.E421.format(kb=str(kb_dir), what="usable reference images",
                                            reason="no photo kept enough of any reference to cut a view"))
    log.info("instance head: training on %d views of %d references", len(x), len(refs))
    shipped = load_head(HEAD_PATH)[0]
    mini = mode == "mini-batch"
    steps = -(-o.passes * len(x) // o.views_per_step) if mini else o.epochs
    W, fit = train_head(x, y, R, dim=o.dim, epochs=steps, lr=o.lr, init=shipped if o.start == "shipped" else None,
                        views_per_step=o.views_per_step if mini else None, references_per_step=o.references_per_step)
    owner = np.array([r.entity_id for r in refs])
    adapted = _entity_scores(project(H["x"], W), project(R, W), H["row"], owner)
    held = {"views": int(len(H["row"])), "adapted": _hits(*adapted),
            "shipped": _hits(*_entity_scores(project(H["x"], shipped), project(R, shipped), H["row"], owner))}
    calibration = _fit_calibration(*adapted, o.negatives)
    # installed only when it finds new photos of the KB's references at least as well as the
    # shipped head does (a small KB can over-fit its few views); else kept beside, and said
    worse = bool(held["views"]) and held["adapted"]["hits@1"] < held["shipped"]["hits@1"]
    report = {"kb": str(Path(kb_dir).resolve()), "kb_build_id": build_id, "references": len(refs), "entities": n_ent,
              "views": int(len(x)), "recipe": asdict(o), "fit": fit, "held_out": held, "calibration": calibration,
              "installed": not worse, "seconds": round(time.perf_counter() - t0, 1)}
    if worse:
        head_path = head_path.with_name("instance_head.rejected.safetensors")
        report["reason"] = (f"held-out Hits@1 {held['adapted']['hits@1']:.3f} is below the shipped head's "
                            f"{held['shipped']['hits@1']:.3f}: the KB keeps the head it had")
        log.warning("instance head: not installed: %s (written to %s)", report["reason"], head_path)
    save_head(head_path, W, {"layers": list(LAYERS), "grid_layers": list(GRID_LAYERS), "trained_on": "kb", **report})
    if not keep_work:
        shutil.rmtree(work)  # the features of the views (~80 KB each): the head and its report say what they gave
    report["head"] = str(head_path)
    return report


_VIEW_OPTIONS = ("photos", "crops", "partial", "held_out", "part_size", "seed")
"""The options the cached views depend on (the training's may change between runs on one cache)."""


def _check_work(work: Path, build_id: str | None, refs: Sequence[Any], o: AdaptOptions) -> None:
    """Cached parts are of this KB build, these references and this recipe, else E779: a
    different run in the same folder starts over only when asked (``overwrite``)."""
    key = {"kb_build_id": build_id, "references": [r.images[0] for r in refs][:50], "n": len(refs),
           "recipe": {k: v for k, v in asdict(o).items() if k in _VIEW_OPTIONS}}
    p = work / "run.json"
    if p.exists():
        old = json.loads(p.read_text())
        if old != json.loads(json.dumps(key)):
            raise InputError(Errors.E779.format(path=str(work), reason="another KB build or recipe"))
        return
    p.write_text(json.dumps(key))


def _cached(path: Path, make: Any) -> dict[str, np.ndarray]:
    if path.exists():
        with np.load(path, allow_pickle=False) as d:
            return {k: d[k] for k in d.files}
    out = make()
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **out)
    tmp.replace(path)
    return out


def _reference_features(refs: Sequence[Any], feats: Any, chunk: int = 256) -> np.ndarray:
    from ..io import load_image

    return np.concatenate([feats([load_image(r.images[0]) for r in refs[i:i + chunk]])
                           for i in range(0, len(refs), chunk)])


def _view_features(refs: Sequence[Any], rows: Sequence[int], feats: Any, dim_in: int, **render: Any
                   ) -> dict[str, np.ndarray]:
    """``{"row", "x"}``: the rows and features of the views :func:`~pixlink.train.instance_head.render_views`
    cuts from new photos of ``refs[rows]`` (``render``: its photos per reference, seed, crops,
    partial share and workers)."""
    from .instance_head import render_views

    photos = render.pop("photos")
    got = list(render_views(refs, rows, {"image": photos}, **render))
    return {"row": np.array([r for r, _ in got], np.int64),
            "x": feats([v for _, v in got]) if got else np.zeros((0, dim_in), np.float32)}


def _entity_scores(q: np.ndarray, r: np.ndarray, rows: np.ndarray, owner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(scores (N, E), gold (N,))``: each view's best cosine with each entity's images, and
    the column of the entity of the view's reference ``rows``."""
    ents, inv = np.unique(owner, return_inverse=True)
    order = np.argsort(inv, kind="stable")  # each entity's references side by side, then a max per run
    starts = np.searchsorted(inv[order], np.arange(len(ents)))
    out = np.maximum.reduceat((q @ r.T)[:, order], starts, axis=1).astype(np.float32)
    return out, np.searchsorted(ents, owner[rows])


def _hits(s: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    if len(s) == 0:
        return {"hits@1": float("nan"), "hits@5": float("nan")}
    rank = (s > s[np.arange(len(s)), gold][:, None]).sum(axis=1)
    return {"hits@1": round(float((rank < 1).mean()), 4), "hits@5": round(float((rank < 5).mean()), 4)}


def _fit_calibration(s: np.ndarray, gold: np.ndarray, negatives: int) -> dict[str, Any]:
    """The ``instance`` entry's centre and slope, fitted as :meth:`~pixlink.link.fusion.Fusion.fit`
    fits a signal (a logistic regression of is-a-match on the cosine) on each held-out
    view's own entity (a match, its column ``gold`` of the scores ``s``) and its ``negatives``
    best other entities (non-matches)."""
    from ..vecmath import fit_logistic

    if len(s) < 5:
        return {"center": None, "slope": None, "examples": 0, "reason": "fewer than 5 held-out views"}
    xs: list[float] = []
    ys: list[float] = []
    for i in range(len(s)):
        wrong = [j for j in np.argsort(-s[i])[: negatives + 1] if j != gold[i]][:negatives]
        xs += [float(s[i, gold[i]])] + [float(s[i, j]) for j in wrong]
        ys += [1.0] + [0.0] * len(wrong)
    x, y = np.asarray(xs), np.asarray(ys)
    slope, center = fit_logistic(x, y)  # as Fusion.fit fits every signal
    return {"center": round(float(center), 4), "slope": round(float(slope), 3), "examples": len(xs),
            "matches": int(len(s))}
