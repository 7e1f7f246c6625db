"""Train the instance head of :mod:`pixlink.models.backends.instance_head` on composites.

Offline data building, apart from inference (ReFinED's split): the composite set
(:mod:`pixlink.demo.composite`) gives, for its CALIBRATION entities only, as many new photos of
each logo and flag as wanted (:func:`render_views`: the set's own recipe with fresh seeds; views cut from the visible
object's box with a random margin, half of them masked to the object, as the linker may see a
region; optionally some showing only part of the object). A linear map ``W`` ``(dim, D)`` of the
backbone's multi-layer features (:func:`~pixlink.models.backends.instance_head.multilayer_features`)
is trained with a softmax over the training entities' reference images (:func:`train_head`:
InfoNCE with a learned temperature, full batch, AdamW): a view must be nearer its own reference
than every other one. The head is then :func:`save_head`-d (safetensors, the recipe and figures
in its metadata).

No test entity is seen: the set's test split (its own entities) measures it
(``benchmarks/train_instance_head.py``).
"""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from ..errors import Errors, InputError
from ..regions.views import crop, masked_crop
from ..types import Region
from ..log import get_logger

log = get_logger(__name__)

MARGINS = (0.0, 0.25)
"""Training views are cut with a margin drawn uniformly from this range (a query's box may be
tight or loose: the linker's crop adds ``LinkerConfig.crop_margin``, 0.1 by default, to a box
drawn by hand)."""

MASKED_SHARE = 0.5
"""The share of training views that are *masked* crops (outside the object's visible mask set
to the photo's mean grey: :func:`pixlink.regions.views.masked_crop`, as the linker cuts it): the view
of a segmented region."""

PARTIAL_SIDES = (0.4, 0.8)
"""A partial view keeps this fraction (drawn uniformly, per side) of the object's box width
and height, at a random place inside it."""


def partial_box(box: Sequence[float], rng: np.random.Generator,
                sides: tuple[float, float] = PARTIAL_SIDES) -> np.ndarray:
    """A window inside the XYXY ``box``: each side a fraction drawn from ``sides`` of the box's,
    at a place drawn from ``rng`` (a flag behind a speaker shows its canton, a logo on a wall is
    cut by the photo's edge). Returns ``(4,)`` float64 XYXY."""
    x1, y1, x2, y2 = (float(v) for v in box)
    fw, fh = rng.uniform(*sides, size=2)
    w, h = (x2 - x1) * fw, (y2 - y1) * fh
    ox, oy = x1 + rng.uniform(0, x2 - x1 - w), y1 + rng.uniform(0, y2 - y1 - h)
    return np.array([ox, oy, ox + w, oy + h], dtype=np.float64)


def _render(job: tuple[Any, int, int, int, float, tuple[float, float]]) -> tuple[int, list[np.ndarray]] | None:
    from PIL import Image

    from ..demo.composite import render_query

    ref, row, seed, n_crops, partial, sides = job
    out = render_query(ref, seed)
    if out is None:
        return None
    jpg, mask, _, _ = out
    img = np.asarray(Image.open(io.BytesIO(jpg.tobytes())).convert("RGB"))
    region = Region.from_mask(np.asarray(mask, dtype=bool))
    rng = np.random.default_rng(seed)
    views = []
    for _ in range(n_crops):
        margin = float(rng.uniform(*MARGINS))
        masked = rng.random() < MASKED_SHARE
        view = region
        if partial > 0 and rng.random() < partial:
            view = Region(image_size=region.image_size, box=partial_box(region.bbox, rng, sides), mask=region.mask)
        # the linker's two views of a region: the box, or the box masked to the object
        views.append(masked_crop(img, view, margin) if masked else crop(img, view, margin))
    return row, views


def render_views(references: Sequence[Any], rows: Iterable[int], per_kind: dict[str, int], *, seed: int = 50_000_000,
                 crops: int = 1, partial: float = 0.0, partial_sides: tuple[float, float] = PARTIAL_SIDES,
                 workers: int = 1) -> Iterator[tuple[int, np.ndarray]]:
    """``(reference row, view)`` for ``per_kind[kind]`` new photos of each reference ``rows``
    (:class:`~pixlink.demo.composite.Reference`), ``crops`` views cut from each (a margin drawn
    from :data:`MARGINS`, masked for :data:`MASKED_SHARE` of them, a part of the object
    (:func:`partial_box`, each side ``partial_sides`` of the box's) for a ``partial`` share of
    them); seeds ``seed + 97 * row + j``
    (fresh: the set's own queries come from other seeds). A photo that hides too much of its
    object is skipped."""
    sides = (float(partial_sides[0]), float(partial_sides[1]))
    jobs = [(references[r], r, seed + 97 * r + j, int(crops), float(partial), sides) for r in rows
            for j in range(int(per_kind.get(references[r].kind, 0)))]
    if workers <= 1:
        yield from _views_of(map(_render, jobs))
        return
    from multiprocessing import get_context

    with get_context("spawn").Pool(workers) as pool:
        yield from _views_of(pool.imap(_render, jobs, chunksize=16))


def _views_of(rendered: Iterable[tuple[int, list[np.ndarray]] | None]) -> Iterator[tuple[int, np.ndarray]]:
    """``(row, view)`` for every view of every photo rendered (skipped photos are None)."""
    for out in rendered:
        if out is not None:
            row, views = out
            yield from ((row, v) for v in views)


def train_head(queries: np.ndarray, targets: np.ndarray, references: np.ndarray, *, dim: int = 256, epochs: int = 300,
               lr: float = 3e-3, weight_decay: float = 1e-4, seed: int = 0,
               init: np.ndarray | None = None, views_per_step: int | None = None,
               references_per_step: int = 1024) -> tuple[np.ndarray, dict[str, Any]]:
    """Fit ``W`` ``(dim, D)`` so that ``normalise(W q)`` is nearest ``normalise(W r)`` of its own
    reference among all the references that are targets.

    Args:
        queries: ``(N, D)`` float32 features of the training views.
        targets: ``(N,)`` the row of each view's reference in ``references``.
        references: ``(M, D)`` float32 features of the reference images.
        dim, epochs, lr, weight_decay, seed: the head's size and the optimiser's settings
            (AdamW, ``epochs`` steps; the temperature is learned, from 0.07).
        init: ``(dim, D)`` weights to start from (another head: fine-tuning); default random.
        views_per_step: None (default): full batch, every step scores every view against every
            target reference (memory ``~3 N M`` floats). Else mini-batches for a set too large for
            that: each step takes this many views (shuffled passes) and scores them against their
            own references and ``references_per_step`` other target references drawn at random
            (a sampled softmax; memory ``~3 B (B + K)`` floats a step).

    Returns:
        ``(W, log)``: the weight and ``{"loss_first", "loss_last", "temperature", "training"}``.
    """
    import torch

    q, t, r = np.asarray(queries, np.float32), np.asarray(targets), np.asarray(references, np.float32)
    if q.ndim != 2 or r.ndim != 2 or q.shape[1] != r.shape[1] or len(t) != len(q) or len(q) == 0:
        raise InputError(Errors.E010.format(what="instance head training data", value=f"{q.shape} {t.shape} {r.shape}",
                                            reason="queries (N, D), targets (N,), references (M, D)"))
    torch.manual_seed(seed)
    cand = np.unique(t)
    pos = {int(c): i for i, c in enumerate(cand)}
    y = torch.tensor([pos[int(c)] for c in t])
    qx, rx = torch.from_numpy(q), torch.from_numpy(r[cand])
    head = torch.nn.Linear(q.shape[1], int(dim), bias=False)
    if init is not None:
        w0 = np.asarray(init, np.float32)
        if w0.shape != (int(dim), q.shape[1]):
            raise InputError(Errors.E010.format(what="instance head init", value=w0.shape,
                                                reason=f"expected ({int(dim)}, {q.shape[1]})"))
        with torch.no_grad():
            head.weight.copy_(torch.from_numpy(w0))
    scale = torch.nn.Parameter(torch.tensor(float(np.log(1 / 0.07))))
    opt = torch.optim.AdamW([*head.parameters(), scale], lr=lr, weight_decay=weight_decay)
    full = views_per_step is None or int(views_per_step) >= len(q)
    # each step's (views, references, labels): a full batch is every view against every reference
    # (the slices are views of the tensors, no copy)
    steps = itertools.repeat((slice(None), slice(None), y)) if full else _sampled_steps(
        y.numpy(), len(cand), int(views_per_step), int(references_per_step), seed)
    first = last = float("nan")
    for ep in range(int(epochs)):
        views, refs, labels = next(steps)
        opt.zero_grad()
        eq = torch.nn.functional.normalize(head(qx[views]), dim=1)
        er = torch.nn.functional.normalize(head(rx[refs]), dim=1)
        loss = torch.nn.functional.cross_entropy(scale.exp().clamp(max=100.0) * eq @ er.T, labels)
        loss.backward()
        opt.step()
        last = loss.item()
        first = last if ep == 0 else first
        if ep % 50 == 0:
            log.debug("instance head: step %d loss %.4f", ep, last)
    w = head.weight.detach().numpy().astype(np.float32)
    training = {"mode": "full batch"} if full else {"mode": "mini-batch", "views_per_step": int(views_per_step),
                                                   "references_per_step": int(references_per_step)}
    training["steps"] = int(epochs)
    return w, {"loss_first": round(first, 4), "loss_last": round(last, 4),
               "temperature": round(float(1 / scale.detach().exp().clamp(max=100.0)), 4), "training": training}


def _sampled_steps(labels: np.ndarray, n_refs: int, batch: int, sampled: int,
                   seed: int) -> Iterator[tuple[Any, Any, Any]]:
    """``(view rows, reference rows, labels)`` of each mini-batch step: ``batch`` views of a
    shuffled pass over ``labels`` (a view's reference row), their own references first and then
    up to ``sampled`` others drawn at random, each view's label its reference's position."""
    import torch

    rng = np.random.default_rng(seed)
    order, at = rng.permutation(len(labels)), 0
    while True:
        if at + batch > len(labels):
            order, at = rng.permutation(len(labels)), 0
        views = order[at:at + batch]
        at += batch
        own = np.unique(labels[views])
        others = np.setdiff1d(rng.choice(n_refs, size=min(sampled, n_refs), replace=False), own)
        refs = np.concatenate([own, others])
        yield (torch.from_numpy(views), torch.from_numpy(refs),
               torch.from_numpy(np.searchsorted(own, labels[views])))


def project(features: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``(N, dim)`` L2-normalised ``features @ weight.T`` (what the backend computes)."""
    from ..vecmath import l2_normalise

    return l2_normalise(np.asarray(features, np.float32) @ weight.T).astype(np.float32)


def save_head(path: str | Path, weight: np.ndarray, info: dict[str, Any]) -> Path:
    """Write the head (safetensors: ``weight``; metadata ``pixlink``: ``info`` as JSON, which
    must name the ``layers``)."""
    from safetensors.numpy import save_file

    if "layers" not in info:
        raise InputError(Errors.E010.format(what="instance head info", value=sorted(info), reason="must name 'layers'"))
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    save_file({"weight": np.ascontiguousarray(weight, np.float32)}, str(tmp), metadata={"pixlink": json.dumps(info)})
    tmp.replace(p)
    return p
