"""Offline mask quality on natural-image regions: LiteMedSAM vs GrabCut vs their combination,
on the composite set's exact masks (a logo or flag pasted into a scikit-image photo; the
visible object's mask is known to the pixel).

Prompt: the visible object's box (what a user draws, or a detector gives). Figures per method:
mean and median IoU with the exact mask, the share with IoU >= 0.5 / 0.75, seconds per region.
Combinations: ``and`` (pixels both agree on; GrabCut's mask when that is under a quarter of
it), ``or``. Only test-split queries are used; nothing is tuned here.

Usage::

    python benchmarks/bench_masks.py [--n 80] [--out benchmarks/results/masks.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=80)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "masks.json"))
    args = ap.parse_args()

    from pixlink.demo.composite import CompositeConfig, generate
    from pixlink.geometry import rle_to_mask
    from pixlink.io import load_image
    from pixlink.models.registry import get_spec

    cs = generate(CompositeConfig())
    ms = cs.mentions("test")[: args.n]
    segs = {name: get_spec("segment", name).factory() for name in ("litemedsam", "grabcut")}
    rows = []
    for j, m in enumerate(ms):
        img = load_image(m.image)
        gt = rle_to_mask(m.meta["gt_mask"])
        box = np.asarray(m.region.bbox, np.float32)
        got, secs = {}, {}
        for name, seg in segs.items():
            t = time.perf_counter()
            pred = seg.predict(seg.embed_image(img), box=box)
            secs[name] = time.perf_counter() - t
            got[name] = pred[0].mask.astype(bool)
        both = got["litemedsam"] & got["grabcut"]
        got["and"] = both if both.sum() >= 0.25 * max(got["grabcut"].sum(), 1) else got["grabcut"]
        got["or"] = got["litemedsam"] | got["grabcut"]
        rows.append({"id": m.id, "kind": m.meta["kind"], **{f"iou_{k}": iou(v, gt) for k, v in got.items()},
                     **{f"s_{k}": v for k, v in secs.items()}})
        if j % 20 == 0:
            print(f"  {j}/{len(ms)}", file=sys.stderr, flush=True)
    out = {"n": len(rows), "prompt": "the visible object's exact box", "methods": {}}
    for k in ("litemedsam", "grabcut", "and", "or"):
        v = np.array([r[f"iou_{k}"] for r in rows])
        d = {"mean_iou": round(float(v.mean()), 4), "median_iou": round(float(np.median(v)), 4),
             "iou>=0.5": round(float((v >= 0.5).mean()), 4), "iou>=0.75": round(float((v >= 0.75).mean()), 4)}
        for kind in ("logo", "flag"):
            w = np.array([r[f"iou_{k}"] for r in rows if r["kind"] == kind])
            if len(w):
                d[f"mean_iou_{kind}"] = round(float(w.mean()), 4)
        if f"s_{k}" in rows[0]:
            d["seconds_p50"] = round(float(np.median([r[f"s_{k}"] for r in rows])), 3)
        out["methods"][k] = d
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
