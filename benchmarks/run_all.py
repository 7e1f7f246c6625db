"""Run every ``benchmarks/bench_*.py``, each in its own process, and print one table (``make bench``).

By default each script runs with small settings (where it has them: fewer entities, vectors,
repeats or tweets) and writes its JSON and pictures into a scratch folder (``--work``), so a
quick run never overwrites the published figures in ``benchmarks/results/``. ``--full`` runs
every script with its own defaults, which write ``benchmarks/results/`` (hours on a laptop).

The table gives, per script: status (ok / FAILED with the exit code / timeout), wall seconds,
the JSON it wrote and one headline figure read from that JSON. The collected JSON of every
script goes to ``<work>/run_all.json`` (``benchmarks/results/run_all.json`` with ``--full``).
The exit code is 1 when any script failed or wrote no JSON, else 0.

Usage: ``python benchmarks/run_all.py [--only kb,link] [--full] [--timeout 3600] [--work DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"


def _get(d: Any, *keys: Any) -> Any:
    """``d[k1][k2]...``, or None where the path does not exist (a headline is optional)."""
    for k in keys:
        if isinstance(d, dict) and k in d:
            d = d[k]
        elif isinstance(d, list) and isinstance(k, int) and -len(d) <= k < len(d):
            d = d[k]
        else:
            return None
    return d


def _fmt(label: str, value: Any, unit: str = "") -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        value = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    elif isinstance(value, int):
        value = f"{value:,}"
    return f"{label} {value}{unit}"


# script stem -> (small-settings arguments, full-run arguments, the JSON it writes, a headline).
# ``{w}`` is the script's scratch folder. A script not listed here runs with no arguments and
# its JSON is looked for as <w>/*.json, then benchmarks/results/<name>.json.
Plan = tuple[list[str], list[str], str, Callable[[dict], str]]
PLANS: dict[str, Plan] = {
    "bench_annotate": (["--composite", "30", "--queries", "8", "--out", "{w}/annotate.json"], [], "{w}/annotate.json",
                       lambda r: _fmt("items/s", r.get("items_per_second")) + "; "
                       + _fmt("people boxed", f"{r.get('people_box_iou_gt_0_5')}/{r.get('people')}")),
    "bench_coco": (["--repeats", "1", "--out", "{w}"], [], "{w}/coco.json",
                   lambda r: _fmt("photos", len(r.get("photos", []))) + "; " + _fmt("peak MiB", _get(r, "peak_mb"))),
    "bench_dense": (["--n", "20000", "--dim", "64", "--clusters", "64", "--latent", "16", "--m", "16",
                     "--train-size", "20000", "--queries", "50", "--settings", "8:10", "--workdir", "{w}/data",
                     "--results-dir", "{w}", "--cleanup", "--quiet"], [], "{w}/dense.json",
                    lambda r: next((_fmt("recall@10", _get(run, "search", "settings", 0, "recall_at_10")) + "; "
                                    + _fmt("p50", _get(run, "search", "settings", 0, "p50_ms"), " ms")
                                    for run in (r.get("runs") or {}).values()), "")),
    "bench_gmner": (["--repeats", "1", "--out", "{w}"], [], "{w}/gmner.json",
                    lambda r: _fmt("posts", len(r.get("posts", []))) + "; " + _fmt("peak MiB", _get(r, "peak_mb"))),
    "bench_jobs": (["--entities", "300", "--link-items", "8", "--signals", "dense_text", "--no-ray",
                    "--out", "{w}/jobs.json"], [], "{w}/jobs.json",
                   lambda r: _fmt("embed items/s x2", _get(r, "embed", 1, "steady_items_per_s")) + "; "
                   + _fmt("link items/s x2", _get(r, "link", 1, "steady_items_per_s"))),
    "bench_kb": (["--n", "20000", "--queries", "50", "--out", "{w}/kb.json"], [], "{w}/kb.json",
                 lambda r: _fmt("entities", _get(r, "import", "entities_imported")) + "; "
                 + _fmt("import/s", _get(r, "import", "entities_per_s_wall"))),
    "bench_link": (["--distractors", "500", "--threads", "1", "--work", "{w}/work", "--out", "{w}/link.json"], [],
                   "{w}/link.json",
                   lambda r: _fmt("first prompt p50", _get(r, "first_prompt_on_image_ms", "p50"), " ms")),
    "bench_local_scale": (["--images-per-logo", "1", "--n", "30", "--work", "{w}/work", "--out", "{w}/local_scale.json"],
                          [], "{w}/local_scale.json",
                          lambda r: _fmt("KB images", _get(r, "kb", "images")) + "; "
                          + _fmt("local p50", _get(r, "latency_local_s", "p50"), " s")),
    "bench_milvus": (["--n", "5000", "--dim", "64", "--queries", "30", "--out", "{w}/milvus.json"], [],
                     "{w}/milvus.json",
                     lambda r: next((_fmt("Lite FLAT recall@10", x["recall_at_10"]) + "; " + _fmt("p50", x["p50_ms"], " ms")
                                     for x in r.get("rows", []) if x["backend"] == "milvus-lite FLAT"), "")),
    "bench_models": (["--repeats", "1", "--timeout", "900", "--out", "{w}/models.json"], [], "{w}/models.json",
                     lambda r: _fmt("backends", len(r.get("rows", []))) + "; "
                     + _fmt("failed", sum(1 for x in r.get("rows", []) if "error" in x))),
    "bench_models_offline_text": (["--repeats", "1", "--out", "{w}/models_offline_text.json"], [],
                                  "{w}/models_offline_text.json",
                                  lambda r: _fmt("backends", len(r.get("results", []))) + "; "
                                  + _fmt("failed", sum(1 for x in r.get("results", []) if "error" in x))),
    "bench_models_offline_vision": (["--repeats", "1", "--out", "{w}/models_offline_vision.json"], [],
                                    "{w}/models_offline_vision.json",
                                    lambda r: _fmt("parts", len(r.get("results", []))) + "; "
                                    + _fmt("failed", sum(1 for x in r.get("results", []) if "error" in x))),
    "bench_train": (["--parts", "learn", "--views", "3", "1", "2", "--seeds", "0", "--work", "{w}/work",
                     "--out", "{w}/train.json"], [], "{w}/train.json",
                    lambda r: _fmt("photos hits@1 frozen", _get(r, "learn", "frozen_v2v_test", "hits@1")) + "; "
                    + _fmt("trained", _get(r, "learn", "biencoder_v2v_test", "hits@1", "mean"))),
    "bench_ner": (["--limit", "50", "--out", "{w}/ner.json"], [], "{w}/ner.json",
                  lambda r: "; ".join(_fmt(f"{k} F1", _get(v, "trained", "f1"))
                                      for k, v in (r.get("splits") or {}).items())),
}


def scripts(only: list[str]) -> list[Path]:
    found = sorted(BENCH.glob("bench_*.py"))
    if not only:
        return found
    return [p for p in found if any(o in p.stem for o in only)]


def run_one(script: Path, full: bool, work: Path, timeout: float) -> dict[str, Any]:
    small, full_args, json_path, headline = PLANS.get(script.stem, ([], [], "", lambda r: ""))
    w = work / script.stem
    w.mkdir(parents=True, exist_ok=True)
    args = [a.replace("{w}", str(w)) for a in (full_args if full else small)]
    out_json = json_path.replace("{w}", str(w)) if json_path and not full else ""
    cmd = [sys.executable, str(script), *args]
    row: dict[str, Any] = {"script": script.name, "command": cmd[1:], "settings": "full" if full else "small"}
    print(f"== {script.name} {' '.join(args)}", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    log_path = w / "output.log"
    with open(log_path, "w", encoding="utf-8") as log:
        try:
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=timeout, cwd=BENCH.parent)
            row["exit"] = proc.returncode
        except subprocess.TimeoutExpired:
            row["exit"] = "timeout"
    row["seconds"] = round(time.perf_counter() - t0, 1)
    row["log"] = str(log_path)
    candidates = [Path(out_json)] if out_json else []
    if full or not out_json:
        stem = script.stem.removeprefix("bench_")
        candidates += [RESULTS / f"{stem}.json", RESULTS / stem / f"{stem}.json", *sorted(w.glob("*.json"))]
    found = next((p for p in candidates if p.is_file() and p.stat().st_mtime >= time.time() - row["seconds"] - 5), None)
    row["json"] = str(found) if found else None
    result = None
    if found:
        try:
            result = json.loads(found.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            row["json_error"] = f"{found}: {exc}"
    row["result"] = result
    row["headline"] = headline(result).strip("; ") if isinstance(result, dict) else ""
    ok = row["exit"] == 0 and result is not None
    row["status"] = "ok" if ok else ("timeout" if row["exit"] == "timeout" else
                                     f"FAILED (exit {row['exit']})" if row["exit"] != 0 else "FAILED (no JSON)")
    if not ok:
        tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
        row["tail"] = tail
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="", help="comma-separated parts of script names (e.g. kb,link)")
    ap.add_argument("--full", action="store_true", help="the scripts' own settings; results go to benchmarks/results")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per script before it counts as failed")
    ap.add_argument("--work", type=Path, default=None,
                    help="scratch folder of the small runs (default: a new folder under the temp directory)")
    args = ap.parse_args()
    only = [o.strip() for o in args.only.split(",") if o.strip()]
    todo = scripts(only)
    if not todo:
        print(f"no benchmarks/bench_*.py matches --only {args.only!r}", file=sys.stderr)
        return 1
    work = args.work or Path(tempfile.mkdtemp(prefix="pixlink-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    rows = [run_one(s, args.full, work, args.timeout) for s in todo]

    w = max(len(r["script"]) for r in rows)
    print(f"\n{'script':{w}}  {'status':18}  {'seconds':>8}  headline")
    for r in rows:
        print(f"{r['script']:{w}}  {r['status']:18}  {r['seconds']:8.1f}  {r['headline']}")
        for line in r.get("tail", []):
            print(f"{'':{w}}    | {line[:160]}")
    summary = RESULTS / "run_all.json" if args.full else work / "run_all.json"
    summary.write_text(json.dumps({"settings": "full" if args.full else "small", "work": str(work), "scripts": rows},
                                  indent=1) + "\n", encoding="utf-8")
    failed = [r["script"] for r in rows if r["status"] != "ok"]
    print(f"\n{len(rows) - len(failed)} of {len(rows)} benchmarks ok; logs and JSON in {work}; summary {summary}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
