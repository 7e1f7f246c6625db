"""``pixlink train instance-head``: its time end to end, and full-batch vs mini-batch training.

The product path (:func:`pixlink.train.instance_adapt.adapt_instance_head`, the command's
defaults, ``--workers`` rendering processes) on a hard-linked copy of the composite set's KB
(3,493 images; ``benchmarks/bench_local.py`` builds it):

1. a fresh run, ``training="auto"`` (a full batch: its estimate fits the default 8 GB): the time
   of each stage (references, views, held-out views, training) and the head's held-out figures;
   the rendered views' features are kept;
2. the same cached views trained in mini-batches (``training="mini-batch"``: 1,024 views a step
   against their own and 1,024 sampled references, each view seen ``--passes`` times), as a KB too
   large for a full batch is: the training's time and the held-out figures on the same 600
   held-out photos;
3. the training's memory estimate for either mode at KB sizes from 1k to 100k images (what decides
   ``auto``).

Nothing is tuned here. The held-out photos are the command's own (other seeds, never trained on);
neither head is put in a linker here (``bench_instance_kb.py`` does that for the full batch).

Usage::

    python benchmarks/bench_instance_adapt_training.py --kb KB [--work /tmp/bench_adapt] [--workers 2]

Writes ``benchmarks/results/instance_adapt_training.json`` (+ ``.png``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _measure import plot  # noqa: E402


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def stage_times(work: Path) -> dict:
    """Seconds between the cached parts' files (references, views, held-out), from their mtimes."""
    run = (work / "run.json").stat().st_mtime
    refs = (work / "references.npz").stat().st_mtime
    views = max(p.stat().st_mtime for p in work.glob("views-*.npz"))
    held = (work / "held_out.npz").stat().st_mtime
    return {"references_s": round(refs - run, 1), "views_s": round(views - refs, 1), "held_out_s": round(held - views, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kb", required=True, help="the composite set's KB (bench_local's), not modified")
    ap.add_argument("--work", default="/tmp/bench_adapt")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--passes", type=int, default=100)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "instance_adapt_training.json"))
    args = ap.parse_args()

    from pixlink.link.kbhead import KB_HEAD, kb_head
    from pixlink.train.instance_adapt import AdaptOptions, adapt_instance_head, training_memory_gb

    work = Path(args.work)
    kb = work / "kb"
    if kb.exists():
        shutil.rmtree(kb)
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-al", str(args.kb), str(kb)], check=True)
    if kb_head(kb) is not None:
        raise SystemExit(f"{args.kb} already carries its own head: give the composite set's KB as bench_local built it")
    cache = (kb / KB_HEAD).with_suffix(".work")
    result: dict = {"generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpu": os.cpu_count(),
                    "loadavg_before": os.getloadavg()[0], "workers": args.workers}

    t0 = time.perf_counter()
    full = adapt_instance_head(kb, AdaptOptions(workers=args.workers), keep_work=True, progress=False)
    full["wall_s"] = round(time.perf_counter() - t0, 1)
    full["stages"] = stage_times(cache)
    full["stages"]["training_and_held_out_scores_s"] = round(full["seconds"] - sum(full["stages"].values()), 1)
    log("full batch", json.dumps({k: full[k] for k in ("views", "held_out", "fit", "seconds", "stages")}))
    result["full_batch"] = full

    (kb / KB_HEAD).unlink()
    t0 = time.perf_counter()
    mini = adapt_instance_head(kb, AdaptOptions(workers=args.workers, training="mini-batch", passes=args.passes),
                               keep_work=True, progress=False)
    mini["wall_s"] = round(time.perf_counter() - t0, 1)
    log("mini-batch", json.dumps({k: mini[k] for k in ("views", "held_out", "fit", "seconds")}))
    result["mini_batch"] = mini
    result["loadavg_after"] = os.getloadavg()[0]

    sizes = [1_000, 3_493, 10_000, 20_000, 50_000, 100_000]
    o = AdaptOptions()
    result["memory_estimate_gb"] = {"images": sizes,
                                    "full": [round(training_memory_gb(n, o), 2) for n in sizes],
                                    "mini-batch": [round(training_memory_gb(n, o, mode="mini-batch"), 2) for n in sizes]}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({m: {"held_out": result[m]["held_out"], "fit": result[m]["fit"], "seconds": result[m]["seconds"]}
                      for m in ("full_batch", "mini_batch")}, indent=1))
    print(json.dumps(result["memory_estimate_gb"]))

    def draw(ax):
        m = result["memory_estimate_gb"]
        for mode in ("full", "mini-batch"):
            ax.plot(m["images"], m[mode], marker="o", label=f"{mode} training (estimate)")
        ax.axhline(o.max_memory_gb, color="grey", ls=":", label=f"default --max-memory-gb {o.max_memory_gb:g}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("KB reference images")
        ax.set_ylabel("GB")
        f, b = result["full_batch"], result["mini_batch"]
        ax.set_title(f"held-out Hits@1 on 3,493 images: full batch {f['held_out']['adapted']['hits@1']:.3f} "
                     f"({f['stages']['training_and_held_out_scores_s']:.0f} s to train), mini-batch "
                     f"{b['held_out']['adapted']['hits@1']:.3f} ({b['seconds']:.0f} s), shipped {f['held_out']['shipped']['hits@1']:.3f}",
                     fontsize=8)

    plot(Path(args.out).with_suffix(".png"), draw, figsize=(7, 3.6))


if __name__ == "__main__":
    main()
