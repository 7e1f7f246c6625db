"""Batch-job throughput: ``embed`` and ``link`` (offline profile) with 1 and 2 workers, and the
time a 6M-entity KB takes to embed on K machines, projected from the measured rates.

    python benchmarks/bench_jobs.py                       # 2,000 entities, 42 link items
    python benchmarks/bench_jobs.py --entities 500 --link-items 14 --no-ray --out /tmp/jobs.json

Setup: a KB of the shared photos' people and ``--entities`` text-only FB15k-237 entities
(``../shared/data``). Each job runs through :func:`pixlink.jobs.run_job` into a fresh output
directory:

* ``embed``: the KB side of ``dense_text`` (MiniLM) and ``v2t`` (the ConSE text side), one job
  per signal and worker count, local engine (spawn pool); the last one's shards are indexed
  into the KB (that is how the KB gets its text vectors for the link runs).
* ``link``: ``--link-items`` mentions (boxes on faces in the shared photos, a caption, a
  text-only mention, repeated under new ids), local engine with 1 and 2 workers.
* ``--ray`` (default on when Ray is installed): the same embed and link jobs on a local Ray with
  2 actors, whose figure includes Ray's start and the actors' model loading.

Figures per run: items, wall seconds, start-up (spawn + model loading until the first batch
came back), steady items/s (first batch to last: every worker has its models) and per worker.
Projection: a machine like this one (2 cores, 2 workers) embeds at the measured 2-worker steady
rate; K such machines at K times that (the work is independent per item; the index is built
afterwards on one machine, not counted). The machine is shared with other jobs: the load
average at the start and end is recorded with the figures.

Writes ``benchmarks/results/jobs.json`` and ``jobs.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the photo KB and its manifest are the job tests' fixtures

TARGET_ENTITIES = 6_000_000
MACHINES = (1, 8, 32, 128)


def _data() -> Path:
    return Path(os.environ.get("PIXLINK_DATA", REPO.parent / "shared" / "data"))


def _shared(*parts: str) -> Path:
    p = _data().joinpath(*parts)
    if not p.exists():
        sys.exit(f"shared data {p} is absent (set PIXLINK_DATA)")
    return p


def build_kb(work: Path, entities: int) -> Path:
    from jobs.photo_kb import build_photo_kb

    return build_photo_kb(work, _shared, first=entities, embed=False)


def link_manifest(path: Path, n: int) -> int:
    from jobs.photo_kb import GOOD

    rows = []
    while len(rows) < n:
        for r in GOOD:
            rows.append(dict(r, id=f"{r['id']}#{len(rows)}"))
    with open(path, "w") as fh:
        for r in rows[:n]:
            fh.write(json.dumps(r) + "\n")
    return len(rows[:n])


def one_run(spec, out: Path, manifest: Path | None, engine: str, workers: int, batch: int) -> dict:
    from pixlink.jobs import run_job

    shutil.rmtree(out, ignore_errors=True)
    load0 = os.getloadavg()[0]
    t = time.perf_counter()
    s = run_job(spec, out, manifest, engine=engine, workers=workers, batch_size=batch, rows_per_part=256,
                image_root=_shared("photos"), progress=False)
    wall = time.perf_counter() - t
    r = s["run"]
    steady = r.get("steady_items_per_second")
    row = {"engine": engine, "workers": workers, "batch_size": batch, "items": r["items"], "ok": s["counts"]["ok"],
           "failed": s["counts"]["failed"], "wall_s": round(wall, 2), "items_per_s_wall": round(r["items"] / wall, 3),
           "startup_s": r.get("startup_seconds"), "steady_items_per_s": steady,
           "items_per_worker_compute_s": r.get("items_per_compute_second"),
           "steady_items_per_s_per_worker": round(steady / workers, 3) if steady else None,
           "load_avg_start": round(load0, 2), "load_avg_end": round(os.getloadavg()[0], 2)}
    print(f"  {spec.task:6} {engine:5} x{workers}: {r['items']} items in {wall:.1f} s, start-up "
          f"{row['startup_s'] or 0:.1f} s, steady {steady or 0:.2f} items/s, one worker's compute "
          f"{row['items_per_worker_compute_s'] or 0:.2f} items/s (load {row['load_avg_start']})", flush=True)
    return row


def projection(rate_machine: float, rate_one_worker: float | None) -> list[dict]:
    """Hours for TARGET_ENTITIES on K machines: at the measured 2-worker machine rate, and at twice
    the one-worker rate (both cores free: what a machine not shared with other jobs would do)."""
    out = []
    for k in MACHINES:
        row = {"machines": k, "hours": round(TARGET_ENTITIES / (k * rate_machine) / 3600, 2)}
        if rate_one_worker:
            row["hours_two_free_cores"] = round(TARGET_ENTITIES / (k * 2 * rate_one_worker) / 3600, 2)
        out.append(row)
    return out


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    labels, vals = [], []
    for group in ("embed", "link"):
        for r in res[group]:
            labels.append(f"{group}\n{r.get('signal', '')}\n{r['engine']} x{r['workers']}")
            vals.append(r["steady_items_per_s"] or r["items_per_s_wall"])
    ax.bar(range(len(vals)), vals, color="#4c72b0")
    ax.set_xticks(range(len(vals)), labels, fontsize=7)
    ax.set_ylabel("items / s (steady; Ray: wall)")
    ax.set_title("pixlink jobs, offline profile, 2-core shared machine")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entities", type=int, default=2000, help="text-only FB15k entities in the KB")
    ap.add_argument("--link-items", type=int, default=42)
    ap.add_argument("--signals", default="dense_text,v2t")
    ap.add_argument("--batch", type=int, default=32, help="embed items per worker call")
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "jobs.json")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from pixlink.jobs import JobSpec, build_index_from_job
    from pixlink.link import LinkerConfig, LinkerSpec
    from pixlink.link.embed import embed_kb

    work = args.work or Path(tempfile.mkdtemp(prefix="bench_jobs_"))
    work.mkdir(parents=True, exist_ok=True)
    use_ray = not args.no_ray
    if use_ray:
        try:
            import ray
        except ImportError:
            use_ray = False
    t0 = time.perf_counter()
    kb = build_kb(work, args.entities)
    print(f"KB of {args.entities + 5} entities in {time.perf_counter() - t0:.1f} s at {kb}", flush=True)
    res: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                 "settings": vars(args) | {"work": str(work), "out": str(args.out)}, "embed": [], "link": []}
    for sig in [s for s in args.signals.split(",") if s]:
        spec = JobSpec("embed", {"kb": str(kb), "signal": sig, "profile": "offline", "batch_size": args.batch})
        for w in (1, 2):
            res["embed"].append({"signal": sig} | one_run(spec, work / f"embed-{sig}-{w}", None, "local", w, args.batch))
        if use_ray:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            try:
                res["embed"].append({"signal": sig} | one_run(spec, work / f"embed-{sig}-ray", None, "ray", 2, args.batch))
            finally:
                ray.shutdown()
        build_index_from_job(work / f"embed-{sig}-2", kb, backend="exact", progress=False)
    embed_kb(kb, "offline", ["face", "v2v"], cache_dir=work / "cache", progress=False)

    manifest = work / "link.jsonl"
    n = link_manifest(manifest, args.link_items)
    spec = JobSpec("link", {"linker": LinkerSpec(kb=str(kb), profile="offline",
                                                 config=LinkerConfig(segment=False).to_dict()).to_dict(), "k": 5})
    for w in (1, 2):
        res["link"].append(one_run(spec, work / f"link-{w}", manifest, "local", w, 2))
    if use_ray:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            res["link"].append(one_run(spec, work / "link-ray", manifest, "ray", 2, 2))
        finally:
            ray.shutdown()
    res["link_items"] = n

    proj = {}
    for sig in {r["signal"] for r in res["embed"]}:
        two = next(r for r in res["embed"] if r["signal"] == sig and r["engine"] == "local" and r["workers"] == 2)
        one = next(r for r in res["embed"] if r["signal"] == sig and r["engine"] == "local" and r["workers"] == 1)
        rate = two["steady_items_per_s"] or two["items_per_s_wall"]
        proj[sig] = {"per_worker_items_per_s": one["steady_items_per_s"], "machine_items_per_s": rate,
                     "per_worker_compute_items_per_s": one["items_per_worker_compute_s"],
                     "scaling_1_to_2": round(rate / one["steady_items_per_s"], 2) if one["steady_items_per_s"] else None,
                     "hours_for_6M_on_K_machines": projection(rate, one["steady_items_per_s"])}
    res["projection"] = {"target_entities": TARGET_ENTITIES, "machine": "like this one: 2 cores, 2 workers",
                         "note": "hours: at the measured 2-worker rate of this shared machine; hours_two_free_cores: "
                                 "at twice the measured 1-worker rate",
                         "by_signal": proj}
    for sig, p in proj.items():
        hours = ", ".join(f"{x['machines']}: {x['hours']} h ({x.get('hours_two_free_cores')} h)"
                          for x in p["hours_for_6M_on_K_machines"])
        print(f"6M entities, {sig}: {p['machine_items_per_s']:.1f} items/s per machine -> {hours}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    plot(res, args.out.with_suffix(".png"))
    print(f"wrote {args.out}")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
