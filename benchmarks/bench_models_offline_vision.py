"""Latency, memory and measured quality of the packaged offline vision backends, on CPU.

Backends: ``efficientnet_lite`` (image_embed), ``conse_efficientnet`` (image_text),
``litemedsam`` and ``grabcut`` (segment), ``classical_proposals`` (segment_all),
``proposals_fallback`` (detect). Each runs in its own subprocess so that its memory is its own:
``rss_base_mb`` after importing numpy and pixlink, ``rss_loaded_mb`` after building the
backend, ``peak_rss_mb`` the peak over the run (``ru_maxrss``). Latency: one warm-up call, then
the median of ``--repeats`` calls.

* efficientnet_lite / conse_efficientnet: ``encode_images`` of 1 image (batch 1) and of 16 in
  one call (batch 16; the 8 photos of ../shared/data/photos and their mirror images);
  ConSE also ``encode_texts`` of 1 and 16 texts.
* litemedsam: ``embed_image`` of obama.jpg (910x1137), ``predict`` of 1 box, and of 16 boxes on
  that one embedding (the decoder runs per box; "batch 16" = 16 calls on one embedding).
* grabcut: ``predict`` of a face box and of a person box on two_people.jpg (1126x661).
* classical_proposals: ``generate`` on two_people.jpg.
* proposals_fallback: ``detect`` of a thing phrase (proposals + ConSE) and of a person phrase
  (faces -> upper bodies) on two_people.jpg.
* folding: EfficientNet-Lite0 (a batch of 32 photos) and LiteMedSAM's image encoder as published
  against what the backends run (BatchNorms folded into the convolutions, EfficientNet
  channels-last), interleaved on the same inputs: median times and the largest output difference.

``quality`` (one more subprocess) measures what can be measured here without labelled data,
on the hand-made probe benchmarks/data/offline_vision_probe.json:

* ConSE retrieval: each probe region's description among all 18 descriptions (image->text) and
  each description's region among all 18 regions (text->image): top-1 and MRR, with chance
  levels; a small sweep over ``top_t`` and the resize mode to show how much settings move it
  (the probe is too small to choose settings with: one item is 5.6 points); the known-person
  photos against their Wikidata-style descriptions; "a person" vs "a logo" on person crops.
* Segmentation (no ground-truth masks here): LiteMedSAM vs GrabCut mask IoU on the probe boxes,
  the fraction of each box the masks fill, LiteMedSAM's empty masks.
* proposals_fallback localisation: for probe regions with a box, the IoU of the top detection
  and of the best of the top 5 with the hand-drawn box.

The machine is shared: the JSON records the load average before and after each part and
``--threads`` (torch intra-op threads).

Usage: ``python benchmarks/bench_models_offline_vision.py [--parts efficientnet_lite,quality]
[--repeats 3] [--threads 1] [--out benchmarks/results/models_offline_vision.json]``
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
PROBE = REPO / "benchmarks" / "data" / "offline_vision_probe.json"
PARTS = {  # name -> role
    "efficientnet_lite": "image_embed", "conse_efficientnet": "image_text", "litemedsam": "segment",
    "grabcut": "segment", "classical_proposals": "segment_all", "proposals_fallback": "detect", "quality": "",
    "folding": "",
}
PHOTOS = ("obama.jpg", "biden.jpg", "two_people.jpg", "obama_and_biden.jpg", "kit_with_rose.jpg",
          "johnsnow_test1.jpg", "lin-manuel-miranda.png", "alex-lacamoire.png")
FACE_BOX = [230, 10, 400, 230]  # two_people.jpg
PERSON_BOX = [10, 0, 560, 661]


def _shared() -> Path:
    from pixlink.config import shared_data_dir

    return shared_data_dir()


def resolve(ref: str) -> Path:
    """``shared:<path>`` or ``pkg:<package>/<path>`` of the probe file -> a path."""
    kind, rest = ref.split(":", 1)
    if kind == "shared":
        return _shared() / rest
    from pixlink.models.packaged import package_file

    pkg, sub = rest.split("/", 1)
    path = package_file(pkg, sub)
    if path is None:
        raise FileNotFoundError(f"package {pkg} is not installed or holds no {sub}")
    return path


def crop(img, box):
    import numpy as np

    if box is None:
        return img
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    return np.ascontiguousarray(img[y1:y2, x1:x2])


def _photos():
    from pixlink.io import load_image

    imgs = [load_image(_shared() / "photos" / p) for p in PHOTOS]
    return imgs + [im[:, ::-1].copy() for im in imgs]


# ---------------------------------------------------------------------------------------------
# workers
# ---------------------------------------------------------------------------------------------


def _latency(part: str, repeats: int) -> dict[str, Any]:
    import numpy as np

    from pixlink.io import load_image
    from pixlink.models import Profile

    role = PARTS[part]
    out: dict[str, Any] = {"rss_base_mb": round(rss_mb(), 1)}
    t = time.perf_counter()
    backend = Profile("offline", overrides={role: part}).get(role)
    out["load_s"] = round(time.perf_counter() - t, 3)
    out["rss_loaded_mb"] = round(rss_mb(), 1)
    out["model_id"] = backend.model_id
    lat: dict[str, float] = {}
    two = load_image(_shared() / "photos" / "two_people.jpg")
    if part in ("efficientnet_lite", "conse_efficientnet"):
        imgs = _photos()
        lat["batch1_ms"] = median_s(lambda: backend.encode_images(imgs[:1]), repeats) * 1e3
        b16 = median_s(lambda: backend.encode_images(imgs[:16], batch_size=16), repeats) * 1e3
        lat["batch16_ms"], lat["batch16_ms_per_item"] = b16, b16 / 16
        if part == "conse_efficientnet":
            texts = [f"a photo of object number {i}" for i in range(16)]
            lat["text_batch1_ms"] = median_s(lambda: backend.encode_texts(texts[:1]), repeats) * 1e3
            lat["text_batch16_ms"] = median_s(lambda: backend.encode_texts(texts), repeats) * 1e3
    elif part == "litemedsam":
        img = load_image(_shared() / "photos" / "obama.jpg")
        lat["embed_image_ms"] = median_s(lambda: backend.embed_image(img), repeats) * 1e3
        h = backend.embed_image(img)
        box = np.array([340, 40, 620, 420], float)
        lat["predict_1box_ms"] = median_s(lambda: backend.predict(h, box=box), repeats) * 1e3
        boxes = [box + np.array([d, d, d, d]) for d in range(0, 160, 10)]
        b16 = median_s(lambda: [backend.predict(h, box=b) for b in boxes], repeats) * 1e3
        lat["predict_16boxes_ms"], lat["predict_16boxes_ms_per_box"] = b16, b16 / 16
    elif part == "grabcut":
        lat["embed_image_ms"] = median_s(lambda: backend.embed_image(two), repeats) * 1e3
        h = backend.embed_image(two)
        lat["predict_face_box_ms"] = median_s(lambda: backend.predict(h, box=FACE_BOX), repeats) * 1e3
        lat["predict_person_box_ms"] = median_s(lambda: backend.predict(h, box=PERSON_BOX), repeats) * 1e3
        lat["predict_click_ms"] = median_s(lambda: backend.predict(h, points=[[310, 120]]), repeats) * 1e3
    elif part == "classical_proposals":
        lat["generate_ms"] = median_s(lambda: backend.generate(two), repeats) * 1e3
        out["n_masks"] = len(backend.generate(two))
    elif part == "proposals_fallback":
        lat["detect_thing_ms"] = median_s(lambda: backend.detect(two, ["a wristwatch"]), repeats) * 1e3
        lat["detect_person_ms"] = median_s(lambda: backend.detect(two, ["a man"]), repeats) * 1e3
        out["faces"] = getattr(backend.faces, "model_id", None)
    out["latency"] = {k: round(v, 2) for k, v in lat.items()}
    return out


def _retrieval(sim) -> dict[str, float]:
    import numpy as np

    n = len(sim)
    r_i2t = np.array([1 + int((sim[i] > sim[i, i]).sum()) for i in range(n)])
    r_t2i = np.array([1 + int((sim[:, i] > sim[i, i]).sum()) for i in range(n)])
    return {"n": n, "i2t_top1": int((r_i2t == 1).sum()), "i2t_mrr": round(float((1 / r_i2t).mean()), 3),
            "t2i_top1": int((r_t2i == 1).sum()), "t2i_mrr": round(float((1 / r_t2i).mean()), 3),
            "i2t_ranks": r_i2t.tolist()}


def _quality() -> dict[str, Any]:
    import numpy as np

    from pixlink import geometry as geo
    from pixlink.io import load_image
    from pixlink.models import Profile
    from pixlink.models.backends.grabcut import GrabCutSegmenter
    from pixlink.models.backends.proposals_fallback import build_proposals_fallback
    from pixlink.models.backends.conse import ConSEEncoder, build_conse
    from pixlink.models.backends.efficientnet import EfficientNetLiteEncoder
    from pixlink.models.backends.litemedsam import LiteMedSAMSegmenter

    probe = json.loads(PROBE.read_text())
    regions = probe["regions"]
    full = {r["image"]: load_image(resolve(r["image"])) for r in regions + probe["entities"] + probe["person_boxes"]}
    crops = [crop(full[r["image"]], r["box"]) for r in regions]
    texts = [r["text"] for r in regions]
    n = len(texts)
    out: dict[str, Any] = {"probe": str(PROBE.relative_to(REPO)), "n_regions": n,
                           "chance": {"top1": round(1 / n, 3), "mrr": round(float(np.mean([1 / k for k in range(1, n + 1)])), 3)}}
    text_enc = Profile("offline").get("text_embed")
    conse = build_conse(text_encoder=text_enc)
    out["conse_default"] = {"model_id": conse.model_id,
                            **_retrieval(conse.encode_images(crops).embeds @ conse.encode_texts(texts).T)}
    out["conse_default"]["seen_as"] = {t: [c for c, _ in e] for t, e in zip(texts, conse.explain(crops, k=3))}
    sweep = []
    for resize in ("center_crop", "pad"):
        ie = EfficientNetLiteEncoder(resize=resize)
        for top_t in (1, 10, 50):
            enc = ConSEEncoder(ie, text_enc, top_t=top_t)
            r = _retrieval(enc.encode_images(crops).embeds @ enc.encode_texts(texts).T)
            r.pop("i2t_ranks")
            sweep.append({"resize": resize, "top_t": top_t, **r})
    out["conse_sweep"] = sweep
    ents = probe["entities"]
    s = conse.encode_images([full[e["image"]] for e in ents]).embeds @ conse.encode_texts([e["text"] for e in ents]).T
    out["conse_entities"] = {"n": len(ents), "top1": int((s.argmax(1) == np.arange(len(ents))).sum()),
                             "sim": np.round(s, 3).tolist()}
    pcrops = [crop(full[p["image"]], p["box"]) for p in probe["person_boxes"]]
    s = conse.encode_images(pcrops).embeds @ conse.encode_texts(["a person", "a logo"]).T
    out["conse_person_vs_logo"] = {"mean_sim_person": round(float(s[:, 0].mean()), 3),
                                   "mean_sim_logo": round(float(s[:, 1].mean()), 3),
                                   "crops_nearer_person": int((s[:, 0] > s[:, 1]).sum()), "n": len(pcrops)}
    # segmentation agreement
    lms, gc = LiteMedSAMSegmenter(), GrabCutSegmenter()
    rows = []
    boxed = [(r["image"], r["box"], r["text"]) for r in regions if r["box"]] + \
            [(p["image"], p["box"], p["who"]) for p in probe["person_boxes"]]
    handles: dict[str, Any] = {}
    for ref, box, what in boxed:
        if ref not in handles:
            handles[ref] = (lms.embed_image(full[ref]), gc.embed_image(full[ref]))
        hl, hg = handles[ref]
        a, b = lms.predict(hl, box=box)[0], gc.predict(hg, box=box)[0]
        area = geo.box_area(geo.clip_box(np.array(box, float), full[ref].shape[:2]))
        rows.append({"what": what, "iou_litemedsam_grabcut": round(geo.mask_iou(a.mask, b.mask), 3),
                     "fill_litemedsam": round(float(a.mask.sum() / area), 3), "fill_grabcut": round(float(b.mask.sum() / area), 3),
                     "litemedsam_score": round(a.score, 3), "grabcut_score": round(b.score, 3)})
    out["segmentation"] = {"rows": rows, "median_iou": round(float(np.median([r["iou_litemedsam_grabcut"] for r in rows])), 3),
                           "litemedsam_empty": sum(r["fill_litemedsam"] == 0 for r in rows)}
    # detection localisation
    det = build_proposals_fallback(conse=conse)
    drows = []
    for r in regions:
        if not r["box"]:
            continue
        ds = det.detect(full[r["image"]], [r["text"]], threshold=0.0)
        ious = [geo.box_iou(d.box, r["box"]) for d in ds]
        drows.append({"text": r["text"], "top1_iou": round(ious[0], 3) if ious else 0.0,
                      "best5_iou": round(max(ious), 3) if ious else 0.0, "top1_source": ds[0].source if ds else None,
                      "top1_label": ds[0].label if ds else None})
    out["detect_fallback"] = {"rows": drows, "n": len(drows),
                              "top1_iou_ge_0.5": sum(d["top1_iou"] >= 0.5 for d in drows),
                              "best5_iou_ge_0.5": sum(d["best5_iou"] >= 0.5 for d in drows),
                              "mean_top1_iou": round(float(np.mean([d["top1_iou"] for d in drows])), 3)}
    return out


def _folding(repeats: int) -> dict[str, Any]:
    """The networks as published (BatchNorms apart, contiguous weights) against what the
    backends run (BatchNorms folded into the convolutions; EfficientNet also channels-last),
    interleaved call by call on the same inputs so that a busy machine slows both alike: the
    median seconds of each and the largest difference of their outputs."""
    import numpy as np
    import torch

    from pixlink.io import load_image
    from pixlink.models.arch.efficientnet_lite import EfficientNetLite
    from pixlink.models.arch.sam_decoder import LiteMedSAM
    from pixlink.models.backends.efficientnet import EfficientNetLiteEncoder, to_input
    from pixlink.models.backends.litemedsam import LiteMedSAMSegmenter

    def race(a, b, x_a, x_b):
        ta, tb = [], []
        with torch.inference_mode():
            out_a, out_b = a(x_a), b(x_b)  # warm-up, and the outputs compared
            for _ in range(max(repeats, 3)):
                for f, x, t in ((a, x_a, ta), (b, x_b, tb)):
                    t0 = time.perf_counter()
                    f(x)
                    t.append(time.perf_counter() - t0)
        return float(np.median(ta)), float(np.median(tb)), out_a, out_b

    out: dict[str, Any] = {}
    enc = EfficientNetLiteEncoder()
    plain = EfficientNetLite()
    plain.load_state_dict(torch.load(enc.weights_file, map_location="cpu", weights_only=True), strict=True)
    plain.eval()
    imgs = [load_image(_shared() / "photos" / p) for p in PHOTOS] * 4  # a batch of 32
    x = torch.from_numpy(np.stack([to_input(im, enc.resize) for im in imgs]))
    keep = {6, 10, 13, 16, 17}
    a, b, oa, ob = race(lambda t: plain.forward_all(t, keep), lambda t: enc.net.forward_all(t, keep), x,
                        x.contiguous(memory_format=torch.channels_last))
    out["efficientnet_lite"] = {"batch": len(imgs), "plain_ms_per_image": round(a / len(imgs) * 1e3, 2),
                                "folded_ms_per_image": round(b / len(imgs) * 1e3, 2), "speedup": round(a / b, 2),
                                "max_abs_diff_maps": max(float((oa[2][k] - ob[2][k]).abs().max()) for k in keep),
                                "max_abs_maps": max(float(oa[2][k].abs().max()) for k in keep)}
    seg = LiteMedSAMSegmenter()
    msam = LiteMedSAM()
    msam.load_state_dict(torch.load(seg.weights_file, map_location="cpu", weights_only=True), strict=True)
    msam.eval()
    xi = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    a, b, oa, ob = race(msam.image_encoder, seg.net.image_encoder, xi, xi)
    out["litemedsam_encoder"] = {"plain_ms": round(a * 1e3, 1), "folded_ms": round(b * 1e3, 1), "speedup": round(a / b, 2),
                                 "max_abs_diff": float((oa - ob).abs().max()), "max_abs": float(oa.abs().max())}
    return out


def worker(part: str, repeats: int, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    if part == "quality":
        res = _quality()
    elif part == "folding":
        res = _folding(repeats)
    else:
        res = _latency(part, repeats)
    res["peak_rss_mb"] = round(peak_mb(), 1)
    print("RESULT " + json.dumps(res))


# ---------------------------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", default=",".join(PARTS))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "models_offline_vision.json"))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.repeats, args.threads)
        return
    parts = [p for p in args.parts.split(",") if p]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        ap.error(f"unknown parts {unknown}; choose from {list(PARTS)}")
    results = []
    for part in parts:
        entry: dict[str, Any] = {"part": part, "role": PARTS[part], "loadavg_before": os.getloadavg()[0]}
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--worker", part, "--repeats", str(args.repeats),
                               "--threads", str(args.threads)], capture_output=True, text=True)
        entry["wall_s"] = round(time.perf_counter() - t, 1)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not line:
            entry["error"] = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
            print(f"{part}: FAILED: {entry['error']}", file=sys.stderr)
        else:
            entry.update(json.loads(line[-1][len("RESULT "):]))
        entry["loadavg_after"] = os.getloadavg()[0]
        results.append(entry)
        _print(entry)
    doc = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
           "threads": args.threads, "repeats": args.repeats, "results": results}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.is_file() and set(parts) != set(PARTS):  # keep the other parts of an earlier run
        old = json.loads(out.read_text())
        keep = [r for r in old.get("results", []) if r.get("part") not in parts]
        doc["results"] = keep + results
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {out}")


def _print(e: dict[str, Any]) -> None:
    if "error" in e:
        return
    if e["part"] == "folding":
        f, m = e["efficientnet_lite"], e["litemedsam_encoder"]
        print(f"folding: efficientnet_lite {f['plain_ms_per_image']} -> {f['folded_ms_per_image']} ms/image "
              f"(x{f['speedup']}, max diff {f['max_abs_diff_maps']:.1e} of {f['max_abs_maps']:.1f}); litemedsam "
              f"encoder {m['plain_ms']} -> {m['folded_ms']} ms (x{m['speedup']}, max diff {m['max_abs_diff']:.1e})  "
              f"[load avg {e['loadavg_before']:.1f}]")
        return
    if e["part"] != "quality":
        lat = ", ".join(f"{k}={v:.0f}" for k, v in e["latency"].items())
        print(f"{e['part']:<20} load {e['load_s']:.1f}s  rss {e['rss_base_mb']:.0f}->{e['rss_loaded_mb']:.0f} MB "
              f"(peak {e['peak_rss_mb']:.0f})  {lat}  [load avg {e['loadavg_before']:.1f}]")
        return
    c, ch = e["conse_default"], e["chance"]
    print(f"ConSE probe (n={c['n']}): image->text top1 {c['i2t_top1']}/{c['n']} MRR {c['i2t_mrr']}; "
          f"text->image top1 {c['t2i_top1']}/{c['n']} MRR {c['t2i_mrr']}  (chance {ch['top1']:.3f}, MRR {ch['mrr']})")
    for s in e["conse_sweep"]:
        print(f"   resize={s['resize']:<11} top_t={s['top_t']:<3} i2t {s['i2t_top1']}/{s['n']} MRR {s['i2t_mrr']}  "
              f"t2i {s['t2i_top1']}/{s['n']} MRR {s['t2i_mrr']}")
    ce = e["conse_entities"]
    print(f"ConSE person photo -> its Wikidata description: top1 {ce['top1']}/{ce['n']} (chance {1 / ce['n']:.2f})")
    pl = e["conse_person_vs_logo"]
    print(f"ConSE person crops: sim 'a person' {pl['mean_sim_person']} vs 'a logo' {pl['mean_sim_logo']} "
          f"(nearer 'a person' in {pl['crops_nearer_person']}/{pl['n']})")
    sg = e["segmentation"]
    print(f"LiteMedSAM vs GrabCut on {len(sg['rows'])} boxes: median mask IoU {sg['median_iou']}, "
          f"LiteMedSAM empty masks {sg['litemedsam_empty']}")
    d = e["detect_fallback"]
    print(f"proposals_fallback on {d['n']} probe boxes: top-1 IoU>=0.5 {d['top1_iou_ge_0.5']}/{d['n']}, "
          f"best of 5 IoU>=0.5 {d['best5_iou_ge_0.5']}/{d['n']}, mean top-1 IoU {d['mean_top1_iou']}")


if __name__ == "__main__":
    main()
