"""MNER on the Twitter-2015 valid, Twitter-2017 valid and Twitter-GMNER dev splits:
pixlink's trained tagger against the packaged spaCy pipeline (the untrained baseline).

Entity-level micro P/R/F1 (exact span and type, conlleval), overall and per type, each
split scored with its own label set (the tagger is asked for the dataset's scheme; spaCy's
OntoNotes types are mapped by the ``spacy_sm`` backend, MISC named as the dataset does).
The model's training set drops every tweet of the dev files it was selected on (by IMGID and
by normalised text), see ``config.json["data"]``. A split that was not one of them may share
tweets with the training files (Twitter-GMNER reuses Twitter-2015/2017 tweets): the benchmark
counts, per split, the tweets whose IMGID or normalised text is in the model's training set
(``seen_in_training``) and scores the unseen ones on their own as well.

Usage: ``python benchmarks/bench_ner.py [--weights DIR] [--limit N] [--out benchmarks/results/ner.json]``
Prints a table and the times; writes the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SPLITS = (("twitter2015", "valid.txt"), ("twitter2017", "valid.txt"), ("gmner", "dev.txt"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", type=Path, default=None, help="model directory (default: the committed one)")
    ap.add_argument("--data", type=Path, default=None, help="shared data folder (default: PIXLINK_DATA or ../shared/data)")
    ap.add_argument("--limit", type=int, default=0, help="first N tweets of each split (0: all)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "ner.json")
    ap.add_argument("--aux-n", type=int, default=0, help=(
        "also score the first N Twitter-2017 valid tweets with auxiliary knowledge from the offline "
        "profile's generate model (packaged Gemma 3 270M; slow on CPU), with and without it"))
    args = ap.parse_args()

    from pixlink.config import shared_data_dir
    from pixlink.conll import read_conll
    from pixlink.spans import DATASET_TYPES, span_prf
    from pixlink.models import get_spec
    from pixlink.ner.data import build_training_set, image_key, read_files, text_key
    from pixlink.ner.tagger import Tagger

    import torch

    torch.set_num_threads(args.threads)
    data = args.data or shared_data_dir()
    t0 = time.time()
    tagger = Tagger(weights=args.weights)
    t_load = time.time() - t0
    spec = get_spec("ner", "spacy_sm")
    baselines = {m: spec.factory(misc_label=m) for m in ("MISC", "OTHER")}
    baseline = baselines["MISC"]
    results: dict = {
        "task": "MNER (entity-level micro F1, exact span + type)",
        "model": {"name": tagger.name, "model_id": tagger.model_id, "backbone": tagger.cfg["backbone_model_id"],
                  "weights_bytes": (tagger.weights / "model.safetensors").stat().st_size,
                  "n_parameters_head": tagger.cfg.get("n_parameters"), "best_epoch": tagger.cfg.get("best_epoch"),
                  "train_data": tagger.cfg.get("data"), "train_seconds": tagger.cfg.get("seconds"),
                  "options": tagger.cfg.get("options")},
        "baseline": {"name": baseline.name, "model_id": baseline.model_id},
        "machine": {"python": platform.python_version(), "cpu_threads": args.threads, "torch": torch.__version__},
        "load_seconds": t_load, "splits": {},
    }
    # the model's training tweets, rebuilt from its config's file names under this data folder
    cfg_data = tagger.cfg.get("data") or {}
    train_paths = [data / n for n in cfg_data.get("train_files", {})]
    dev_paths = [data / n for n in cfg_data.get("dev_files", {})]
    seen_ids: set[str] = set()
    seen_texts: set[str] = set()
    if train_paths and all(p.exists() for p in train_paths + dev_paths):
        kept, _rep = build_training_set(read_files(train_paths), read_files(dev_paths))
        seen_ids = {image_key(p) for p in kept}
        seen_texts = {k for k in (text_key(p.tokens) for p in kept) if k}
    else:
        print("cannot rebuild the training set (files absent): seen_in_training not counted", file=sys.stderr)
    rows = []
    for ds, fname in SPLITS:
        path = data / ds / fname
        if not path.exists():
            print(f"skip {ds}/{fname}: {path} is absent", file=sys.stderr)
            continue
        posts = read_conll(path)
        if args.limit:
            posts = posts[: args.limit]
        types = list(DATASET_TYPES[ds])
        gold = [[(e.start, e.end, e.type) for e in p.entities] for p in posts]
        tokens = [p.tokens for p in posts]
        t = time.time()
        pred = tagger.tag_tokens(tokens, label_scheme=ds)
        t_model = time.time() - t
        # spaCy's Doc needs tokens without whitespace: a lone no-break space becomes "_".
        safe = [[w if w.strip() and not any(c.isspace() for c in w) else "_" for w in p] for p in tokens]
        t = time.time()
        base = baselines[types[3]].tag_tokens(safe)
        t_base = time.time() - t
        r_model = span_prf(gold, pred, types=types)
        r_base = span_prf(gold, base, types=types)
        seen = [image_key(p) in seen_ids or text_key(p.tokens) in seen_texts for p in posts]
        unseen = [i for i, s in enumerate(seen) if not s]
        results["splits"][f"{ds}/{fname}"] = {
            "n_posts": len(posts), "trained": r_model, "spacy_baseline": r_base,
            "selected_on": f"{ds}/{fname}" in cfg_data.get("dev_files", {}),
            "seen_in_training": int(sum(seen)),
            "trained_on_unseen": span_prf([gold[i] for i in unseen], [pred[i] for i in unseen], types=types)
            if unseen else None,
            "seconds": {"trained": t_model, "spacy_baseline": t_base},
        }
        if sum(seen):
            print(f"{ds}/{fname}: {sum(seen)} of {len(posts)} tweets are in the model's training set; "
                  f"F1 on the {len(unseen)} others: {results['splits'][f'{ds}/{fname}']['trained_on_unseen']['f1'] * 100:.2f}"
                  if unseen else f"{ds}/{fname}: every tweet is in the model's training set", file=sys.stderr)
        rows.append((f"{ds}/{fname}", len(posts), r_model, r_base, types, t_model, t_base))

    print(f"{'split':24} {'n':>5} {'model':>14} {'F1':>6}  " + "  ".join(f"{t:>6}" for t in ("PER", "LOC", "ORG", "MISC*")))
    for name, n, rm, rb, types, tm, tb in rows:
        for label, r, sec in (("pixlink_ner", rm, tm), ("spacy_sm", rb, tb)):
            per = "  ".join(f"{r['per_type'][t]['f1'] * 100:6.2f}" for t in types)
            print(f"{name:24} {n:5d} {label:>14} {r['f1'] * 100:6.2f}  {per}   ({sec:.1f} s)")
    print("* MISC is OTHER for twitter2015 and gmner")
    if args.aux_n:
        from pixlink.models import Profile
        from pixlink.ner.aux import AuxKnowledge

        posts = read_conll(data / "twitter2017" / "valid.txt")[: args.aux_n]
        gold = [[(e.start, e.end, e.type) for e in p.entities] for p in posts]
        aux = AuxKnowledge(Profile("offline").get("generate"), max_new_tokens=40)
        t = time.time()
        ctx = aux.contexts([p.text for p in posts])
        t_gen = time.time() - t
        plain = span_prf(gold, tagger.tag_tokens([p.tokens for p in posts]), types=list(DATASET_TYPES["twitter2017"]))
        withc = span_prf(gold, tagger.tag_tokens([p.tokens for p in posts], contexts=ctx),
                         types=list(DATASET_TYPES["twitter2017"]))
        results["aux_knowledge"] = {
            "split": "twitter2017/valid.txt", "n_posts": len(posts), "generator": aux.name,
            "generator_model_id": getattr(aux.generator, "model_id", ""), "max_new_tokens": 40,
            "f1_without": plain["f1"], "f1_with": withc["f1"], "generate_seconds": t_gen,
            "examples": [{"text": p.text, "context": c} for p, c in zip(posts[:5], ctx[:5])],
        }
        print(f"aux knowledge ({aux.name}) on {len(posts)} twitter2017 valid tweets: F1 {plain['f1'] * 100:.2f} "
              f"without, {withc['f1'] * 100:.2f} with ({t_gen:.0f} s generating)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
