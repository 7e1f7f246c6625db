"""Helpers shared by the CLI commands: error reporting, JSON output, checks of the options a
command reads or writes (run before any model loads), warnings, a group with a default command."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import sys
import types
import typing
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

import click
import typer
from rich.text import Text
from typer.core import TyperGroup

from ..errors import Errors, InputError, PixlinkError
from ..io import dumps
from ..log import already_warned, get_logger
from ..progress import console, progress  # noqa: F401  (re-exported for the commands)

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C")

log = get_logger("pixlink.cli")


def handle_errors(fn: F) -> F:
    """Turn a :class:`PixlinkError` into a one-line message on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PixlinkError as exc:
            console.print(Text.assemble(("error:", "bold red"), " ", str(exc)), highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from exc

    return wrapper  # type: ignore[return-value]


def print_json(obj: Any) -> None:
    sys.stdout.write(dumps(obj, indent=True) + "\n")


# ---------------------------------------------------------------------------------------------
# notes of an answer
# ---------------------------------------------------------------------------------------------

WARNING_MARKS = ("run `pixlink", "not available", "fallback", "not built", "not embedded", "got no vector",
                 "failed", "not decided", "skipped", "cut from", "no mask")
"""A note that contains one of these says that part of the work did not run or ran in a weaker
form (a signal without KB vectors, a role without a backend, a fallback model, items skipped, a
post cut short, a region left without its mask): the user should act on it or know it, so it is
shown as a warning, also with ``--json``. Other notes (a box chosen by its face, no face in a
region...) describe the answer; they are shown as ``note:`` lines in human output and are in the
JSON either way."""


def is_warning(note: str) -> bool:
    """True when ``note`` reports something skipped or degraded (see :data:`WARNING_MARKS`)."""
    low = note.lower()
    return any(m in low for m in WARNING_MARKS)


def report_notes(notes: Iterable[str], as_json: bool) -> None:
    """Show the notes of an answer on stderr: those that matter as warnings (always, so that they
    are not lost behind ``--json``), the others as ``note:`` lines (human output only; the JSON
    holds them all)."""
    for n in dict.fromkeys(notes):  # once each, in order
        if is_warning(n):
            if not already_warned(n):  # the library may have logged it as it happened
                log.warning(n)
        elif not as_json:
            console.print(Text.assemble(("note:", "cyan"), " ", n), highlight=False, soft_wrap=True)


# ---------------------------------------------------------------------------------------------
# options that name files: checked before the work starts
# ---------------------------------------------------------------------------------------------


def check_input_file(path: Path | None, what: str) -> Path | None:
    """``path`` must be an existing readable file (E705); ``None`` passes."""
    if path is None:
        return None
    if not path.exists():
        raise InputError(Errors.E705.format(what=what, path=str(path), reason="it does not exist"))
    if path.is_dir():
        raise InputError(Errors.E705.format(what=what, path=str(path), reason="it is a directory, not a file"))
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise InputError(Errors.E705.format(what=what, path=str(path), reason=exc.strerror or str(exc))) from exc
    return path


def check_input_dir(path: Path | None, what: str) -> Path | None:
    """``path`` must be an existing directory (E705); ``None`` passes."""
    if path is None:
        return None
    if not path.exists():
        raise InputError(Errors.E705.format(what=what, path=str(path), reason="it does not exist"))
    if not path.is_dir():
        raise InputError(Errors.E705.format(what=what, path=str(path), reason="it is not a directory"))
    return path


def check_output_file(path: Path | None, what: str) -> Path | None:
    """``path`` will be written: its directory must exist (nothing is created that the user did
    not ask for) and it must not be a directory (E704); ``None`` passes."""
    from ..viz import check_writable

    return None if path is None else check_writable(path, what)


def check_output_dir(path: Path | None, what: str) -> Path | None:
    """``path`` is a directory a command writes into: it exists as a directory, or its parent
    does, so that the command creates this one directory and nothing above it (E704); ``None``
    passes."""
    if path is None or path.is_dir():
        return path
    if path.exists():
        raise InputError(Errors.E704.format(what=what, path=str(path), reason="it is a file, not a directory"))
    return check_output_file(path, what)


def check_overlay(path: Path | None, what: str = "--overlay") -> Path | None:
    """An overlay picture's path: a known image extension (E703) in an existing directory (E704)."""
    from ..viz import check_out_path

    return None if path is None else check_out_path(path, what)


# ---------------------------------------------------------------------------------------------
# --config files: JSON objects of a dataclass's fields, with their types checked
# ---------------------------------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (tuple, list):
        return "a list"
    if origin is dict or tp is dict:
        return "an object"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))


def _json_kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return f"the boolean {json.dumps(v)}"
    if isinstance(v, (int, float)):
        return f"the number {v!r}"
    if isinstance(v, str):
        return f"the string {v!r}"
    return "a list" if isinstance(v, list) else "an object"


def _matches(value: Any, tp: Any) -> bool:
    """Does a JSON value fit annotation ``tp``? Annotations this does not know pass."""
    if tp is Any:
        return True
    if tp is type(None):
        return value is None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # NaN is not a value
    if tp is str:
        return isinstance(value, str)
    if origin in (tuple, list) or tp in (tuple, list):
        if not isinstance(value, list):
            return False
        item = args[0] if args else Any
        return all(_matches(v, item) for v in value)
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            return False
        vt = args[1] if len(args) == 2 else Any
        return all(_matches(v, vt) for v in value.values())
    return True


def load_config(path: Path, cls: type[C], what: str = "--config", overrides: dict[str, Any] | None = None) -> C:
    """``cls`` (a dataclass) from the JSON object in ``path`` and then ``overrides``.

    Raises E700 (missing / unreadable file, bad JSON, not an object), E701 (a key that is not a
    field of ``cls``), E702 (a value of the wrong JSON type for its field, e.g. a string where a
    number goes); the dataclass's own checks (``__post_init__``) raise their coded errors.
    """
    check = functools.partial(Errors.E700.format, what=what, path=str(path))
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(check(reason=exc.strerror or str(exc))) from exc
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(check(reason=f"it is not UTF-8 text ({exc.reason} at byte {exc.start})")) from exc
    except json.JSONDecodeError as exc:
        raise InputError(check(reason=f"it is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})")) from exc
    if not isinstance(data, dict):
        raise InputError(check(reason=f"it holds {_json_kind(data)}, not a JSON object of settings"))
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = [k for k in data if k not in known]
    if unknown:
        close = {k: difflib.get_close_matches(k, known, n=1) for k in unknown}
        hint = "; ".join(f"{k!r}: did you mean {c[0]!r}?" for k, c in close.items() if c)
        raise InputError(Errors.E701.format(what=what, path=str(path), keys=", ".join(map(repr, unknown)),
                                            known=", ".join(known) + (f" ({hint})" if hint else "")))
    for key, value in data.items():
        tp = hints.get(key, Any)
        if not _matches(value, tp):
            raise InputError(Errors.E702.format(what=what, path=str(path), key=key, expected=_type_name(tp),
                                                got=_json_kind(value)))
    return cls(**{**data, **(overrides or {})})


# ---------------------------------------------------------------------------------------------
# a command group with a default command
# ---------------------------------------------------------------------------------------------


class DefaultCommandGroup(TyperGroup):
    """A group that runs its default command when the first argument is not one of its
    sub-commands (the click-default-group pattern): with ``image`` the default of ``link``,
    ``pixlink link photo.jpg --kb KB`` runs ``pixlink link image photo.jpg --kb KB``, while
    ``pixlink link calibrate ...`` runs ``calibrate`` and ``pixlink link --help`` lists both.

    Subclass it with :func:`group_with_default`; an argument that happens to be a sub-command's
    name is taken as that sub-command (give the default command's name to be explicit).
    """

    default_command: str = ""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        help_names = set(self.get_help_option_names(ctx))
        if args and self.default_command and args[0] not in self.commands and args[0] not in help_names:
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


def group_with_default(command: str) -> type[DefaultCommandGroup]:
    """A :class:`DefaultCommandGroup` whose default is ``command`` (for ``typer.Typer(cls=...)``)."""
    return type(f"DefaultGroup_{command}", (DefaultCommandGroup,), {"default_command": command})
