"""Training: the MEL text-only experiment, learnability on real photos, speed and cache size.

Parts (``--parts mel,learn,speed``; all by default):

* ``mel`` — WikiMEL and RichpediaMEL (../shared/data/melbench; text only, no images here).
  Each file is split 7:1:2 with seed 0 as MIMIC does (records kept together), then the parts
  are subsampled to ``--train/--dev/--test`` mentions with seed 0 (the CPU budget: 2 shared
  cores), and the KB is built from *all* entities the file names (17,391 / 17,805). Reported
  on the test subsample, Hits@1/3/5 and MRR:

  - the untrained linker (offline profile: lexical + MiniLM dense text, fused; its top 20);
  - the frozen MiniLM bi-encoder (``t2t``, the gold ranked among all KB entities);
  - the trained bi-encoder (adapters, InfoNCE + hard negatives), mean ± sd over ``--seeds``;
  - IIER's text path (TFI) trained, re-ranking the frozen encoder's top ``--candidates``
    (its MRR is MRR@candidates), mean ± sd over ``--iier-seeds``;
  - the linker with the trained bi-encoder as its re-ranking stage (``--reranker``);

  next to the published text-only rows of the MEL papers (BLINK, BERT, RoBERTa as reported by
  MIMIC, Luo et al., KDD 2023: their KBs hold 109,976 / 160,935 entities and their splits are
  theirs, so the rows are a reference, not the same test).
* ``learn`` — the labelled set of real photos of tests/train (people and things, composites of
  jittered views): Hits@1 of the frozen EfficientNet-Lite (V2VEL) and after training, on held-out
  views.
* ``speed`` — training samples per second on this CPU (bi-encoder ``t2t``; IIER text path;
  IIER with visual units on the photos) and the feature cache's size per 10,000 mentions.

Writes ``benchmarks/results/train.json`` and ``train.png`` (``--out``).

Usage: ``python benchmarks/bench_train.py [--parts mel] [--train 3000 --dev 500 --test 1000] [--work DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DATA = Path(os.environ.get("PIXLINK_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
RESULTS = Path(__file__).resolve().parent / "results"

PUBLISHED = {
    # MIMIC (Luo et al., KDD 2023), github.com/pengfei-luo/MIMIC, readme "Main Result": H@1, H@3, H@5, MRR (%)
    "source": "Luo et al., Multi-Grained Multimodal Interaction Network for Entity Linking, KDD 2023, main results "
              "table (text-only baselines), github.com/pengfei-luo/MIMIC readme",
    "wikimel": {"BLINK": [74.66, 86.63, 90.57, 81.72], "BERT": [74.82, 86.79, 90.47, 81.78],
                "RoBERTa": [73.75, 85.85, 89.80, 80.86], "MIMIC (multimodal)": [87.98, 95.07, 96.37, 91.82]},
    "richpediamel": {"BLINK": [58.47, 81.51, 88.09, 71.39], "BERT": [59.55, 81.12, 87.16, 71.67],
                     "RoBERTa": [61.34, 81.56, 87.15, 72.80], "MIMIC (multimodal)": [81.02, 91.77, 94.38, 86.95]},
    "columns": ["hits@1", "hits@3", "hits@5", "mrr"],
}
FILES = {"wikimel": "Wikidata-MEL.json", "richpediamel": "Richpedia-MEL.json"}


def log(*a: Any) -> None:
    print(*a, file=sys.stderr, flush=True)


def _short(fig: dict[str, Any]) -> dict[str, Any]:
    keep = ("n", "hits@1", "hits@3", "hits@5", "hits@10", "hits@20")
    out = {k: fig[k] for k in keep if k in fig}
    out.update({k: v for k, v in fig.items() if k.startswith("mrr")})
    return out


def mel(name: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from pixlink.eval.datasets.melbench import load_melbench, melbench_entities
    from pixlink.eval.runner import run_link
    from pixlink.kb import KB, build_kb_from_entities
    from pixlink.link import Linker, LinkerConfig
    from pixlink.link.embed import embed_kb
    from pixlink.train.biencoder import BiEncoderOptions, train_biencoder
    from pixlink.train.data import split_mentions, subsample
    from pixlink.train.iier import IIEROptions, train_iier

    t0 = time.time()
    res = load_melbench(DATA / "melbench" / FILES[name])
    parts = split_mentions(res.items, (7, 1, 2), seed=0)
    sizes = {"train": args.train, "dev": args.dev, "test": args.test}
    sub = {k: subsample(v, sizes[k], seed=0) for k, v in parts.items()}
    out: dict[str, Any] = {"mentions": len(res.items), "split": {k: len(v) for k, v in parts.items()},
                           "used": {k: len(v) for k, v in sub.items()}}
    kb_dir = work / f"kb_{name}"
    if not (kb_dir / "meta.json").exists():
        build_kb_from_entities(melbench_entities(res.items, source=name), kb_dir, name=f"{name}-entities")
    kb = KB.open(kb_dir)
    out["kb_entities"] = len(kb)
    kb.close()
    cache = work / "features"
    # the untrained linker (dense_text needs the KB's MiniLM vectors)
    log(f"[{name}] kb embed dense_text")
    emb = embed_kb(kb_dir, "offline", signals=["dense_text"], progress=False, cache_dir=work / "embeddings")
    out["kb_embed"] = {"vectors": emb["dense_text"].get("vectors")}
    log(f"[{name}] untrained linker on {len(sub['test'])} test mentions")
    linker = Linker.from_kb(kb_dir, "offline", LinkerConfig())
    lk = run_link(sub["test"], linker, work / f"link_{name}", {"data": name, "test": len(sub["test"])}, k=20,
                  ks=(1, 3, 5, 10, 20))
    out["untrained_linker"] = _short(lk) | {"seconds": lk.get("seconds")}
    log(f"[{name}] bi-encoder, seeds {args.seeds}")
    be = train_biencoder(sub["train"], sub["dev"], kb_dir, work / f"be_{name}",
                         BiEncoderOptions(task="text", epochs=args.epochs, seeds=tuple(args.seeds), batch_size=128,
                                          hard_negatives=4),
                         test=sub["test"], cache_dir=cache, progress=False, overwrite=True)
    out["frozen_biencoder"] = _short(be["untrained"]["test"])
    out["biencoder"] = {k: v for k, v in be["test"].items()}
    out["biencoder_train_samples_per_second"] = be["train_samples_per_second"]
    out["biencoder_features"] = be["features"]
    log(f"[{name}] IIER text path, seeds {args.iier_seeds}")
    iier_train = subsample(sub["train"], args.iier_train, seed=0)
    out["used"]["iier_train"] = len(iier_train)
    ii = train_iier(iier_train, sub["dev"], kb_dir, work / f"iier_{name}",
                    IIEROptions(units=("tfi",), epochs=args.iier_epochs, seeds=tuple(args.iier_seeds),
                                lr=args.iier_lr, batch_size=128, candidates=args.candidates),
                    test=sub["test"], cache_dir=cache, progress=False, overwrite=True)
    out["iier_text"] = {k: v for k, v in ii["test"].items()}
    out["iier_candidates"] = {"k": args.candidates, "retrieval_test": _short(ii["retrieval"]["test"])}
    out["iier_train_samples_per_second"] = ii["train_samples_per_second"]
    out["iier_features"] = ii["features"]
    log(f"[{name}] linker + trained bi-encoder re-ranker")
    rl = Linker.from_kb(kb_dir, "offline", LinkerConfig(reranker={"path": str(work / f"be_{name}"), "top_k": 50}))
    lr = run_link(sub["test"], rl, work / f"link_rerank_{name}", {"data": name, "test": len(sub["test"]), "rr": 1},
                  k=20, ks=(1, 3, 5, 10, 20))
    out["linker_with_reranker"] = _short(lr) | {"seconds": lr.get("seconds")}
    out["published"] = {k: dict(zip(PUBLISHED["columns"], v)) for k, v in PUBLISHED[name].items()}
    out["seconds"] = round(time.time() - t0, 1)
    return out


def learn(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "train"))
    from learnset import build

    from pixlink.kb import build_kb_from_entities
    from pixlink.train.biencoder import BiEncoderOptions, train_biencoder
    from pixlink.train.data import read_dataset
    from pixlink.train.iier import IIEROptions, train_iier

    root = work / "learnset"
    r = build(root, DATA / "photos", {"train": args.views[0], "dev": args.views[1], "test": args.views[2]}, seed=0)
    kb = root / "kbdir"
    if not (kb / "meta.json").exists():
        build_kb_from_entities(r["entities"], kb)
    parts = {k: read_dataset(str(v))[0] for k, v in r["parts"].items()}
    be = train_biencoder(parts["train"], parts["dev"], kb, work / "learn_be",
                         BiEncoderOptions(task="v2vel", epochs=8, batch_size=16, seeds=tuple(args.seeds),
                                          hard_negatives=2),
                         test=parts["test"], cache_dir=work / "features", progress=False, overwrite=True)
    ii = train_iier(parts["train"], parts["dev"], kb, work / "learn_iier",
                    IIEROptions(epochs=8, batch_size=16, seeds=(0,), lr=1e-3, candidates=16, candidate_space="v2v"),
                    test=parts["test"], cache_dir=work / "features", progress=False, overwrite=True)
    return {"entities": len(r["entities"]), "views": dict(zip(("train", "dev", "test"), args.views)),
            "frozen_v2v_test": _short(be["untrained"]["test"]), "biencoder_v2v_test": be["test"],
            "biencoder_train_samples_per_second": be["train_samples_per_second"], "biencoder_features": be["features"],
            "iier_full_test": ii["test"], "iier_retrieval_test": _short(ii["retrieval"]["test"]),
            "iier_train_samples_per_second": ii["train_samples_per_second"], "iier_features": ii["features"]}


def per_10k(features: dict[str, Any], n: dict[str, int]) -> dict[str, float]:
    """MB of cached mention features per 10,000 mentions, per feature, from a run's byte counts."""
    out = {}
    for key, b in features["bytes_on_disk"].items():
        part = key.split(":")[0]
        if part in n and n[part]:
            out[key.split(":", 1)[1]] = round(b / n[part] * 10_000 / 2 ** 20, 2)
    return out


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mel_parts = [k for k in ("wikimel", "richpediamel") if k in results.get("mel", {})]
    if not mel_parts:
        return
    fig, axes = plt.subplots(1, len(mel_parts), figsize=(5.5 * len(mel_parts), 3.6), squeeze=False)
    for ax, name in zip(axes[0], mel_parts):
        r = results["mel"][name]
        rows = [("linker (untrained)", r["untrained_linker"]["hits@1"], 0),
                ("frozen MiniLM", r["frozen_biencoder"]["hits@1"], 0),
                ("bi-encoder", r["biencoder"]["hits@1"]["mean"], r["biencoder"]["hits@1"]["sd"]),
                ("IIER text", r["iier_text"]["hits@1"]["mean"], r["iier_text"]["hits@1"]["sd"])]
        if "linker_with_reranker" in r:  # not measured when the budget ran out
            rows.append(("linker + reranker", r["linker_with_reranker"]["hits@1"], 0))
        ours = len(rows)
        rows += [(k, v["hits@1"] / 100, 0) for k, v in r["published"].items() if "MIMIC" not in k]
        ax.barh([x[0] for x in rows], [100 * x[1] for x in rows], xerr=[100 * x[2] for x in rows],
                color=["C0"] * ours + ["C7"] * (len(rows) - ours))
        ax.set_xlim(0, 100)
        ax.set_xlabel("Hits@1 (%)")
        ax.set_title(f"{name} text-only (grey: published, other KB/split)", fontsize=9)
        ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", default="mel,learn,speed")
    ap.add_argument("--datasets", default="wikimel,richpediamel")
    ap.add_argument("--train", type=int, default=3000)
    ap.add_argument("--dev", type=int, default=500)
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--iier-epochs", type=int, default=6)
    ap.add_argument("--iier-train", type=int, default=2000, help="IIER trains on this many of the training mentions")
    ap.add_argument("--iier-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--iier-lr", type=float, default=1e-3)
    ap.add_argument("--candidates", type=int, default=50)
    ap.add_argument("--views", type=int, nargs=3, default=[5, 2, 3])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--work", type=Path, default=Path("/tmp/pixlink-bench-train"))
    ap.add_argument("--out", type=Path, default=RESULTS / "train.json")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    parts = args.parts.split(",")
    results: dict[str, Any] = {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                               "machine": {"cpus": os.cpu_count(), "note": "2 cores shared with other jobs"}}
    if args.out.exists():
        results = {**json.loads(args.out.read_text()), "settings": results["settings"]}
    if "mel" in parts:
        results.setdefault("mel", {})
        for name in args.datasets.split(","):
            results["mel"][name] = mel(name, args, args.work) | {"settings": results["settings"]}
            args.out.write_text(json.dumps(results, indent=2) + "\n")
    if "learn" in parts:
        results["learn"] = learn(args, args.work) | {"settings": results["settings"]}
    if "speed" in parts or "learn" in parts or "mel" in parts:
        speed: dict[str, Any] = {}
        for name, r in (results.get("mel") or {}).items():
            n = {k: v for k, v in r["used"].items() if k != "iier_train"}
            speed[f"{name}:biencoder_t2t"] = {"samples_per_second": r["biencoder_train_samples_per_second"],
                                              "mb_per_10k_mentions": per_10k(r["biencoder_features"], n)}
            speed[f"{name}:iier_text"] = {"samples_per_second": r["iier_train_samples_per_second"],
                                          "mb_per_10k_mentions": per_10k(r["iier_features"],
                                                                         {**n, "train": r["used"]["iier_train"]})}
        if "learn" in results:
            lr_ = results["learn"]
            n = dict(zip(("train", "dev", "test"), (16 * v for v in lr_["views"].values())))
            speed["photos:biencoder_v2v"] = {"samples_per_second": lr_["biencoder_train_samples_per_second"],
                                             "mb_per_10k_mentions": per_10k(lr_["biencoder_features"], n)}
            speed["photos:iier_full"] = {"samples_per_second": lr_["iier_train_samples_per_second"],
                                         "mb_per_10k_mentions": per_10k(lr_["iier_features"], n)}
        results["speed"] = speed
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    plot(results, args.out.with_suffix(".png"))
    for name, r in (results.get("mel") or {}).items():
        print(f"== {name}: KB {r['kb_entities']} entities; used {r['used']} of split {r['split']}")
        print(f"  untrained linker    hits@1 {r['untrained_linker']['hits@1']:.4f} mrr@20 {r['untrained_linker']['mrr@20']:.4f}")
        print(f"  frozen MiniLM       hits@1 {r['frozen_biencoder']['hits@1']:.4f} mrr {r['frozen_biencoder']['mrr']:.4f}")
        b = r["biencoder"]
        print(f"  bi-encoder          hits@1 {b['hits@1']['mean']:.4f}±{b['hits@1']['sd']:.4f} mrr {b['mrr']['mean']:.4f}±{b['mrr']['sd']:.4f}")
        i = r["iier_text"]
        mk = next(k for k in i if k.startswith("mrr"))
        print(f"  IIER text           hits@1 {i['hits@1']['mean']:.4f}±{i['hits@1']['sd']:.4f} {mk} {i[mk]['mean']:.4f}±{i[mk]['sd']:.4f}")
        if "linker_with_reranker" in r:
            print(f"  linker + reranker   hits@1 {r['linker_with_reranker']['hits@1']:.4f} mrr@20 {r['linker_with_reranker']['mrr@20']:.4f}")
    if "learn" in results:
        lr_ = results["learn"]
        print(f"== photos: frozen v2v hits@1 {lr_['frozen_v2v_test']['hits@1']:.4f}; trained "
              f"{lr_['biencoder_v2v_test']['hits@1']['mean']:.4f}±{lr_['biencoder_v2v_test']['hits@1']['sd']:.4f}")
    for k, v in (results.get("speed") or {}).items():
        print(f"== speed {k}: {v['samples_per_second']} samples/s; MB per 10k mentions {v['mb_per_10k_mentions']}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
