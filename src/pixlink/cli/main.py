"""The ``pixlink`` command. Each area registers its commands from its own module.

Output: progress bars, warnings and messages on stderr; the answer on stdout (``--json``: JSON
only). The library's INFO log lines show with ``-v`` (DEBUG with ``-vv``); warnings always show.
Bad input ends with one ``error: [Exxx] ...`` line and exit code 2.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    help="pixlink: link image regions (click, box, mask, caption) to knowledge-base entities.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

# Modules under pixlink.cli that define ``register(app)``.
_COMMAND_MODULES = ("kb", "models", "link", "demo", "eval", "ner", "gmner", "annotate", "serve", "jobs", "train")


def _register_all() -> None:
    for name in _COMMAND_MODULES:
        mod = importlib.import_module(f"pixlink.cli.{name}")
        mod.register(app)


@app.callback()
def _root(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True,
                                help="Show what pixlink does: -v its INFO log lines, -vv DEBUG too. Warnings always show."),
) -> None:
    """pixlink: link image regions (click, box, mask, caption) to knowledge-base entities."""
    from ..log import forget_warnings, set_verbosity

    set_verbosity(verbose)
    forget_warnings()  # a new command: its warnings are its own


@app.command()
def version() -> None:
    """Print pixlink's version."""
    from pixlink import __version__

    typer.echo(__version__)


_register_all()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
