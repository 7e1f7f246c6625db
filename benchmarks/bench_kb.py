"""Benchmark of the KB: import throughput on a generated Wikidata-shaped dump, lexical query
latency, entity and hypernym lookups.

    python benchmarks/bench_kb.py                 # 1,000,000 entities (about 2 GB in a temp dir)
    python benchmarks/bench_kb.py --n 100000      # quicker

The dump (:func:`pixlink.kb.synth.write_wikidata_dump`) and the KB go to a temporary directory
that is deleted at the end (``--keep`` keeps it), never into the repository. Figures are printed
and written to ``benchmarks/results/kb.json``.

Import throughput is given both per wall-clock second and per CPU second of the (single-threaded)
build process: on a shared machine the wall clock also counts the time other processes hold the
core, while CPU time is what the build costs one core. The 1-minute load average is recorded.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson

RESULTS = Path(__file__).resolve().parent / "results" / "kb.json"


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def _latency(fn, items, repeat: int = 1) -> dict[str, float]:
    times = []
    for _ in range(repeat):
        for it in items:
            t = time.perf_counter()
            fn(it)
            times.append((time.perf_counter() - t) * 1000)
    return {"n": len(times), "mean_ms": round(statistics.fmean(times), 3), "p50_ms": round(_pct(times, 50), 3),
            "p95_ms": round(_pct(times, 95), 3), "max_ms": round(max(times), 3)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="entities in the generated dump")
    ap.add_argument("--compress", choices=["none", "gz"], default="none", help="write the dump gzipped")
    ap.add_argument("--queries", type=int, default=300, help="queries per query kind")
    ap.add_argument("--workdir", type=Path, default=None, help="where the dump and KB go (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the dump and the KB")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    from pixlink.kb import KB, build_kb
    from pixlink.kb.synth import write_wikidata_dump

    work = Path(tempfile.mkdtemp(prefix="pixlink-bench-kb-", dir=args.workdir))
    try:
        dump = work / ("dump.json.gz" if args.compress == "gz" else "dump.json")
        t = time.perf_counter()
        write_wikidata_dump(dump, args.n, seed=0)
        gen_s = time.perf_counter() - t
        size = dump.stat().st_size
        print(f"generated {args.n:,} Wikidata-shaped entities ({size / 1e6:,.0f} MB) in {gen_s:.1f} s", flush=True)

        load0 = os.getloadavg()[0]
        cpu0 = time.process_time()
        t = time.perf_counter()
        rep = build_kb([dump], work / "kb", progress=False)
        wall = time.perf_counter() - t
        cpu = time.process_time() - cpu0
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        load1 = os.getloadavg()[0]
        n_ent = rep.counts["entities"]
        db_mb = (work / "kb" / "kb.sqlite").stat().st_size / 1e6
        imp = {
            "entities_in_dump": args.n, "entities_imported": n_ent, "dump_mb": round(size / 1e6, 1),
            "kb_sqlite_mb": round(db_mb, 1), "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "entities_per_s_wall": round(args.n / wall), "entities_per_cpu_s": round(args.n / cpu),
            "phases_wall_s": rep.seconds, "phases_cpu_s": rep.cpu_seconds, "peak_rss_mb": round(rss_mb),
            "loadavg_1min_before_after": [round(load0, 2), round(load1, 2)], "issues": rep.issue_counts,
        }
        print(f"import: {n_ent:,} entities in {wall:.1f} s wall / {cpu:.1f} s CPU -> "
              f"{imp['entities_per_s_wall']:,} entities/s wall, {imp['entities_per_cpu_s']:,} entities/s per CPU second "
              f"(load average {load0:.1f} -> {load1:.1f}; target >= 20,000/s on one core)")
        print(f"  phases (wall s): {rep.seconds}")
        print(f"  phases (CPU s):  {rep.cpu_seconds}")
        print(f"  kb.sqlite {db_mb:,.0f} MB, peak RSS {rss_mb:,.0f} MB", flush=True)

        kb = KB.open(work / "kb")
        rng = random.Random(1)
        ids = [f"Q{rng.randint(1, args.n)}" for _ in range(args.queries)]
        ents = kb.get_many(ids)
        labels = [e.label for e in ents]
        words = [w for e in ents for w in e.label.split()]
        one_word = [rng.choice(words).lower() for _ in range(args.queries)]
        two_words = [f"{rng.choice(words)} {rng.choice(words)}" for _ in range(args.queries)]
        descr = [" ".join(e.description.split()[:3]) for e in ents]
        typo = [lab[:-1] if len(lab) > 4 else lab for lab in labels]
        kb.search(labels[0])  # warm the page cache a little
        lat = {
            "search_exact_label": _latency(lambda q: kb.search(q, k=10), labels),
            "search_one_word": _latency(lambda q: kb.search(q, k=10), one_word),
            "search_two_words": _latency(lambda q: kb.search(q, k=10), two_words),
            "search_description_words": _latency(lambda q: kb.search(q, k=10), descr),
            "search_label_minus_last_char": _latency(lambda q: kb.search(q, k=10), typo),
            "get": _latency(kb.get, ids),
            "get_many_100": _latency(kb.get_many, [ids[i:i + 100] for i in range(0, len(ids), 100)]),
            "by_name": _latency(kb.by_name, labels),
            "hypernyms": _latency(kb.hypernyms, ids),
        }
        hit = sum(1 for q, e in zip(labels, ents) if e.id in [x.id for x, _ in kb.search(q, k=10)])
        print("lexical search and lookups (k=10):")
        for k, v in lat.items():
            print(f"  {k:30s} p50 {v['p50_ms']:8.3f} ms  p95 {v['p95_ms']:8.3f} ms  mean {v['mean_ms']:8.3f} ms")
        print(f"  an entity's own label finds it in the top 10: {hit}/{len(labels)}")
        t = time.perf_counter()
        n_iter = sum(1 for _ in kb.iter_entities(batch_size=2000))
        iter_s = time.perf_counter() - t
        print(f"iter_entities: {n_iter:,} entities in {iter_s:.1f} s ({n_iter / iter_s:,.0f}/s)")
        kb.close()

        result = {
            "benchmark": "kb", "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count(),
                        "sqlite": __import__("sqlite3").sqlite_version},
            "dump": {"entities": args.n, "compress": args.compress, "generate_s": round(gen_s, 1)},
            "import": imp, "latency": lat, "own_label_in_top10": [hit, len(labels)],
            "iter_entities_per_s": round(n_iter / iter_s),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
        print(f"wrote {args.out}")
        return result
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
