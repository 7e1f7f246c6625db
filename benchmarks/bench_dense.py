"""Dense search benchmark: latency, recall@10 against exact, resident memory, build time.

    python benchmarks/bench_dense.py --n 1000000               # clustered synthetic, 512-d
    python benchmarks/bench_dense.py --n 6000000
    python benchmarks/bench_dense.py --n 1000000 --data random # isotropic Gaussian, normalised

Every phase runs in its own process, so the figures of one do not leak into the next:

1. ``gen``    synthetic vectors written in chunks as a float16 .npy under ``--workdir`` (never
              in the repo; 6M x 512 is 6 GB), plus held-out queries (float32).
2. ``build``  ``DenseIndex.build`` from those chunks (IVF-PQ by default); build time and peak RSS.
3. ``gt``     ground truth: exact search (chunked matmul over the stored vectors) for the
              measured queries.
4. ``search`` a fresh process opens the index from disk (FAISS file memory-mapped; first
              read into the page cache, while vectors.npy is evicted) and runs:
              per-query latency at batch 1 (p50/p95 over ``--queries`` queries, after a warm-up
              on other queries), throughput at batch 64, recall@10 against the ground truth,
              for each ``nprobe:k_factor`` setting; VmRSS/VmHWM/RssAnon/RssFile from
              /proc/self/status after opening and after searching.
5. ``cold``   (``--cold``) the same at the default setting right after evicting the index's
              files from the page cache (posix_fadvise DONTNEED on those files only).
6. ``concurrent`` (``--concurrent T``) one opened index shared by T Python threads (as in a
              web service), each searching its share of the measured queries at batch 1 with
              the default setting: total queries/s, per-query p50/p95, and whether every
              answer equals the serial answer of the same process.

Data (``--data clustered``, the default): a hierarchical Gaussian mixture in a 64-d latent
space mapped into 512-d, like embeddings of a KB with topics: ``--clusters`` centres
``mu_k ~ N(0, I_64)`` with Zipf-like weights ``w_k ~ (k+1)^-0.5``, per-cluster spread
``s_k ~ U(0.3, 0.7)``; ``z = mu_k + s_k * eps``; ``x = normalise(z @ W + 0.1 * g)`` with ``W``
a random (64, 512) matrix of orthonormal rows and ``g ~ N(0, I_512)``. Queries are fresh draws
from the same mixture (not copies of corpus points). ``--data random``: ``x = normalise(g)``,
no neighbourhood structure at all (a worst case that real embeddings are not).

Writes ``benchmarks/results/dense.json`` (one entry per data/size/backend, updated in place)
and ``benchmarks/results/dense.png`` (recall@10 vs p50 latency of every run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
N_WARMUP = 50
N_THROUGHPUT = 192  # 3 batches of 64


# --------------------------------------------------------------------------------------------
# measuring
# --------------------------------------------------------------------------------------------


def proc_status() -> dict[str, float]:
    """VmRSS, VmHWM, RssAnon, RssFile of this process in MiB."""
    out: dict[str, float] = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key = line.split(":", 1)[0]
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                out[key + "_MiB"] = round(int(line.split()[1]) / 1024, 1)
    return out


def conditions() -> dict[str, object]:
    import faiss

    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    return {
        "cpu": cpu, "cores_visible": os.cpu_count(), "load_avg_1_5_15": list(os.getloadavg()),
        "mem_total_GiB": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(), "numpy": np.__version__, "faiss": faiss.__version__,
        "faiss_compile": faiss.get_compile_options(), "omp_threads": faiss.omp_get_max_threads(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------


class Mixture:
    """The clustered generator described in the module doc (deterministic in ``seed``)."""

    def __init__(self, dim: int, clusters: int, latent: int, noise: float, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.dim, self.noise = dim, noise
        self.centres = rng.standard_normal((clusters, latent)).astype(np.float32)
        w = 1.0 / np.sqrt(np.arange(1, clusters + 1))
        self.weights = w / w.sum()
        self.spread = rng.uniform(0.3, 0.7, clusters).astype(np.float32)
        q, _ = np.linalg.qr(rng.standard_normal((dim, latent)))
        self.proj = q.T.astype(np.float32)  # (latent, dim), orthonormal rows

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        k = rng.choice(len(self.weights), size=n, p=self.weights)
        z = self.centres[k] + self.spread[k, None] * rng.standard_normal((n, self.centres.shape[1]), dtype=np.float32)
        x = z @ self.proj + self.noise * rng.standard_normal((n, self.dim), dtype=np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)


def sampler(args):
    if args.data == "random":
        def draw(n, rng):
            x = rng.standard_normal((n, args.dim), dtype=np.float32)
            return x / np.linalg.norm(x, axis=1, keepdims=True)
        return draw
    mix = Mixture(args.dim, args.clusters, args.latent, args.noise, args.seed)
    return mix.sample


def phase_gen(args, paths) -> dict:
    t0 = time.perf_counter()
    draw = sampler(args)
    n, dim, chunk = args.n, args.dim, 100_000
    tmp = paths["data"].with_suffix(".partial")
    with open(tmp, "wb") as fh:
        np.lib.format.write_array_header_2_0(fh, {"descr": "<f2", "fortran_order": False, "shape": (n, dim)})
        for s in range(0, n, chunk):
            rng = np.random.default_rng([args.seed, 1, s])
            fh.write(draw(min(chunk, n - s), rng).astype(np.float16).tobytes())
    os.replace(tmp, paths["data"])
    q = draw(args.queries + N_WARMUP + N_THROUGHPUT, np.random.default_rng([args.seed, 2]))
    np.save(paths["queries"], q.astype(np.float32))
    return {"gen_s": round(time.perf_counter() - t0, 1), **proc_status()}


def read_chunks(path: Path, chunk: int):
    """(n, D) float16 chunks of an .npy read with plain file reads (no mmap)."""
    mm = np.load(path, mmap_mode="r")
    n, dim, off = mm.shape[0], mm.shape[1], mm.offset
    del mm
    with open(path, "rb") as fh:
        fh.seek(off)
        for s in range(0, n, chunk):
            rows = min(chunk, n - s)
            yield np.fromfile(fh, dtype=np.float16, count=rows * dim).reshape(rows, dim)


# --------------------------------------------------------------------------------------------
# phases
# --------------------------------------------------------------------------------------------


def build_params(args) -> dict:
    if args.backend == "ivfpq":
        p = {"m": args.m, "nprobe": args.settings[0][0], "k_factor": args.settings[0][1], "train_size": args.train_size}
        if args.nlist:
            p["nlist"] = args.nlist
        return p
    if args.backend == "hnsw":
        return {"hnsw_m": 32, "ef_construction": 80}
    return {}


def phase_build(args, paths) -> dict:
    from pixlink.index.dense import DenseIndex

    t0 = time.perf_counter()
    ids = [f"E{i}" for i in range(args.n)]
    idx = DenseIndex.build(
        paths["index"], read_chunks(paths["data"], 65_536), ids, model_id=f"synthetic/{args.data}-{args.dim}",
        space="entity_text", backend=args.backend, overwrite=True, progress=not args.quiet, seed=args.seed,
        **build_params(args),
    )
    sizes = {p.name: round(p.stat().st_size / 2**20, 1) for p in Path(paths["index"]).iterdir()}
    return {"build_s": round(time.perf_counter() - t0, 1), "params": idx.params, "files_MiB": sizes, **proc_status()}


def phase_gt(args, paths) -> dict:
    from pixlink.index.dense import DenseIndex

    idx = DenseIndex.open(paths["index"])
    q = np.load(paths["queries"])[: args.queries]
    t0 = time.perf_counter()
    _, ids = idx.search(q, 10, exact=True)
    t_batch = time.perf_counter() - t0
    t0 = time.perf_counter()
    idx.search(q[:1], 10, exact=True)
    t_one = time.perf_counter() - t0
    gt = np.array([[int(e[1:]) for e in row] for row in ids], dtype=np.int64)
    np.save(paths["gt"], gt)
    return {"exact_batch_s": round(t_batch, 2), "exact_batch_queries": len(q), "exact_one_query_s": round(t_one, 2),
            **proc_status()}


def recall_at(found: list[list[str]], gt: np.ndarray, k: int = 10) -> float:
    hits = [len({int(e[1:]) for e in f[:k]} & set(g[:k].tolist())) / k for f, g in zip(found, gt)]
    return float(np.mean(hits))


def evict(path: Path) -> None:
    """Drop one file's pages from the page cache (posix_fadvise DONTNEED; other files untouched)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def preload(path: Path) -> None:
    """Read one file sequentially so that it sits in the page cache (plain reads: nothing is
    mapped into this process, so its RSS does not change)."""
    with open(path, "rb", buffering=0) as fh:
        while fh.read(1 << 24):
            pass


def phase_search(args, paths) -> dict:
    import faiss

    from pixlink.index.dense import DenseIndex

    faiss.omp_set_num_threads(args.threads)
    # Controlled page cache: the index's working set (faiss.index) cached, the float vectors
    # (read only for the final exact scores) evicted, so those reads go to the disk.
    evict(Path(paths["index"]) / "vectors.npy")
    if (Path(paths["index"]) / "faiss.index").exists():
        preload(Path(paths["index"]) / "faiss.index")
    before = proc_status()
    idx = DenseIndex.open(paths["index"], mmap=not args.no_mmap)
    opened = proc_status()
    allq = np.load(paths["queries"])
    q = allq[: args.queries]
    warm = allq[args.queries : args.queries + N_WARMUP]
    thr = allq[args.queries + N_WARMUP :]
    gt = np.load(paths["gt"])
    for i in range(len(warm)):
        idx.search(warm[i : i + 1], 10)
    rows = []
    for nprobe, k_factor in args.settings:
        knobs = {"nprobe": nprobe, "k_factor": k_factor} if idx.backend == "ivfpq" else (
            {"ef_search": nprobe, "k_factor": k_factor} if idx.backend == "hnsw" else {})
        lat, found = [], []
        for i in range(len(q)):
            t0 = time.perf_counter()
            _, ids = idx.search(q[i : i + 1], 10, **knobs)
            lat.append(time.perf_counter() - t0)
            found.append(ids[0])
        t0 = time.perf_counter()
        for s in range(0, len(thr), 64):
            idx.search(thr[s : s + 64], 10, **knobs)
        t_thr = time.perf_counter() - t0
        lat_ms = np.array(lat) * 1000
        rows.append({
            "nprobe" if idx.backend != "hnsw" else "ef_search": nprobe, "k_factor": k_factor,
            "p50_ms": round(float(np.percentile(lat_ms, 50)), 3), "p95_ms": round(float(np.percentile(lat_ms, 95)), 3),
            "mean_ms": round(float(lat_ms.mean()), 3), "recall_at_10": round(recall_at(found, gt), 4),
            "batch64_qps": round(len(thr) / t_thr, 1), "batch64_ms_per_batch": round(1000 * t_thr / (len(thr) / 64), 2),
        })
        print(f"  {rows[-1]}", file=sys.stderr)
    return {"rss_before_open": before, "rss_after_open": opened, "rss_after_search": proc_status(), "settings": rows,
            "threads": args.threads, "mmap": not args.no_mmap,
            "page_cache": "faiss.index read into the page cache before opening; vectors.npy evicted first"}


def phase_cold(args, paths) -> dict:
    import faiss

    from pixlink.index.dense import DenseIndex

    faiss.omp_set_num_threads(args.threads)
    for p in Path(paths["index"]).iterdir():
        evict(p)
    idx = DenseIndex.open(paths["index"], mmap=not args.no_mmap)
    q = np.load(paths["queries"])[: args.queries]
    gt = np.load(paths["gt"])
    nprobe, k_factor = args.settings[0]
    knobs = {"nprobe": nprobe, "k_factor": k_factor} if idx.backend == "ivfpq" else (
        {"ef_search": nprobe, "k_factor": k_factor} if idx.backend == "hnsw" else {})
    lat, found = [], []
    for i in range(len(q)):
        t0 = time.perf_counter()
        _, ids = idx.search(q[i : i + 1], 10, **knobs)
        lat.append(time.perf_counter() - t0)
        found.append(ids[0])
    lat_ms = np.array(lat) * 1000
    return {"p50_ms": round(float(np.percentile(lat_ms, 50)), 3), "p95_ms": round(float(np.percentile(lat_ms, 95)), 3),
            "first_query_ms": round(float(lat_ms[0]), 1), "recall_at_10": round(recall_at(found, gt), 4),
            "knobs": knobs, **proc_status()}


def phase_concurrent(args, paths) -> dict:
    import threading

    import faiss

    from pixlink.index.dense import DenseIndex

    faiss.omp_set_num_threads(args.threads)
    idx = DenseIndex.open(paths["index"], mmap=not args.no_mmap)
    allq = np.load(paths["queries"])
    q = allq[: args.queries]
    for i in range(N_WARMUP):
        idx.search(allq[args.queries + i : args.queries + i + 1], 10)
    nprobe, k_factor = args.settings[0]
    knobs = {"nprobe": nprobe, "k_factor": k_factor} if idx.backend == "ivfpq" else (
        {"ef_search": nprobe, "k_factor": k_factor} if idx.backend == "hnsw" else {})
    t0 = time.perf_counter()
    serial = [idx.search(q[i : i + 1], 10, **knobs) for i in range(len(q))]
    serial_qps = len(q) / (time.perf_counter() - t0)
    n_threads = args.concurrent
    lat = [0.0] * len(q)
    same = [False] * len(q)

    def work(t: int) -> None:
        for i in range(t, len(q), n_threads):
            t1 = time.perf_counter()
            s, ids = idx.search(q[i : i + 1], 10, **knobs)
            lat[i] = time.perf_counter() - t1
            same[i] = ids == serial[i][1] and np.array_equal(s, serial[i][0])

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    lat_ms = np.array(lat) * 1000
    return {"threads": n_threads, "omp_threads": args.threads, "knobs": knobs, "queries": len(q),
            "qps": round(len(q) / wall, 1), "serial_qps": round(serial_qps, 1),
            "p50_ms": round(float(np.percentile(lat_ms, 50)), 3), "p95_ms": round(float(np.percentile(lat_ms, 95)), 3),
            "same_as_serial": bool(all(same)), **proc_status()}


PHASES = {"gen": phase_gen, "build": phase_build, "gt": phase_gt, "search": phase_search, "cold": phase_cold,
          "concurrent": phase_concurrent}


# --------------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------------


def run_name(args) -> str:
    return f"{args.data}-{args.n}x{args.dim}-{args.backend}" + ("-loaded" if args.no_mmap else "")


def make_paths(args) -> dict[str, Path]:
    w = Path(args.workdir)
    tag = f"{args.data}-{args.n}x{args.dim}-s{args.seed}" + (f"-c{args.clusters}-l{args.latent}" if args.data == "clustered" else "")
    return {
        "data": w / f"{tag}.npy", "queries": w / f"{tag}-queries.npy", "index": w / f"{tag}-{args.backend}",
        "gt": w / f"{tag}-{args.backend}-gt.npy",
    }


def child(phase: str, argv: list[str], threads: int) -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=str(threads), OMP_WAIT_POLICY="PASSIVE", OPENBLAS_NUM_THREADS=str(threads),
               PYTHONPATH=str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", ""))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, *argv, "--phase", phase], env=env, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"phase {phase} failed (exit {proc.returncode})")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    return out


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matplotlib.ticker import ScalarFormatter

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    xs: list[float] = []
    for name, r in sorted(results["runs"].items()):
        pts = r.get("search", {}).get("settings", [])
        if not pts:
            continue
        xs += [p["p50_ms"] for p in pts]
        ax.plot([p["p50_ms"] for p in pts], [p["recall_at_10"] for p in pts], "o", alpha=0.8, label=name)
        for p in pts:
            ax.annotate(f"{p.get('nprobe', p.get('ef_search'))}/{p['k_factor']}", (p["p50_ms"], p["recall_at_10"]),
                        fontsize=6, xytext=(3, -8), textcoords="offset points")
    ax.axhline(0.95, color="grey", lw=0.8, ls="--")
    ax.axvline(10, color="grey", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_xlim(min(xs + [1.0]) * 0.7, max(xs + [10.0]) * 1.4)
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.set_xlabel("p50 latency per query, batch 1 (ms, log)")
    ax.set_ylabel("recall@10 vs exact (200 queries)")
    ax.set_title("pixlink dense search (labels: nprobe/k_factor); targets dashed")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000, help="vectors in the corpus")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--data", choices=("clustered", "random"), default="clustered")
    ap.add_argument("--clusters", type=int, default=4096)
    ap.add_argument("--latent", type=int, default=64)
    ap.add_argument("--noise", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backend", choices=("ivfpq", "hnsw", "exact"), default="ivfpq")
    ap.add_argument("--nlist", type=int, default=0, help="IVF lists (0: the index's auto rule)")
    ap.add_argument("--m", type=int, default=64, help="PQ bytes per vector")
    ap.add_argument("--train-size", type=int, default=262_144)
    ap.add_argument("--settings", default="32:40,16:40,64:40,32:20,32:10",
                    help="nprobe:k_factor pairs to measure (the first is stored as the index default and used by --cold)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1, help="threads while searching")
    ap.add_argument("--build-threads", type=int, default=2)
    ap.add_argument("--workdir", default="/tmp/pixlink-bench-dense")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the index even if it exists")
    ap.add_argument("--cold", action="store_true", help="also measure right after evicting the index from the page cache")
    ap.add_argument("--no-mmap", action="store_true", help="load faiss.index into RAM instead of mapping it")
    ap.add_argument("--concurrent", type=int, default=0,
                    help="also search from this many threads sharing one opened index (0: skip)")
    ap.add_argument("--cleanup", action="store_true", help="delete the data and index files at the end")
    ap.add_argument("--results-dir", default=str(RESULTS), help="where dense.json and dense.png go")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--phase", choices=tuple(PHASES), help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.settings = [tuple(int(v) for v in s.split(":")) for s in args.settings.split(",")]
    paths = make_paths(args)

    if args.phase:  # child process: run one phase, print its JSON on the last line of stdout
        print(json.dumps(PHASES[args.phase](args, paths)), flush=True)
        return

    argv = [a for a in sys.argv[1:]]
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    name = run_name(args)
    run: dict = {"conditions_start": conditions(), "args": {k: v for k, v in vars(args).items() if k != "phase"}}
    run["data"] = __doc__.split("Data (")[1].split("Writes")[0].strip() if args.data == "clustered" else \
        "isotropic Gaussian N(0, I), L2-normalised: no neighbourhood structure"

    def say(msg):
        print(f"[bench_dense {name}] {msg}", file=sys.stderr, flush=True)

    if not (paths["data"].exists() and paths["queries"].exists()):
        say(f"generating {args.n} x {args.dim} {args.data} vectors -> {paths['data']}")
        run["gen"] = child("gen", argv, args.build_threads)
    if args.rebuild or not (paths["index"] / "meta.json").exists():
        say(f"building {args.backend} index -> {paths['index']}")
        run["build"] = child("build", argv, args.build_threads)
        paths["gt"].unlink(missing_ok=True)
    else:
        meta = json.loads((paths["index"] / "meta.json").read_text())
        run["build"] = {"reused_existing_index": True, "params": meta["params"], "build_timings": meta["build_timings"]}
    if not paths["gt"].exists():
        say("exact ground truth")
        run["gt"] = child("gt", argv, args.build_threads)
    say(f"searching with {args.threads} thread(s)")
    run["search"] = child("search", argv, args.threads)
    if args.cold:
        say("cold page cache")
        run["cold"] = child("cold", argv, args.threads)
    if args.concurrent > 0:
        say(f"{args.concurrent} threads sharing one index")
        run["concurrent"] = child("concurrent", argv, args.threads)
    run["conditions_end"] = conditions()

    res_dir = Path(args.results_dir)
    res_dir.mkdir(parents=True, exist_ok=True)
    out = res_dir / "dense.json"
    results = json.loads(out.read_text()) if out.exists() else {"runs": {}}
    results["runs"][name] = run
    out.write_text(json.dumps(results, indent=2))
    plot(results, res_dir / "dense.png")

    s = run["search"]
    print(f"\n== {name}: {args.n} x {args.dim} {args.data}, backend {args.backend}, search threads {args.threads}")
    print(f"   load avg at start {run['conditions_start']['load_avg_1_5_15']}, end {run['conditions_end']['load_avg_1_5_15']}")
    b = run["build"]
    if "build_s" in b:
        print(f"   build {b['build_s']} s (peak RSS {b.get('VmHWM_MiB')} MiB), params {b['params']}")
    print(f"   RSS after open {s['rss_after_open']}; after search {s['rss_after_search']}")
    print(f"   {'setting':>10} {'p50 ms':>8} {'p95 ms':>8} {'recall@10':>9} {'b64 q/s':>8}")
    for r in s["settings"]:
        print(f"   {str(r.get('nprobe', r.get('ef_search'))) + '/' + str(r['k_factor']):>10} {r['p50_ms']:>8} "
              f"{r['p95_ms']:>8} {r['recall_at_10']:>9} {r['batch64_qps']:>8}")
    if "cold" in run:
        c = run["cold"]
        print(f"   cold page cache: p50 {c['p50_ms']} ms, p95 {c['p95_ms']} ms, first {c['first_query_ms']} ms, "
              f"recall {c['recall_at_10']}")
    if "concurrent" in run:
        c = run["concurrent"]
        print(f"   {c['threads']} threads sharing the index: {c['qps']} q/s (serial {c['serial_qps']}), p50 {c['p50_ms']} ms, "
              f"p95 {c['p95_ms']} ms, same answers as serial: {c['same_as_serial']}")
    if "gt" in run:
        print(f"   exact scan: {run['gt']['exact_one_query_s']} s for 1 query, {run['gt']['exact_batch_s']} s for "
              f"{run['gt']['exact_batch_queries']}")
    print(f"   wrote {out} and {res_dir / 'dense.png'}")
    if args.cleanup:
        import shutil

        for p in (paths["data"], paths["queries"], paths["gt"]):
            p.unlink(missing_ok=True)
        shutil.rmtree(paths["index"], ignore_errors=True)


if __name__ == "__main__":
    main()
