"""How the ``image`` NIL class's best threshold depends on the size of the KB.

The composite set's KB holds 3,493 entities; a user's KB may hold fifty or a million. A fused
score is a function of the (mention, entity) pair alone, so a smaller KB is simulated by keeping
a seeded random share of the entities: each mention's cached candidates (``bench_instance.py``'s
links, top 20 of the full KB) are cut to the kept entities, and a mention whose entity was dropped
becomes a NIL mention. For each share, over ``--draws`` draws: the threshold best on the
CALIBRATION split, and on the TEST split the right links (top right and above the threshold, over
entity mentions) and the NIL accuracy at the threshold fitted on the whole KB (the reference
size) and at the share's own; then the slope of the best threshold in log(KB entities), fitted on
the calibration draws (the shipped `size_slope` of the class), and the test figures at it.

Accuracy mixes the two as a stream with ``--nil-share`` NIL mentions (13 %, the set's own), so
that a small KB is not judged on a stream that is 90 % NIL. A mention left with no candidate (none
of its 20 kept) counts as NIL: its best score in the smaller KB is below its 20th's, and how often
that 20th is above the threshold is reported (the cases this simulation cannot see).

Usage::

    python benchmarks/diag_nil_kb_size.py [--work /tmp/bl] [--heads-digest ...]

Writes ``benchmarks/results/nil_kb_size.json`` (+ ``.png``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from _measure import plot  # noqa: E402
from bench_local import Cand, SmallLink  # noqa: E402


def load_links(path: Path, mentions) -> list:
    d = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        d[r["id"]] = SmallLink([Cand(e, s) for e, s in r["candidates"]], r["signals"], r["timings"])
    return [(m, d[m.id]) for m in mentions if m.id in d]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/bl", help="bench_instance.py's work folder (cached links)")
    ap.add_argument("--calibration-links", default=None, help="default: the newest links_calibration_full_*.jsonl")
    ap.add_argument("--test-links", default=None, help="default: the newest links_test_full_*.jsonl")
    ap.add_argument("--shares", default="1,0.5,0.25,0.1,0.05")
    ap.add_argument("--draws", type=int, default=20)
    ap.add_argument("--nil-share", type=float, default=0.13)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "nil_kb_size.json"))
    args = ap.parse_args()

    from pixlink.demo.composite import CompositeConfig, generate
    from pixlink.link.calibrate import candidate_scores
    from pixlink.link.fusion import Fusion

    work = Path(args.work)

    def newest(pattern):
        return max(work.glob(pattern), key=lambda p: p.stat().st_mtime)

    cs = generate(CompositeConfig())
    links = {"calibration": load_links(Path(args.calibration_links or newest("links_calibration_full_*.jsonl")),
                                       cs.mentions("calibration")),
             "test": load_links(Path(args.test_links or newest("links_test_full_*.jsonl")), cs.mentions("test"))}
    fusion = Fusion.shipped("offline")
    image = next(c for c in fusion.nil_classes if c.name == "image")
    kb = sorted({r.entity_id for r in cs.references if not r.nil})
    # one fused score per (mention, candidate), computed once: a smaller KB only removes candidates
    scored = {}
    for split, ls in links.items():
        rows = []
        for m, lk in ls:
            rows.append((m.gold, sorted(((s, e) for e, s in candidate_scores(lk, fusion)), reverse=True)))
        scored[split] = rows

    def outcome(rows, keep):
        """Per mention: (gold in the KB?, top score or None, top right?, 20th score)."""
        out = []
        for gold, per in rows:
            kept = [(s, e) for s, e in per if e in keep]
            g = gold if gold in keep else None
            top = kept[0] if kept else None
            out.append((g is not None, top[0] if top else None, bool(top and top[1] == g), per[-1][0] if per else 0.0))
        return out

    def accuracy(out, t):
        ent = [o for o in out if o[0]]
        nil = [o for o in out if not o[0]]
        right = float(np.mean([o[2] and o[1] >= t for o in ent])) if ent else float("nan")
        nil_ok = float(np.mean([o[1] is None or o[1] < t for o in nil])) if nil else float("nan")
        return right, nil_ok, (1 - args.nil_share) * right + args.nil_share * nil_ok

    grid = np.round(np.arange(0.02, 0.6001, 0.005), 4)
    result = {"generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "kb_entities": len(kb),
              "shipped_image_threshold": image.threshold, "nil_share": args.nil_share, "draws": args.draws,
              "shares": {}}
    draws = []
    for share in (float(v) for v in args.shares.split(",")):
        rng = np.random.default_rng(int(share * 1e6))
        fits, at_reference, at_own, blind = [], [], [], []
        for _ in range(args.draws if share < 1 else 1):
            keep = set(rng.choice(kb, size=int(round(share * len(kb))), replace=False).tolist())
            cal, test = outcome(scored["calibration"], keep), outcome(scored["test"], keep)
            t_best = float(max(grid, key=lambda t: (accuracy(cal, t)[2], -t)))
            fits.append(t_best)
            at_reference.append(accuracy(test, image.threshold))
            at_own.append(accuracy(test, t_best))
            blind.append(float(np.mean([o[1] is None and o[3] >= min(t_best, image.threshold) for o in test])))
            draws.append((share, len(keep), t_best, test))
        result["shares"][str(share)] = {
            "entities": int(round(share * len(kb))),
            "threshold_best_on_calibration": {"mean": round(float(np.mean(fits)), 3), "min": min(fits), "max": max(fits)},
            "test_at_reference_threshold": dict(zip(("right_links", "nil_accuracy", "accuracy"),
                                        np.round(np.mean(at_reference, axis=0), 4).tolist())),
            "test_at_own": dict(zip(("right_links", "nil_accuracy", "accuracy"), np.round(np.mean(at_own, axis=0), 4).tolist())),
            "test_mentions_unseen_above_threshold": round(float(np.mean(blind)), 4)}
        print(share, json.dumps(result["shares"][str(share)]), flush=True)
    # the threshold as a line in log(KB entities) through the shipped one at the full KB:
    # its slope by least squares on the calibration draws' best thresholds
    x = np.array([np.log(n / len(kb)) for _, n, _, _ in draws])
    y = np.array([t for _, _, t, _ in draws]) - image.threshold
    slope = float((x @ y) / (x @ x)) if (x @ x) > 0 else 0.0
    result["rule"] = {"slope_per_log_entities": round(slope, 4), "reference_entities": len(kb),
                      "range_entities": [min(n for _, n, _, _ in draws), len(kb)]}
    for share, row in result["shares"].items():
        t_rule = image.threshold + slope * np.log(row["entities"] / len(kb))
        acc = np.mean([accuracy(test, t_rule) for sh, _, _, test in draws if str(sh) == share], axis=0)
        row["threshold_rule"] = round(float(t_rule), 4)
        row["test_at_rule"] = dict(zip(("right_links", "nil_accuracy", "accuracy"), np.round(acc, 4).tolist()))
        print(share, "rule", row["threshold_rule"], row["test_at_rule"], flush=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    sizes = sorted(result["shares"].values(), key=lambda r: r["entities"])

    def draw(ax):
        x = [r["entities"] for r in sizes]
        ax.plot(x, [r["threshold_best_on_calibration"]["mean"] for r in sizes], "o-", label="best threshold (calibration)")
        ax.plot(x, [r["test_at_reference_threshold"]["accuracy"] for r in sizes], "s--", label=f"test accuracy at {image.threshold}")
        ax.plot(x, [r["test_at_own"]["accuracy"] for r in sizes], "^--", label="test accuracy at the size's own")
        ax.plot(x, [r["threshold_rule"] for r in sizes], "k:", label="threshold by the rule")
        ax.plot(x, [r["test_at_rule"]["accuracy"] for r in sizes], "v--", label="test accuracy at the rule's")
        ax.set_xscale("log")
        ax.set_xlabel("KB entities (random share of the composite KB)")
        ax.set_title("image NIL class: threshold and accuracy vs KB size", fontsize=9)

    plot(Path(args.out).with_suffix(".png"), draw, figsize=(6, 4))


if __name__ == "__main__":
    main()
