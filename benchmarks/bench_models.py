"""Per-role model latency on CPU (batch 1 and batch 16) and memory, for every backend that can
run here.

Each backend runs in its own subprocess, so that its memory is its own: ``rss_base_mb`` is the
process after importing numpy, torch and pixlink, ``rss_loaded_mb`` after building the
backend, ``peak_rss_mb`` the peak over the whole run (Linux ``VmHWM``). ``load_s`` includes
importing the backend's libraries (transformers alone takes several seconds).

* Backends with packaged weights (kind ``packaged`` / ``trained`` / ``classical``) run their
  real models.
* Hub backends cannot download here (no model hub), so they run the *tiny random-config*
  models of :mod:`pixlink.models.tiny` loaded through ``model=<dir>``: labelled
  ``weights: "tiny random (plumbing only)"``; their times say nothing about the real models.

Latency: one warm-up call, then batch 1 = median of ``--repeats`` calls on one item, batch 16 =
one call on 16 items (or 16 calls where the interface takes one item: faces, segment, detect,
describe, generate), reported as total seconds and ms per item. Inputs: the photos in
``../shared/data/photos`` (resized so the longer side is 640), short English sentences, box
prompts from the image centre.

Usage: ``python benchmarks/bench_models.py [--roles image_text,segment] [--backends clip,sam]
[--threads 1] [--repeats 3] [--out benchmarks/results/models.json]``
Prints a table and writes the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]

SENTENCES = [
    "Barack Obama met Joe Biden at the White House in Washington.",
    "Kit Harington and Rose Leslie walked the red carpet in London.",
    "Lin-Manuel Miranda wrote the musical Hamilton for Broadway.",
    "The Eiffel Tower in Paris was lit up for the new year.",
]
PHRASES = ["a person", "a face", "a red car"]


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    """Peak RSS of this process image (``VmHWM``; ``ru_maxrss`` would carry the parent's peak
    across fork + exec)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return float("nan")


def _images(n: int) -> tuple[list[Any], str]:
    import numpy as np
    from PIL import Image

    from pixlink.config import shared_data_dir

    photos = sorted((shared_data_dir() / "photos").glob("*")) if (shared_data_dir() / "photos").is_dir() else []
    out = []
    for p in photos:
        im = Image.open(p).convert("RGB")
        im.thumbnail((640, 640))
        out.append(np.asarray(im))
    source = "../shared/data/photos (longer side 640)"
    if not out:
        rng = np.random.default_rng(0)
        out = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)]
        source = "synthetic noise 480x640 (../shared/data/photos absent)"
    return [out[i % len(out)] for i in range(n)], source


def _centre_box(img: Any) -> Any:
    import numpy as np

    h, w = img.shape[:2]
    return np.array([w * 0.25, h * 0.2, w * 0.75, h * 0.9])


def _ops(role: str, backend: Any, images: list[Any]) -> dict[str, tuple[Callable[[int], Any], str]]:
    """op name -> (run(n) on n items, unit)."""
    texts = [SENTENCES[i % len(SENTENCES)] for i in range(16)]
    one_image_ops = {
        "faces": lambda n: [backend.embed(im, backend.detect(im)) for im in images[:n]],
        "detect": lambda n: [backend.detect(im, PHRASES) for im in images[:n]],
        "describe": lambda n: [backend.describe(im, _centre_box(im), max_new_tokens=16) for im in images[:n]],
        "ocr": lambda n: [backend.read(im) for im in images[:n]],
        "segment_all": lambda n: [backend.generate(im) for im in images[:n]],
    }
    if role in ("image_text", "image_embed"):
        ops = {"encode_images": (lambda n: backend.encode_images(images[:n], batch_size=16), "image")}
        if role == "image_text":
            ops["encode_texts"] = (lambda n: backend.encode_texts(texts[:n]), "text")
        return ops
    if role == "text_embed":
        return {"encode": (lambda n: backend.encode(texts[:n]), "text")}
    if role == "ner":
        return {"tag": (lambda n: backend.tag(texts[:n]), "text")}
    if role == "generate":
        prompt = "Expand each named entity into a short description.\nBarack Obama (PER) -"
        return {"generate(16 tokens)": (lambda n: [backend.generate(prompt, max_new_tokens=16) for _ in range(n)],
                                        "prompt")}
    if role == "segment":
        handle = {}

        def predict(n: int) -> Any:
            if "h" not in handle:
                handle["h"] = backend.embed_image(images[0])
            return [backend.predict(handle["h"], box=_centre_box(images[0])) for _ in range(n)]

        return {"embed_image": (lambda n: [backend.embed_image(im) for im in images[:n]], "image"),
                "predict(box), embedding reused": (predict, "prompt")}
    return {role: (one_image_ops[role], "image")}


def worker(role: str, name: str, options: dict[str, Any], threads: int, repeats: int) -> dict[str, Any]:
    import numpy as np  # noqa: F401
    import torch

    import pixlink  # noqa: F401
    from pixlink.models.registry import get_spec

    torch.set_num_threads(threads)
    rss_base = _rss_mb()
    spec = get_spec(role, name)
    images, source = _images(16)
    t0 = time.perf_counter()
    backend = spec.factory(**options)
    load_s = time.perf_counter() - t0
    rss_loaded = _rss_mb()
    out: dict[str, Any] = {"role": role, "backend": name, "kind": spec.kind,
                           "model_id": getattr(backend, "model_id", ""), "load_s": round(load_s, 3),
                           "rss_base_mb": round(rss_base, 1), "rss_loaded_mb": round(rss_loaded, 1),
                           "inputs": source, "ops": []}
    for op, (run, unit) in _ops(role, backend, images).items():
        run(1)  # warm-up
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            run(1)
            times.append(time.perf_counter() - t)
        t = time.perf_counter()
        run(16)
        t16 = time.perf_counter() - t
        out["ops"].append({"op": op, "unit": unit, "batch1_ms": round(1000 * statistics.median(times), 2),
                           "batch16_s": round(t16, 3), "batch16_ms_per_item": round(1000 * t16 / 16, 2)})
    out["peak_rss_mb"] = round(_peak_mb(), 1)
    return out


def _plan(roles: set[str] | None, names: set[str] | None, tiny_root: Path) -> list[tuple[str, str, dict, str]]:
    from pixlink.models.registry import list_backends
    from pixlink.models.tiny import FOR_BACKEND, build_tiny

    plan = []
    built: dict[str, Path] = {}
    for spec in list_backends():
        if (roles and spec.role not in roles) or (names and spec.name not in names):
            continue
        why = spec.availability()
        if why is not None:
            print(f"skip {spec.role}/{spec.name}: {why}", file=sys.stderr)
            plan.append((spec.role, spec.name, {}, f"SKIPPED: {why}"))
            continue
        if spec.kind == "hub":
            arch = FOR_BACKEND[spec.name]
            if arch not in built:
                built[arch] = build_tiny(arch, tiny_root / arch)
            opts: dict[str, Any] = {"model": str(built[arch])}
            if spec.name == "sam_auto":  # random weights never pass SAM's quality filters
                opts.update(pred_iou_thresh=-1e9, stability_thresh=0.0)
            plan.append((spec.role, spec.name, opts, f"tiny random (plumbing only): {arch}"))
        else:
            plan.append((spec.role, spec.name, {}, f"{spec.kind}: {spec.default_model}"))
    return plan


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--roles", default="", help="comma-separated roles (default: all)")
    ap.add_argument("--backends", default="", help="comma-separated backend names (default: all available)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per backend (default 1)")
    ap.add_argument("--repeats", type=int, default=3, help="timed batch-1 calls (median reported)")
    ap.add_argument("--timeout", type=int, default=1200, help="seconds per backend before it is reported as failed")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "models.json")
    ap.add_argument("--worker", nargs=3, metavar=("ROLE", "NAME", "OPTIONS_JSON"), help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        role, name, opts = args.worker
        print(json.dumps(worker(role, name, json.loads(opts), args.threads, args.repeats)))
        return 0

    roles = {r for r in args.roles.split(",") if r} or None
    names = {n for n in args.backends.split(",") if n} or None
    rows = []
    with tempfile.TemporaryDirectory(prefix="pixlink-bench-tiny-") as tmp:
        for role, name, opts, weights in _plan(roles, names, Path(tmp)):
            if weights.startswith("SKIPPED"):
                rows.append({"role": role, "backend": name, "weights": weights, "ops": []})
                continue
            print(f"{role}/{name} ({weights}) ...", file=sys.stderr, flush=True)
            cmd = [sys.executable, __file__, "--threads", str(args.threads), "--repeats", str(args.repeats),
                   "--worker", role, name, json.dumps(opts)]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
            except subprocess.TimeoutExpired:
                rows.append({"role": role, "backend": name, "weights": weights, "error": f"timeout {args.timeout}s",
                             "ops": []})
                continue
            if proc.returncode != 0:
                tail = proc.stderr.strip().splitlines()[-1:] or ["?"]
                rows.append({"role": role, "backend": name, "weights": weights, "error": tail[0], "ops": []})
                print(f"  failed: {tail[0]}", file=sys.stderr)
                continue
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            row["weights"] = weights
            rows.append(row)
    import torch

    result = {
        "task": "per-role model latency (CPU) and memory",
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__, "cpus": os.cpu_count(), "torch_threads": args.threads,
                    "note": "shared machine: other jobs ran at the same time, so times are upper bounds"},
        "repeats": args.repeats,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'role':12} {'backend':26} {'op':32} {'b1 ms':>9} {'b16 ms/it':>10} {'load s':>7} {'peak MB':>7}  weights")
    for r in rows:
        if not r["ops"]:
            print(f"{r['role']:12} {r['backend']:26} {'-':32} {'':>9} {'':>10} {'':>7} {'':>7}  "
                  f"{r.get('error') or r['weights']}")
        for op in r["ops"]:
            print(f"{r['role']:12} {r['backend']:26} {op['op']:32} {op['batch1_ms']:9.1f} "
                  f"{op['batch16_ms_per_item']:10.1f} {r['load_s']:7.1f} {r['peak_rss_mb']:7.0f}  {r['weights']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
