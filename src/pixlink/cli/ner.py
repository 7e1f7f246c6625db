"""``pixlink ner``: train the tweet NER model, tag a text or a CoNLL file.

* ``pixlink ner train --train A.txt [--train B.txt] --dev D.txt [--dev E.txt] --out DIR``
* ``pixlink ner tag "text" [--json]``
* ``pixlink ner tag-conll FILE [--json]`` (scores against the file's gold tags when it has any)

Tagging uses the ``ner`` role of the chosen profile: pixlink's trained model
(``pixlink_ner``) unless ``--backend`` or ``--weights`` says otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from .common import check_input_dir, check_output_dir, console, handle_errors, print_json, report_notes

ner_app = typer.Typer(help="Named entities of tweets: train, tag a text, tag a CoNLL file.", no_args_is_help=True)


def _tagger(backend: Optional[str], weights: Optional[Path], profile: str, scheme: Optional[str], aux: bool,
            threads: Optional[int]) -> tuple[Any, dict[str, Any]]:
    """The ner backend to use and how it was chosen (reported in --json output)."""
    from ..models import Profile, get_spec

    check_input_dir(weights, "--weights")
    if weights is not None:  # a model directory from `pixlink ner train`: no profile choice to make
        if backend not in (None, "pixlink_ner"):
            from ..errors import Errors, InputError

            raise InputError(Errors.E500.format(what="--weights", index="-",
                                                reason=f"only applies to pixlink_ner, not {backend!r}"))
        tagger = get_spec("ner", "pixlink_ner").factory(weights=weights, label_scheme=scheme, aux=aux, threads=threads)
        return tagger, {"ner": {"role": "ner", "backend": "pixlink_ner", "kind": "trained",
                                "reason": f"--weights {weights}", "fallback": False}}
    opts: dict[str, Any] = {}
    if backend in (None, "pixlink_ner"):
        opts = {"label_scheme": scheme, "aux": aux, "threads": threads}
    elif scheme is not None:
        from ..spans import check_scheme

        opts = {"misc_label": check_scheme(scheme)}
    prof = Profile(profile, overrides={"ner": backend} if backend else {}, options={"ner": opts})
    tagger = prof.get("ner")
    return tagger, prof.describe()


@ner_app.command("train")
@handle_errors
def train_command(
    train: list[Path] = typer.Option(..., "--train", help="CoNLL training file (repeat for several)."),
    dev: list[Path] = typer.Option(..., "--dev", help="CoNLL dev file for model selection (repeat); its tweets are removed from training."),
    out: Path = typer.Option(..., "--out", help="Directory for model.safetensors + config.json."),
    backbone: str = typer.Option("mpnet", "--backbone", help="Packaged backbone name (mpnet: the shipped model's; minilm: 8x faster, ~2-3 F1 lower) or a local model directory."),
    epochs: int = typer.Option(40, "--epochs", help="Maximum epochs."),
    patience: int = typer.Option(8, "--patience", help="Stop after this many epochs without dev improvement."),
    heads: int = typer.Option(3, "--heads", help="Train this many heads (seeds seed, seed+1, ...) and decode them together (the shipped model has 3)."),
    batch_size: int = typer.Option(32, "--batch-size"),
    lr: float = typer.Option(2e-3, "--lr", help="Adam learning rate."),
    proj: int = typer.Option(256, "--proj", help="Input projection size before the BiLSTM."),
    hidden: int = typer.Option(128, "--hidden", help="BiLSTM hidden size per direction."),
    word_dim: int = typer.Option(50, "--word-dim", help="Trained word-embedding size (0: none)."),
    min_word_count: int = typer.Option(2, "--min-word-count", help="Words seen fewer times share the unknown vector."),
    dropout: float = typer.Option(0.5, "--dropout"),
    seed: int = typer.Option(13, "--seed"),
    condition: bool = typer.Option(True, "--condition/--no-condition", help=(
        "Tell the head which dataset's annotation convention a post follows (twitter2015 / twitter2017, by "
        "folder name), dropped 30% of the time so that it also tags without it (the shipped model's setting).")),
    threads: int = typer.Option(1, "--threads", help="Torch threads (1 is fastest on a busy shared CPU)."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Backbone feature cache (default: $PIXLINK_CACHE/ner-features)."),
) -> None:
    """Train the tweet NER head from CoNLL files (reproduces the shipped model)."""
    from ..config import cache_dir as default_cache
    from ..ner.train import TrainOptions, train as run

    check_output_dir(out, "--out")
    check_output_dir(cache_dir, "--cache-dir")
    opts = TrainOptions(backbone=backbone, epochs=epochs, patience=patience, heads=heads, batch_size=batch_size, lr=lr, proj=proj,
                        hidden=hidden, word_dim=word_dim, min_word_count=min_word_count, dropout=dropout, seed=seed,
                        threads=threads, condition=condition)
    cfg = run(train, dev, out, opts, cache_dir=cache_dir or (default_cache() / "ner-features"))
    d = cfg["data"]
    console.print(f"training tweets kept: {d['kept']} (removed: {d['removed_dev_overlap_id']} dev IMGIDs, "
                  f"{d['removed_dev_overlap_text']} dev texts, {d['removed_duplicates']} duplicates)")
    for name, r in cfg["dev"]["per_file"].items():
        per = ", ".join(f"{t} {v['f1'] * 100:.1f}" for t, v in r["per_type"].items())
        console.print(f"{name}: F1 {r['f1'] * 100:.2f} ({per})")
    console.print(f"best epoch {cfg['best_epoch']} ({cfg['n_heads']} head(s)); model in {out}")


@ner_app.command("tag")
@handle_errors
def tag_command(
    text: str = typer.Argument(..., help="The text to tag."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    scheme: Optional[str] = typer.Option(None, "--label-scheme", help="MISC (default), OTHER, or a dataset name (twitter2015, twitter2017, gmner)."),
    backend: Optional[str] = typer.Option(None, "--backend", help="ner backend (default: the profile's first, pixlink_ner)."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="A model directory from `pixlink ner train`."),
    profile: str = typer.Option("auto", "--profile", help="Model profile: offline, hub or auto."),
    aux: bool = typer.Option(False, "--aux/--no-aux", help="Append auxiliary knowledge from the generate role (RiVEG)."),
    threads: Optional[int] = typer.Option(None, "--threads"),
) -> None:
    """Named entities of one text."""
    tagger, backends = _tagger(backend, weights, profile, scheme, aux, threads)
    spans = tagger.tag([text])[0]
    notes = list(getattr(tagger, "notes", []))
    if as_json:
        print_json({"text": text, "entities": [s.__dict__ for s in spans], "backend": tagger.name,
                    "model_id": tagger.model_id, "backends": backends, "notes": notes})
        report_notes(notes, as_json)
        return
    if not spans:
        typer.echo("(no entities)")
    for s in spans:
        sc = f"\t{s.score:.2f}" if s.score is not None else ""
        typer.echo(f"{s.text}\t{s.type}\t{s.start}-{s.end}{sc}")
    report_notes(notes, as_json)


@ner_app.command("tag-conll")
@handle_errors
def tag_conll_command(
    path: Path = typer.Argument(..., help="A CoNLL file (IMGID line, token<TAB>tag lines, blank line between posts)."),
    as_json: bool = typer.Option(False, "--json", help="JSON: per post its predicted entities, and the scores."),
    scheme: Optional[str] = typer.Option(None, "--label-scheme", help="Default: the dataset's own (from the folder name), else MISC."),
    backend: Optional[str] = typer.Option(None, "--backend"),
    weights: Optional[Path] = typer.Option(None, "--weights"),
    profile: str = typer.Option("auto", "--profile"),
    aux: bool = typer.Option(False, "--aux/--no-aux"),
    threads: Optional[int] = typer.Option(None, "--threads"),
) -> None:
    """Tag every post of a CoNLL file; print CoNLL with a predicted-tag column (or JSON), and F1 on stderr."""
    from ..conll import load_conll
    from ..spans import DATASET_TYPES, span_prf, spans_to_bio

    res = load_conll(path)
    posts = res.items
    ds = res.report.dataset
    if scheme is None and ds in DATASET_TYPES:
        scheme = ds
    tagger, backends = _tagger(backend, weights, profile, scheme, aux, threads)
    pred = tagger.tag_tokens([p.tokens for p in posts])
    gold = [[(e.start, e.end, e.type) for e in p.entities] for p in posts]
    scores = span_prf(gold, pred, types=list(DATASET_TYPES[ds]) if ds in DATASET_TYPES else None)
    if as_json:
        print_json({"file": str(path), "dataset": ds, "backend": tagger.name, "model_id": tagger.model_id,
                    "backends": backends, "scores": scores, "load_errors": [e.to_dict() for e in res.report.errors],
                    "posts": [{"id": p.id, "tokens": p.tokens, "pred": [list(s) for s in sp], "gold": [list(g) for g in gd]}
                              for p, sp, gd in zip(posts, pred, gold)]})
        return
    lines = []
    for p, sp in zip(posts, pred):
        gtags = spans_to_bio(len(p.tokens), [(e.start, e.end, e.type) for e in p.entities])
        ptags = spans_to_bio(len(p.tokens), sp)
        lines.append(f"IMGID:{p.meta.get('image_id', p.id)}")
        lines += [f"{w}\t{g}\t{q}" for w, g, q in zip(p.tokens, gtags, ptags)]
        lines.append("")
    typer.echo("\n".join(lines))
    per = ", ".join(f"{t} {v['f1'] * 100:.1f}" for t, v in scores["per_type"].items())
    console.print(f"{len(posts)} posts; F1 {scores['f1'] * 100:.2f} (P {scores['precision'] * 100:.1f}, "
                  f"R {scores['recall'] * 100:.1f}); {per}")


def register(app: typer.Typer) -> None:
    """Add ``pixlink ner ...`` to the main app."""
    app.add_typer(ner_app, name="ner")
