"""``pixlink link``: link a region of an image (+ caption) to the KB.

``pixlink link`` is a command group whose default command is ``image``: ``pixlink link IMAGE
--kb KB --box ...`` runs ``pixlink link image IMAGE --kb KB --box ...``; other sub-commands are
added to :data:`link_app` (``link_app.command("calibrate")(...)``) and listed by
``pixlink link --help``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import check_overlay, console, group_with_default, handle_errors, print_json, report_notes

link_app = typer.Typer(
    cls=group_with_default("image"),
    help=("Link image regions to KB entities. `pixlink link IMAGE --kb KB --box X1,Y1,X2,Y2` runs the default "
          "command, `image`; the other commands are named: `pixlink link COMMAND ...`."),
    no_args_is_help=True,
)


def _parse_floats(s: str, n: int, what: str) -> list[float]:
    import math

    from ..errors import Errors, InputError

    try:
        vals = [float(v) for v in s.split(",")]
    except ValueError as exc:
        raise InputError(Errors.E010.format(what=what, value=s, reason="expected comma-separated numbers")) from exc
    if len(vals) != n:
        raise InputError(Errors.E010.format(what=what, value=s, reason=f"expected {n} numbers"))
    if not all(math.isfinite(v) for v in vals):
        raise InputError(Errors.E010.format(what=what, value=s, reason="every number must be finite (no nan, no inf)"))
    return vals


@link_app.command("image")
@handle_errors
def link_command(
    image: Path = typer.Argument(..., help="Image file."),
    kb: Path = typer.Option(..., "--kb", help="KB directory (pixlink kb build)."),
    box: Optional[str] = typer.Option(None, "--box", help="Box X1,Y1,X2,Y2 in original pixels."),
    point: Optional[list[str]] = typer.Option(None, "--point", help="Click X,Y (repeatable)."),
    mask: Optional[Path] = typer.Option(None, "--mask", help="Mask PNG of the image's size (non-zero = region)."),
    text: Optional[str] = typer.Option(None, "--text", help="Caption that came with the image."),
    k: int = typer.Option(5, "-k", min=1, help="How many candidates."),
    profile: str = typer.Option("auto", "--profile", help="Model profile: offline, hub or auto."),
    view: Optional[str] = typer.Option(None, "--view", help="Image view: crop, masked_crop or red_box."),
    config: Optional[Path] = typer.Option(None, "--config", help="LinkerConfig JSON (an object of its settings)."),
    overlay: Optional[Path] = typer.Option(None, "--overlay",
                                           help="Write the image with region and answers (.png, .jpg, .webp...; "
                                                "the directory must exist)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """(default) Link what a box, clicks or a mask points at (optionally with a caption) to KB entities."""
    from ..errors import Errors, InputError
    from ..io import load_image, load_mask_image
    from ..link import Linker, LinkerConfig
    from .common import load_config

    # every option is checked, and the inputs read, before a model loads
    check_overlay(overlay)
    given = [x for x in (box, point, mask) if x]
    if len(given) > 1:
        raise InputError(Errors.E010.format(what="prompt", value="several", reason="give one of --box, --point, --mask"))
    prompt = None
    if box:
        prompt = {"box": _parse_floats(box, 4, "--box")}
    elif point:
        prompt = {"points": [_parse_floats(p, 2, "--point") for p in point]}
    overrides = {"image_view": view} if view else {}
    cfg = load_config(config, LinkerConfig, overrides=overrides) if config else LinkerConfig(**overrides)
    img = load_image(image)
    if mask:
        prompt = {"mask": load_mask_image(mask)}
    linker = Linker.from_kb(kb, profile=profile, config=cfg)
    result = linker.link(img, prompt, text=text, k=k)
    if overlay:
        from ..viz import link_overlay

        link_overlay(img, [result], overlay)
    if as_json:
        print_json(result.to_dict())
        report_notes(result.notes, as_json)
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    title = "NIL: no entity of the KB passes the threshold" if result.nil else f"linked to {result.prediction}"
    table = Table(title=f"{escape(image.name)}: {title} (threshold {result.nil_threshold:.2f})")
    for col in ("rank", "entity", "label", "score", "signals"):
        table.add_column(col)
    for i, c in enumerate(result.candidates, 1):
        table.add_row(str(i), escape(c.entity_id), escape(c.label or ""), f"{c.score:.3f}",
                      ", ".join(f"{s}={v:.2f}" for s, v in c.signals.items()))
    Console().print(table)
    console.print(f"backends: {result.backends}; timings (s): {result.timings}", highlight=False)
    report_notes(result.notes, as_json)
    if overlay:
        console.print(f"overlay written to {overlay}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``pixlink link ...`` to the main app."""
    app.add_typer(link_app, name="link")
