"""Reverse annotation offline: throughput (items/s), time per stage, memory, and how the
people of the shared photos are found (box IoU with the hand-drawn boxes of
tests/annotate/fixtures/person_boxes.json).

Items: every person of the fixture's photos with their entity (KB: the four people, three with
reference photos that are other photos than the query), plus a non-visual entity (an event) and
a place. Usage::

    python benchmarks/bench_annotate.py [--threads 1] [--verify] [--composite 200 --queries 60]

Prints a line per item and the totals; writes the JSON and a plot of the time per stage.

``--composite N`` adds the composite part: logos of the icon package pasted into packaged photos
(``pixlink.demo.composite.small_set``: scale, rotation, perspective, blur, JPEG, occlusion, the
placement and exact mask recorded), a KB of the N logos with their local-feature store, and each
query annotated with its entity by the default annotators: the rate of boxes with IoU >= 0.5
against the placement, and the mask IoU against the exact mask (0 for an item not accepted).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from _measure import peak_mb, rss_mb

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
PEOPLE = {"Q76": ("Barack Obama", "obama.jpg"), "Q6279": ("Joe Biden", "biden.jpg"),
          "Q357607": ("Kit Harington", "johnsnow_test1.jpg"), "Q461132": ("Rose Leslie", None)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--verify", action="store_true", help="link each region back (slower)")
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--composite", type=int, default=200, help="logos in the composite part's KB (0: skip it)")
    ap.add_argument("--queries", type=int, default=60, help="composite queries")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "annotate.json")
    args = ap.parse_args()

    import torch

    from pixlink.annotate import AnnotateConfig, AnnotationItem, ReverseAnnotator, run_annotation
    from pixlink.config import shared_data_dir
    from pixlink.geometry import box_iou
    from pixlink.kb import KB, build_kb_from_entities
    from pixlink.link.embed import embed_kb
    from pixlink.models import Profile
    from pixlink.types import Entity

    torch.set_num_threads(args.threads)
    data = args.data or shared_data_dir()
    photos = data / "photos"
    boxes = json.loads((REPO / "tests" / "annotate" / "fixtures" / "person_boxes.json").read_text())
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        ents = [Entity(q, lab, types=("Q5",), images=(str(photos / p),) if p else ()) for q, (lab, p) in PEOPLE.items()]
        ents += [Entity("Q5", "human"), Entity("Q1656682", "event"), Entity("Q5119", "capital city"),
                 Entity("Q8023", "2008 Democratic National Convention", types=("Q1656682",)),
                 Entity("Q61", "Washington, D.C.", types=("Q5119",))]
        build_kb_from_entities(ents, tmp / "kb")
        prof = Profile("offline")
        embed_kb(tmp / "kb", prof, ["face"], cache_dir=tmp / "cache", progress=False)
        t0 = time.perf_counter()
        ann = ReverseAnnotator(KB.open(tmp / "kb"), prof, AnnotateConfig(verify=args.verify))
        build_s = time.perf_counter() - t0
        items = [AnnotationItem(f"{Path(photo).stem}:{qid}", str(photos / photo), qid)
                 for photo, people in boxes.items() if photo != "about" for qid in people]
        items += [AnnotationItem("event", str(photos / "obama_and_biden.jpg"), "Q8023"),
                  AnnotationItem("place", str(photos / "two_people.jpg"), "Q61", question="which city is this?")]
        rss0 = rss_mb()
        # warm-up: the first item loads the models (reported apart)
        t0 = time.perf_counter()
        ann.annotate(items[0])
        warm_s = time.perf_counter() - t0
        summary = run_annotation(ann, items, tmp / "out", progress=False, sheets=False)
        recs = [json.loads(x) for x in (tmp / "out" / "report.jsonl").read_text().splitlines()]
    rows = []
    for r in recs:
        photo, _, qid = r["id"].partition(":")
        hand = boxes.get(f"{photo}.jpg", {}).get(qid) or boxes.get(f"{photo}.png", {}).get(qid)
        iou = box_iou(r["region"]["box"], hand) if hand and r.get("region") else None
        rows.append({"id": r["id"], "status": r["status"], "rule": r.get("rule"), "flags": r.get("flags"),
                     "box_iou_hand": None if iou is None else round(iou, 3), "timings": r.get("timings"),
                     "found_by": (r.get("figures", {}).get("chosen") or {}).get("annotator")})
        print(f"{r['id']:28s} {r['status']:9s} {str(r.get('rule') or ''):22s} "
              f"IoU {'-' if iou is None else f'{iou:.2f}'}  {r.get('timings', {}).get('total', 0):6.1f} s")
    people = [x for x in rows if x["box_iou_hand"] is not None or ":" in x["id"]]
    hit = [x for x in people if (x["box_iou_hand"] or 0) > 0.5]
    stages: dict[str, float] = {}
    for r in recs:
        for k, v in (r.get("timings") or {}).items():
            if k != "total":
                stages[k] = stages.get(k, 0.0) + v
    result = {
        "machine": {"cpu_count": os.cpu_count(), "threads": args.threads, "platform": platform.platform(),
                    "load_avg_1m": os.getloadavg()[0]},
        "verify": args.verify, "build_s": round(build_s, 2), "first_item_s": round(warm_s, 2),
        "items": len(items), "seconds": summary["seconds"], "items_per_second": summary["items_per_second"],
        "people": len(people), "people_box_iou_gt_0_5": len(hit),
        "stage_seconds": {k: round(v, 2) for k, v in stages.items()}, "rss_mb_before": round(rss0, 1),
        "peak_mb": round(peak_mb(), 1), "rules": summary["rules"], "flags": summary["flags"], "rows": rows,
    }
    if args.composite:
        result["composite"] = composite_part(args.composite, args.queries, args.verify)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3))
        ax.barh(list(stages), [stages[k] for k in stages])
        ax.set_xlabel(f"seconds over {len(items)} items ({summary['items_per_second']} items/s)")
        ax.set_title("pixlink annotate, offline, per stage")
        fig.tight_layout()
        fig.savefig(args.out.with_suffix(".png"), dpi=120)
    except ImportError:
        pass
    print(f"{len(items)} items in {summary['seconds']} s ({summary['items_per_second']} items/s; first item "
          f"{warm_s:.1f} s with model loading); people boxed right (IoU > 0.5 with hand boxes) {len(hit)}/{len(people)}; "
          f"peak {result['peak_mb']:.0f} MiB")
    return 0


def composite_part(n_logos: int, n_queries: int, verify: bool) -> dict:
    """Logos found by their own KB image (see the module docstring)."""
    import numpy as np

    from pixlink.annotate import AnnotateConfig, AnnotationItem, ReverseAnnotator
    from pixlink.demo.composite import build_kb, small_set
    from pixlink.geometry import box_iou, rle_to_mask
    from pixlink.kb import KB
    from pixlink.link import Linker, LinkerConfig
    from pixlink.link.embed import embed_kb
    from pixlink.models import Profile

    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        t0 = time.perf_counter()
        cs = small_set(tmp / "set", n_logos=n_logos, n_queries=n_queries, n_nil=0, seed=5)
        kb_dir = build_kb(cs, tmp / "kb")
        prof = Profile("offline")
        embed_kb(kb_dir, prof, ["local"], progress=False)
        setup_s = time.perf_counter() - t0
        kb = KB.open(kb_dir)
        ann = ReverseAnnotator(kb, prof, AnnotateConfig(verify=verify), linker=Linker(kb, prof, LinkerConfig()))
        rows, t0 = [], time.perf_counter()
        mentions = [m for split in cs.mention_files for m in cs.mentions(split) if m.gold]
        for m in mentions:
            rec = ann.annotate(AnnotationItem(id=m.id, image=str(m.image), entity=m.gold)).to_record()
            gt = rle_to_mask(m.meta["gt_mask"])
            ok = rec["status"] == "accepted" and rec.get("region")
            got = rle_to_mask(rec["region"]["mask"]) if ok else np.zeros_like(gt)
            rows.append({"id": m.id, "status": rec["status"], "rule": rec.get("rule"),
                         "by": (rec["figures"].get("chosen") or {}).get("annotator"),
                         "box_iou": round(box_iou(rec["region"]["box"], list(m.region.bbox)), 3) if ok else 0.0,
                         "mask_iou": round(float((got & gt).sum() / max((got | gt).sum(), 1)), 3)})
        seconds = time.perf_counter() - t0
    n = len(rows)
    box_ok = sum(r["box_iou"] >= 0.5 for r in rows)
    by_instance = [r for r in rows if r["by"] == "instance"]
    out = {"logos_in_kb": n_logos, "queries": n, "setup_s": round(setup_s, 1), "seconds": round(seconds, 1),
           "items_per_second": round(n / seconds, 3) if seconds else None,
           "accepted": sum(r["status"] == "accepted" for r in rows), "found_by_instance": len(by_instance),
           "box_iou_ge_0_5_rate": round(box_ok / n, 3) if n else None,
           "mask_iou_mean": round(float(np.mean([r["mask_iou"] for r in rows])), 3) if n else None,
           "mask_iou_median": round(float(np.median([r["mask_iou"] for r in rows])), 3) if n else None,
           "mask_iou_median_found_by_instance": round(float(np.median([r["mask_iou"] for r in by_instance])), 3)
           if by_instance else None, "rows": rows}
    print(f"composite: {n} logo queries, KB of {n_logos}: box IoU >= 0.5 for {box_ok}/{n}; mask IoU mean "
          f"{out['mask_iou_mean']} (median {out['mask_iou_median']}); found by the instance annotator "
          f"{len(by_instance)}; {out['items_per_second']} items/s")
    return out


if __name__ == "__main__":
    sys.exit(main())
