"""Offline mask quality on natural-image regions: LiteMedSAM vs GrabCut vs their combination,
on the composite set's exact masks (a logo or flag pasted into a scikit-image photo; the
visible object's mask is known to the pixel).

Prompt: the visible object's box (what a user draws, or a detector gives). Figures per method:
mean and median IoU with the exact mask, the share with IoU >= 0.5 / 0.75, seconds per region.
Combinations: ``and`` (pixels both agree on; GrabCut's mask when that is under a quarter of
it), ``or``. Only test-split queries are used; nothing is tuned here.

``--hand`` measures the same methods on real photos: the hand-drawn masks of
``benchmarks/data/hand_masks.json`` (a necktie, three real US flags, a cup on its saucer, a
rocket; photos of ``../shared/data`` and of installed packages), prompted with each mask's tight
box; the JSON gets a ``hand`` part and a contact sheet (``masks_hand.png``: the hand mask, then
each method's) is written beside it.

Usage::

    python benchmarks/bench_masks.py [--n 80] [--hand] [--out benchmarks/results/masks.json]
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
    ap.add_argument("--hand", action="store_true", help="only the hand-drawn masks of real photos (kept with the composite part)")
    args = ap.parse_args()
    if args.hand:
        return hand(Path(args.out))

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
        combine(got)
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
    old = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else {}
    if "hand" in old:  # the real photos' part (--hand) is kept
        out["hand"] = old["hand"]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


def combine(got: dict) -> dict:
    """The two combinations of LiteMedSAM's and GrabCut's masks (see the module docstring)."""
    both = got["litemedsam"] & got["grabcut"]
    got["and"] = both if both.sum() >= 0.25 * max(got["grabcut"].sum(), 1) else got["grabcut"]
    got["or"] = got["litemedsam"] | got["grabcut"]
    return got


def hand(out: Path) -> None:
    """The methods on the hand-drawn masks of real photos: per region IoU, their mean, a sheet."""
    from PIL import Image, ImageDraw

    from bench_models_offline_vision import resolve
    from pixlink.io import load_image
    from pixlink.models.registry import get_spec
    from pixlink.viz import draw_region
    from pixlink.types import Region

    spec = json.loads((Path(__file__).parent / "data" / "hand_masks.json").read_text())
    segs = {name: get_spec("segment", name).factory() for name in ("litemedsam", "grabcut")}
    rows, tiles = [], []
    for r in spec["regions"]:
        try:
            path = resolve(r["image"])
        except FileNotFoundError as exc:
            print(f"  skip {r['id']}: {exc}", file=sys.stderr)
            continue
        if not path.exists():
            print(f"  skip {r['id']}: {path} is absent", file=sys.stderr)
            continue
        img = load_image(path)
        canvas = Image.new("L", (img.shape[1], img.shape[0]), 0)
        for poly in r["polygons"]:
            ImageDraw.Draw(canvas).polygon([tuple(p) for p in poly], fill=1)
        gt = np.asarray(canvas, bool)
        ys, xs = np.nonzero(gt)
        box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
        got, secs = {}, {}
        for name, seg in segs.items():
            t = time.perf_counter()
            got[name] = seg.predict(seg.embed_image(img), box=box)[0].mask.astype(bool)
            secs[name] = round(time.perf_counter() - t, 3)
        combine(got)
        rows.append({"id": r["id"], "what": r["what"], "box": box.tolist(),
                     **{f"iou_{k}": round(iou(v, gt), 4) for k, v in got.items()}, **{f"s_{k}": v for k, v in secs.items()}})
        print(f"  {r['id']}: " + ", ".join(f"{k} {iou(v, gt):.3f}" for k, v in got.items()), file=sys.stderr, flush=True)
        x1, y1, x2, y2 = (int(v) for v in box)
        pad = max(8, int(0.1 * max(x2 - x1, y2 - y1)))
        x1, y1, x2, y2 = max(0, x1 - pad), max(0, y1 - pad), min(img.shape[1], x2 + pad), min(img.shape[0], y2 + pad)
        row = []
        for name, m in (("hand", gt), ("grabcut", got["grabcut"]), ("litemedsam", got["litemedsam"])):
            tile = draw_region(Image.fromarray(img), Region(mask=m), (255, 0, 160)).crop((x1, y1, x2, y2))
            tile.thumbnail((220, 220))
            label = name if name == "hand" else f"{name} IoU {iou(m, gt):.2f}"
            cell = Image.new("RGB", (224, 240), "white")
            cell.paste(tile, (2, 2))
            ImageDraw.Draw(cell).text((4, 224), f"{r['id'][:18]}: {label}", fill=(0, 0, 0))
            row.append(cell)
        tiles.append(row)
    if not rows:
        raise SystemExit("no hand-drawn region could be read (is ../shared/data there? PIXLINK_DATA)")
    part = {"n": len(rows), "prompt": "the hand-drawn mask's tight box", "rows": rows, "methods": {}}
    for k in ("litemedsam", "grabcut", "and", "or"):
        v = np.array([r[f"iou_{k}"] for r in rows])
        part["methods"][k] = {"mean_iou": round(float(v.mean()), 4), "median_iou": round(float(np.median(v)), 4),
                              "iou>=0.5": round(float((v >= 0.5).mean()), 4), "iou>=0.75": round(float((v >= 0.75).mean()), 4)}
        if f"s_{k}" in rows[0]:
            part["methods"][k]["seconds_p50"] = round(float(np.median([r[f"s_{k}"] for r in rows])), 3)
    sheet = Image.new("RGB", (224 * 3, 240 * len(tiles)), "white")
    for i, row in enumerate(tiles):
        for j, cell in enumerate(row):
            sheet.paste(cell, (224 * j, 240 * i))
    sheet.save(out.with_name(out.stem + "_hand.png"))
    data = json.loads(out.read_text()) if out.exists() else {}
    data["hand"] = part
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1) + "\n")
    print(json.dumps(part["methods"], indent=1))


if __name__ == "__main__":
    main()
