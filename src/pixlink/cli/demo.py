"""``pixlink demo``: the main job on an embedded default (see :mod:`pixlink.demo.run`)."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import check_output_dir, console, handle_errors, print_json, report_notes


def demo_command(
    out: Path = typer.Option(Path("demo-out"), "--out", help="Where overlays and the summary go (created)."),
    profile: str = typer.Option("auto", "--profile", help="Model profile: offline, hub or auto."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """The main job on an embedded default: build a small KB from packaged material, link regions of real photos."""
    from ..demo.run import run_demo

    check_output_dir(out, "--out")
    res = run_demo(out, profile, progress=not as_json)
    if as_json:
        print_json(res.to_dict())
        report_notes(res.notes, as_json)
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"pixlink demo: {res.correct} of {len(res.rows)} queries answered as expected")
    table.add_column("query", no_wrap=True)
    for col in ("kind", "expected", "answer", "score", "ok"):  # what each query shows: summary.md
        table.add_column(col, overflow="fold")
    for r in res.rows:
        score = f"{r['score']:.2f}" if r["score"] is not None else "-"
        table.add_row(escape(r["id"]), r["kind"], escape(r["expected_label"]), escape(r["predicted_label"]), score,
                      "[green]yes[/]" if r["correct"] else "[red]no[/]")
    Console().print(table)
    console.print("backends: " + ", ".join(f"{k}={v['backend']}" + (" (fallback)" if v.get("fallback") else "")
                                           for k, v in res.backends.items()), highlight=False)
    report_notes(res.notes, as_json)
    console.print(f"overlays and summary.md in {res.out_dir}/ ; seconds: {res.seconds}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``pixlink demo`` to the main app."""
    app.command("demo")(handle_errors(demo_command))
