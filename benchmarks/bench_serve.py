"""Load test of ``pixlink serve`` on loopback: latency of the page's click loop, concurrent
clients, fresh images, the 503 path, and the server's memory over time.

Starts ``pixlink serve`` (offline profile) as its own process on 127.0.0.1 over a KB of the four
reference people (+ Rose Leslie without a photo and 40 text-only distractors), waits for
``/ready``, then measures:

1. **click loop, one client**: a further prompt (clicks and boxes) on an uploaded image whose
   per-image work is done — the page's target is <= 300 ms p50;
2. **first prompt on a new image, one client**: upload + the first click right away (the click
   waits for whatever per-image work it needs) — target <= 1.5 s; also the upload alone and the
   first click once the background work has finished;
3. **concurrent clients**: N clients x M requests, mostly further prompts on the test photos with
   a share of fresh images (new pixels: flipped / shifted copies) — p50/p95/p99, error rate;
4. **the 503 path**: a burst of more simultaneous requests than the server admits — how many were
   refused with 503 + ``Retry-After``, and that the server answers normally afterwards;
5. **memory**: the server's resident memory sampled every 0.5 s through the run (flat after
   warm-up is the target: the caches are bounded).

Every loop is bounded in count and time and talks only to 127.0.0.1.

Usage::

    python benchmarks/bench_serve.py [--clients 4] [--requests 30] [--fresh 6] [--threads 2]
        [--max-pending 8] [--kb KBDIR] [--work DIR] [--out benchmarks/results/serve.json]

Prints the figures and writes JSON (+ a PNG plot beside it).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DATA = Path(os.environ.get("PIXLINK_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
PHOTOS = DATA / "photos"
RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_link import PEOPLE as LINK_PEOPLE  # noqa: E402  (the four reference people, one list)

PEOPLE = {**LINK_PEOPLE, "Q461132": ("Rose Leslie", "Scottish actress", None)}  # + one without a photo
# per photo: clicks (x, y) and boxes (XYXY) a person might give on it
SPOTS = {
    "obama_and_biden.jpg": {"clicks": [(1245, 500), (1230, 470), (1260, 540), (830, 540), (845, 500), (1245, 900)],
                            "boxes": [[1110, 360, 1380, 645], [715, 420, 945, 665]]},
    "two_people.jpg": {"clicks": [(330, 120), (870, 150), (330, 400)], "boxes": [[235, 25, 430, 225], [760, 35, 985, 265]]},
    "kit_with_rose.jpg": {"clicks": [(300, 150), (120, 170), (130, 540)], "boxes": [[230, 70, 370, 220], [65, 110, 170, 225]]},
}


def pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return round(s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))] * 1000, 1)


def summary(xs: list[float]) -> dict[str, Any]:
    return {"n": len(xs), "p50_ms": pct(xs, 50), "p95_ms": pct(xs, 95), "p99_ms": pct(xs, 99),
            "mean_ms": round(statistics.fmean(xs) * 1000, 1) if xs else None}


def build_kb(work: Path) -> Path:
    from pixlink.kb import build_kb as build
    from pixlink.link.embed import embed_kb

    kb = work / "kb"
    if (kb / "kb.sqlite").is_file():
        return kb
    fb = json.loads((DATA / "kb" / "fb15k237_entity2wikidata.json").read_text())
    keys = sorted(fb)
    (work / "distractors.json").write_text(json.dumps({k: fb[k] for k in keys[::len(keys) // 40][:40]}))
    with open(work / "people.jsonl", "w") as fh:
        for qid, (label, desc, photo) in PEOPLE.items():
            fh.write(json.dumps({"id": qid, "label": label, "description": desc, "types": ["Q5"],
                                 "images": [str(PHOTOS / photo)] if photo else []}) + "\n")
    build([str(work / "people.jsonl"), f"fb15k237:{work / 'distractors.json'}"], kb, progress=False)
    embed_kb(kb, "offline", cache_dir=work / "cache", progress=False)
    return kb


def fresh_images(n: int, seed: int = 0) -> list[tuple[bytes, str, float, float, bool]]:
    """``n`` images with new pixels: a test photo flipped and/or shifted by a few pixels, as JPEG.
    Returns (bytes, photo, dx, scale, flipped) so that the photo's spots can be mapped."""
    import numpy as np
    from PIL import Image

    rng = random.Random(seed)
    out = []
    names = list(SPOTS)
    for i in range(n):
        name = names[i % len(names)]
        img = Image.open(PHOTOS / name).convert("RGB")
        flipped = rng.random() < 0.5
        if flipped:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        dx = rng.randint(1, 9)
        arr = np.asarray(img)
        arr = np.concatenate([np.full((arr.shape[0], dx, 3), 127, np.uint8), arr[:, : arr.shape[1] - dx]], axis=1)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=90)
        out.append((buf.getvalue(), name, float(dx), 1.0, flipped))
    return out


def spot(name: str, rng: random.Random, dx: float = 0.0, flipped: bool = False) -> dict[str, Any]:
    """A random prompt on photo ``name`` (mapped to a shifted / flipped copy)."""
    from PIL import Image

    w = Image.open(PHOTOS / name).size[0]
    s = SPOTS[name]
    if rng.random() < 0.7:
        x, y = rng.choice(s["clicks"])
        x, y = x + rng.uniform(-8, 8), y + rng.uniform(-8, 8)
        if flipped:
            x = w - x
        return {"points": [[min(max(x + dx, 0), w - 1), y]], "labels": [1]}
    x1, y1, x2, y2 = rng.choice(s["boxes"])
    if flipped:
        x1, x2 = w - x2, w - x1
    j = rng.uniform(-6, 6)
    return {"box": [max(x1 + dx + j, 0), max(y1 + j, 0), min(x2 + dx + j, w), y2 + j]}


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Sampler(threading.Thread):
    """The server process's resident memory every ``every`` seconds."""

    def __init__(self, pid: int, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()
        self.t0 = time.perf_counter()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with open(f"/proc/{self.pid}/status") as fh:
                    for line in fh:
                        if line.startswith("VmRSS"):
                            self.samples.append((time.perf_counter() - self.t0, int(line.split()[1]) / 1024))
            except OSError:
                return
            self.stop.wait(self.every)

    def mark(self) -> float:
        return time.perf_counter() - self.t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--requests", type=int, default=30, help="requests per client in the concurrent phase")
    ap.add_argument("--fresh", type=int, default=6, help="fresh images (one-client first-prompt phase)")
    ap.add_argument("--fresh-share", type=float, default=0.25, help="share of fresh images in the concurrent phase")
    ap.add_argument("--loop", type=int, default=30, help="further prompts in the one-client click loop")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-pending", type=int, default=8)
    ap.add_argument("--images", type=int, default=8,
                    help="uploads the server keeps (its LRU fills during the run, so memory must level off)")
    ap.add_argument("--cache-images", type=int, default=8,
                    help="images whose per-image work the server keeps (filled during the run too)")
    ap.add_argument("--kb", type=Path, default=None)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--time-limit", type=float, default=1800, help="seconds before the load phases stop early")
    ap.add_argument("--out", type=Path, default=RESULTS / "serve.json")
    args = ap.parse_args()
    import httpx

    work = args.work or Path(tempfile.mkdtemp(prefix="pixlink-bench-serve-"))
    work.mkdir(parents=True, exist_ok=True)
    t_kb = time.perf_counter()
    kb = args.kb or build_kb(work)
    print(f"KB {kb} ({time.perf_counter() - t_kb:.0f} s)", file=sys.stderr)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "pixlink.cli.main", "serve", "--kb", str(kb), "--profile", "offline", "--port", str(port),
           "--threads", str(args.threads), "--max-pending", str(args.max_pending), "--images", str(args.images), "--cache-images", str(args.cache_images),
           "--log-level", "warning",
           "--no-gmner"]
    log = open(work / "server.log", "w")
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    sampler = Sampler(server.pid)
    sampler.start()
    deadline = time.time() + args.time_limit
    result: dict[str, Any] = {"command": " ".join(["python", "benchmarks/bench_serve.py", *sys.argv[1:]]),
                              "server": " ".join(cmd[2:]), "cpus": os.cpu_count(),
                              "load_average_start": os.getloadavg()}
    try:
        t0 = time.perf_counter()
        with httpx.Client(base_url=base, timeout=120) as c:
            while True:
                try:
                    r = c.get("/ready")
                    if r.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None or time.perf_counter() - t0 > 600:
                    raise SystemExit(f"the server did not become ready; see {work / 'server.log'}")
                time.sleep(0.5)
            result["ready_s"] = round(time.perf_counter() - t0, 1)
            result["backends"] = r.json()["backends"]
            marks = {"ready": sampler.mark()}
            rng = random.Random(0)

            # 1. the click loop: further prompts on uploaded images, one client
            ids = {}
            for name in SPOTS:
                ids[name] = c.post("/v1/images", content=(PHOTOS / name).read_bytes(),
                                   headers={"Content-Type": "application/octet-stream"}).json()["id"]
            for name, iid in ids.items():  # per-image work done: one prompt of each kind
                c.post("/v1/link", json={"image_id": iid, "prompt": {"box": SPOTS[name]["boxes"][0]}, "k": 5})
                c.post("/v1/link", json={"image_id": iid, "prompt": {"points": [list(SPOTS[name]["clicks"][0])]}, "k": 5})
            loop, stages, kinds = [], [], {"points": [], "box": []}
            cpu0, load0 = cpu_seconds(server.pid), os.getloadavg()[0]
            for i in range(args.loop):
                name = list(SPOTS)[i % len(SPOTS)]
                prompt = spot(name, rng)
                t = time.perf_counter()
                r = c.post("/v1/link", json={"image_id": ids[name], "prompt": prompt, "k": 5})
                dt = time.perf_counter() - t
                r.raise_for_status()
                loop.append(dt)
                kinds["box" if "box" in prompt else "points"].append(dt)
                stages.append(r.json()["timings"])
            cpu = cpu_seconds(server.pid) - cpu0
            result["further_prompt"] = {**summary(loop), "clicks": summary(kinds["points"]), "boxes": summary(kinds["box"]),
                                        "server_cpu_ms_per_prompt": round(1000 * cpu / len(loop), 1),
                                        "load_average_1min": [round(load0, 2), round(os.getloadavg()[0], 2)],
                                        "stages_median_ms": {k: round(statistics.median(s.get(k, 0.0) for s in stages) * 1000, 1)
                                                             for k in sorted({k for s in stages for k in s})}}
            marks["click_loop_done"] = sampler.mark()

            # 2. first prompt on a new image, one client
            first, uploads, first_after, total = [], [], [], []
            cpu0 = cpu_seconds(server.pid)
            fresh = fresh_images(2 * args.fresh, seed=1)
            for data, name, dx, _, flipped in fresh[: args.fresh]:
                t = time.perf_counter()
                up = c.post("/v1/images", content=data, headers={"Content-Type": "image/jpeg"})
                t_up = time.perf_counter()
                prompt = spot(name, rng, dx, flipped)
                prompt = {"points": prompt["points"], "labels": [1]} if "points" in prompt else \
                    {"points": [[(prompt["box"][0] + prompt["box"][2]) / 2, (prompt["box"][1] + prompt["box"][3]) / 2]]}
                r = c.post("/v1/link", json={"image_id": up.json()["id"], "prompt": prompt, "k": 5})
                t_end = time.perf_counter()
                r.raise_for_status()
                uploads.append(t_up - t)
                first.append(t_end - t_up)
                total.append(t_end - t)
            cpu_first = (cpu_seconds(server.pid) - cpu0) / max(1, args.fresh)
            for data, name, dx, _, flipped in fresh[args.fresh:]:  # the first click after the background work
                up = c.post("/v1/images", content=data, headers={"Content-Type": "image/jpeg"}).json()
                time.sleep(3)
                prompt = spot(name, rng, dx, flipped)
                t = time.perf_counter()
                c.post("/v1/link", json={"image_id": up["id"], "prompt": prompt, "k": 5}).raise_for_status()
                first_after.append(time.perf_counter() - t)
            result["first_prompt_on_new_image"] = {
                "upload": summary(uploads), "click_right_after_upload": summary(first),
                "upload_plus_click": summary(total), "click_after_precompute": summary(first_after),
                "server_cpu_ms_per_upload_plus_click": round(1000 * cpu_first, 1), "load_average_1min": round(os.getloadavg()[0], 2)}
            marks["first_prompts_done"] = sampler.mark()

        # 3. concurrent clients
        fresh_pool = fresh_images(max(4, int(args.clients * args.requests * args.fresh_share) + 2), seed=2)
        lat: list[float] = []
        lat_fresh: list[float] = []
        statuses: dict[int, int] = {}
        reuploads: list[str] = []
        lock = threading.Lock()

        def client(k: int) -> None:
            crng = random.Random(100 + k)
            with httpx.Client(base_url=base, timeout=120) as cc:
                for i in range(args.requests):
                    if time.time() > deadline:
                        return
                    if crng.random() < args.fresh_share and fresh_pool:
                        with lock:
                            item = fresh_pool.pop() if fresh_pool else None
                    else:
                        item = None
                    t = time.perf_counter()
                    if item is not None:
                        data, name, dx, _, flipped = item
                        up = cc.post("/v1/images", content=data, headers={"Content-Type": "image/jpeg"})
                        iid = up.json().get("id") if up.status_code < 300 else None
                        prompt = spot(name, crng, dx, flipped)
                    else:
                        name = crng.choice(list(SPOTS))
                        iid, prompt = ids[name], spot(name, crng)
                    r = cc.post("/v1/link", json={"image_id": iid or "0" * 32, "prompt": prompt, "k": 5})
                    if r.status_code == 404 and item is None:  # evicted from the server's uploads: upload again
                        up = cc.post("/v1/images", content=(PHOTOS / name).read_bytes(),
                                     headers={"Content-Type": "application/octet-stream"})
                        with lock:
                            reuploads.append(name)
                            ids[name] = up.json()["id"]
                        r = cc.post("/v1/link", json={"image_id": ids[name], "prompt": prompt, "k": 5})
                    dt = time.perf_counter() - t
                    with lock:
                        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                        (lat_fresh if item is not None else lat).append(dt)

        t = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(client, range(args.clients)))
        wall = time.perf_counter() - t
        n = sum(statuses.values())
        errors = sum(v for k, v in statuses.items() if k >= 400)
        result["concurrent"] = {"clients": args.clients, "requests": n, "wall_s": round(wall, 1),
                                "throughput_rps": round(n / wall, 2) if wall else None, "statuses": statuses,
                                "error_rate": round(errors / n, 4) if n else None, "reuploads_after_eviction": len(reuploads),
                                "repeated_images": summary(lat), "fresh_images": summary(lat_fresh)}
        marks["concurrent_done"] = sampler.mark()

        # 4. the 503 path: a burst of simultaneous requests beyond the admission limit
        burst = 3 * args.max_pending
        with httpx.Client(base_url=base, timeout=120) as c:  # (again: it may have left the server's LRU)
            ids["obama_and_biden.jpg"] = c.post("/v1/images", content=(PHOTOS / "obama_and_biden.jpg").read_bytes(),
                                                headers={"Content-Type": "application/octet-stream"}).json()["id"]
        gate = threading.Barrier(burst)
        codes: list[tuple[int, str | None, float]] = []

        def one(_: int) -> None:
            with httpx.Client(base_url=base, timeout=120) as cc:
                gate.wait(30)
                t1 = time.perf_counter()
                r = cc.post("/v1/link", json={"image_id": ids["obama_and_biden.jpg"], "prompt": {"box": SPOTS["obama_and_biden.jpg"]["boxes"][0]}})
                with lock:
                    codes.append((r.status_code, r.headers.get("retry-after"), time.perf_counter() - t1))

        with ThreadPoolExecutor(burst) as pool:
            list(pool.map(one, range(burst)))
        refused = [x for x in codes if x[0] == 503]
        with httpx.Client(base_url=base, timeout=120) as c:
            after = c.post("/v1/link", json={"image_id": ids["obama_and_biden.jpg"], "prompt": {"box": SPOTS["obama_and_biden.jpg"]["boxes"][0]}})
            metrics = c.get("/metrics").text
        result["overload"] = {"burst": burst, "admitted": sum(1 for x in codes if x[0] == 200), "refused_503": len(refused),
                              "other": sorted({x[0] for x in codes} - {200, 503}),
                              "retry_after_on_every_503": all(x[1] is not None for x in refused),
                              "refusal_ms_p50": pct([x[2] for x in refused], 50),
                              "answers_after_burst": after.status_code,
                              "refused_total_metric": next((ln.split()[-1] for ln in metrics.splitlines()
                                                            if ln.startswith("pixlink_requests_refused_total")), None)}
        marks["overload_done"] = sampler.mark()
    finally:
        sampler.stop.set()
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()
    sampler.join(2)
    rss = sampler.samples
    warm = [m for t, m in rss if t >= marks.get("first_prompts_done", 0)]
    mid = (marks.get("first_prompts_done", 0) + marks.get("concurrent_done", 0)) / 2
    late = [m for t, m in rss if mid <= t <= marks.get("concurrent_done", 0)]
    result["rss_mb"] = {"at_ready": next((m for t, m in rss if t >= marks["ready"]), None),
                        "after_warm_up": warm[0] if warm else None, "end": rss[-1][1] if rss else None,
                        "max": max((m for _, m in rss), default=None),
                        "growth_after_warm_up_mb": round(warm[-1] - warm[0], 1) if warm else None,
                        "growth_second_half_of_concurrent_mb": round(late[-1] - late[0], 1) if late else None,
                        "samples_s": [round(t, 1) for t, _ in rss[::2]], "samples_mb": [round(m, 1) for _, m in rss[::2]],
                        "marks_s": {k: round(v, 1) for k, v in marks.items()}}
    result["load_average_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = re.sub(r"\[\s*([-0-9.eE,\s]+?)\s*\]",  # lists of numbers (the memory series) on one line
                  lambda mt: "[" + ", ".join(x.strip() for x in mt.group(1).split(",")) + "]", json.dumps(result, indent=1))
    args.out.write_text(text + "\n")
    fp, fc = result["further_prompt"], result["first_prompt_on_new_image"]
    print(f"ready in {result['ready_s']} s; backends {result['backends']}")
    print(f"further prompt (1 client): p50 {fp['p50_ms']} ms, p95 {fp['p95_ms']} ms (clicks p50 {fp['clicks']['p50_ms']}, "
          f"boxes p50 {fp['boxes']['p50_ms']}); server CPU {fp['server_cpu_ms_per_prompt']} ms a prompt; load average "
          f"{fp['load_average_1min']}; stages {fp['stages_median_ms']}")
    print(f"new image: upload p50 {fc['upload']['p50_ms']} ms, click right after p50 {fc['click_right_after_upload']['p50_ms']} ms, "
          f"upload+click p50 {fc['upload_plus_click']['p50_ms']} ms (server CPU {fc['server_cpu_ms_per_upload_plus_click']} ms); "
          f"click after precompute p50 {fc['click_after_precompute']['p50_ms']} ms")
    cc = result["concurrent"]
    print(f"{cc['clients']} clients: {cc['requests']} requests in {cc['wall_s']} s ({cc['throughput_rps']} req/s), error rate "
          f"{cc['error_rate']}, repeated images p50/p95/p99 {cc['repeated_images']['p50_ms']}/{cc['repeated_images']['p95_ms']}/"
          f"{cc['repeated_images']['p99_ms']} ms, fresh images p50 {cc['fresh_images']['p50_ms']} ms")
    ov = result["overload"]
    print(f"burst of {ov['burst']}: {ov['admitted']} answered, {ov['refused_503']} refused 503 (Retry-After on each: "
          f"{ov['retry_after_on_every_503']}, in {ov['refusal_ms_p50']} ms p50); next request {ov['answers_after_burst']}")
    rm = result["rss_mb"]
    print(f"RSS MB: ready {rm['at_ready']}, after warm-up {rm['after_warm_up']}, end {rm['end']}, max {rm['max']}, "
          f"growth after warm-up {rm['growth_after_warm_up_mb']}, in the second half of the concurrent phase "
          f"{rm['growth_second_half_of_concurrent_mb']}")
    plot(result, args.out.with_suffix(".png"))
    print(f"wrote {args.out}")
    return 0


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    t, m = result["rss_mb"]["samples_s"], result["rss_mb"]["samples_mb"]
    a.plot(t, m)
    for name, x in result["rss_mb"]["marks_s"].items():
        a.axvline(x, color="grey", lw=0.5)
        a.text(x, min(m) if m else 0, name, rotation=90, fontsize=7, va="bottom")
    a.set_xlabel("seconds since start")
    a.set_ylabel("server RSS (MB)")
    a.set_title("memory of the server")
    names = ["further_prompt", "click_right_after_upload", "click_after_precompute", "repeated_images", "fresh_images"]
    vals = [result["further_prompt"], result["first_prompt_on_new_image"]["click_right_after_upload"],
            result["first_prompt_on_new_image"]["click_after_precompute"], result["concurrent"]["repeated_images"],
            result["concurrent"]["fresh_images"]]
    x = range(len(names))
    b.bar([i - 0.2 for i in x], [v["p50_ms"] or 0 for v in vals], width=0.4, label="p50")
    b.bar([i + 0.2 for i in x], [v["p95_ms"] or 0 for v in vals], width=0.4, label="p95")
    b.axhline(300, color="green", lw=0.8, ls="--")
    b.axhline(1500, color="red", lw=0.8, ls="--")
    b.set_xticks(list(x), [n.replace("_", "\n") for n in names], fontsize=7)
    b.set_ylabel("ms")
    b.legend()
    b.set_title("latency (targets: 300 ms further, 1.5 s first)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
