"""``pixlink annotate``: build region-entity datasets (PL-VEL's reverse annotation, VP-MEL's VPWiki)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import (check_input_dir, check_input_file, check_output_dir, console, handle_errors, load_config,
                     print_json, report_notes)


@handle_errors
def annotate_command(
    items: Path = typer.Argument(..., help="Items JSONL ({image, entity, question?, mention?, caption?, split?}) "
                                           "or a dataset file read with --format."),
    kb: Path = typer.Option(..., "--kb", help="KB directory (with face vectors for people: pixlink kb embed)."),
    out: Path = typer.Option(..., "--out", help="Output folder (a run in it resumes)."),
    mode: str = typer.Option("maskoven", "--mode", help="maskoven (PL-VEL) or vpwiki (VP-MEL)."),
    fmt: str = typer.Option("items", "--format", help="items (JSONL) or a dataset format (see `pixlink eval check --help`)."),
    image_root: Optional[Path] = typer.Option(None, "--images", help="Folder the items' image paths are relative to."),
    profile: str = typer.Option("auto", "--profile", help="Model profile: offline, hub or auto."),
    device: Optional[str] = typer.Option(None, "--device", help="Torch device: auto, cpu, cuda, cuda:N."),
    config: Optional[Path] = typer.Option(None, "--config", help="AnnotateConfig JSON (thresholds, references, annotators)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N items."),
    sample: int = typer.Option(2000, "--sample", min=0, help="Size of the manual-evaluation sample."),
    sheets: bool = typer.Option(True, "--sheets/--no-sheets", help="Write contact sheets for reviewers."),
    ls_url: Optional[str] = typer.Option(None, "--labelstudio-url",
                                         help="Prefix of image URLs in labelstudio.json, joined with the path "
                                              "relative to --images (e.g. '/data/local-files/?d=')."),
    restart: bool = typer.Option(False, "--restart", help="Drop the report in --out and start again."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
) -> None:
    """Find the region of each item's entity in its image: masks, boxes, per-item reasons, COCO (MaskOVEN-Wiki) output."""
    from ..annotate import AnnotateConfig, ReverseAnnotator, items_from_mentions, read_items, run_annotation
    from ..device import requested_device
    from ..kb import KB
    from ..models import Profile

    check_input_file(items, "ITEMS")
    check_output_dir(out, "--out")
    check_input_dir(image_root, "--images")
    overrides = {"mode": mode}
    cfg = load_config(config, AnnotateConfig, overrides=overrides) if config else AnnotateConfig(**overrides)
    if fmt == "items":
        got, errors = read_items(items, image_root=image_root)
    else:
        from ..eval.datasets import load_mentions_dataset

        data = load_mentions_dataset(items, fmt=fmt, image_root=image_root)
        got, errors = items_from_mentions(data.items)
    got = got[:limit] if limit else got
    prof = Profile(profile, device=requested_device(device) if device else None)
    annotator = ReverseAnnotator(KB.open(kb), prof, cfg)
    summary = run_annotation(annotator, got, out, restart=restart, progress=not as_json, image_root=image_root,
                             sample_n=sample, sheets=sheets, input_errors=errors,
                             labelstudio_url=ls_url)
    if as_json:
        print_json(summary)
        report_notes(annotator.notes, as_json)
        return
    from rich.table import Table

    table = Table(title=f"annotate: {summary['items']} items ({summary['reused']} reused), "
                        f"{summary['annotations']} annotations of {summary['entities']} entities")
    table.add_column("outcome")
    table.add_column("items", justify="right")
    for rule, n in sorted(summary["rules"].items(), key=lambda kv: -kv[1]):
        table.add_row(rule, str(n))
    for code, n in summary["error_codes"].items():
        table.add_row(f"error {code}", str(n))
    for flag, n in summary["flags"].items():
        table.add_row(f"flag {flag}", str(n))
    console.print(table)
    if errors:
        console.print(f"{len(errors)} input lines were not items (see summary.json)", highlight=False)
    report_notes(annotator.notes, as_json)
    console.print(f"wrote {out}/maskoven.json, report.jsonl, sample.jsonl, summary.json"
                  + (", contact sheets" if summary["outputs"]["contact_sheets"] else "")
                  + (", vpwiki.jsonl" if mode == "vpwiki" else ""), highlight=False)


def register(app: typer.Typer) -> None:
    app.command("annotate")(annotate_command)
