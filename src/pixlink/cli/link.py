"""``pixlink link``: link a region of an image (+ caption) to the KB."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import console, handle_errors, print_json


def _parse_floats(s: str, n: int, what: str) -> list[float]:
    from ..errors import Errors, InputError

    try:
        vals = [float(v) for v in s.split(",")]
    except ValueError as exc:
        raise InputError(Errors.E010.format(what=what, value=s, reason="expected comma-separated numbers")) from exc
    if len(vals) != n:
        raise InputError(Errors.E010.format(what=what, value=s, reason=f"expected {n} numbers"))
    return vals


def link_command(
    image: Path = typer.Argument(..., help="Image file."),
    kb: Path = typer.Option(..., "--kb", help="KB directory (pixlink kb build)."),
    box: Optional[str] = typer.Option(None, "--box", help="Box X1,Y1,X2,Y2 in original pixels."),
    point: Optional[list[str]] = typer.Option(None, "--point", help="Click X,Y (repeatable)."),
    mask: Optional[Path] = typer.Option(None, "--mask", help="Mask PNG of the image's size (non-zero = region)."),
    text: Optional[str] = typer.Option(None, "--text", help="Caption that came with the image."),
    k: int = typer.Option(5, "-k", help="How many candidates."),
    profile: str = typer.Option("auto", "--profile", help="Model profile: offline, hub or auto."),
    view: Optional[str] = typer.Option(None, "--view", help="Image view: crop, masked_crop or red_box."),
    config: Optional[Path] = typer.Option(None, "--config", help="LinkerConfig JSON."),
    overlay: Optional[Path] = typer.Option(None, "--overlay", help="Write the image with region and answers."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Link what a box, clicks or a mask points at (optionally with a caption) to KB entities."""
    import json

    from ..errors import Errors, InputError
    from ..io import load_image, load_mask_image
    from ..link import Linker, LinkerConfig

    given = [x for x in (box, point, mask) if x]
    if len(given) > 1:
        raise InputError(Errors.E010.format(what="prompt", value="several", reason="give one of --box, --point, --mask"))
    prompt = None
    if box:
        prompt = {"box": _parse_floats(box, 4, "--box")}
    elif point:
        prompt = {"points": [_parse_floats(p, 2, "--point") for p in point]}
    elif mask:
        prompt = {"mask": load_mask_image(mask)}
    cfg = LinkerConfig(**json.loads(config.read_text())) if config else LinkerConfig()
    if view:
        cfg = LinkerConfig(**{**cfg.to_dict(), "image_view": view})
    linker = Linker.from_kb(kb, profile=profile, config=cfg)
    img = load_image(image)
    result = linker.link(img, prompt, text=text, k=k)
    if overlay:
        from ..viz import link_overlay

        link_overlay(img, [result], overlay)
    if as_json:
        print_json(result.to_dict())
        return
    from rich.table import Table

    title = "NIL: no entity of the KB passes the threshold" if result.nil else f"linked to {result.prediction}"
    table = Table(title=f"{image.name}: {title} (threshold {result.nil_threshold:.2f})")
    for col in ("rank", "entity", "label", "score", "signals"):
        table.add_column(col)
    for i, c in enumerate(result.candidates, 1):
        table.add_row(str(i), c.entity_id, c.label, f"{c.score:.3f}",
                      ", ".join(f"{s}={v:.2f}" for s, v in c.signals.items()))
    from rich.console import Console

    Console().print(table)
    console.print(f"backends: {result.backends}; timings (s): {result.timings}")
    for n in result.notes:
        console.print(f"[yellow]note:[/] {n}")
    if overlay:
        console.print(f"overlay written to {overlay}")


def kb_embed_command(
    kb: Path = typer.Argument(..., help="KB directory."),
    profile: str = typer.Option("auto", "--profile", help="Model profile: offline, hub or auto."),
    signals: str = typer.Option("dense_text,v2t,v2v,face", "--signals", help="Which vectors to compute."),
    batch_size: int = typer.Option(32, "--batch-size", help="Items per encoder call."),
    backend: str = typer.Option("auto", "--index", help="Index backend: auto, exact, ivfpq or hnsw."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Compute the KB vectors the linker's signals need (cached, resumable), with the profile's models."""
    from ..link.embed import embed_kb

    report = embed_kb(kb, profile, [s.strip() for s in signals.split(",") if s.strip()], batch_size=batch_size,
                      index_backend=backend, progress=not as_json)
    if as_json:
        print_json(report)
        return
    for sig, r in report.items():
        if "skipped" in r:
            console.print(f"[yellow]{sig}[/]: skipped ({r['skipped']})")
            continue
        console.print(f"[bold]{sig}[/]: {r['vectors']} vectors of {r.get('entities', 0)} entities in {r['space']} "
                      f"by {r['model_id']}; {len(r['errors'])} items failed")
        for e in r["errors"][:10]:
            console.print(f"  [red]failed[/] {e['item_id']}: {e['error']}")


def demo_command(
    out: Path = typer.Option(Path("demo-out"), "--out", help="Where overlays and the summary go."),
    profile: str = typer.Option("auto", "--profile", help="Model profile: offline, hub or auto."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """The main job on an embedded default: build a small KB from packaged material, link regions of real photos."""
    from ..demo.run import run_demo

    res = run_demo(out, profile, progress=not as_json)
    if as_json:
        print_json(res.to_dict())
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"pixlink demo: {res.correct} of {len(res.rows)} queries answered as expected")
    for col in ("query", "what it shows", "caption", "expected", "answer", "score", "ok"):
        table.add_column(col, overflow="fold")
    for r in res.rows:
        score = f"{r['score']:.2f}" if r["score"] is not None else "-"
        table.add_row(r["id"], r["description"], r["caption"] or "", r["expected_label"], r["predicted_label"], score,
                      "[green]yes[/]" if r["correct"] else "[red]no[/]")
    Console().print(table)
    console.print("backends: " + ", ".join(f"{k}={v['backend']}" + (" (fallback)" if v.get("fallback") else "")
                                           for k, v in res.backends.items()))
    for n in res.notes:
        console.print(f"[yellow]note:[/] {n}")
    console.print(f"overlays and summary.md in {res.out_dir}/ ; seconds: {res.seconds}")


def register(app: typer.Typer) -> None:
    app.command("demo")(handle_errors(demo_command))
    app.command("link")(handle_errors(link_command))
    kb_group = next((g.typer_instance for g in app.registered_groups if g.name == "kb"), None)
    if kb_group is not None:
        kb_group.command("embed")(handle_errors(kb_embed_command))
