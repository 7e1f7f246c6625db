"""``pixlink eval``: score the linker, the NER tagger and the GMNER pipeline on benchmarks.

Every command writes into ``--out`` (default ``eval-runs/<task>-<data>-<system>``):
``predictions.jsonl`` (per item, appended as it goes; a re-run resumes), ``results.json``,
``results.md`` (the paper's table) and a plot. ``--json`` prints the results on stdout.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

import typer

from .common import (check_input_dir, check_input_file, check_output_dir, console, handle_errors, load_config,
                     print_json, report_notes)

eval_app = typer.Typer(help="Evaluate on benchmarks: eval ner | link | gmner | score | check.", no_args_is_help=True)


def _slug(*parts: Any) -> str:
    s = "-".join(str(p) for p in parts if p)
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s)


def _summary(results: dict[str, Any], keys: list[str]) -> None:
    shown = ", ".join(
        f"{k}={results[k]:.4f}" if isinstance(results.get(k), float) else f"{k}={results.get(k)}" for k in keys
    )
    console.print(shown, highlight=False)
    report_notes(results.get("notes") or [], as_json=False)


@eval_app.command("ner")
@handle_errors
def ner_command(
    conll: Path = typer.Argument(..., help="CoNLL file: Twitter-2015/2017 or Twitter-GMNER (IMGID: + token<TAB>BIO)."),
    model: Optional[str] = typer.Option(None, "--model", help="NER backend (spacy_sm, pixlink_ner...); default: the profile's."),
    profile: str = typer.Option("offline", "--profile", help="Model profile: offline, hub or auto."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="twitter2015, twitter2017, gmner (default: from the folder name)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (resumes when it holds the same run)."),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N tweets."),
    restart: bool = typer.Option(False, "--restart", help="Drop the predictions in --out and start again."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON on stdout."),
) -> None:
    """Entity-level P/R/F1 of an NER tagger on a CoNLL file; types compared as the dataset names them."""
    from ..conll import load_conll
    from ..spans import DATASET_TYPES
    from ..eval.runner import run_ner, save
    from ..models import Profile

    check_output_dir(out, "--out")
    data = load_conll(conll, dataset=dataset)
    posts = data.items[:limit] if limit else data.items
    name = data.report.dataset
    prof = Profile(profile, overrides={"ner": model} if model else {})
    tagger = prof.get("ner")
    from ..spans import SCHEMES

    if name in SCHEMES and hasattr(tagger, "label_scheme"):
        # the dataset's own label names, and its annotation convention for a head trained with it
        tagger.label_scheme = name
    system = getattr(tagger, "name", model or "ner")
    run_info = {"data": str(conll.resolve()), "dataset": name, "model": system,
                "model_id": getattr(tagger, "model_id", None), "profile": profile}
    out = out or Path("eval-runs") / _slug("ner", name or conll.parent.name, conll.stem, system)
    results = run_ner(posts, tagger, out, run_info, labels=DATASET_TYPES.get(name) if name else None,
                      batch_size=batch_size, restart=restart, show_progress=not as_json)
    results.update({"data": str(conll), "dataset": name, "system": system, "backends": prof.describe(),
                    "load_report": data.report.to_dict() | {"errors": data.report.to_dict()["errors"][:20]}})
    paths = save(results, out, title=f"NER on {name or conll.parent.name}/{conll.name}")
    if as_json:
        print_json(results)
        report_notes(results.get("notes") or [], as_json)
        return
    _summary(results, ["n", "precision", "recall", "f1", "n_errors"])
    for t, r in results["per_type"].items():
        console.print(f"  {t:6s} P={r['precision']:.4f} R={r['recall']:.4f} F1={r['f1']:.4f} (gold {r['n_gold']})",
                      highlight=False)
    console.print(f"wrote {', '.join(paths.values())}", highlight=False)


@eval_app.command("link")
@handle_errors
def link_command(
    mentions: Path = typer.Argument(..., help="mentions.jsonl, or a dataset file read with --format."),
    kb: Path = typer.Option(..., "--kb", help="KB directory (pixlink kb ...)."),
    fmt: str = typer.Option("auto", "--format", help="Dataset format (see `pixlink eval check --help`); auto: by file name."),
    profile: str = typer.Option("auto", "--profile", help="Model profile: offline, hub or auto."),
    image_root: Optional[Path] = typer.Option(None, "--images", help="Folder the dataset's image paths are relative to."),
    k: int = typer.Option(20, "--k", min=1, help="Candidates kept per mention (Hits@k up to this k)."),
    ties: str = typer.Option("pessimistic", "--ties", help="Score ties: pessimistic, optimistic, average, order."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (resumes when it holds the same run)."),
    batch_size: int = typer.Option(16, "--batch-size", min=1),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N mentions."),
    restart: bool = typer.Option(False, "--restart", help="Drop the predictions in --out and start again."),
    config: Optional[Path] = typer.Option(None, "--config", help="LinkerConfig JSON."),
    fusion: Optional[Path] = typer.Option(None, "--fusion", help="Fusion parameters JSON (`pixlink link calibrate`)."),
    device: Optional[str] = typer.Option(None, "--device", help="Torch device: auto, cpu, cuda, cuda:N (default: PIXLINK_DEVICE, else auto)."),
    reranker: Optional[Path] = typer.Option(None, "--reranker", help="A trained head (`pixlink train`) re-ranking the "
                                                                    "best fused candidates."),
    vnel: Optional[str] = typer.Option(None, "--vnel-task", help="VNEL's task: v2vel (image<->image), v2tel "
                                                                 "(image<->text), v2vtel (both); names the signals."),
    order: Optional[str] = typer.Option(None, "--order", help="Recall then re-rank, RECALL:RERANK signals, e.g. "
                                                              "v2t:v2v or v2v:v2t (VNEL's two orders)."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON on stdout."),
) -> None:
    """Hits@1/3/5/10/20, MRR@k and NIL accuracy of the linker on a dataset (per split too)."""
    from ..errors import Errors, ModelUnavailableError
    from ..eval.datasets import load_mentions_dataset
    from ..eval.metrics import DEFAULT_KS
    from ..eval.runner import run_link, save

    check_output_dir(out, "--out")
    check_input_dir(image_root, "--images")
    check_input_file(fusion, "--fusion")
    try:
        from ..link import Fusion, Linker, LinkerConfig
    except ImportError as exc:
        raise ModelUnavailableError(Errors.E606.format(reason=f"cannot import pixlink.link ({exc})")) from exc
    overrides = _vnel_overrides(vnel, order)
    if reranker is not None:
        check_input_dir(reranker, "--reranker")
        overrides["reranker"] = str(reranker)
    cfg = load_config(config, LinkerConfig, overrides=overrides) if config else LinkerConfig(**overrides)
    fusion_params = Fusion.load(fusion) if fusion else None
    data = load_mentions_dataset(mentions, fmt=fmt, image_root=image_root)
    items = data.items[:limit] if limit else data.items
    from ..device import requested_device

    linker = Linker.from_kb(kb, profile=profile, config=cfg, fusion=fusion_params,
                            device=requested_device(device) if device else None)
    run_info = {"data": str(mentions.resolve()), "format": data.report.dataset, "kb": str(kb.resolve()),
                "profile": profile, **({"reranker": str(reranker.resolve())} if reranker else {}),
                **({"vnel_task": vnel} if vnel else {}), **({"order": order} if order else {})}
    out = out or Path("eval-runs") / _slug("link", data.report.dataset, mentions.stem, kb.name, profile)
    ks = tuple(x for x in DEFAULT_KS if x <= k)
    results = run_link(items, linker, out, run_info, k=k, batch_size=batch_size, restart=restart,
                       show_progress=not as_json, ks=ks, ties=ties)
    results.update({"data": str(mentions), "format": data.report.dataset, "kb": str(kb), "system": f"pixlink ({profile})",
                    "load_report": data.report.to_dict() | {"errors": data.report.to_dict()["errors"][:20]}})
    paths = save(results, out, title=f"Linking on {mentions.name}")
    if as_json:
        print_json(results)
        report_notes(results.get("notes") or [], as_json)
        return
    from ..eval.report import mrr_key

    _summary(results, ["n", *[f"hits@{x}" for x in ks], mrr_key(results), "nil_accuracy", "n_missing_image", "n_errors"])
    console.print(f"wrote {', '.join(paths.values())}", highlight=False)


VNEL_TASKS = {"v2vel": ("v2v",), "v2tel": ("v2t",), "v2vtel": ("v2v", "v2t")}
"""VNEL's tasks as the linker's signals (Sun et al., 2022): V2VEL links by the entities' images,
V2TEL by their text in a joint image-text space, V2VTEL by both."""


def _vnel_overrides(task: Optional[str], order: Optional[str]) -> dict[str, Any]:
    """LinkerConfig settings of ``--vnel-task`` and ``--order RECALL:RERANK``."""
    from ..errors import Errors, InputError

    out: dict[str, Any] = {}
    if task is not None:
        if task not in VNEL_TASKS:
            raise InputError(Errors.E010.format(what="--vnel-task", value=task, reason=f"one of {sorted(VNEL_TASKS)}"))
        out["signals"] = VNEL_TASKS[task]
    if order is not None:
        recall, sep, rer = order.partition(":")
        if not sep or not recall or not rer or recall == rer:
            raise InputError(Errors.E010.format(what="--order", value=order, reason="RECALL:RERANK, two signals"))
        out.update(mode="rerank", recall_signal=recall, rerank_signal=rer)
        if task is not None and not {recall, rer} <= set(VNEL_TASKS[task]) | {"face"}:
            raise InputError(Errors.E010.format(what="--order", value=order,
                                                reason=f"the signals of {task} are {VNEL_TASKS[task]}"))
        if "signals" in out:
            out["signals"] = tuple(dict.fromkeys((*out["signals"], recall, rer)))
    return out


@eval_app.command("gmner")
@handle_errors
def gmner_command(
    conll: Path = typer.Argument(..., help="Twitter-GMNER CoNLL split (train.txt / dev.txt / test.txt)."),
    images: Path = typer.Option(..., "--images", help="Folder of the tweet images (<IMGID>.jpg)."),
    xml: Optional[Path] = typer.Option(None, "--xml", help="VOC xml folder (default: xml/ beside the CoNLL file)."),
    masks: Optional[Path] = typer.Option(None, "--masks", help="Twitter-SMNER gold masks JSONL (adds SMNER, EES, mIoU)."),
    kb: Optional[Path] = typer.Option(None, "--kb", help="KB directory for the pipeline's expansions and links."),
    profile: str = typer.Option("auto", "--profile", help="Model profile: offline, hub or auto."),
    iou: float = typer.Option(0.5, "--iou", min=0.0, max=1.0, help="IoU above which a region is right."),
    iou_inclusive: bool = typer.Option(False, "--iou-inclusive",
                                       help="Count IoU equal to --iou as right (RiVEG's >= rule; default the GMNER paper's >)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (resumes when it holds the same run)."),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N tweets."),
    restart: bool = typer.Option(False, "--restart", help="Drop the predictions in --out and start again."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON on stdout."),
) -> None:
    """GMNER, MNER and EEG P/R/F1 (SMNER, EES, mIoU with --masks) of the GMNER pipeline, and F1 against IoU."""
    from ..errors import Errors, ModelUnavailableError
    from ..spans import DATASET_TYPES
    from ..eval.datasets.gmner import load_gmner
    from ..eval.runner import run_gmner, save

    check_output_dir(out, "--out")
    check_input_dir(images, "--images")
    check_input_file(masks, "--masks")
    data = load_gmner(conll, xml_dir=xml, image_root=images, masks=masks)
    posts = data.items[:limit] if limit else data.items
    try:
        from ..ner.gmner import GMNERConfig, GMNERPipeline
    except ImportError as exc:
        raise ModelUnavailableError(Errors.E607.format(reason=f"cannot import pixlink.ner.gmner ({exc})")) from exc
    pipe = GMNERPipeline.from_kb(kb, profile=profile, config=GMNERConfig(label_scheme="OTHER", segment=masks is not None))
    run_info = {"data": str(conll.resolve()), "images": str(images.resolve()), "kb": str(kb.resolve()) if kb else None,
                "profile": profile, "masks": masks is not None, **({"iou_inclusive": True} if iou_inclusive else {})}
    out = out or Path("eval-runs") / _slug("gmner", conll.stem, profile)
    results = run_gmner(posts, pipe, out, run_info, labels=DATASET_TYPES["gmner"], batch_size=batch_size,
                        restart=restart, show_progress=not as_json, iou_threshold=iou, inclusive=iou_inclusive)
    results.update({"data": str(conll), "system": f"pixlink ({profile})",
                    "load_report": data.report.to_dict() | {"errors": data.report.to_dict()["errors"][:20]}})
    paths = save(results, out, title=f"GMNER on {conll.name}")
    if as_json:
        print_json(results)
        report_notes(results.get("notes") or [], as_json)
        return
    for v in ("gmner", "mner", "eeg", "smner", "ees"):
        if v in results:
            r = results[v]
            console.print(f"{v.upper():6s} P={r['precision']:.4f} R={r['recall']:.4f} F1={r['f1']:.4f}", highlight=False)
    console.print(f"regions judged by {results['iou_rule']}", highlight=False)
    _summary(results, ["n", "n_missing_image", "n_errors"])
    console.print(f"wrote {', '.join(paths.values())}", highlight=False)


@eval_app.command("score")
@handle_errors
def score_command(
    predictions: Path = typer.Argument(..., help="Another system's predictions: CoNLL (ner), RiVEG entity lines "
                                                 "(gmner) or mentions JSONL with prediction/candidates (link)."),
    gold: Optional[Path] = typer.Option(None, "--gold", help="The gold file (CoNLL; RiVEG lines or GMNER CoNLL; a "
                                                            "mention dataset). Not needed with --gold-format inline."),
    task: str = typer.Option(..., "--task", help="ner, gmner or link."),
    gold_format: str = typer.Option("auto", "--gold-format",
                                    help="ner: conll; gmner: riveg or gmner (CoNLL + xml); link: a mention format or "
                                         "inline (the predictions' own 'gold'). auto: from the file."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Label set: twitter2015, twitter2017, gmner "
                                                                  "(default: from the gold's folder)."),
    xml: Optional[Path] = typer.Option(None, "--xml", help="VOC xml folder of a GMNER CoNLL gold (default: xml/ beside it)."),
    iou: float = typer.Option(0.5, "--iou", min=0.0, max=1.0, help="GMNER: IoU above which a region is right."),
    iou_inclusive: bool = typer.Option(False, "--iou-inclusive",
                                       help="GMNER: count IoU equal to --iou as right (RiVEG's >= rule; default the "
                                            "GMNER paper's >)."),
    k: Optional[int] = typer.Option(None, "--k", min=1, help="link: the candidate lists' cut (default: the longest list)."),
    ties: str = typer.Option("pessimistic", "--ties", help="link: score ties: pessimistic, optimistic, average, order."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write results.json, results.md and the plot here."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON on stdout."),
) -> None:
    """Score a predictions file another system wrote, on pixlink's metrics (same tables as eval ner|gmner|link)."""
    from ..eval.runner import save
    from ..eval.score import score_predictions

    check_input_file(predictions, "PREDICTIONS")
    check_input_file(gold, "--gold")
    check_input_dir(xml, "--xml")
    check_output_dir(out, "--out")
    results = score_predictions(predictions, gold, task, gold_format=gold_format, dataset=dataset, xml_dir=xml,
                                iou_threshold=iou, inclusive=iou_inclusive, ties=ties, k=k)
    paths = save(results, out, title=f"{task} predictions of {predictions.name}") if out else {}
    if as_json:
        print_json(results)
        report_notes(results.get("notes") or [], as_json)
        return
    if task == "ner":
        _summary(results, ["n", "precision", "recall", "f1"])
    elif task == "gmner":
        for v in ("gmner", "mner", "eeg"):
            r = results[v]
            console.print(f"{v.upper():6s} P={r['precision']:.4f} R={r['recall']:.4f} F1={r['f1']:.4f}", highlight=False)
        _summary(results, ["n"])
    else:
        from ..eval.report import mrr_key

        ks = [key for key in results if key.startswith("hits@")]
        _summary(results, ["n", *ks, mrr_key(results), "accuracy", "nil_accuracy"])
    if paths:
        console.print(f"wrote {', '.join(paths.values())}", highlight=False)


@eval_app.command("check")
@handle_errors
def check_command(
    path: Path = typer.Argument(..., help="A dataset file."),
    fmt: str = typer.Option("auto", "--format", help="conll, gmner, riveg or a mention format; auto: by file name."),
    image_root: Optional[Path] = typer.Option(None, "--images", help="Folder the image paths are relative to."),
    as_json: bool = typer.Option(False, "--json", help="Print the load report as JSON."),
) -> None:
    """Load a dataset file and report what loaded, what was repaired and what could not be read."""
    from ..eval.datasets import load_any

    check_input_dir(image_root, "--images")
    res = load_any(path, fmt=fmt, image_root=image_root)
    rep = res.report.to_dict()
    rep["n_items"] = len(res.items)
    if as_json:
        print_json(rep)
        return
    console.print(f"{path}: {rep['dataset']}, {rep['n_records']} records, {len(res.items)} items loaded, "
                  f"{rep['n_errors']} errors", highlight=False)
    for key, r in rep["repairs"].items():
        console.print(f"  repaired {r['count']}x: {r['note']}", highlight=False)
    for e in rep["errors"][:10]:
        console.print(f"  [red]skipped[/] {e['item_id']}: {e['error']}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``pixlink eval ...`` to the main app."""
    app.add_typer(eval_app, name="eval")
