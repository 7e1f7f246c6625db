"""A KB's own ``instance`` head (``pixlink train instance-head``) in the real linker, on the
composite set's TEST split.

The product path exactly as a user runs it, on the composite set's KB (every icon-package logo
and flag-package flag, 3,493 images; ``benchmarks/bench_local.py`` or ``--kb`` builds it with
the offline signals' vectors and the ``local`` store):

1. the test mentions linked with every offline signal (``local`` and ``instance`` included,
   ``segment=False``), the KB as it is: the shipped head and the shipped fusion (what
   ``docs/results.md`` reports as shipping);
2. a copy of the KB (hard links) adapted by :func:`pixlink.train.instance_adapt.adapt_instance_head`
   with its default recipe (every KB reference image as a generic ``image`` reference: the recipe
   does not know which are logos or flags, nor the test renderer's per-kind draws; fresh seeds,
   so no test photo is rendered), its ``instance`` vectors embedded with the new head;
3. the same test mentions linked over the adapted KB: the linker finds the head (with
   ``kb_head_calibration="head"`` its own calibration replaces the shipped ``instance`` entry;
   weights, NIL classes unchanged);
4. the KB's head scored with either calibration — its own (fitted on its held-out composites)
   or the shipped ``instance`` entry (fitted for the shipped head on entities it had not seen) —
   on the CALIBRATION split's mentions (linked over the adapted KB too) and on the test split
   (the links keep the raw scores; fusion is a function of them). Which one a KB head uses by
   default was decided on the demo's real photos before these figures were run
   (docs/instance-matching.md, *A KB's own head*).

Figures (Hits@1 / Hits@5 / MRR / accuracy with NIL / NIL accuracy; all, logos, flags), the
head's held-out figures and calibration, and the time of each step. Nothing else is tuned here.

Usage::

    python benchmarks/bench_instance_kb.py --kb KB [--work /tmp/bench_instance_kb] [--n-test 400]
        [--training mini-batch --reuse-views DIR --out benchmarks/results/instance_kb_minibatch.json]

Writes ``benchmarks/results/instance_kb.json`` (+ ``instance_kb.png``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from _measure import plot  # noqa: E402
from bench_local import OFFLINE, by_kind, link_all, rescored  # noqa: E402
from train_instance_head import log  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kb", required=True, help="the composite set's KB (bench_local's), not modified")
    ap.add_argument("--work", default="/tmp/bench_instance_kb")
    ap.add_argument("--n-test", type=int, default=400)
    ap.add_argument("--n-calibration", type=int, default=250)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--training", default="auto", help="the head's training: auto, full or mini-batch")
    ap.add_argument("--reuse-views", default=None,
                    help="a kept instance_head.work of the same KB and recipe: the command resumes from its "
                         "rendered views (as a stopped run does) instead of rendering them again")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "instance_kb.json"))
    args = ap.parse_args()

    from pixlink.demo.composite import CompositeConfig, generate
    from pixlink.link import Linker, LinkerConfig
    from pixlink.link.embed import embed_kb
    from pixlink.link.kbhead import kb_head
    from pixlink.models import Profile
    from pixlink.train.instance_adapt import AdaptOptions, adapt_instance_head

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    result: dict = {"generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpu": os.cpu_count()}
    cs = generate(CompositeConfig())
    test = cs.mentions("test")[: args.n_test]
    cal = cs.mentions("calibration")[: args.n_calibration]
    full = LinkerConfig(signals=OFFLINE + ("local", "instance"), segment=False, max_candidates=args.k)
    kb = Path(args.kb)
    if kb_head(kb) is not None:
        raise SystemExit(f"{kb} already carries its own head: give the composite set's KB as bench_local built it")

    embed_kb(kb, Profile("offline"), ["instance"], progress=False)  # cached when already there
    shipped = Linker.from_kb(kb, Profile("offline"), full)
    t_shipped = link_all(shipped, test, work / "links_test_shipped.jsonl", args.k)

    adapted_kb = work / "kb_adapted"
    if kb_head(adapted_kb) is None:
        if adapted_kb.exists():
            shutil.rmtree(adapted_kb)
        subprocess.run(["cp", "-al", str(kb), str(adapted_kb)], check=True)
        if args.reuse_views:
            (adapted_kb / "models").mkdir(exist_ok=True)
            shutil.copytree(args.reuse_views, adapted_kb / "models" / "instance_head.work")
        t0 = time.perf_counter()
        rep = adapt_instance_head(adapted_kb, AdaptOptions(workers=args.workers, training=args.training),
                                  keep_work=True, progress=False)
        rep["reused_views"] = args.reuse_views
        rep["adapt_s"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        emb = embed_kb(adapted_kb, Profile("offline"), ["instance"], progress=False)["instance"]
        rep["embed_s"] = round(time.perf_counter() - t0, 1)
        rep["embed_model_id"] = emb["model_id"]
        (work / "adapt.json").write_text(json.dumps(rep, indent=1))
    result["adapt"] = json.loads((work / "adapt.json").read_text())
    log("adapted", json.dumps({k: result["adapt"][k] for k in ("views", "held_out", "calibration", "seconds")}))
    # the head's own calibration (the default is the shipped entry's: ``shipped.fusion`` below)
    adapted = Linker.from_kb(adapted_kb, Profile("offline"), replace(full, kb_head_calibration="head"))
    t_adapted = link_all(adapted, test, work / "links_test_adapted.jsonl", args.k)
    result["fusion_adapted_instance"] = adapted.fusion.to_dict()["calibration"].get("instance")
    # the KB's head with either calibration, on the CALIBRATION split too: the head's own
    # (fitted on its held-out composites) or the shipped entry (fitted for the shipped head on
    # entities it never saw). The shipped fusion is the adapted linker's with the shipped
    # instance entry, so one run gives both.
    c_adapted = link_all(adapted, cal, work / "links_calibration_adapted.jsonl", args.k)
    result["calibration_split"] = {"kb_head": by_kind(c_adapted, lambda L: rescored(L, adapted.fusion)),
                                   "kb_head_shipped_calibration": by_kind(c_adapted, lambda L: rescored(L, shipped.fusion))}
    result["test"] = {"shipped_head": by_kind(t_shipped, lambda L: rescored(L, shipped.fusion)),
                      "kb_head": by_kind(t_adapted, lambda L: rescored(L, adapted.fusion)),
                      "kb_head_shipped_calibration": by_kind(t_adapted, lambda L: rescored(L, shipped.fusion))}
    for name, links in (("shipped_head", t_shipped), ("kb_head", t_adapted)):  # the linker's own timings
        secs = [lk.timings.get("instance") for _, lk in links if lk.timings.get("instance") is not None]
        result[f"instance_seconds_per_query_{name}"] = {"p50": round(float(np.median(secs)), 4),
                                                        "p95": round(float(np.percentile(secs, 95)), 4)}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["test"], indent=1))

    def draw(ax):
        names = {"shipped_head": "shipped head", "kb_head_shipped_calibration": "KB head, shipped cal. (default)",
                 "kb_head": "KB head, own cal."}
        x = np.arange(3)
        for j, (name, label) in enumerate(names.items()):
            t = result["test"][name]
            ax.bar(x + 0.27 * (j - 1), [t[k]["hits@1"] for k in ("all", "logo", "flag")], 0.27,
                   label=f"{label}: right {t['all']['accuracy']:.3f}, NIL {t['all']['nil_accuracy']:.3f}")
        ax.set_xticks(x, ["all", "logos", "flags"])
        ax.set_ylim(0.5, 1.15)
        ax.set_ylabel("Hits@1, composite test split (linker)")
        ax.set_title("shipped instance head vs the KB's own head (right: over all 400 queries, NIL included)",
                     fontsize=8)

    plot(Path(args.out).with_suffix(".png"), draw, figsize=(7, 3.6))


if __name__ == "__main__":
    main()
