"""``pixlink gmner``: entities of a post, their types, boxes, masks and KB links."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import check_output_file, check_overlay, console, handle_errors, print_json, report_notes


def gmner_command(
    image: Path = typer.Argument(..., help="The post's image."),
    text: str = typer.Option(..., "--text", help="The post's text (whitespace-tokenised)."),
    kb: Optional[Path] = typer.Option(None, "--kb", help="KB directory: link each entity and use KB descriptions."),
    profile: str = typer.Option("auto", "--profile", help="Model profile: offline, hub or auto."),
    device: Optional[str] = typer.Option(None, "--device", help="Torch device: auto, cpu, cuda, cuda:N (default: PIXLINK_DEVICE, else auto)."),
    scheme: str = typer.Option("OTHER", "--scheme", help="Name of the fourth type: OTHER or MISC."),
    expansion: str = typer.Option("kb,generate,template", "--expansion",
                                  help="Sources of expansion expressions, in order."),
    no_masks: bool = typer.Option(False, "--no-masks", help="Boxes only (GMNER), no masks (SMNER)."),
    overlay: Optional[Path] = typer.Option(None, "--overlay", help="Write the image with boxes, masks and names (.png, .jpg, .webp...; the directory must exist)."),
    riveg: Optional[Path] = typer.Option(None, "--riveg", help="Also write RiVEG entity-level label lines here."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Find the named entities of an image+text post, ground each as a box and a mask, link them."""
    from ..io import load_image
    from ..ner.gmner import GMNERConfig, GMNERPipeline

    # every option is checked, and the image read, before a model loads
    check_overlay(overlay)
    check_output_file(riveg, "--riveg")
    cfg = GMNERConfig(label_scheme=scheme, expansion_sources=tuple(s.strip() for s in expansion.split(",") if s.strip()),
                      segment=not no_masks)
    img = load_image(image)
    from ..device import requested_device
    from ..models import Profile

    prof = Profile(profile, device=requested_device(device) if device else None)
    pipe = GMNERPipeline.from_kb(kb, profile=prof, config=cfg)
    res = pipe.run(img, text=text)
    if overlay:
        from ..viz import entities_overlay

        entities_overlay(img, res.entities, overlay)
    if riveg:
        from ..ner.gmner.formats import write_riveg

        write_riveg(riveg, [(image.name, res.entities)])
    if as_json:
        print_json(res.to_dict())
        report_notes(res.notes, as_json)
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{escape(image.name)}: {len(res.entities)} entities")
    for col in ("entity", "type", "groundable", "box", "mask px", "expansion", "linked"):
        table.add_column(col)
    for e in res.entities:
        box = ", ".join(f"{v:.0f}" for v in e.region.bbox) if e.region is not None else "-"
        mask = str(int(e.region.mask.sum())) if e.region is not None and e.region.mask is not None else "-"
        linked = "-"
        if e.link is not None:
            linked = "NIL" if e.link.nil else f"{e.link.prediction} {e.link.candidates[0].label}"
        table.add_row(escape(e.text), e.type, str(e.groundable), box, mask, escape(e.expansion or ""), escape(linked))
    Console().print(table)
    console.print(f"backends: {res.backends}; timings (s): {res.timings}", highlight=False)
    report_notes(res.notes, as_json)
    if overlay:
        console.print(f"overlay written to {overlay}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``pixlink gmner`` to the main app."""
    app.command("gmner")(handle_errors(gmner_command))
