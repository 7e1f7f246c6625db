"""Logging. Fallbacks are logged at WARNING and also recorded in the output they affect.

Library code logs what it did at INFO and what it could not do (a fallback, a skipped step) at
WARNING. Everything goes to the ``pixlink`` logger, whose one handler prints on stderr through
the shared rich console (:data:`pixlink.progress.console`), so that log lines and progress bars
do not tear each other apart.

Levels: a program that imports pixlink sees INFO and above (the library's default); the
``pixlink`` command shows WARNING and above unless asked for more (``-v`` INFO, ``-vv`` DEBUG),
see :func:`set_verbosity`.
"""

from __future__ import annotations

import logging
import os
from collections import deque

from rich.text import Text

from .progress import console

_configured = False

VERBOSITY_LEVELS = (logging.WARNING, logging.INFO, logging.DEBUG)
"""Level of the ``pixlink`` logger for verbosity 0 (the CLI's default), 1 (``-v``), 2+ (``-vv``)."""


class ConsoleHandler(logging.Handler):
    """Writes records on the shared stderr console: ``warning: message`` (the logger's name is
    added at DEBUG verbosity, where it helps to know which part spoke)."""

    STYLES = {"DEBUG": "dim", "INFO": "", "WARNING": "yellow", "ERROR": "bold red", "CRITICAL": "bold red"}

    def __init__(self, show_names: bool = False) -> None:
        super().__init__()
        self.show_names = show_names
        self.warned: deque[str] = deque(maxlen=200)
        """The last messages written at WARNING or above (see :func:`already_warned`)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record)
        except (TypeError, ValueError):  # a bad %-format in a log call: report it as logging does
            self.handleError(record)
            return
        if record.levelno >= logging.WARNING:
            self.warned.append(msg)
        who = f" {record.name}" if self.show_names else ""
        head = (f"{record.levelname.lower()}{who}:", self.STYLES.get(record.levelname, ""))
        console.print(Text.assemble(head, " ", msg), highlight=False, soft_wrap=True)


def _root() -> logging.Logger:
    global _configured
    root = logging.getLogger("pixlink")
    if not _configured:
        if not root.handlers:
            root.addHandler(ConsoleHandler())
            root.setLevel(logging.INFO)
        _configured = True
    return root


def get_logger(name: str) -> logging.Logger:
    """The logger of a pixlink module (``pixlink.<name>``), under the configured ``pixlink`` logger."""
    _root()
    return logging.getLogger(name if name.startswith("pixlink") else f"pixlink.{name}")


def already_warned(message: str) -> bool:
    """True when ``message`` was among the last warnings written to stderr since
    :func:`forget_warnings` (so that a command that shows an answer's notes as warnings does not
    repeat one the library logged as it happened)."""
    return any(message in h.warned for h in _root().handlers if isinstance(h, ConsoleHandler))


def forget_warnings() -> None:
    """Empty the memory behind :func:`already_warned` (at the start of a command)."""
    for h in _root().handlers:
        if isinstance(h, ConsoleHandler):
            h.warned.clear()


def set_verbosity(verbosity: int) -> int:
    """Set the ``pixlink`` logger's level from a count of ``-v`` flags (0 WARNING, 1 INFO, 2+ DEBUG)
    and return the level.

    At verbosity 0 the model libraries' own tqdm bars (``Loading weights ...``) are switched off
    too (``HF_HUB_DISABLE_PROGRESS_BARS=1`` unless the environment already says otherwise), so a
    command shows pixlink's progress bars, its answer and its warnings only.
    """
    level = VERBOSITY_LEVELS[min(max(verbosity, 0), len(VERBOSITY_LEVELS) - 1)]
    root = _root()
    root.setLevel(level)
    for h in root.handlers:
        if isinstance(h, ConsoleHandler):
            h.show_names = level <= logging.DEBUG
    if verbosity == 0:
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    return level
