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
    device: Optional[str] = typer.Option(None, "--device", help="Torch device: auto, cpu, cuda, cuda:N (default: PIXLINK_DEVICE, else auto)."),
    view: Optional[str] = typer.Option(None, "--view", help="Image view: crop, masked_crop or red_box."),
    config: Optional[Path] = typer.Option(None, "--config", help="LinkerConfig JSON (an object of its settings)."),
    fusion: Optional[Path] = typer.Option(None, "--fusion", help="Fusion parameters JSON (`pixlink link calibrate`)."),
    reranker: Optional[Path] = typer.Option(None, "--reranker", help="A trained head (`pixlink train`) that re-ranks the "
                                                                    "best fused candidates."),
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
    fusion_params = _load_fusion(fusion)
    given = [x for x in (box, point, mask) if x]
    if len(given) > 1:
        raise InputError(Errors.E010.format(what="prompt", value="several", reason="give one of --box, --point, --mask"))
    prompt = None
    if box:
        prompt = {"box": _parse_floats(box, 4, "--box")}
    elif point:
        prompt = {"points": [_parse_floats(p, 2, "--point") for p in point]}
    overrides: dict = {"image_view": view} if view else {}
    if reranker is not None:
        from .common import check_input_dir

        check_input_dir(reranker, "--reranker")
        overrides["reranker"] = str(reranker)
    cfg = load_config(config, LinkerConfig, overrides=overrides) if config else LinkerConfig(**overrides)
    img = load_image(image)
    if mask:
        prompt = {"mask": load_mask_image(mask)}
    linker = Linker.from_kb(kb, profile=profile, config=cfg, fusion=fusion_params, device=_device(device))
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


@link_app.command("instances")
@handle_errors
def instances_command(
    image: Path = typer.Argument(..., help="Image file."),
    kb: Path = typer.Option(..., "--kb", help="KB directory with its local-feature store (pixlink kb embed)."),
    box: Optional[str] = typer.Option(None, "--box", help="Look only inside X1,Y1,X2,Y2 (original pixels)."),
    k: int = typer.Option(10, "-k", min=1, help="At most this many entities."),
    profile: str = typer.Option("auto", "--profile", help="Model profile: offline, hub or auto."),
    device: Optional[str] = typer.Option(None, "--device", help="Torch device: auto, cpu, cuda, cuda:N."),
    overlay: Optional[Path] = typer.Option(None, "--overlay", help="Write the image with the instances' masks and boxes."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Which KB entities' own images appear in the image (logos, flags, artworks), with boxes and masks."""
    from ..io import load_image
    from ..link import Linker, LinkerConfig
    from ..link.signals.local import find_instances, instance_probability
    from ..models import roles as R

    check_overlay(overlay)
    region = _parse_floats(box, 4, "--box") if box else None
    img = load_image(image)
    linker = Linker.from_kb(kb, profile=profile, config=LinkerConfig(signals=("local",), segment=False),
                            device=_device(device))
    matches = find_instances(linker, img, box=region, k=k)
    backend = linker.profile.get(R.LOCAL_FEATURES).name
    threshold = linker.fusion.nil_threshold_for(["local"], linker.kb_entities)  # what a link with this signal alone is held to
    rows = []
    for m in matches:
        e = linker.kb.get(m.entity_id)
        prob = instance_probability(m)
        rows.append({**m.to_dict(), "label": e.label if e is not None else None,
                     "probability": round(prob, 4), "above_nil_threshold": prob >= threshold})
    if overlay:
        from ..viz import instances_overlay

        instances_overlay(img, matches, [f"{r['label'] or r['entity_id']} {r['score']:.0f}" for r in rows], overlay)
    if as_json:
        print_json({"image": str(image), "backend": backend, "nil_threshold": threshold,
                    "instances": rows})
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{escape(image.name)}: {len(rows)} verified instance(s) ({backend})")
    for col in ("entity", "label", "inliers", "score", "p", "box"):
        table.add_column(col)
    for r in rows:
        table.add_row(escape(r["entity_id"]), escape(r["label"] or ""), str(r["inliers"]), f"{r['score']:.1f}",
                      f"{r['probability']:.2f}",
                      ",".join(f"{v:.0f}" for v in r["box"]))
    Console().print(table)
    if overlay:
        console.print(f"overlay written to {overlay}", highlight=False)


def _device(device: Optional[str]) -> Optional[str]:
    """``--device`` checked now (E010 for a malformed one), before any model loads."""
    if device is None:
        return None
    from ..device import requested_device

    return requested_device(device)


def _load_fusion(path: Optional[Path]):
    """The fusion parameters in ``path`` (E705 when missing, E410 when malformed), or None."""
    if path is None:
        return None
    from ..link import Fusion
    from .common import check_input_file

    check_input_file(path, "--fusion")
    return Fusion.load(path)


@link_app.command("calibrate")
@handle_errors
def calibrate_command(
    mentions: Path = typer.Argument(..., help="Labelled mentions (mentions.jsonl, or a dataset read with --format); "
                                              "a null gold is a NIL answer."),
    kb: Path = typer.Option(..., "--kb", help="KB directory (pixlink kb build, pixlink kb embed)."),
    out: Path = typer.Option(..., "--out", help="Where to write the fitted fusion parameters (JSON)."),
    fmt: str = typer.Option("auto", "--format", help="Dataset format (see `pixlink eval check --help`)."),
    image_root: Optional[Path] = typer.Option(None, "--images", help="Folder the dataset's image paths are relative to."),
    profile: str = typer.Option("auto", "--profile", help="Model profile: offline, hub or auto."),
    device: Optional[str] = typer.Option(None, "--device", help="Torch device: auto, cpu, cuda, cuda:N (default: PIXLINK_DEVICE, else auto)."),
    config: Optional[Path] = typer.Option(None, "--config", help="LinkerConfig JSON."),
    fusion: Optional[Path] = typer.Option(None, "--fusion", help="Start from these fusion parameters (default: shipped)."),
    holdout: float = typer.Option(0.3, "--holdout", min=0.0, max=0.9, help="Fraction held out for the before/after figures."),
    seed: int = typer.Option(0, "--seed", help="Seed of the fit / held-out split."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
) -> None:
    """Fit each signal's calibration and the NIL threshold on labelled mentions; report held-out accuracy before and after."""
    from ..eval.datasets import load_mentions_dataset
    from ..link import Linker, LinkerConfig
    from ..link.calibrate import calibrate
    from .common import check_input_dir, check_input_file, check_output_file, load_config

    check_input_file(mentions, "MENTIONS")
    check_output_file(out, "--out")
    check_input_dir(image_root, "--images")
    fusion_params = _load_fusion(fusion)
    cfg = load_config(config, LinkerConfig) if config else LinkerConfig()
    data = load_mentions_dataset(mentions, fmt=fmt, image_root=image_root)
    linker = Linker.from_kb(kb, profile=profile, config=cfg, fusion=fusion_params, device=_device(device))
    report = calibrate(linker, data.items, holdout=holdout, seed=seed, progress=not as_json)
    report.fusion.save(out)
    if as_json:
        print_json(report.to_dict() | {"out": str(out), "load_report": data.report.to_dict()})
        return
    from rich.table import Table

    table = Table(title=f"calibration on {report.n_fit} mentions, figures on {report.n_heldout or report.n_fit} "
                        f"{'held-out' if report.n_heldout else 'fit (no hold-out)'} mentions")
    for col in ("", "accuracy", "hits@1", "NIL accuracy"):
        table.add_column(col)
    for name, f in (("before", report.before), ("after", report.after)):
        table.add_row(name, *(f"{f[m]:.3f}" for m in ("accuracy", "hits@1", "nil_accuracy")))
    console.print(table)
    classes = "".join(f"; {c.name} mentions {report.nil_thresholds[c.name]['threshold']:.3f} "
                      + (f"(fitted on {n})" if (n := report.nil_thresholds[c.name]["n"]) else "(kept: too few of them)")
                      for c in report.fusion.nil_classes)
    console.print(f"NIL threshold {linker.fusion.nil_threshold:.3f} -> {report.fusion.nil_threshold:.3f}{classes}; "
                  f"{report.n_examples} candidate pairs; backends {report.backends}; {report.n_failed} mentions failed; "
                  f"wrote {out}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``pixlink link ...`` to the main app."""
    app.add_typer(link_app, name="link")
