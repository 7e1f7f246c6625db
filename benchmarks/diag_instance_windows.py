"""Head level: do crops of the KB references (max over an entity's views) help the ``instance``
head match a *part* of an object (a flag's canton behind a speaker)?

Each reference is embedded whole and as four 60 % x 60 % corner windows (what a partial view
shows of it); a query's score for an entity is its best cosine over the entity's five views.
Measured with the shipped head on the cached test views of ``train_instance_head.py`` (its
``--work``: ``refs.npz``, ``test.npz``, ``test_partial.npz``), whole and partial (a seeded
``partial_box``), against the 3,493 references of the composite KB. The windows' features are
cached in the same folder (``ref_crops.npz``, ~15 min here).

Usage::

    python benchmarks/diag_instance_windows.py [--work /tmp/instance_head]

Writes ``benchmarks/results/instance_windows.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from train_instance_head import cached, hits, log  # noqa: E402

WINDOWS = {"tl": (0.0, 0.6, 0.0, 0.6), "tr": (0.0, 0.6, 0.4, 1.0), "bl": (0.4, 1.0, 0.0, 0.6), "br": (0.4, 1.0, 0.4, 1.0)}
"""Name -> (y0, y1, x0, x1) fractions of the reference image."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/instance_head", help="train_instance_head.py's work folder")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "instance_windows.json"))
    args = ap.parse_args()

    from pixlink.demo.composite import CompositeConfig, generate
    from pixlink.io import load_image
    from pixlink.models.backends.efficientnet import EfficientNetLiteEncoder
    from pixlink.models.backends.instance_head import (GRID_LAYERS, HEAD_PATH, LAYERS, global_pools, grid_pools,
                                                        join_pools, load_head, map_batches)
    from pixlink.train.instance_head import project

    work = Path(args.work)
    refs = generate(CompositeConfig()).references
    enc = EfficientNetLiteEncoder()

    def make_windows():
        out = {}
        for name, (y0, y1, x0, x1) in WINDOWS.items():
            t0, views = time.perf_counter(), []
            for r in refs:
                im = load_image(r.images[0])
                h, w = im.shape[:2]
                views.append(im[int(y0 * h):int(y1 * h), int(x0 * w):int(x1 * w)])
            g, s = [], []
            for maps in map_batches(enc, views, sorted(set(LAYERS) | set(GRID_LAYERS)), 32):
                g.append(global_pools(maps, LAYERS))
                s.append(grid_pools(maps, GRID_LAYERS))
            out[f"{name}_g"], out[f"{name}_s"] = np.concatenate(g), np.concatenate(s)
            log(f"window {name}: {len(views)} references ({time.perf_counter() - t0:.0f} s)")
        return out

    C = cached(work / "ref_crops.npz", make_windows)
    R, Q, QP = (dict(np.load(work / f, allow_pickle=False)) for f in ("refs.npz", "test.npz", "test_partial.npz"))
    W, _ = load_head(HEAD_PATH)

    def emb(g, s):
        return project(join_pools(g, s), W)

    whole = emb(R["g"], R["s"])
    views = np.stack([whole] + [emb(C[f"{n}_g"], C[f"{n}_s"]) for n in WINDOWS])  # (5, N, d)
    pool = np.array([i for i, r in enumerate(refs) if not r.nil])

    def best_view(q):
        """Hits of ``q`` when an entity scores its best view: the max over views, as one matrix."""
        s = np.max(np.einsum("qd,vnd->vqn", q, views), axis=0)
        # an (N, N) identity "reference" turns the scores back into hits()'s cosine form
        return hits(s, np.eye(len(refs), dtype=np.float32), Q["gold"], Q["kind"], pool)

    result = {"generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "head": str(HEAD_PATH),
              "windows": WINDOWS, "kb_references": len(pool)}
    for name, D in (("whole", Q), ("partial", QP)):
        q = emb(D["g"], D["s"])
        result[name] = {"whole_references": hits(q, whole, Q["gold"], Q["kind"], pool),
                        "whole_and_4_windows": best_view(q)}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
