"""``pixlink train``: learn linkers from data (VNEL's bi-encoders, IIER), split datasets, show
checkpoints. The guide is docs/train.md.

    pixlink train split DATA --out DIR [--ratios 7:1:2] [--seed 0]
    pixlink train biencoder --train DATA --dev DATA --kb KB --out DIR [--task text|v2vel|v2tel|v2vtel]
    pixlink train iier --train DATA --dev DATA --kb KB --out DIR [--text-only] [--no-visual-prompt]
    pixlink train instance-head KB [--photos 2] [--held-out 600] [--training auto|full|mini-batch]
    pixlink train show DIR

``DATA`` is any dataset ``pixlink eval link`` reads: a ``mentions.jsonl`` or ``FORMAT:PATH``
(``wikimel:``, ``richpediamel:``, ``vpwiki:``, ``wikidiverse:``, ``wikiperson:``, ``maskoven:``,
``oven:``). The model directory is what ``pixlink link --reranker DIR`` and ``eval link
--reranker DIR`` load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from .common import check_input_dir, check_output_dir, console, handle_errors, print_json

train_app = typer.Typer(help="Train linkers (biencoder, iier), split datasets, show checkpoints.", no_args_is_help=True)


def _seeds(text: str) -> tuple[int, ...]:
    from ..errors import Errors, InputError

    try:
        if "-" in text and "," not in text:
            a, b = (int(x) for x in text.split("-"))
            return tuple(range(a, b + 1))
        return tuple(int(x) for x in text.split(","))
    except ValueError as exc:
        raise InputError(Errors.E770.format(option="--seeds", value=text, reason="e.g. 0 or 0,1,2 or 0-4")) from exc


def _read(spec: Optional[str], images: Optional[Path]) -> Any:
    from ..train.data import read_dataset

    if spec is None:
        return None, None
    items, rep = read_dataset(spec, image_root=images)
    return items, {"path": spec, "load_report": rep}


def _common(epochs: int, batch_size: int, lr: Optional[float], seeds: str, max_train: Optional[int],
            max_dev: Optional[int], device: Optional[str], threads: Optional[int], patience: int) -> dict[str, Any]:
    d: dict[str, Any] = {"epochs": epochs, "batch_size": batch_size, "seeds": _seeds(seeds), "max_train": max_train,
                         "max_dev": max_dev, "device": device, "threads": threads, "patience": patience}
    if lr is not None:
        d["lr"] = lr
    return d


def _report(results: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(results)
        return
    base = results.get("untrained") or {}
    if base.get("dev"):
        u = base["dev"]
        console.print(f"untrained (frozen encoders), dev: hits@1={u['hits@1']:.4f} mrr={u.get('mrr', float('nan')):.4f}",
                      highlight=False)
    for r in results.get("retrieval", {}).items():
        console.print(f"candidates ({results['candidates']['space']} top {results['candidates']['k']}), {r[0]}: "
                      f"hits@1={r[1]['hits@1']:.4f} hits@{results['candidates']['k']} recall bound", highlight=False)
    for part in ("dev", "test"):
        if part in results:
            fig = results[part]
            cells = ", ".join(f"{k}={v['mean']:.4f}±{v['sd']:.4f}" for k, v in fig.items()
                              if k.startswith(("hits@1", "hits@3", "hits@5", "mrr")) and k != "hits@10")
            console.print(f"{part} ({len(results['seeds'])} seed(s)): {cells}", highlight=False)
    console.print(f"model: {results['out']} (best seed {results['best_seed']}); "
                  f"{results.get('train_samples_per_second')} training samples/s", highlight=False)


def _train(trainer: Any, opts: Any, train: str, dev: str, test: Optional[str], images: Optional[Path], kb: Path,
           out: Path, profile: str, cache_dir: Optional[Path], resume: bool, overwrite: bool, as_json: bool) -> None:
    """Check the options, read the data (a bad file fails before any model loads), train, report."""
    opts.check()
    tr, tr_info = _read(train, images)
    dv, dv_info = _read(dev, images)
    te, te_info = _read(test, images)
    res = trainer(tr, dv, kb, out, opts, profile=profile, test=te, cache_dir=cache_dir, progress=not as_json,
                  resume=resume, overwrite=overwrite,
                  data_info={"train": tr_info, "dev": dv_info, **({"test": te_info} if te_info else {})})
    _report(res, as_json)


@train_app.command("split")
@handle_errors
def split_command(
    data: str = typer.Argument(..., help="A dataset: mentions.jsonl or FORMAT:PATH (e.g. wikimel:Wikidata-MEL.json)."),
    out: Path = typer.Option(..., "--out", help="Folder for train/dev/test mentions.jsonl."),
    ratios: str = typer.Option("7:1:2", "--ratios", help="train:dev:test (MIMIC: 7:1:2)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the shuffle."),
    images: Optional[Path] = typer.Option(None, "--images", help="Folder the dataset's image paths are relative to."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Split a dataset with a fixed seed (mentions of one record stay together) into mentions.jsonl files."""
    from ..train.data import parse_ratios, read_dataset, split_mentions, write_mentions

    check_output_dir(out, "--out")
    check_input_dir(images, "--images")
    items, rep = read_dataset(data, image_root=images)
    parts = split_mentions(items, parse_ratios(ratios), seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    summary = {"data": data, "seed": seed, "ratios": ratios, "load_report": rep,
               "parts": {k: {"path": str(write_mentions(v, out / f"{k}.mentions.jsonl")), "n": len(v)}
                         for k, v in parts.items()}}
    if as_json:
        print_json(summary)
        return
    for k, v in summary["parts"].items():
        console.print(f"{k}: {v['n']} mentions -> {v['path']}", highlight=False)


@train_app.command("biencoder")
@handle_errors
def biencoder_command(
    train: str = typer.Option(..., "--train", help="Training data (mentions.jsonl or FORMAT:PATH)."),
    dev: str = typer.Option(..., "--dev", help="Dev data: picks the best epoch, calibrates the score."),
    kb: Path = typer.Option(..., "--kb", help="KB directory: the entities to link to (every one is ranked)."),
    out: Path = typer.Option(..., "--out", help="Model folder (model.safetensors + config.json + results.json)."),
    test: Optional[str] = typer.Option(None, "--test", help="Test data, scored with the best epoch."),
    task: str = typer.Option("text", "--task", help="text (t2t), v2vel, v2tel, v2vtel, face, person."),
    profile: str = typer.Option("offline", "--profile", help="Model profile of the frozen encoders."),
    images: Optional[Path] = typer.Option(None, "--images", help="Folder the datasets' image paths are relative to."),
    epochs: int = typer.Option(20, "--epochs", min=1),
    batch_size: int = typer.Option(128, "--batch-size", min=1),
    lr: Optional[float] = typer.Option(None, "--lr", help="AdamW learning rate (default 1e-3 for the adapters)."),
    temperature: float = typer.Option(0.05, "--temperature", help="InfoNCE temperature."),
    hard_negatives: int = typer.Option(4, "--hard-negatives", min=0, help="Mined wrong entities per mention."),
    hidden: int = typer.Option(256, "--hidden", min=1, help="Adapter hidden width."),
    view: str = typer.Option("crop", "--view", help="Mention image view: crop, masked_crop, red_box, image."),
    seeds: str = typer.Option("0", "--seeds", help="Seeds: 0 | 0,1,2 | 0-4 (figures as mean ± sd)."),
    patience: int = typer.Option(0, "--patience", min=0, help="Stop after N epochs without a better dev figure."),
    max_train: Optional[int] = typer.Option(None, "--max-train", min=1, help="Subsample the training mentions."),
    max_dev: Optional[int] = typer.Option(None, "--max-dev", min=1, help="Subsample the dev mentions."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda, cuda:N."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Torch CPU threads."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Feature cache (default $PIXLINK_CACHE/train-features)."),
    resume: bool = typer.Option(False, "--resume", help="Continue a stopped training in --out."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a model already in --out."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Train VNEL's bi-encoder adapters (InfoNCE, hard negatives) on frozen encoders."""
    from ..train.biencoder import BiEncoderOptions, train_biencoder
    from ..train.loop import options_from

    check_input_dir(kb, "--kb")
    check_output_dir(out, "--out")
    check_input_dir(images, "--images")
    opts = options_from(BiEncoderOptions, {**_common(epochs, batch_size, lr, seeds, max_train, max_dev, device, threads,
                                                     patience),
                                           "task": task, "temperature": temperature, "hard_negatives": hard_negatives,
                                           "hidden": hidden, "view": view})
    _train(train_biencoder, opts, train, dev, test, images, kb, out, profile, cache_dir, resume, overwrite, as_json)


@train_app.command("iier")
@handle_errors
def iier_command(
    train: str = typer.Option(..., "--train", help="Training data (mentions.jsonl or FORMAT:PATH)."),
    dev: str = typer.Option(..., "--dev", help="Dev data: picks the best epoch, calibrates the score."),
    kb: Path = typer.Option(..., "--kb", help="KB directory."),
    out: Path = typer.Option(..., "--out", help="Model folder."),
    test: Optional[str] = typer.Option(None, "--test", help="Test data, scored with the best epoch."),
    profile: str = typer.Option("offline", "--profile", help="Model profile of the frozen encoders."),
    images: Optional[Path] = typer.Option(None, "--images", help="Folder the datasets' image paths are relative to."),
    text_only: bool = typer.Option(False, "--text-only", help="The text path: TFI alone, no image features."),
    units: Optional[str] = typer.Option(None, "--units", help="Units to train, e.g. tfi,vfi,cmfi (overrides --text-only)."),
    no_visual_prompt: bool = typer.Option(False, "--no-visual-prompt",
                                          help="Ablation: the whole image without the red box."),
    detective: Optional[str] = typer.Option(None, "--detective",
                                            help="Detective-VLM text: describe, offline (OCR + face name), auto; "
                                                 "default none (the no-VLM-text ablation)."),
    layers: Optional[str] = typer.Option(None, "--layers", help="Image layers of the CLS tokens, e.g. 4,10,11,12."),
    text_role: str = typer.Option("text_embed", "--text-role", help="text_embed (MiniLM offline) or image_text (CLIP)."),
    image_role: str = typer.Option("image_embed", "--image-role", help="image_embed or image_text."),
    epochs: int = typer.Option(20, "--epochs", min=1),
    batch_size: int = typer.Option(128, "--batch-size", min=1),
    lr: Optional[float] = typer.Option(None, "--lr", help="AdamW learning rate (default 1e-5, the paper's)."),
    lam: float = typer.Option(1.0, "--lambda", help="Weight of the unit losses (paper: 1)."),
    temperature: float = typer.Option(1.0, "--temperature", help="Softmax temperature (paper: none = 1)."),
    candidates: int = typer.Option(50, "--candidates", min=1, help="Dev/test: re-rank this many retrieved entities."),
    candidate_space: str = typer.Option("t2t", "--candidate-space", help="The frozen space retrieving them."),
    seeds: str = typer.Option("0", "--seeds", help="Seeds: 0 | 0,1,2 | 0-4 (the paper reports five)."),
    patience: int = typer.Option(0, "--patience", min=0),
    max_train: Optional[int] = typer.Option(None, "--max-train", min=1),
    max_dev: Optional[int] = typer.Option(None, "--max-dev", min=1),
    device: Optional[str] = typer.Option(None, "--device"),
    threads: Optional[int] = typer.Option(None, "--threads", min=1),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir"),
    resume: bool = typer.Option(False, "--resume"),
    overwrite: bool = typer.Option(False, "--overwrite"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Train IIER's interaction units (TFI / VFI / CMFI) with its loss on frozen features."""
    from ..train.iier import IIEROptions, train_iier
    from ..train.loop import options_from

    check_input_dir(kb, "--kb")
    check_output_dir(out, "--out")
    check_input_dir(images, "--images")
    u = tuple(units.split(",")) if units else (("tfi",) if text_only else ("tfi", "vfi", "cmfi"))
    vals: dict[str, Any] = {**_common(epochs, batch_size, lr, seeds, max_train, max_dev, device, threads, patience),
                            "units": u, "view": "image" if no_visual_prompt else "red_box", "detective": detective,
                            "lam": lam, "temperature": temperature, "candidates": candidates,
                            "candidate_space": candidate_space, "text_role": text_role, "image_role": image_role}
    if layers:
        vals["layers"] = tuple(int(x) for x in layers.split(","))
    opts = options_from(IIEROptions, vals)
    _train(train_iier, opts, train, dev, test, images, kb, out, profile, cache_dir, resume, overwrite, as_json)


@train_app.command("instance-head")
@handle_errors
def instance_head_command(
    kb: Path = typer.Argument(..., help="KB directory: the head learns its reference images."),
    photos: int = typer.Option(2, "--photos", min=1, help="New photos rendered of each reference image."),
    crops: int = typer.Option(2, "--crops", min=1, help="Views cut from each photo."),
    held_out: int = typer.Option(600, "--held-out", min=0,
                                 help="Held-out photos (other seeds) for the head's calibration and figures."),
    epochs: int = typer.Option(300, "--epochs", min=1),
    workers: int = typer.Option(1, "--workers", min=1, help="Processes rendering the photos."),
    training: str = typer.Option("auto", "--training",
                                 help="full, mini-batch, or auto: full batch when it fits --max-memory-gb."),
    passes: int = typer.Option(100, "--passes", min=1, help="Mini-batch training: times each view is seen."),
    max_memory_gb: float = typer.Option(8.0, "--max-memory-gb", min=0.001,
                                        help="Refuse a KB whose training needs more (estimated first)."),
    embed: bool = typer.Option(True, "--embed/--no-embed", help="Then embed the KB's instance vectors with the head."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Discard cached parts and a head already in the KB."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Train the KB's own instance head on composites of its reference images (docs/instance-matching.md)."""
    from ..link.embed import embed_kb
    from ..link.kbhead import kb_head
    from ..models import Profile
    from ..train.instance_adapt import AdaptOptions, adapt_instance_head

    check_input_dir(kb, "KB")
    if kb_head(kb) is not None and not overwrite:
        from ..errors import Errors, InputError

        raise InputError(Errors.E776.format(path=str(kb / "models")))
    opts = AdaptOptions(photos=photos, crops=crops, held_out=held_out, epochs=epochs, workers=workers,
                        training=training, passes=passes, max_memory_gb=max_memory_gb)
    report = adapt_instance_head(kb, opts, overwrite=overwrite, progress=not as_json)
    embed = embed and report["installed"]
    if embed:
        report["embed"] = {k: v for k, v in embed_kb(kb, Profile("offline"), ["instance"], progress=not as_json)
                           ["instance"].items() if k != "errors"}
    if as_json:
        print_json(report)
        return
    h, c = report["held_out"], report["calibration"]
    console.print(f"[bold]instance head[/] of {report['references']} reference images ({report['entities']} entities), "
                  f"{report['views']} training views ({report['fit']['training']['mode']}), in {report['seconds']:.0f} s: "
                  f"{report['head']}", highlight=False)
    if h["views"]:
        console.print(f"held-out views ({h['views']}), Hits@1 / Hits@5: this head {h['adapted']['hits@1']:.3f} / "
                      f"{h['adapted']['hits@5']:.3f}, the shipped head {h['shipped']['hits@1']:.3f} / "
                      f"{h['shipped']['hits@5']:.3f}; calibration center {c['center']}, slope {c['slope']}",
                      highlight=False)
    if not report["installed"]:
        console.print(f"[yellow]not installed[/]: {report['reason']}", highlight=False)
    if embed:
        e = report["embed"]
        console.print(f"instance vectors: {e.get('vectors', 0)} of {e.get('entities', 0)} entities by {e.get('model_id')}",
                      highlight=False)


@train_app.command("show")
@handle_errors
def show_command(
    model: Path = typer.Argument(..., help="A model folder written by pixlink train."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """What a trained model is: kind, features and their models, best epoch, dev figures, calibration."""
    from ..link.rerank import describe_checkpoint

    d = describe_checkpoint(model)
    if as_json:
        print_json(d)
        return
    console.print(f"{model}: {d['kind']}" + (f" ({d['task']})" if d.get("task") else ""), highlight=False)
    for name, f in (d.get("features") or {}).items():
        console.print(f"  {name}: {f}", highlight=False)
    best = d.get("best") or {}
    if best:
        figs = ", ".join(f"{k}={v:.4f}" for k, v in best.get("dev", {}).items() if isinstance(v, float))
        console.print(f"  best epoch {best.get('epoch')}: dev {figs}", highlight=False)
    if d.get("calibration"):
        console.print(f"  calibration: {d['calibration']}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``pixlink train ...`` to the main app."""
    app.add_typer(train_app, name="train")
