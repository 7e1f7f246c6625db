"""Progress bars and the stderr console, for every layer (the CLI, the engine, the jobs).

Long work shows progress on stderr, so that ``--json`` output on stdout stays clean. Code
below the CLI imports this module, never :mod:`pixlink.cli`.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True)
"""The console on stderr that progress bars, warnings and human-readable notes go to."""


def progress(disable: bool = False, **fields: Any) -> Progress:
    """A rich progress bar on stderr.

    Tasks added to it must give a ``rate`` field (``bar.add_task(name, total=n, rate="")``),
    shown after the counts; ``disable=True`` makes every call a no-op. Descriptions and rates are
    plain text, never rich markup (a model id like ``conse(...) of [efficientnet]`` shows as is).
    """
    return Progress(
        TextColumn("{task.description}", style="bold", markup=False), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}", markup=False), TimeElapsedColumn(), TimeRemainingColumn(),
        console=console, disable=disable, transient=False,
    )
