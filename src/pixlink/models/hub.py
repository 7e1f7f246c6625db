"""Loading models from the Hugging Face hub or a local directory, the way every hub backend does.

ReFinED-style: a backend is built ``from_pretrained`` by name — a hub id (``owner/name``) or a
local directory holding the files ``save_pretrained`` wrote — with a cache directory
(default ``pixlink.config.cache_dir() / "hub"``, i.e. ``$PIXLINK_CACHE/hub``). Preprocessing
always comes from the model's own processor files (``AutoProcessor`` / ``AutoImageProcessor``
/ ``AutoTokenizer``), never from constants in pixlink, so that the normalisation, resize and
tokenisation are the ones the weights were trained with.

Image processors are loaded with ``backend="pil"`` (the PIL/NumPy implementations): the
"fast" torchvision ones would need ``torchvision``, which pixlink keeps out of its dependency
tree (see ``../shared/MODELS.md``).

Heavy libraries (torch, transformers) are imported inside the functions.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any, Callable

from .. import config
from ..errors import Errors, InputError, ModelUnavailableError
from ..log import get_logger

log = get_logger("pixlink.models.hub")

_TRUE = {"1", "ON", "YES", "TRUE"}


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` is set (read now, not at import time)."""
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in _TRUE


def hub_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """The cache directory hub backends download into: ``cache_dir`` if given, else
    ``$PIXLINK_CACHE/hub``. Created if missing."""
    p = Path(cache_dir).expanduser() if cache_dir is not None else config.cache_dir() / "hub"
    p.mkdir(parents=True, exist_ok=True)
    return p


def looks_like_path(model: str) -> bool:
    """True for strings that can only be a filesystem path, not a hub id: they start with
    ``/``, ``.`` or ``~``, or have more than one ``/`` (hub ids are ``name`` or ``owner/name``)."""
    return model.startswith(("/", ".", "~")) or model.count("/") > 1 or "\\" in model


def resolve_model(model: str | Path, backend: str) -> tuple[str, str, bool]:
    """Where to load ``model`` from.

    Returns ``(source, model_id, is_local)``: ``source`` is what ``from_pretrained`` gets,
    ``model_id`` tags the outputs (the hub id, or the absolute path of a local directory).
    Raises E304 for a path that does not exist, E308 for an empty name.
    """
    name = str(model).strip()
    if not name:
        raise InputError(Errors.E308.format(backend=backend, what="model", reason="empty name"))
    p = Path(name).expanduser()
    if p.is_dir():
        resolved = str(p.resolve())
        return resolved, resolved, True
    if looks_like_path(name) or p.exists():
        raise InputError(Errors.E304.format(backend=backend, path=name))
    return name, name, False


def load_pretrained(
    loader: Callable[..., Any], source: str, *, owner: str, cache_dir: Path, what: str = "model", **kwargs: Any
) -> Any:
    """``loader(source, cache_dir=cache_dir, **kwargs)`` with a catalogue error when the files
    cannot be had (not cached and no hub, unknown repo, gated repo, missing file): E305.

    ``owner`` is the pixlink backend name used in messages. Only the exceptions that mean "the
    files are not there" become E305 (``OSError`` — which covers huggingface_hub's HTTP,
    offline and not-found errors — and huggingface_hub's ``HFValidationError`` for malformed
    ids); anything else is a bug and propagates.
    """
    from huggingface_hub.errors import HFValidationError

    try:
        return loader(source, cache_dir=str(cache_dir), **kwargs)
    except (OSError, HFValidationError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        reason = f"{what}: {type(exc).__name__}: {first}"
        raise ModelUnavailableError(
            Errors.E305.format(backend=owner, model=source, reason=reason, cache_dir=cache_dir)
        ) from exc


def load_config(source: str, *, owner: str, cache_dir: Path) -> Any:
    """The model's ``config.json`` through ``AutoConfig`` (E305 when it cannot be had)."""
    from transformers import AutoConfig

    return load_pretrained(AutoConfig.from_pretrained, source, owner=owner, cache_dir=cache_dir, what="config")


def expect_model_type(cfg: Any, allowed: tuple[str, ...], *, owner: str, model: str, expected: str) -> str:
    """Return ``cfg.model_type`` or raise E306 when it is not one of ``allowed``."""
    mt = getattr(cfg, "model_type", None)
    if mt not in allowed:
        raise ModelUnavailableError(Errors.E306.format(backend=owner, model=model, model_type=mt, expected=expected))
    return mt


def load_processor(source: str, *, owner: str, cache_dir: Path, kind: str = "processor") -> Any:
    """The model's own processor, with the PIL backend for images (no torchvision).

    ``kind``: ``"processor"`` (``AutoProcessor``: image processor + tokenizer),
    ``"image_processor"`` (``AutoImageProcessor``) or ``"tokenizer"`` (``AutoTokenizer``).
    """
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer

    if kind == "processor":
        return load_pretrained(AutoProcessor.from_pretrained, source, owner=owner, cache_dir=cache_dir,
                               what="processor", backend="pil")
    if kind == "image_processor":
        return load_pretrained(AutoImageProcessor.from_pretrained, source, owner=owner, cache_dir=cache_dir,
                               what="image processor", backend="pil")
    if kind == "tokenizer":
        return load_pretrained(AutoTokenizer.from_pretrained, source, owner=owner, cache_dir=cache_dir,
                               what="tokenizer")
    raise InputError(Errors.E308.format(backend=owner, what="processor kind", reason=repr(kind)))


def needs(*modules: str, extra: str = "torch") -> Callable[[], str | None]:
    """A registry ``check``: ``None`` when every module can be imported here (found without
    importing it, so ``pixlink models list`` stays fast), else which is missing."""

    def check() -> str | None:
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        if missing:
            return f"missing package: {', '.join(missing)} (pip install 'pixlink[{extra}]')"
        return None

    return check


def to_pil(image: Any) -> Any:
    """An image (path, bytes, PIL, ``(H, W, 3)`` uint8 array...) as an RGB PIL image, through
    :func:`pixlink.io.load_image` (E001 on bad input). Returns ``(pil, (H, W))``."""
    from PIL import Image

    from ..io import load_image

    arr = load_image(image)
    return Image.fromarray(arr), (int(arr.shape[0]), int(arr.shape[1]))
