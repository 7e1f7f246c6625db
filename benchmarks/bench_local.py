"""Instance matching (the ``local`` signal) on the composite set, offline profile.

The set (:mod:`pixlink.demo.composite`): every logo of the icon package and every flag of the
flag package is a KB entity with one plain image (~3,500); query photos paste some of them into
scikit-image photos (scale, rotation, perspective, cloth, plate, occlusion, blur, JPEG), split
into *calibration* and *test* by entity; ~6 % of the entities are kept out of the KB (NIL).

Steps (each cached in ``--work``; a re-run resumes):

1. generate the set, build its KB, ``kb embed`` the offline signals (v2v, v2t, dense_text) and
   ``local`` (KB-side build rate and store size are recorded);
2. link every calibration mention with every offline signal plus ``local`` (raw scores kept,
   ``links_calibration.jsonl``) and fit the fusion with :func:`pixlink.link.calibrate.calibrate`
   on the CALIBRATION split only (written to ``fusion_fitted.json``);
3. link the test mentions the same way (``links_test.jsonl``) and re-score them (fusion is a
   function of the raw scores) for: ``local`` alone (ranked by its raw score, NIL by its fitted
   calibration), the previous offline signals (``local`` removed, shipped offline fusion), and
   fused (fitted fusion): Hits@1/5, MRR over entity golds, NIL accuracy over NIL golds, by kind;
4. the reference detector (:func:`pixlink.link.signals.local.locate`, whole image, gold entity):
   box IoU >= 0.5 rate and mask IoU against the exact placement;
5. latency of the ``local`` signal per query (the linker's timings) and query-side memory.

Usage::

    python benchmarks/bench_local.py [--n-test 600] [--n-calibration 300] [--work /tmp/bench_local]

Prints the figures and writes ``benchmarks/results/local.json`` (+ ``local.png``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
from _measure import plot  # noqa: E402

OFFLINE = ("v2v", "v2t", "lexical", "dense_text", "type", "mention_type")
"""The previous offline signals (not `face`: the composite KB has no faces; named, it would be
required, and a face found by chance in a query photo would stop the run with E405)."""


def log(*a):
    print(*a, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Cand:
    entity_id: str
    signals: dict


@dataclass(frozen=True)
class SmallLink:
    """What re-scoring needs of a :class:`~pixlink.types.Link`: raw per-signal scores of every
    candidate, the signals that ran (-> backend), the timings."""

    candidates: list
    signals: dict
    timings: dict


def link_all(linker, mentions, path: Path, k: int):
    """Link every mention once (cached as JSONL, so a stopped run resumes)."""
    done = {}
    if path.exists():
        for line in path.read_text().splitlines():
            d = json.loads(line)
            done[d["id"]] = SmallLink([Cand(e, s) for e, s in d["candidates"]], d["signals"], d["timings"])
    with path.open("a") as f:
        for n, m in enumerate(mentions):
            if m.id in done:
                continue
            link = linker.link(m.image, m.region, k=k)
            small = SmallLink([Cand(c.entity_id, dict(c.signals)) for c in link.candidates], dict(link.signals),
                              dict(link.timings))
            f.write(json.dumps({"id": m.id, "candidates": [[c.entity_id, c.signals] for c in small.candidates],
                                "signals": small.signals, "timings": small.timings}) + "\n")
            f.flush()
            done[m.id] = small
            if n % 25 == 0:
                log(f"  {path.name}: {n}/{len(mentions)}")
    return [(m, done[m.id]) for m in mentions if m.id in done]


def merged(a, b):
    """One link per mention from two runs (the ``local`` signal alone, the other offline signals):
    candidates united, raw scores side by side. Fusion is a function of the raw scores, so this
    is the fused run, except that ``local`` did not also verify the other run's candidates."""
    out = []
    for (m, x), (m2, y) in zip(a, b):
        assert m.id == m2.id
        c: dict = {}
        for cand in list(x.candidates) + list(y.candidates):
            c.setdefault(cand.entity_id, {}).update(cand.signals)
        out.append((m, SmallLink([Cand(e, s) for e, s in c.items()], {**y.signals, **x.signals},
                                 {**y.timings, **x.timings})))
    return out


def ranking_figures(rows):
    """rows: (gold or None, ranked entity ids, predicted id or None)."""
    ent = [r for r in rows if r[0] is not None]
    nil = [r for r in rows if r[0] is None]
    ranks = [r[1].index(r[0]) + 1 if r[0] in r[1] else None for r in ent]
    out = {"n": len(ent), "n_nil": len(nil)}
    if ent:
        out["hits@1"] = round(float(np.mean([k == 1 for k in ranks])), 4)
        out["hits@5"] = round(float(np.mean([k is not None and k <= 5 for k in ranks])), 4)
        out["mrr"] = round(float(np.mean([1.0 / k if k else 0.0 for k in ranks])), 4)
        out["accuracy_with_nil"] = round(float(np.mean([r[2] == r[0] for r in ent])), 4)
    if nil:
        out["nil_accuracy"] = round(float(np.mean([r[2] is None for r in nil])), 4)
    out["accuracy"] = round(float(np.mean([r[2] == r[0] for r in rows])), 4) if rows else float("nan")
    return out


def rescored(links, fusion, drop=(), only=None):
    """(gold, ranked ids, prediction) per mention under ``fusion``, signals in ``drop`` removed
    (or only ``only`` kept)."""
    from dataclasses import replace

    from pixlink.link.calibrate import candidate_scores, rescore

    rows = []
    for m, link in links:
        keep = (lambda s: s in only) if only is not None else (lambda s: s not in drop)
        sigs = {s: b for s, b in link.signals.items() if keep(s)}
        cands = [replace(c, signals={s: v for s, v in c.signals.items() if keep(s)}) for c in link.candidates]
        cands = [c for c in cands if c.signals]
        lk = replace(link, signals=sigs, candidates=cands)
        ids = [e for _, e in sorted((-f, e) for e, f in candidate_scores(lk, fusion))]
        pred, _, _ = rescore(lk, fusion)
        rows.append((m.gold, ids, pred))
    return rows


def top_local_examples(links):
    """``({"local": score}, is gold)`` of each mention's best ``local``-verified candidate (what the
    shipped ``local`` calibration is fitted on; mentions with none are left out)."""
    out = []
    for m, lk in links:
        sc = [(c.signals["local"], c.entity_id) for c in lk.candidates if "local" in c.signals]
        if sc:
            x, e = max(sc)
            out.append(({"local": x}, e == m.gold))
    return out


def by_kind(links, fn):
    out = {"all": ranking_figures(fn(links))}
    for kind in ("logo", "flag"):
        sub = [(m, lk) for m, lk in links if m.meta.get("kind") == kind]
        if sub:
            out[kind] = ranking_figures(fn(sub))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-test", type=int, default=600)
    ap.add_argument("--n-calibration", type=int, default=300)
    ap.add_argument("--work", default="/tmp/bench_local")
    ap.add_argument("--kb", default=None, help="an existing KB of the set (default: WORK/kb)")
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--detector", type=int, default=200, help="test mentions the detector is measured on")
    ap.add_argument("--phase", choices=("all", "link-local", "link-previous"), default="all",
                    help="link-*: only link SPLIT with those signals (run phases in parallel), then 'all'")
    ap.add_argument("--local-only", action="store_true",
                    help="figures of the local signal alone (when the other signals' KB vectors are not built)")
    ap.add_argument("--rate-sample", type=int, default=150,
                    help="KB images whose extraction is timed for the KB-side build rate")
    ap.add_argument("--split", choices=("calibration", "test"), default="test")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "local.json"))
    args = ap.parse_args()

    from pixlink.demo.composite import CompositeConfig, build_kb, generate
    from pixlink.geometry import box_iou, rle_to_mask
    from pixlink.link import Linker, LinkerConfig
    from pixlink.link.embed import embed_kb
    from pixlink.link.fusion import Fusion
    from pixlink.link.signals.local import locate
    from pixlink.models import Profile

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    result: dict = {"generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpu": os.cpu_count(),
                    "load_average": os.getloadavg()}
    cs = generate(CompositeConfig())
    cal_ms = cs.mentions("calibration")[: args.n_calibration]
    test_ms = cs.mentions("test")[: args.n_test]
    result["set"] = {**cs.to_dict(), "n_calibration_used": len(cal_ms), "n_test_used": len(test_ms)}
    kb_dir = Path(args.kb) if args.kb else work / "kb"
    if not (kb_dir / "kb.sqlite").exists():
        build_kb(cs, kb_dir)
    prof = Profile("offline")
    ms_of = {"calibration": cal_ms, "test": test_ms}
    local_cfg = LinkerConfig(signals=("local",), segment=False, max_candidates=args.k)
    prev_cfg = LinkerConfig(signals=OFFLINE, segment=False, max_candidates=args.k)
    if args.phase == "link-local":
        embed_kb(kb_dir, prof, ["local"], progress=False)
        link_all(Linker.from_kb(kb_dir, "offline", local_cfg), ms_of[args.split], work / f"links_{args.split}_local.jsonl", args.k)
        return
    if args.phase == "link-previous":
        embed_kb(kb_dir, prof, ["v2v", "v2t", "dense_text"], progress=False)
        link_all(Linker.from_kb(kb_dir, "offline", prev_cfg), ms_of[args.split], work / f"links_{args.split}_previous.jsonl",
                 args.k)
        return
    t0 = time.perf_counter()
    rep = embed_kb(kb_dir, prof, ["local"] if args.local_only else ["v2v", "v2t", "dense_text", "local"], progress=False)
    loc = rep["local"]
    result["kb_side"] = {k: loc.get(k) for k in ("images", "vectors", "entities", "extract_s", "seconds", "faiss",
                                                 "resumed", "extracted")}
    store_dir = Path(loc["index"])
    result["kb_side"]["store_mb"] = round(sum(p.stat().st_size for p in store_dir.iterdir()) / 2**20, 1)
    result["kb_side"]["embed_all_s"] = round(time.perf_counter() - t0, 1)
    meta = json.loads((store_dir / "meta.json").read_text())
    result["kb_side"]["build_meta"] = {k: meta.get(k) for k in ("n_images", "n_features", "index", "concat_s", "created")}
    # KB-side build rate: the per-image work of build_kb_side (read, support, features,
    # thumbnail), timed on a sample, and the FAISS build recorded in the store's meta
    from pixlink.link.signals.local import LocalOptions, reference_features, reference_image, thumbnail

    be, o = prof.get("local_features"), LocalOptions()
    refs = [r.images[0] for r in cs.references if not r.nil][:: max(1, len(cs.references) // args.rate_sample)]
    t1, c1 = time.perf_counter(), time.process_time()
    for ref in refs[: args.rate_sample]:
        rgb, sup = reference_image(ref)
        reference_features(be, rgb, sup, o)
        thumbnail(rgb, sup, o.thumb_side)
    n_s = min(len(refs), args.rate_sample)
    wall, cpu = time.perf_counter() - t1, time.process_time() - c1
    idx = meta.get("index", {})
    per_vec = (idx.get("build_s", 0) + idx.get("train_s", 0) * 0) / max(meta["n_features"], 1)
    result["kb_side"]["rate"] = {
        "sample_images": n_s, "images_per_s_wall": round(n_s / wall, 2), "images_per_cpu_s": round(n_s / max(cpu, 1e-9), 2),
        "faiss_train_s": idx.get("train_s"), "faiss_add_s_per_1k_vectors": round(1000 * per_vec, 3),
        "features_per_image": round(meta["n_features"] / max(meta["n_images"], 1), 1),
        "projected_10k_images": {
            "extract_minutes_wall_here": round(10_000 / (n_s / wall) / 60, 1),
            "extract_minutes_per_cpu": round(10_000 / (n_s / max(cpu, 1e-9)) / 60, 1),
            "faiss_s": round((idx.get("train_s") or 0) + per_vec * 10_000 * meta["n_features"] / max(meta["n_images"], 1), 1),
            "store_mb": round(result["kb_side"]["store_mb"] * 10_000 / max(meta["n_images"], 1), 1)}}
    log("kb side", result["kb_side"])

    linker = Linker.from_kb(kb_dir, "offline", local_cfg)
    prev = None if args.local_only else Linker.from_kb(kb_dir, "offline", prev_cfg)
    runs = {}
    for split in ("calibration", "test"):
        a = link_all(linker, ms_of[split], work / f"links_{split}_local.jsonl", args.k)
        if args.local_only:
            runs[split] = a
            continue
        b = link_all(prev, ms_of[split], work / f"links_{split}_previous.jsonl", args.k)
        runs[split] = merged(a, b)
    cal_links = runs["calibration"]

    # fit on the CALIBRATION split only, from the cached links: what pixlink.link.calibrate does
    # (Fusion.fit on (raw signals, is gold) of every candidate, then the NIL thresholds: each NIL
    # class's on its mentions, fit_nil), without linking the same mentions a second time
    from pixlink.link.calibrate import figures, fit_nil

    examples = [(c.signals, c.entity_id == m.gold) for m, lk in cal_links for c in lk.candidates]
    backends = {"local": "sift", **dict(shipped_backends := Fusion.shipped("offline").backends)}
    fitted = Fusion.shipped("offline").fit(examples, backends={s: b for s, b in backends.items()
                                                               if any(s in lk.signals for _, lk in cal_links)})
    fitted, nil_fit = fit_nil(fitted, cal_links)
    fitted.save(work / "fusion_fitted.json")
    cal_report = {"n_examples": len(examples), "n_mentions": len(cal_links), "backends": shipped_backends,
                  "on_calibration_split": figures(cal_links, fitted), "nil_thresholds": nil_fit}
    result["calibration"] = {"report": cal_report, "local": fitted.to_dict()["calibration"].get("local:sift")
                             or fitted.to_dict()["calibration"].get("local"), "nil_threshold": fitted.nil_threshold}

    t_links = runs["test"]
    shipped = Fusion.shipped("offline")
    local_cal = fitted.cal("local", "sift")
    only_local = Fusion(calibration={"local": local_cal}, nil_threshold=fitted.nil_threshold, name="local-only",
                        backends={"local": "sift"}) if local_cal else None
    if only_local is not None:
        # NIL for local alone: the threshold that is best on the calibration links
        from pixlink.link.calibrate import nil_fitted

        only_local = nil_fitted(only_local, cal_links)
    figs = {} if args.local_only else {
        "previous_offline": by_kind(t_links, lambda L: rescored(L, shipped, drop=("local",))),
        "fused_all_refitted": by_kind(t_links, lambda L: rescored(L, fitted)),
    }
    if local_cal is not None and not args.local_only:
        # what ships: the shipped offline fusion plus the fitted ``local`` entry
        from dataclasses import replace as _replace

        plus = _replace(shipped, calibration={**dict(shipped.calibration), "local": local_cal}, name="offline+local")
        figs["fused_shipped_plus_local"] = by_kind(t_links, lambda L: rescored(L, plus))
        result["shipped_plus_local"] = {"local": plus.to_dict()["calibration"]["local"],
                                        "nil_threshold": plus.nil_threshold}
        # the weight of ``local`` among the shipped (hand-set) entries: an AUC-based weight is
        # made for a mean of comparable signals, and a verified instance match is decisive
        # evidence, like a face match. Chosen on the CALIBRATION split (accuracy with NIL at the
        # shipped NIL threshold), then measured on the test split.
        grid = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0)

        def weigh(cal):
            acc_by_w = {}
            for w in grid:
                f_w = _replace(plus, calibration={**dict(plus.calibration), "local": _replace(cal, weight=w)})
                rows = rescored(cal_links, f_w)
                acc_by_w[w] = round(float(np.mean([(r[2] == r[0]) for r in rows])), 4)
            best_w = max(grid, key=lambda w: (acc_by_w[w], -w))
            return _replace(plus, calibration={**dict(plus.calibration), "local": _replace(cal, weight=best_w)}), acc_by_w

        weighted, acc_by_w = weigh(local_cal)
        figs["fused_shipped_plus_local_weighted"] = by_kind(t_links, lambda L: rescored(L, weighted))
        result["shipped_plus_local_weighted"] = {"local": weighted.to_dict()["calibration"]["local"],
                                                 "nil_threshold": weighted.nil_threshold,
                                                 "calibration_accuracy_by_weight": acc_by_w}
        # ``local`` scores only the entities it verified; what the NIL decision needs is how often
        # its *best* verified entity is right at a given score. Fitted on each calibration
        # mention's top local candidate (NIL mentions: a wrong top), weight chosen as above.
        top_ex = top_local_examples(cal_links)
        top_cal = Fusion(calibration={}, nil_threshold=shipped.nil_threshold, name="top1").fit(top_ex).cal("local")
        top_weighted, top_acc = weigh(top_cal)
        figs["fused_shipped_plus_local_top1"] = by_kind(t_links, lambda L: rescored(L, top_weighted))
        result["shipped_plus_local_top1"] = {"local": top_weighted.to_dict()["calibration"]["local"],
                                             "n_mentions": len(top_ex), "nil_threshold": top_weighted.nil_threshold,
                                             "calibration_accuracy_by_weight": top_acc}
    if only_local is not None:
        figs["local_alone"] = by_kind(t_links, lambda L: rescored(L, only_local, only=("local",)))
        result["local_alone_nil_threshold"] = only_local.nil_threshold
    result["test"] = figs
    times = [lk.timings.get("local") for _, lk in t_links if lk.timings.get("local") is not None]
    result["latency_local_s"] = {"n": len(times), "p50": round(float(np.percentile(times, 50)), 3),
                                 "p95": round(float(np.percentile(times, 95)), 3), "mean": round(float(np.mean(times)), 3),
                                 "kb_images": loc.get("images")}
    tot = [sum(v for v in lk.timings.values()) for _, lk in t_links]
    result["latency_total_s"] = {"p50": round(float(np.percentile(tot, 50)), 3)}

    log("detector")
    det = []
    for m in [m for m in test_ms if m.gold][: args.detector]:
        t = time.perf_counter()
        hit = locate(linker, m.image, m.gold)
        dt = time.perf_counter() - t
        if hit is None:
            det.append((0.0, 0.0, dt, m.meta["kind"]))
            continue
        gt = rle_to_mask(m.meta["gt_mask"])
        miou = float((gt & hit.mask).sum() / max((gt | hit.mask).sum(), 1))
        det.append((box_iou(hit.box, list(m.region.bbox)), miou, dt, m.meta["kind"]))
    dd = {}
    for kind in ("all", "logo", "flag"):
        sub = [d for d in det if kind == "all" or d[3] == kind]
        if sub:
            dd[kind] = {"n": len(sub), "box_iou_0.5_rate": round(float(np.mean([d[0] >= 0.5 for d in sub])), 4),
                        "mask_iou_median": round(float(np.median([d[1] for d in sub])), 4),
                        "seconds_p50": round(float(np.median([d[2] for d in sub])), 3)}
    result["detector"] = dd
    result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("kb_side", "test", "latency_local_s", "detector")}, indent=1))
    names = [n for n in ("previous_offline", "local_alone", "fused_shipped_plus_local",
                         "fused_shipped_plus_local_weighted", "fused_shipped_plus_local_top1", "fused_all_refitted")
             if n in figs]

    def draw(ax):
        w = 0.25
        for j, kind in enumerate(("all", "logo", "flag")):
            vals = [figs[n].get(kind, {}).get("hits@1", 0) for n in names]
            ax.bar(np.arange(len(names)) + j * w, vals, w, label=kind)
        ax.set_xticks(np.arange(len(names)) + w)
        ax.set_xticklabels([n.replace('_', ' ') for n in names], fontsize=7)
        ax.set_ylabel("Hits@1 (test split)")
        ax.set_ylim(0, 1)
        ax.set_title(f"composite test split, KB of {loc.get('images')} images")

    plot(out.with_suffix(".png"), draw, figsize=(11, 3.5))

if __name__ == "__main__":
    main()
