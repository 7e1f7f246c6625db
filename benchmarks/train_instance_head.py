"""Train the instance head (the ``instance`` signal's model) and measure it on the composite set.

Steps (each cached in ``--work``; a re-run resumes):

1. the backbone's multi-layer features of every reference image of the set (logos and flags):
   global pools and 2x2 layout pools (``--grid-layers``), cached apart;
2. new photos of the CALIBRATION entities only (:func:`pixlink.train.instance_head.render_views`:
   ``--logo-views`` per logo, ``--flag-views`` per flag: flags are few; ``--crops`` views cut
   from each with random margins, half masked to the object, ``--partial`` of them a part of it), their features;
3. the features of the TEST split's queries, cut as the linker cuts a box (``LinkerConfig.crop_margin``),
   and of a part of each (a seeded ``partial_box``: a flag behind a speaker shows its canton);
4. the head trained on all calibration entities (written to ``--out``, the shipped file by
   default), and two *fold* heads, each trained on half of the calibration entities (by a hash of
   the entity id), written to ``WORK/head_fold{0,1}.safetensors`` with ``folds.json``: the
   fusion's ``instance`` calibration is fitted on calibration links scored by the head that did
   not see the mention's entity (``benchmarks/bench_instance.py``);
5. test figures against every KB reference (the NIL entities' references left out), by kind:
   Hits@1 / Hits@5 of the raw features (cosine), of the last layer alone (what ``v2v``
   compares), of the head and of ``--previous`` (the head it would replace), on whole and
   partial views; a held-out check on the fold heads.

Usage::

    python benchmarks/train_instance_head.py [--work /tmp/instance_head] [--out PATH] [--results PATH]

Prints the figures and writes ``benchmarks/results/instance_head.json`` (+ ``.png``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from _measure import plot  # noqa: E402
from pixlink.models.backends.instance_head import HEAD_PATH  # noqa: E402  (the shipped head)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def cached(path: Path, make):
    if path.exists():
        return dict(np.load(path, allow_pickle=False))
    out = make()
    np.savez(path, **out)
    return out


def hits(q: np.ndarray, r: np.ndarray, gold: np.ndarray, kind: np.ndarray, pool: np.ndarray) -> dict:
    """Hits@1 / Hits@5 of ``q`` vs ``r[pool]`` (cosine of unit rows), by kind."""
    top = pool[np.argsort(-(q @ r[pool].T), axis=1)[:, :5]]
    out = {}
    for k in ("logo", "flag"):
        m = (kind == k) & (gold >= 0)
        out[k] = {"hits@1": round(float((top[m, 0] == gold[m]).mean()), 3),
                  "hits@5": round(float((top[m] == gold[m, None]).any(1).mean()), 3), "n": int(m.sum())}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/instance_head")
    ap.add_argument("--out", default=str(HEAD_PATH))
    ap.add_argument("--previous", default=str(HEAD_PATH),
                    help="the head this one would replace, measured on the same views ('' for none)")
    ap.add_argument("--results", default=str(Path(__file__).parent / "results" / "instance_head.json"))
    ap.add_argument("--logo-views", type=int, default=2)
    ap.add_argument("--flag-views", type=int, default=10)
    ap.add_argument("--crops", type=int, default=2, help="views cut from each new photo (random margins, masked or not)")
    ap.add_argument("--partial", type=float, default=0.0,
                    help="share of views showing only part of the object (0.25 tried: partial views gain, whole "
                         "logos lose; not shipped)")
    ap.add_argument("--grid-layers", default=None,
                    help="layers pooled over a 2x2 grid beside the global pools, comma-separated (default the "
                         "backend's GRID_LAYERS; '' for a global-only head)")
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    from pixlink.demo.composite import RECIPE_VERSION, CompositeConfig, generate
    from pixlink.io import load_image
    from pixlink.models.backends.efficientnet import EfficientNetLiteEncoder
    from pixlink.models.backends.instance_head import (GRID_LAYERS, LAYERS, feature_dim, global_pools, grid_pools,
                                                           join_pools, load_head, map_batches)
    from pixlink.link import LinkerConfig
    from pixlink.regions.views import crop
    from pixlink.train.instance_head import (MARGINS, MASKED_SHARE, PARTIAL_SIDES, partial_box, project,
                                              render_views, save_head, train_head)
    from pixlink.types import Region
    from pixlink.vecmath import l2_normalise

    grid = GRID_LAYERS if args.grid_layers is None else tuple(int(v) for v in args.grid_layers.split(",") if v.strip())
    view_margin = LinkerConfig().crop_margin  # test queries are seen as the linker sees a box
    previous = load_head(args.previous) if args.previous and Path(args.previous).exists() else None
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cs = generate(CompositeConfig())
    refs = cs.references
    enc = EfficientNetLiteEncoder()

    def both(images):
        """From one pass: the global pools ``g`` of ``LAYERS`` and the 2x2 pools ``s`` of the grid layers
        (cached apart, so that a head of either layout is measured on the same views) and the
        last layer alone (``last``, what ``v2v`` compares)."""
        out: dict[str, list] = {"g": [], "s": [], "last": []}
        for maps in map_batches(enc, images, sorted(set(LAYERS) | set(grid)), 32):
            out["g"].append(global_pools(maps, LAYERS))
            out["s"].append(grid_pools(maps, grid) if grid else np.zeros((len(maps[17]), 0), np.float32))
            out["last"].append(l2_normalise(maps[17].mean(axis=(2, 3))))
        return {k: np.concatenate(v).astype(np.float32) for k, v in out.items()}

    R = cached(work / "refs.npz", lambda: both([load_image(r.images[0]) for r in refs]))
    log(f"references: {len(refs)} ({time.perf_counter() - t0:.0f} s)")
    cal_rows = [i for i, r in enumerate(refs) if r.split == "calibration"]

    def make_train():
        rows, views = [], []
        for row, view in render_views(refs, cal_rows, {"logo": args.logo_views, "flag": args.flag_views},
                                      crops=args.crops, partial=args.partial, workers=args.workers):
            rows.append(row)
            views.append(view)
        log(f"rendered {len(views)} training views ({time.perf_counter() - t0:.0f} s)")
        return {"row": np.array(rows), **both(views)}

    T = cached(work / "train.npz", make_train)
    index = {r.entity_id: i for i, r in enumerate(refs)}
    test_ms = cs.mentions("test")

    def make_test():
        views = [crop(load_image(m.image), m.region, view_margin) for m in test_ms]
        return {"gold": np.array([index[m.gold] if m.gold else -1 for m in test_ms]),
                "kind": np.array([m.meta["kind"] for m in test_ms]), **both(views)}

    def make_partial():
        """The same test queries, a part of each object's box (a seeded :func:`partial_box`)
        cut as the linker cuts a box: a flag seen behind a speaker, a logo cut by the edge."""
        views = []
        for i, m in enumerate(test_ms):
            img = load_image(m.image)
            box = partial_box(m.region.bbox, np.random.default_rng(7_000_000 + i))
            views.append(crop(img, Region.from_box(box, img.shape[:2], clip=True), view_margin))
        return both(views)

    Q = cached(work / "test.npz", make_test)
    QP = cached(work / "test_partial.npz", make_partial)
    for D in (R, T, Q, QP):  # this head's input; a global-only head's is ``g``
        if D["s"].shape[1] != feature_dim(enc.net.layer_channels(), (), grid):
            raise SystemExit(f"{work}: cached features are of other grid layers than {grid}; use another --work")
        D["x"] = join_pools(D["g"], D["s"]) if grid else D["g"]
    log(f"features ready ({time.perf_counter() - t0:.0f} s): {len(T['row'])} training views, {len(Q['gold'])} test queries")

    kinds = np.array([r.kind for r in refs])
    kb_pool = np.array([i for i, r in enumerate(refs) if not r.nil])
    result = {"generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "load_average": os.getloadavg(),
              "layers": list(LAYERS), "grid_layers": list(grid), "dim": args.dim, "epochs": args.epochs,
              "training": {"entities": {k: int(sum(1 for i in cal_rows if refs[i].kind == k)) for k in ("logo", "flag")},
                           "views": {k: int((kinds[T["row"]] == k).sum()) for k in ("logo", "flag")},
                           "photos_per_entity": {"logo": args.logo_views, "flag": args.flag_views},
                           "crops_per_photo": args.crops, "margins": list(MARGINS), "masked_share": MASKED_SHARE,
                           "partial_share": args.partial, "partial_sides": list(PARTIAL_SIDES)},
              "test_view_margin": view_margin,
              "test": {"queries_with_kb_entity": int((Q["gold"] >= 0).sum()), "kb_references": len(kb_pool)}}

    t1 = time.perf_counter()
    W, fit = train_head(T["x"], T["row"], R["x"], dim=args.dim, epochs=args.epochs)
    result["fit"] = {**fit, "seconds": round(time.perf_counter() - t1, 1)}
    result["test"]["last_layer_cosine"] = hits(Q["last"], R["last"], Q["gold"], Q["kind"], kb_pool)
    result["test"]["multilayer_cosine"] = hits(Q["x"], R["x"], Q["gold"], Q["kind"], kb_pool)
    result["test"]["head"] = hits(project(Q["x"], W), project(R["x"], W), Q["gold"], Q["kind"], kb_pool)
    result["test_partial"] = {"multilayer_cosine": hits(QP["x"], R["x"], Q["gold"], Q["kind"], kb_pool),
                              "head": hits(project(QP["x"], W), project(R["x"], W), Q["gold"], Q["kind"], kb_pool)}
    if previous is not None:  # the head this one replaces, on the same views
        W0, prev_grid = previous[0], tuple(previous[1].get("grid_layers", ()))
        key = "x" if prev_grid == grid else "g" if not prev_grid else None
        if key is None:
            log(f"--previous: its grid layers {prev_grid} are not this run's {grid}; not measured")
        else:
            result["test"]["previous_head"] = hits(project(Q[key], W0), project(R[key], W0), Q["gold"], Q["kind"], kb_pool)
            result["test_partial"]["previous_head"] = hits(project(QP[key], W0), project(R[key], W0), Q["gold"],
                                                           Q["kind"], kb_pool)

    # two fold heads for the fusion's out-of-fold calibration, and a held-out check of each
    fold_of = {refs[i].entity_id: int(hashlib.sha256(refs[i].entity_id.encode()).digest()[0] % 2) for i in cal_rows}
    (work / "folds.json").write_text(json.dumps(fold_of, indent=0) + "\n")
    held = {}
    for f in (0, 1):
        keep = np.array([fold_of[refs[r].entity_id] != f for r in T["row"]])
        Wf, _ = train_head(T["x"][keep], T["row"][keep], R["x"], dim=args.dim, epochs=args.epochs)
        save_head(work / f"head_fold{f}.safetensors", Wf, {"layers": list(LAYERS), "grid_layers": list(grid), "fold": f,
                                                           "trained_on": "calibration entities of the other fold"})
        out = ~keep  # views of the fold's entities: unseen by this head
        held[f] = hits(project(T["x"][out], Wf), project(R["x"], Wf), T["row"][out], kinds[T["row"][out]],
                       np.arange(len(refs)))
    result["held_out_folds"] = held

    info = {"layers": list(LAYERS), "grid_layers": list(grid), "dim": args.dim, "backbone": enc.model_id,
            "trained_on": f"composite set v{RECIPE_VERSION}, CALIBRATION entities only "
                          f"({result['training']['entities']['logo']} logos, {result['training']['entities']['flag']} flags; "
                          f"{result['training']['views']['logo']} + {result['training']['views']['flag']} views of new photos)",
            "recipe": {"epochs": args.epochs, "lr": 3e-3, "weight_decay": 1e-4, "seed": 0, **fit},
            "test_figures": result["test"]["head"], "script": "benchmarks/train_instance_head.py",
            "entities": sorted(refs[i].entity_id for i in cal_rows)}
    save_head(args.out, W, info)
    result["head"] = {"path": str(args.out), "bytes": Path(args.out).stat().st_size}
    result["seconds"] = round(time.perf_counter() - t0, 1)
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))

    def draw(ax):
        names = [("last_layer_cosine", "last layer (v2v-like)"), ("multilayer_cosine", "5 layers" + (" + 2x2" if grid else "") + ", raw"),
                 ("head", "5 layers" + (" + 2x2" if grid else "") + " + head")]
        x = np.arange(2)
        for j, (key, label) in enumerate(names):
            ax.bar(x + 0.27 * (j - 1), [result["test"][key][k]["hits@1"] for k in ("logo", "flag")], 0.27, label=label)
        ax.set_xticks(x, ["logos", "flags"])
        ax.set_ylabel("Hits@1, test split")
        ax.set_title("instance head: test entities were never seen in training", fontsize=9)

    plot(Path(args.results).with_suffix(".png"), draw)


if __name__ == "__main__":
    main()
