"""Where dense indexes live in a KB directory and what their meta.json says.

``KBDIR/vectors/<space>/<model-slug>/`` holds the index of one model's vectors in one space;
several models of one space live side by side (``vectors/entity_image/<clip>/`` next to
``vectors/entity_image/<dino>/``), each tagged with its model id and the KB build it was made
from.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ...errors import Errors, InputError
from ...log import get_logger

log = get_logger(__name__)

SPACES = ("entity_text", "entity_image", "entity_face")
"""Known vector spaces. Other names matching ``[a-z][a-z0-9_]*`` are allowed for new signals."""
FORMAT_VERSION = 1
META_REQUIRED = ("format_version", "model_id", "space", "dim", "metric", "count", "entities", "backend", "dtype",
                 "max_vectors_per_entity")
"""Keys every meta.json has (``kb_build_id`` is optional: indexes made before it was recorded lack it)."""

_SPACE_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def model_slug(model_id: str) -> str:
    """A directory name for ``model_id``: readable part + 8 hex of its SHA-1 (collision-free
    even when two ids differ only in characters the readable part replaces)."""
    if not isinstance(model_id, str) or not model_id.strip():
        raise InputError(Errors.E010.format(what="model_id", value=model_id, reason="must be a non-empty string"))
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id).strip("._-")[:80] or "model"
    return f"{readable}-{hashlib.sha1(model_id.encode('utf-8')).hexdigest()[:8]}"


def check_space(space: str) -> str:
    """``space`` if it is a valid space name (``[a-z][a-z0-9_]*``), else E227."""
    if not isinstance(space, str) or not _SPACE_RE.match(space):
        raise InputError(
            Errors.E227.format(space=space, reason="expected lower-case letters, digits and _", spaces=", ".join(SPACES))
        )
    return space


def check_build_id(value: Any, what: str = "kb_build_id") -> str | None:
    """``value`` if it is ``None`` or a non-empty string without surrounding blanks, else E010."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or value != value.strip():
        raise InputError(Errors.E010.format(what=what, value=value, reason="must be None or a non-empty string (the KB's build_id)"))
    return value


def index_dir(kb_dir: str | Path, space: str, model_id: str) -> Path:
    """``KBDIR/vectors/<space>/<model-slug>/``: where the index of ``model_id``'s vectors in
    ``space`` lives (the directory need not exist)."""
    return Path(kb_dir) / "vectors" / check_space(space) / model_slug(model_id)


@dataclass
class IndexInfo:
    """What :func:`list_indexes` reports for one index directory (from its meta.json).

    ``kb_build_id`` is the build of the KB the vectors were made from (``None`` for an index
    made before builds were recorded, or built outside a KB)."""

    path: str
    space: str
    model_id: str
    dim: int
    count: int
    entities: int
    backend: str
    metric: str
    dtype: str
    created: str
    kb_build_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_indexes(kb_dir: str | Path) -> list[IndexInfo]:
    """Every dense index under ``KBDIR/vectors/``, sorted by space then model id (several
    models of one space are each listed).

    A directory whose meta.json cannot be read is logged at WARNING and left out (it is a
    build that did not finish, or damage: :meth:`DenseIndex.open` on it says which). Hidden
    directories (a build in progress, ``.<slug>.building-<pid>``) are not indexes yet."""
    root = Path(kb_dir) / "vectors"
    out: list[IndexInfo] = []
    if not root.is_dir():
        return out
    for meta_path in sorted(root.glob("*/*/meta.json")):
        if meta_path.parent.name.startswith(".") or meta_path.parent.parent.name.startswith("."):
            continue
        try:
            meta = json.loads(meta_path.read_text("utf-8"))
            out.append(
                IndexInfo(
                    path=str(meta_path.parent), space=meta["space"], model_id=meta["model_id"], dim=int(meta["dim"]),
                    count=int(meta["count"]), entities=int(meta["entities"]), backend=meta["backend"],
                    metric=meta["metric"], dtype=meta["dtype"], created=meta["created"],
                    kb_build_id=meta.get("kb_build_id"),
                )
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("skipping %s: %s", meta_path.parent, Errors.E221.format(path=str(meta_path.parent), reason=exc))
    out.sort(key=lambda i: (i.space, i.model_id))
    return out
