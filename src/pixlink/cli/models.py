"""``pixlink models``: which model backs each role here, and tiny test models.

* ``pixlink models list [--profile P] [--model ROLE=MODEL] [--json]`` — every role, every
  registered backend with its kind, licence and default weights, whether it can run here and
  why not, and which backend the profile picks (and why).
* ``pixlink models tiny OUT_DIR --arch ARCH`` — write a tiny random-weight model of a hub
  architecture with its own processor (for plumbing tests; outputs are meaningless).

``--json`` prints JSON on stdout; messages go to stderr. Errors print one
``error: [Exxx] ...`` line and exit with code 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer

from .common import check_output_dir, console, handle_errors, print_json

models_app = typer.Typer(help="Model roles and backends: models list | tiny.", no_args_is_help=True)


def _parse_models(pairs: list[str]) -> dict[str, dict[str, Any]]:
    from ..errors import Errors, InputError

    options: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        role, sep, model = pair.partition("=")
        if not sep or not role.strip() or not model.strip():
            raise InputError(Errors.E010.format(what="--model", value=pair, reason="expected ROLE=MODEL"))
        options.setdefault(role.strip(), {})["model"] = model.strip()
    return options


def models_report(profile: str, options: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The data ``pixlink models list`` shows: for each role, the profile's choice and every
    backend with ``available`` and ``reason`` (why not, or where the hub weights are)."""
    from ..errors import Errors, InputError
    from ..models import roles as R
    from ..models.registry import PREFERENCES, Profile, hub_weights_status, list_backends

    for role in options or {}:
        if role not in R.ROLES:
            raise InputError(Errors.E301.format(role=role, roles=", ".join(R.ROLES)))
    prof = Profile(profile, options=options or {})
    roles = []
    for role in R.ROLES:
        choice = prof.choose(role)
        in_profile = set(PREFERENCES["hub"].get(role, ())) if profile in ("hub", "auto") else set()
        if profile in ("offline", "auto"):
            in_profile |= set(PREFERENCES["offline"].get(role, ()))
        backends = []
        for spec in list_backends(role):
            why = spec.availability()
            row = {
                "name": spec.name, "kind": spec.kind, "license": spec.license, "default_model": spec.default_model,
                "description": spec.description, "notes": spec.notes, "in_profile": spec.name in in_profile,
                "chosen": spec.name == choice.backend, "available": why is None, "reason": why or "",
            }
            if spec.kind == "hub":
                ok, where = hub_weights_status(spec, (options or {}).get(role))
                row["weights"] = {"ok": ok, "where": where, "model": (options or {}).get(role, {}).get("model")
                                  or spec.default_model}
            backends.append(row)
        roles.append({"role": role, "choice": choice.to_dict(), "backends": backends})
    return {"profile": profile, "roles": roles}


@models_app.command("list")
@handle_errors
def list_command(
    profile: Optional[str] = typer.Option(None, "--profile", "-p",
                                          help="offline | hub | auto (default: $PIXLINK_PROFILE, else auto)."),
    model: List[str] = typer.Option([], "--model", "-m",
                                    help="ROLE=MODEL: a hub id or local directory for that role (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
) -> None:
    """Every role, every backend: kind, licence, whether it runs here and why not, and the profile's pick."""
    from rich.table import Table

    from ..config import default_profile

    prof = profile or default_profile()
    rep = models_report(prof, _parse_models(model))
    if as_json:
        print_json(rep)
        return
    from ..models.hub import hub_cache_dir

    t = Table(title=f"pixlink models (profile: {prof})", caption=f"hub cache: {hub_cache_dir()}", show_lines=False)
    for col in ("role", "backend", "kind", "licence", "here", "why not / weights", "pick"):
        t.add_column(col, overflow="fold")
    for r in rep["roles"]:
        first = True
        for b in r["backends"]:
            if b["available"] and "weights" in b:
                here = "[green]yes[/]" if b["weights"]["ok"] else "[yellow]code only[/]"
                why = f"{b['weights']['model']}: {b['weights']['where']}"
            else:
                here = "[green]yes[/]" if b["available"] else "[red]no[/]"
                why = b["reason"]
            pick = "[bold]<- picked[/]" if b["chosen"] else ("" if b["in_profile"] else "[dim]not in profile[/]")
            t.add_row(r["role"] if first else "", b["name"], b["kind"], b["license"], here, why, pick)
            first = False
        if not r["backends"]:
            t.add_row(r["role"], "-", "", "", "[red]no[/]", "no backend registered", "")
        if r["choice"]["backend"] is None:
            t.add_row("", "[red]none picked[/]", "", "", "", r["choice"]["reason"], "")
    console.print(t)


@models_app.command("tiny")
@handle_errors
def tiny_command(
    out_dir: Path = typer.Argument(..., help="Directory to write (one sub-directory per architecture with --arch all)."),
    arch: str = typer.Option(..., "--arch", "-a", help="clip | siglip | sam | owlv2 | grounding_dino | idefics3 | "
                                                       "llama | sentence_transformer | all"),
) -> None:
    """Write a tiny random-weight model of a hub architecture, with its own processor files."""
    from ..models.tiny import ARCHES, build_tiny

    check_output_dir(out_dir, "OUT_DIR")
    arches = ARCHES if arch == "all" else (arch,)
    for a in arches:
        path = build_tiny(a, out_dir / a if arch == "all" else out_dir)
        console.print(f"{a}: {path}")


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""
    app.add_typer(models_app, name="models")
