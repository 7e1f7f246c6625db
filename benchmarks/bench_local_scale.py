"""The ``local`` signal with a KB of ~10k images: KB-side build rate, store size and memory,
and the linking latency the signal adds per query.

The KB is the composite set's (:mod:`pixlink.demo.composite`) with three images per logo
(brand colour on white, black on white, white on the brand colour) and one per flag: ~10,500
images. The build goes through ``kb embed`` (:func:`pixlink.link.embed.embed_kb`), as a user's
does; its figures are kept in ``WORK/build.json`` (a re-run finds the store up to date and
reuses them, so the latency can be measured again on a quieter machine). Latency: the first
``--n`` test mentions linked with the ``local`` signal alone (the linker's own timing of the
signal, recall + verification, after one warm-up query), and Hits@1 of its raw score as a
sanity figure.

Usage::

    python benchmarks/bench_local_scale.py [--n 200] [--work /tmp/bench_local_scale]

Prints the figures and writes ``benchmarks/results/local_scale.json`` (+ ``local_scale.png``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
from _measure import plot  # noqa: E402


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="test mentions linked for the latency")
    ap.add_argument("--images-per-logo", type=int, default=3, choices=(1, 3))
    ap.add_argument("--work", default="/tmp/bench_local_scale")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "local_scale.json"))
    args = ap.parse_args()

    from pixlink.demo.composite import CompositeConfig, build_kb, generate
    from pixlink.link import Linker, LinkerConfig
    from pixlink.link.embed import embed_kb
    from pixlink.models import Profile

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    result: dict = {"generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpu": os.cpu_count()}
    cs = generate(CompositeConfig(images_per_logo=args.images_per_logo))
    kb_dir = work / "kb"
    if not (kb_dir / "kb.sqlite").exists():
        build_kb(cs, kb_dir)
    build_json = work / "build.json"
    load0 = os.getloadavg()
    t0, c0 = time.perf_counter(), time.process_time()
    rep = embed_kb(kb_dir, Profile("offline"), ["local"], progress=False)["local"]
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    store_dir = Path(rep["index"])
    meta = json.loads((store_dir / "meta.json").read_text())
    if rep.get("extracted"):
        build = {"images": rep["images"], "features": rep["vectors"], "entities": rep["entities"],
                 "errors": len(rep.get("errors") or []), "extract_s": rep.get("extract_s"), "total_s": round(wall, 1),
                 "process_cpu_s": round(cpu, 1), "images_per_s_wall": round(rep["images"] / max(rep["extract_s"], 1e-9), 2),
                 "faiss": meta.get("index"), "load_average": load0,
                 "peak_rss_mb_build": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}
        build_json.write_text(json.dumps(build, indent=1) + "\n")
    elif build_json.is_file():
        build = json.loads(build_json.read_text())
    else:
        build = {"note": "the store was built outside this script: no build figures"}
    build["store_mb"] = round(sum(p.stat().st_size for p in store_dir.iterdir()) / 2**20, 1)
    build["features_per_image"] = round(meta["n_features"] / max(meta["n_images"], 1), 1)
    result["kb"] = {"images": meta["n_images"], "features": meta["n_features"], "entities": rep["entities"]}
    result["build"] = build
    log("build", build)

    linker = Linker.from_kb(kb_dir, "offline", LinkerConfig(signals=("local",), segment=False, max_candidates=10))
    ms = [m for m in cs.mentions("test")][: args.n + 1]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    result["load_average_linking"] = os.getloadavg()
    times, hits, wall_q = [], [], []
    for n, m in enumerate(ms):
        t = time.perf_counter()
        link = linker.link(m.image, m.region, k=10)
        dt = time.perf_counter() - t
        if n == 0:
            continue  # warm-up: the store's index and arrays are mapped on first use
        times.append(link.timings.get("local", 0.0))
        wall_q.append(dt)
        if m.gold:
            # the raw score is a log-odds (may be negative): the best verified candidate, if any
            scored = [c for c in link.candidates if "local" in c.signals]
            best = max(scored, key=lambda c: c.signals["local"], default=None)
            hits.append(best is not None and best.entity_id == m.gold)
        if n % 50 == 0:
            log(f"  linked {n}/{len(ms) - 1}")
    result["load_average_after"] = os.getloadavg()
    result["latency_local_s"] = {"n": len(times), "p50": round(float(np.percentile(times, 50)), 3),
                                 "p95": round(float(np.percentile(times, 95)), 3),
                                 "mean": round(float(np.mean(times)), 3)}
    result["latency_link_call_s"] = {"p50": round(float(np.percentile(wall_q, 50)), 3),
                                     "p95": round(float(np.percentile(wall_q, 95)), 3)}
    result["hits@1_local_raw"] = {"n": len(hits), "value": round(float(np.mean(hits)), 4) if hits else None}
    result["rss_mb"] = {"before_linking": rss_before,
                        "after_linking": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}
    small = Path(args.out).parent / "local.json"
    if small.is_file():
        s = json.loads(small.read_text())
        result["reference_3k"] = {"kb_images": s.get("kb_side", {}).get("images"), "latency_local_s": s.get("latency_local_s")}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    def draw(ax):
        ax.hist(np.array(times) * 1000, bins=40, color="tab:blue")
        ax.axvline(result["latency_local_s"]["p50"] * 1000, color="k", ls="--", label="p50")
        ax.axvline(result["latency_local_s"]["p95"] * 1000, color="r", ls=":", label="p95")
        ax.set_xlabel("local signal per query (ms)")
        ax.set_ylabel("queries")
        ax.set_title(f"KB of {meta['n_images']} images, {meta['n_features']:,} features")

    plot(out.with_suffix(".png"), draw)

if __name__ == "__main__":
    main()
