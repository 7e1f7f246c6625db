"""The ``pixlink`` command. Each area registers its commands from its own module."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    help="pixlink: link image regions (click, box, mask, caption) to knowledge-base entities.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

# Modules under pixlink.cli that define ``register(app)``.
_COMMAND_MODULES = ("kb", "models", "link", "eval", "ner", "gmner", "annotate", "serve", "jobs")


def _register_all() -> None:
    for name in _COMMAND_MODULES:
        mod = importlib.import_module(f"pixlink.cli.{name}")
        mod.register(app)



@app.callback()
def _root() -> None:
    """pixlink: link image regions (click, box, mask, caption) to knowledge-base entities."""


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
