"""Where does instance matching fail? The ``local`` signal's stages on composite queries, the
gold image followed through each of them.

For every query of a split (``pixlink.demo.composite``) with a KB of the set (``--kb``, its local
store built): the query view's features, the gold image's rank in the votes, the signal's top
answer, and the gold image forced through verification (did it verify, with how many inliers,
or why not). Printed per kind (logo / flag):

* ``hits@1`` — the signal's best verified entity is the gold one;
* ``gold_in_top`` — the gold image is among the ``verify_top`` best-voted (recall);
* ``gold_verifiable`` — forced through verification, the gold image verifies;
* ``verifiable_not_recalled`` / ``recalled_but_lost`` — the two ways a verifiable gold is missed;

and the verifiable share by the composite's drawn conditions (occlusion, crop, plate, size, JPEG).
Options of the signal can be overridden as JSON (``--options '{"min_inliers": 6}'``) to see an
option's effect on the CALIBRATION split before it is measured on the test split
(``bench_local.py``). Rows go to ``--out`` (JSON).

Usage::

    python benchmarks/diag_local.py --kb KB [--split calibration] [--n 250] [--options JSON] [--fit-score]

``--fit-score`` fits the learned verification score's weights (``LocalOptions.score_weights``)
on the split's verified candidates and cross-validates them; the shipped weights come from
``--options '{"score": "inliers"}' --fit-score`` on the calibration split.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402


def fit_score(rows: list[dict]) -> None:
    """Fit the learned verification score (``LocalOptions.score_weights``): a logistic regression
    (C = 10) of "this verified candidate is the gold entity" on ``[log(1 + effective inliers),
    ref_coverage, box_iou]`` over every logged candidate; printed with a five-fold
    cross-validation (by query) of Hits@1 against the effective inliers alone."""
    from sklearn.linear_model import LogisticRegression

    FEATS = ("log1p(effective)", "ref_coverage", "box_iou", "affine")

    def feats(c):
        return [np.log1p(c["effective"]), c["ref_coverage"], c["box_iou"], float(c.get("model") == "affine")]

    def xy(rs):
        X = [feats(c) for r in rs for c in r["candidates"]]
        y = [c["entity"] == r["gold"] for r in rs for c in r["candidates"]]
        return np.array(X).reshape(-1, len(FEATS)), np.array(y)

    def hits(rs, f):
        return [int(bool(r["candidates"]) and max(r["candidates"], key=f)["entity"] == r["gold"]) for r in rs if r["gold"]]

    X, y = xy(rows)
    m = LogisticRegression(C=10.0, max_iter=5000).fit(X, y)
    print(f"score_weights ({len(X)} candidates, {int(y.sum())} right): "
          f"{tuple(round(float(w), 3) for w in m.coef_[0]) + (round(float(m.intercept_[0]), 3),)}")
    folds = np.array_split(np.random.default_rng(0).permutation(len(rows)), 5)
    base, learned = [], []
    for k in range(5):
        test = [rows[i] for i in folds[k]]
        mk = LogisticRegression(C=10.0, max_iter=5000).fit(*xy([rows[i] for j in range(5) if j != k for i in folds[j]]))
        base += hits(test, lambda c: c["effective"])
        learned += hits(test, lambda c: mk.decision_function([feats(c)])[0])
    print(f"five-fold Hits@1: effective inliers {np.mean(base):.3f}, learned {np.mean(learned):.3f} ({len(base)} queries)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kb", required=True, help="a KB of the composite set with its local store")
    ap.add_argument("--split", choices=("calibration", "test"), default="calibration")
    ap.add_argument("--n", type=int, default=250)
    ap.add_argument("--options", default="{}", help="LocalOptions overrides, JSON")
    ap.add_argument("--out", default="/tmp/diag_local.json")
    ap.add_argument("--fit-score", action="store_true",
                    help="fit LocalOptions.score_weights on the split's verified candidates (use the calibration split)")
    args = ap.parse_args()

    from pixlink.demo.composite import CompositeConfig, generate
    from pixlink.io import load_image
    from pixlink.link import Linker, LinkerConfig
    from pixlink.link.signals.local import (LocalQuery, best_by_entity, box_view, effective_inliers, open_store,
                                            query_features, rank_images, region_in_view, verification_score,
                                            verify_image)

    cs = generate(CompositeConfig())
    ms = cs.mentions(args.split)[: args.n]
    linker = Linker.from_kb(args.kb, "offline", LinkerConfig(signals=("local",), segment=False))
    sig = next(s for s in linker.signals if s.name == "local")
    o = replace(sig.options, **json.loads(args.options))
    be = linker.profile.get("local_features")
    store = open_store(args.kb, be.model_id, getattr(linker.kb, "build_id", None))
    rows, t0 = [], time.perf_counter()
    for m in ms:
        img = load_image(m.image)
        view, off = box_view(img, m.region.bbox, o.view_margin)
        f = query_features(be, view, o.max_features, o.polarity, o.colour_layers)
        lq = LocalQuery(store=store, features=f, offset=off, view_hw=view.shape[:2], view=view,
                        region_box=region_in_view(m.region.bbox, off, view.shape[:2]))
        votes = rank_images(store, lq, o)
        order = np.argsort(-votes, kind="stable")
        gold_rows = store.images_of(m.gold) if m.gold else []
        grank = min((int(np.nonzero(order == g)[0][0]) + 1 for g in gold_rows), default=None)
        vs = [verify_image(store, lq, int(i), o) for i in order[: o.verify_top] if votes[i] > 0]
        score = lambda v: verification_score(v, o)  # noqa: E731  (the signal's own raw score)
        ranked = sorted(best_by_entity(store, vs, o.colour, score).items(), key=lambda kv: -score(kv[1]))
        gv = verify_image(store, lq, gold_rows[0], o) if gold_rows else None
        p = m.meta.get("params", {})
        rows.append({"id": m.id, "kind": m.meta.get("kind"), "gold": m.gold, "features": len(f),
                     "gold_rank": grank, "pred": ranked[0][0] if ranked else None,
                     "pred_score": round(score(ranked[0][1]), 3) if ranked else None,
                     "gold_ok": bool(gv.ok) if gv else None, "gold_inliers": gv.inliers if gv else None,
                     "gold_why": gv.reason if gv else None,
                     # the verified entities, best first: what a score of a verification could use
                     "candidates": [{"entity": e, "score": round(score(v), 3),
                                     "effective": round(effective_inliers(v, o.colour), 3),
                                     "inliers": v.inliers, "matches": v.matches, "model": v.model,
                                     "colour": None if not np.isfinite(v.colour) else round(float(v.colour), 4),
                                     **{k: round(float(x), 4) for k, x in v.extra.items()}}
                                    for e, v in ranked[:10]],
                     "conditions": {"occluded": bool(p.get("occlusion")), "partial": bool(p.get("partial")),
                                    "plate": bool(p.get("plate")), "small": p.get("side", 999) < 120,
                                    "jpeg_below_50": p.get("jpeg_quality", 100) < 50}})
    secs = (time.perf_counter() - t0) / max(len(rows), 1)
    if args.fit_score:
        fit_score(rows)

    def share(fn, sub):
        return round(float(np.mean([fn(r) for r in sub])), 3) if sub else None

    top = o.verify_top
    for kind in ("logo", "flag", None):
        sub = [r for r in rows if r["gold"] and (kind is None or r["kind"] == kind)]
        if not sub:
            continue
        recalled = lambda r: r["gold_rank"] is not None and r["gold_rank"] <= top  # noqa: E731
        print(f"{kind or 'all'} ({len(sub)}): hits@1 {share(lambda r: r['pred'] == r['gold'], sub)}  "
              f"gold_in_top {share(recalled, sub)}  gold_verifiable {share(lambda r: r['gold_ok'], sub)}  "
              f"verifiable_not_recalled {share(lambda r: r['gold_ok'] and not recalled(r), sub)}  "
              f"recalled_but_lost {share(lambda r: r['gold_ok'] and recalled(r) and r['pred'] != r['gold'], sub)}")
        if kind is not None:
            for c in sub[0]["conditions"]:
                a = [r for r in sub if r["conditions"][c]]
                b = [r for r in sub if not r["conditions"][c]]
                print(f"    verifiable with {c}: {share(lambda r: r['gold_ok'], a)} ({len(a)}), "
                      f"without: {share(lambda r: r['gold_ok'], b)} ({len(b)})")
    nil = [r for r in rows if not r["gold"]]
    if nil:
        print(f"NIL ({len(nil)}): some KB image verified for {share(lambda r: r['pred_score'] is not None, nil)}")
    print(f"seconds per query {secs:.3f}", file=sys.stderr)
    Path(args.out).write_text(json.dumps({"options": json.loads(args.options), "rows": rows}, indent=0) + "\n")


if __name__ == "__main__":
    main()
