"""Milvus Lite against the FAISS backends on the same vectors: recall@10 (against the exact
scan) and per-query latency, through pixlink's index interface (what the linker calls).

    python benchmarks/bench_milvus.py                    # 100,000 x 384 clustered vectors
    python benchmarks/bench_milvus.py --n 20000 --queries 50 --out /tmp/milvus.json

Vectors: the clustered synthetic mixture of ``bench_dense.py`` (``Mixture``: topics in a 64-d
latent space mapped into ``--dim``, L2-normalised; queries are fresh draws), one vector per
entity ``Q<i>``. Ground truth: :class:`~pixlink.index.dense.ExactIndex` (FAISS files, exact
scan), so its recall is 1 by definition.

Backends: FAISS files ``exact``, ``hnsw`` and ``ivfpq`` (their defaults) and Milvus Lite
collections ``FLAT``, ``HNSW`` (M=16, efConstruction=200, ef=128) and ``IVF_FLAT``
(nlist=sqrt(N)*4, nprobe=16), each loaded with :meth:`MilvusIndex.build` into a Lite database
under ``--work``. Latency: ``index.search(q[None], k=10)`` one query at a time (p50/p95 over
``--queries`` after 20 warm-up queries), and ``search_subset`` of 50 candidates (how the linker
re-scores). Build: seconds to write the FAISS files / to load and index the collection.

Writes ``benchmarks/results/milvus.json`` and ``milvus.png`` (recall@10 vs p50 latency).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from bench_dense import Mixture  # noqa: E402


def recall(found: list[list[str]], gt: list[list[str]], k: int) -> float:
    return float(np.mean([len(set(f[:k]) & set(g[:k])) / k for f, g in zip(found, gt)]))


def timed(fn, queries: np.ndarray, warm: int = 20) -> tuple[list, float, float]:
    for q in queries[:warm]:
        fn(q[None, :])
    out, times = [], []
    for q in queries:
        t = time.perf_counter()
        out.append(fn(q[None, :]))
        times.append(time.perf_counter() - t)
    times.sort()
    return out, 1000 * statistics.median(times), 1000 * times[int(0.95 * (len(times) - 1))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=BENCH / "results" / "milvus.json")
    args = ap.parse_args()
    from pixlink.index.dense import DenseIndex
    from pixlink.index.milvus import MilvusIndex, connect

    work = args.work or Path(tempfile.mkdtemp(prefix="bench_milvus_"))
    work.mkdir(parents=True, exist_ok=True)
    mix = Mixture(args.dim, clusters=256, latent=64, noise=0.1, seed=args.seed)
    rng = np.random.default_rng(args.seed + 1)
    x = np.concatenate([mix.sample(min(20_000, args.n - s), rng) for s in range(0, args.n, 20_000)])
    q = mix.sample(args.queries, np.random.default_rng(args.seed + 2))
    ids = [f"Q{i}" for i in range(args.n)]
    print(f"{args.n} x {args.dim} vectors, {args.queries} queries; work in {work}", flush=True)

    rows = []
    faiss = {}
    for backend in ("exact", "hnsw", "ivfpq"):
        t = time.perf_counter()
        idx = DenseIndex.build(work / "kb" / "vectors" / "entity_text" / backend, x, ids, model_id="bench",
                               space="entity_text", backend=backend, progress=False)
        faiss[backend] = (idx, time.perf_counter() - t)
    gt = [faiss["exact"][0].search(v[None, :], k=args.k)[1][0] for v in q]
    cands = [g[:5] + [f"Q{j}" for j in np.random.default_rng(i).integers(0, args.n, 45)] for i, g in enumerate(gt)]

    def measure(name: str, kind: str, idx, build_s: float, extra: dict) -> None:
        found, p50, p95 = timed(lambda v: idx.search(v, k=args.k)[1][0], q)
        it = iter(cands)
        _, s50, s95 = timed(lambda v: idx.search_subset(v, next(it)), q[: len(q) // 2], warm=0)
        row = {"backend": name, "kind": kind, "build_s": round(build_s, 2), "recall_at_10": round(recall(found, gt, args.k), 4),
               "p50_ms": round(p50, 3), "p95_ms": round(p95, 3), "subset50_p50_ms": round(s50, 3),
               "subset50_p95_ms": round(s95, 3)} | extra
        rows.append(row)
        print(f"  {name:18} recall@10 {row['recall_at_10']:.3f}  p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  "
              f"subset(50) p50 {s50:6.2f} ms  build {build_s:6.1f} s", flush=True)

    for backend, (idx, build_s) in faiss.items():
        measure(f"faiss {backend}", "faiss", idx, build_s, {"params": idx.params})
    n_list = int(4 * np.sqrt(args.n))
    for itype, iparams, sparams in (("FLAT", {}, {}), ("HNSW", {"M": 16, "efConstruction": 200}, {"ef": 128}),
                                    ("IVF_FLAT", {"nlist": n_list}, {"nprobe": 16})):
        t = time.perf_counter()
        idx = MilvusIndex.build(work / "kb" / "vectors" / "entity_image" / itype.lower(), [x], None, ids,
                                uri=str(work / "bench.db"), model_id="bench", space="entity_image",
                                collection=f"bench_{itype.lower()}", index_type=itype, index_params=iparams,
                                search_params=sparams, progress=False)
        build_s = time.perf_counter() - t
        info = idx._call("describe_index", idx.collection, index_name="vector")
        measure(f"milvus-lite {itype}", "milvus-lite", idx, build_s,
                {"index": {k: info.get(k) for k in ("index_type", "metric_type", "M", "efConstruction", "nlist")
                           if info.get(k) is not None}, "search_params": sparams})
        idx.close()
    client = connect(str(work / "bench.db"))
    client.close()
    import milvus_lite
    import pymilvus

    res = {"n": args.n, "dim": args.dim, "queries": args.queries, "k": args.k, "data": "clustered (bench_dense Mixture)",
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg": os.getloadavg()[0]},
           "versions": {"pymilvus": pymilvus.__version__, "milvus_lite": getattr(milvus_lite, "__version__", "?")},
           "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        ax.scatter(r["p50_ms"], r["recall_at_10"], marker="o" if r["kind"] == "faiss" else "s")
        ax.annotate(r["backend"], (r["p50_ms"], r["recall_at_10"]), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("p50 latency per query (ms, batch 1)")
    ax.set_ylabel("recall@10 vs exact")
    ax.set_title(f"{args.n:,} x {args.dim} vectors")
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), dpi=120)
    print(f"wrote {args.out}")
    for idx, _ in faiss.values():
        idx.close()
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
