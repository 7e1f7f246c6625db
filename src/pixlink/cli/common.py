"""Helpers shared by the CLI commands: error reporting, JSON output, progress bars."""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable, TypeVar

import typer

from ..errors import PixlinkError
from ..io import dumps
from ..progress import console, progress  # noqa: F401  (re-exported for the commands)

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(fn: F) -> F:
    """Turn a :class:`PixlinkError` into a one-line message on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PixlinkError as exc:
            console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
            raise typer.Exit(code=2) from exc

    return wrapper  # type: ignore[return-value]


def print_json(obj: Any) -> None:
    sys.stdout.write(dumps(obj, indent=True) + "\n")
