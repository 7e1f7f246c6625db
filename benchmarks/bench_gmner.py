"""The RiVEG cascade offline, end to end, on the shared real posts: time per stage, memory,
what it finds; writes an overlay per post.

Posts: the RiVEG tweet (16_05_01_127: "The Philadelphia Phillies are a good baseball team .",
its image is the team's logo) and "Barack Obama and Joe Biden at the White House today" over
``photos/two_people.jpg``, the latter with and without a three-person KB (Obama, Biden, Kit
Harington with reference photos that are other photos than the query).

Usage: ``python benchmarks/bench_gmner.py [--threads 1] [--repeats 3] [--out benchmarks/results/gmner]``
Prints one line per post and stage times; writes ``gmner.json`` + ``<post>.jpg`` overlays.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

from _measure import peak_mb, rss_mb

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]


def _kb(photos: Path, tmp: Path) -> Path:
    from pixlink.kb import build_kb
    from pixlink.link.embed import embed_kb

    people = {"Q76": ("Barack Obama", "obama.jpg"), "Q6279": ("Joe Biden", "biden.jpg"),
              "Q357607": ("Kit Harington", "johnsnow_test1.jpg")}
    with open(tmp / "people.jsonl", "w", encoding="utf-8") as fh:
        for qid, (label, photo) in people.items():
            fh.write(json.dumps({"id": qid, "label": label, "types": ["Q5"], "images": [str(photos / photo)]}) + "\n")
    build_kb([str(tmp / "people.jsonl")], tmp / "kb", progress=False)
    embed_kb(tmp / "kb", "offline", cache_dir=tmp / "cache", progress=False)
    return tmp / "kb"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data", type=Path, default=None, help="shared data folder (default: PIXLINK_DATA or ../shared/data)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "gmner")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)  # the overlays are written into it as they are made

    import torch

    from pixlink.config import shared_data_dir
    from pixlink.io import load_image
    from pixlink.link import Linker, LinkerConfig
    from pixlink.models import Profile
    from pixlink.ner.gmner import GMNERConfig, GMNERPipeline
    from pixlink.viz import entities_overlay

    torch.set_num_threads(args.threads)
    data = args.data or shared_data_dir()
    riveg = data / "riveg" / "16_05_01_127.jpg"
    two = data / "photos" / "two_people.jpg"
    for p in (riveg, two):
        if not p.exists():
            print(f"{p} is absent: nothing to measure", file=sys.stderr)
            return 1
    rss0 = rss_mb()
    prof = Profile("offline")
    cfg = GMNERConfig(expansion_sources=("template",))
    plain = GMNERPipeline(prof, config=cfg)
    with tempfile.TemporaryDirectory() as tmp:
        linker = Linker.from_kb(_kb(data / "photos", Path(tmp)), profile=prof, config=LinkerConfig(segment=False))
        with_kb = GMNERPipeline(prof, kb=linker.kb, linker=linker, config=cfg)
        posts = [
            ("riveg_16_05_01_127", plain, riveg, "The Philadelphia Phillies are a good baseball team ."),
            ("two_people", plain, two, "Barack Obama and Joe Biden at the White House today"),
            ("two_people_with_kb", with_kb, two, "Barack Obama and Joe Biden at the White House today"),
        ]
        rows = []
        for name, pipe, image, text in posts:
            img = load_image(image)
            runs = [pipe.run(img, text=text) for _ in range(args.repeats + 1)][1:]  # first run warms the models
            res = runs[-1]
            stages = sorted({k for r in runs for k in r.timings})
            med = {k: statistics.median(r.timings.get(k, 0.0) for r in runs) for k in stages}
            overlay = entities_overlay(img, res.entities, args.out / f"{name}.jpg")
            ents = [{"text": e.text, "type": e.type, "groundable": e.groundable,
                     "box": [round(float(v), 1) for v in e.region.bbox] if e.region is not None else None,
                     "mask_pixels": int(e.region.mask.sum()) if e.region is not None and e.region.mask is not None else None,
                     "link": e.link.prediction if e.link is not None else None} for e in res.entities]
            rows.append({"post": name, "text": text, "image": image.name, "seconds_total": sum(med.values()),
                         "seconds_by_stage": med, "entities": ents, "notes": res.notes, "backends": res.backends,
                         "overlay": str(overlay.relative_to(REPO)) if overlay.is_relative_to(REPO) else str(overlay)})
            found = "; ".join(f"{e['text']} ({e['type']}) " + (f"box {e['box']}" if e["box"] else "not grounded")
                              + (f" -> {e['link']}" if e["link"] else "") for e in ents)
            print(f"{name:22} {sum(med.values()):6.2f} s  " + " ".join(f"{k} {v:.2f}" for k, v in med.items()))
            print(f"{'':22} {found}")
    res = {"threads": args.threads, "repeats": args.repeats, "rss_mb_models": rss_mb() - rss0, "peak_mb": peak_mb(),
           "python": platform.python_version(), "torch": torch.__version__, "posts": rows}
    (args.out / "gmner.json").write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    print(f"models + runs: +{res['rss_mb_models']:.0f} MiB RSS, peak {res['peak_mb']:.0f} MiB; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
