"""Latency and memory of the packaged offline backends for text embedding, NER, faces, OCR and
text generation, on CPU.

Each backend runs in its own subprocess so that its memory is its own: ``rss_base_mb`` is the
process after importing numpy and pixlink, ``rss_loaded_mb`` after building the backend,
``peak_rss_mb`` the peak over the whole run (Linux ``ru_maxrss``). ``load_s`` is the build
time with the one-time caches (mpnet unzip, Gemma GGUF conversion) already in place;
``first_use`` says whether this run had to build them (then ``load_s`` includes it).

Latency: one warm-up call, then the median of ``--repeats`` calls.

* text_embed: ``encode`` of 1 sentence (batch 1) and of 16 sentences in one call (batch 16).
* ner: ``tag`` of 1 tweet and of 16 tweets in one call (tweets from
  ``../shared/data/twitter2017/valid.txt`` when present, else built-in sentences).
* faces: ``detect`` on ``obama.jpg`` (910x1137) and ``embed`` of 1 face and of 16 faces in one call.
* ocr: ``read`` of one 640x220 image with two rendered lines (batch does not apply).
* generate: 16 new tokens, greedy, from a few-shot expansion prompt (batch does not apply);
  the template generator's ``expand``.

The machine is shared: the JSON records the load average before and after each backend, and
``--threads`` (torch and onnxruntime intra-op threads) since oversubscribed multi-threaded
runs are much slower than single-threaded ones here.

Usage: ``python benchmarks/bench_models_offline_text.py [--backends minilm,dlib] [--repeats 5]
[--threads 1] [--out benchmarks/results/models_offline_text.json]``
Prints a table and writes the JSON.
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
from typing import Any

from _measure import median_s, peak_mb, rss_mb

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
BACKENDS = {  # name -> role
    "minilm": "text_embed", "mpnet": "text_embed", "e5_small": "text_embed",
    "spacy_sm": "ner", "spacy_md": "ner",
    "dlib": "faces",
    "rapidocr": "ocr",
    "gemma3_270m": "generate", "template": "generate",
}
SENTENCES = [
    "Barack Obama met Joe Biden at the White House in Washington.",
    "Kit Harington and Rose Leslie walked the red carpet in London.",
    "Lin-Manuel Miranda wrote the musical Hamilton for Broadway.",
    "The Eiffel Tower in Paris was lit up for the new year.",
]


def _data_dir() -> Path:
    from pixlink import config

    return config.shared_data_dir()


def _tweets(n: int) -> list[str]:
    path = _data_dir() / "twitter2017" / "valid.txt"
    if not path.is_file():
        return (SENTENCES * (n // len(SENTENCES) + 1))[:n]
    out, cur = [], []
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if line.startswith("IMGID:"):
            continue
        if not line.strip():
            if cur:
                out.append(" ".join(cur))
                cur = []
            if len(out) >= n:
                break
            continue
        cur.append(line.split("\t")[0])
    return out


def _rendered_text_image():
    import matplotlib
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    font = os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans.ttf")
    im = Image.new("RGB", (640, 220), "white")
    d = ImageDraw.Draw(im)
    d.text((30, 40), "Barack Obama visits Paris", font=ImageFont.truetype(font, 40), fill="black")
    d.text((320, 130), "GATE 24B", font=ImageFont.truetype(font, 36), fill="black")
    return np.asarray(im)


def _first_use(name: str) -> bool | None:
    if name == "mpnet":
        from pixlink.models.backends import text

        return not (text.mpnet_dir() / text._MPNET_DONE).is_file()
    if name == "gemma3_270m":
        from pixlink.models.backends import generate

        return not (generate.gemma_dir() / generate._DONE).is_file()
    return None


def run_one(name: str, repeats: int, threads: int | None) -> dict[str, Any]:
    """Build one backend and time it (runs in the child process)."""
    import numpy as np

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    from pixlink.models import registry

    role = BACKENDS[name]
    spec = registry.get_spec(role, name)
    res: dict[str, Any] = {"backend": name, "role": role, "kind": spec.kind, "default_model": spec.default_model,
                           "loadavg_before": os.getloadavg()[0]}
    why = spec.availability()
    if why is not None:
        res["skipped"] = why
        return res
    res["first_use"] = _first_use(name)
    res["rss_base_mb"] = round(rss_mb(), 1)
    opts: dict[str, Any] = {}
    if name == "rapidocr" and threads is not None:
        opts["threads"] = threads
    t = time.perf_counter()
    model = spec.factory(**opts)
    res["load_s"] = round(time.perf_counter() - t, 3)
    res["rss_loaded_mb"] = round(rss_mb(), 1)
    res["model_id"] = getattr(model, "model_id", "")
    lat: dict[str, float] = {}
    if role == "text_embed":
        s16 = (SENTENCES * 4)[:16]
        lat["batch1_ms"] = median_s(lambda: model.encode(SENTENCES[:1]), repeats) * 1e3
        lat["batch16_ms"] = median_s(lambda: model.encode(s16, batch_size=16), repeats) * 1e3
        lat["batch16_ms_per_item"] = lat["batch16_ms"] / 16
    elif role == "ner":
        tw = _tweets(16)
        lat["batch1_ms"] = median_s(lambda: model.tag(tw[:1]), repeats) * 1e3
        lat["batch16_ms"] = median_s(lambda: model.tag(tw), repeats) * 1e3
        lat["batch16_ms_per_item"] = lat["batch16_ms"] / 16
    elif role == "faces":
        from pixlink.io import load_image

        path = _data_dir() / "photos" / "obama.jpg"
        if not path.is_file():
            res["skipped"] = f"{path} absent"
            return res
        img = load_image(path)
        faces = model.detect(img)
        res["faces_found"] = len(faces)
        lat["detect_ms"] = median_s(lambda: model.detect(img), repeats) * 1e3
        lat["embed_batch1_ms"] = median_s(lambda: model.embed(img, faces[:1]), repeats) * 1e3
        lat["embed_batch16_ms"] = median_s(lambda: model.embed(img, faces[:1] * 16), repeats) * 1e3
        lat["embed_batch16_ms_per_face"] = lat["embed_batch16_ms"] / 16
    elif role == "ocr":
        img = _rendered_text_image()
        res["read"] = [ln.text for ln in model.read(img)]
        lat["read_ms"] = median_s(lambda: model.read(img), repeats) * 1e3
    elif role == "generate":
        from pixlink.models.backends.generate import expansion_prompt

        prompt = expansion_prompt("Kevin Durant", "PER")
        if name == "template":
            lat["expand_ms"] = median_s(lambda: model.expand("Kevin Durant", "PER"), repeats) * 1e3
            res["sample"] = model.expand("Kevin Durant", "PER")
        else:
            lat["gen16_ms"] = median_s(lambda: model.generate(prompt, max_new_tokens=16, stop=()), repeats) * 1e3
            lat["gen16_ms_per_token"] = lat["gen16_ms"] / 16
            res["sample"] = model.expand("Kevin Durant", "PER")
    res["latency"] = {k: round(v, 2) for k, v in lat.items()}
    res["peak_rss_mb"] = round(peak_mb(), 1)
    res["loadavg_after"] = os.getloadavg()[0]
    del np
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated backend names")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch / onnxruntime intra-op threads")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "models_offline_text.json"))
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.repeats, args.threads)))
        return
    names = [n.strip() for n in args.backends.split(",") if n.strip()]
    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        ap.error(f"unknown backends {unknown}; known: {', '.join(BACKENDS)}")
    results = []
    for name in names:
        cmd = [sys.executable, __file__, "--one", name, "--repeats", str(args.repeats)]
        if args.threads is not None:
            cmd += ["--threads", str(args.threads)]
        print(f"running {name} ...", file=sys.stderr, flush=True)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            results.append({"backend": name, "role": BACKENDS[name], "error": proc.stderr.strip().splitlines()[-1:]})
            continue
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    out = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "threads": args.threads, "repeats": args.repeats, "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"{'backend':12s} {'role':10s} {'load s':>7s} {'RSS MB':>7s} {'peak MB':>8s} {'load avg':>8s}  latency (ms)")
    for r in results:
        if "skipped" in r or "error" in r:
            print(f"{r['backend']:12s} {r['role']:10s}  {r.get('skipped') or r.get('error')}")
            continue
        lat = ", ".join(f"{k}={v:g}" for k, v in r["latency"].items())
        print(f"{r['backend']:12s} {r['role']:10s} {r['load_s']:7.2f} {r['rss_loaded_mb']:7.0f} {r['peak_rss_mb']:8.0f} "
              f"{r['loadavg_before']:8.1f}  {lat}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
