"""End-to-end linking latency and memory, offline profile, on this CPU.

Measures, on the shared real photos with a KB of the four reference people plus N synthetic
Wikidata-shaped distractors (text only, with their text vectors):

* latency of the first prompt on an image (segmenter embedding computed) and of further
  prompts on the same image (embedding reused), p50/p95 over several prompts;
* time per stage (load, segment, face, v2v, v2t, lexical, dense_text, fuse);
* resident memory (VmRSS / VmHWM) of the linking process with the KB open.

Usage::

    python benchmarks/bench_link.py --distractors 1000000 [--threads 2] [--out benchmarks/results/link.json]

Embedding 1M entity texts twice (MiniLM and the ConSE text side) takes hours on 2 cores;
``--synthetic-text-vectors`` writes random unit vectors tagged with the same model ids instead
(search latency and memory do not depend on what the vectors mean; the four people's faces and
images are embedded for real). Prints the figures and writes JSON (+ a PNG plot).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PHOTOS = Path(os.environ.get("PIXLINK_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "photos"
PEOPLE = {
    "Q76": ("Barack Obama", "44th president of the United States", "obama.jpg"),
    "Q6279": ("Joe Biden", "46th president of the United States", "biden.jpg"),
    "Q357607": ("Kit Harington", "English actor", "johnsnow_test1.jpg"),
    "Q1646482": ("Lin-Manuel Miranda", "American composer, lyricist and actor", "lin-manuel-miranda.png"),
}
# (photo, box) prompts: several per image so that later prompts reuse the image embedding
PROMPTS = [
    ("obama_and_biden.jpg", [715, 420, 945, 665]), ("obama_and_biden.jpg", [1110, 360, 1380, 645]),
    ("obama_and_biden.jpg", [900, 0, 1170, 560]),
    ("two_people.jpg", [760, 35, 985, 265]), ("two_people.jpg", [235, 25, 430, 225]),
    ("kit_with_rose.jpg", [230, 70, 370, 220]), ("kit_with_rose.jpg", [65, 110, 170, 225]),
    ("kit_with_rose.jpg", [60, 500, 205, 590]),
]


def rss() -> dict[str, float]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS", "VmHWM")):
            k, v = line.split(":")
            out[k] = round(int(v.split()[0]) / 1024, 1)
    return out


def synthetic_text_vectors(kb_dir: Path, chunk: int = 100_000) -> None:
    """Random unit vectors, tagged with the offline text models' ids, for every entity (the
    latency and memory of search do not depend on what the vectors mean; embedding 1M texts
    twice on 2 cores takes hours)."""
    import numpy as np

    from pixlink.index.dense import DenseIndex, index_dir
    from pixlink.kb import KB
    from pixlink.link.signals import make_signal
    from pixlink.models import Profile

    kb = KB.open(kb_dir)
    ids = [e.id for e in kb.iter_entities(batch_size=10000)]
    prof = Profile("offline")
    for name in ("dense_text", "v2t"):
        sig = make_signal(name)
        backend = prof.get(sig.role)
        model_id = sig.model_id(backend)
        out = index_dir(kb_dir, "entity_text", model_id)
        if (out / "meta.json").exists():
            continue
        dim = int(backend.dim)
        rng = np.random.default_rng(0)

        def chunks():
            for i in range(0, len(ids), chunk):
                v = rng.standard_normal((min(chunk, len(ids) - i), dim)).astype(np.float32)
                yield v / np.linalg.norm(v, axis=1, keepdims=True)

        DenseIndex.build(out, chunks(), ids, model_id=model_id, space="entity_text", backend="auto",
                         kb_build_id=kb.build_id)


def build(kb_dir: Path, n: int, synthetic: bool) -> dict[str, float]:
    from pixlink.kb import build_kb
    from pixlink.kb.synth import write_wikidata_dump
    from pixlink.link.embed import embed_kb

    t = {}
    if not (kb_dir / "kb.sqlite").exists():
        t0 = time.perf_counter()
        people = kb_dir.parent / "people.jsonl"
        with open(people, "w") as fh:
            for qid, (label, desc, photo) in PEOPLE.items():
                fh.write(json.dumps({"id": qid, "label": label, "description": desc, "types": ["Q5"],
                                     "images": [str(PHOTOS / photo)]}) + "\n")
        dump = kb_dir.parent / "distractors.json.gz"
        if not dump.exists():
            write_wikidata_dump(dump, n)
        build_kb([str(people), str(dump)], kb_dir, progress=True)
        t["kb_build_s"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    if synthetic:
        embed_kb(kb_dir, "offline", ["face", "v2v"], batch_size=64, progress=True)
        synthetic_text_vectors(kb_dir)
    else:
        embed_kb(kb_dir, "offline", batch_size=64, progress=True)
    t["embed_s"] = round(time.perf_counter() - t0, 1)
    return t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--distractors", type=int, default=20000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--synthetic-text-vectors", action="store_true",
                    help="random text vectors (tagged with the real model ids) instead of embedding every entity")
    ap.add_argument("--work", type=Path, default=Path("/tmp/pixlink-bench-link"))
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "link.json")
    args = ap.parse_args()
    if not PHOTOS.exists():
        sys.exit(f"shared photos not found at {PHOTOS}: set PIXLINK_DATA")
    import torch

    torch.set_num_threads(args.threads)
    kb_dir = args.work / f"kb-{args.distractors}"
    kb_dir.parent.mkdir(parents=True, exist_ok=True)
    build_times = build(kb_dir, args.distractors, args.synthetic_text_vectors)

    from pixlink.io import load_image
    from pixlink.link import Linker, LinkerConfig

    t0 = time.perf_counter()
    linker = Linker.from_kb(kb_dir, profile="offline", config=LinkerConfig(segment=True))
    # warm every model once (load time reported separately)
    linker.link(load_image(PHOTOS / "biden.jpg"), {"box": [419, 241, 741, 563]}, text="Joe Biden")
    load_s = time.perf_counter() - t0
    mem_after_load = rss()
    first, further, stages = [], [], {}
    seen: set[str] = set()
    for photo, box in PROMPTS:
        img = load_image(PHOTOS / photo)
        t0 = time.perf_counter()
        link = linker.link(img, {"box": box}, text="a photo", k=5)
        dt = time.perf_counter() - t0
        (further if photo in seen else first).append(dt)
        seen.add(photo)
        for s, v in link.timings.items():
            stages.setdefault(s, []).append(v)

    def pct(xs, q):
        xs = sorted(xs)
        return round(xs[min(int(q * len(xs)), len(xs) - 1)] * 1000, 1)

    res = {
        "conditions": {"threads": args.threads, "distractors": args.distractors, "profile": "offline",
                       "text_vectors": "synthetic" if args.synthetic_text_vectors else "real",
                       "cpu": os.cpu_count(), "load_average_at_end": os.getloadavg()},
        "build": build_times,
        "models_load_and_warm_s": round(load_s, 1),
        "first_prompt_on_image_ms": {"p50": pct(first, 0.5), "p95": pct(first, 0.95), "n": len(first)},
        "further_prompt_same_image_ms": {"p50": pct(further, 0.5), "p95": pct(further, 0.95), "n": len(further)},
        "stage_ms_mean": {s: round(statistics.mean(v) * 1000, 1) for s, v in stages.items()},
        "memory_mb_after_load": mem_after_load,
        "memory_mb_end": rss(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 3.5))
        names = list(res["stage_ms_mean"])
        ax.barh(names, [res["stage_ms_mean"][n] for n in names], color="#3b7dd8")
        ax.set_xlabel("mean ms per prompt")
        ax.set_title(f"linking stages, offline profile, {args.distractors:,} distractors, {args.threads} threads")
        fig.tight_layout()
        fig.savefig(args.out.with_suffix(".png"), dpi=110)
    except ImportError as exc:
        print(f"no plot: {exc}", file=sys.stderr)


if __name__ == "__main__":
    main()
