"""The offline COCO detector (NanoDet-g, ``coco_fallback``'s object part) on the shared photos:
time per image, memory, what it finds; writes an overlay per photo.

Usage: ``python benchmarks/bench_coco.py [--threads 1] [--repeats 5] [--out benchmarks/results/coco]``
Prints one line per photo and writes ``coco.json`` + ``<photo>.jpg`` overlays into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

from _measure import median_s, peak_mb, rss_mb

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--data", type=Path, default=None, help="shared data folder (default: PIXLINK_DATA or ../shared/data)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "coco")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)  # the overlays are written into it as they are made

    import torch

    from pixlink.config import shared_data_dir
    from pixlink.io import load_image
    from pixlink.models.backends.coco import NanoDetCOCO
    from pixlink.viz import detections_overlay

    torch.set_num_threads(args.threads)
    data = args.data or shared_data_dir()
    photos = sorted((data / "photos").glob("*.jp*g")) + sorted((data / "photos").glob("*.png"))
    photos.append(data / "riveg" / "16_05_01_127.jpg")
    rss0 = rss_mb()
    det = NanoDetCOCO()
    rows = []
    for p in photos:
        if not p.exists():
            print(f"skip {p}: absent", file=sys.stderr)
            continue
        img = load_image(p)
        t = median_s(lambda: det.detect_objects(img), args.repeats)
        dets = det.detect_objects(img)
        overlay = detections_overlay(img, dets[:12], args.out / f"{p.stem}.jpg")
        rows.append({"photo": p.name, "size_hw": list(img.shape[:2]), "seconds": t,
                     "detections": [{"label": d.label, "score": round(d.score, 3), "box": [round(float(v), 1) for v in d.box]}
                                    for d in dets],
                     "overlay": str(overlay.relative_to(REPO)) if overlay.is_relative_to(REPO) else str(overlay)})
        top = ", ".join(f"{d.label} {d.score:.2f}" for d in dets[:6]) or "(nothing)"
        print(f"{p.name:28} {t * 1000:6.0f} ms   {top}")
    res = {"model_id": det.model_id, "threads": args.threads, "repeats": args.repeats,
           "rss_mb_model": rss_mb() - rss0, "peak_mb": peak_mb(), "python": platform.python_version(),
           "torch": torch.__version__, "photos": rows}
    (args.out / "coco.json").write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    print(f"model + runs: +{res['rss_mb_model']:.0f} MiB RSS, peak {res['peak_mb']:.0f} MiB; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
