"""One registry for every model role, and the profiles that choose among backends.

A backend declares itself with :func:`register_backend` in a module under
``pixlink.models.backends`` (imported lazily by :func:`_load_backend_modules`); heavy
libraries are imported inside its factory, never at registration, so that ``pixlink models
list`` is fast and works without the optional extras.

Profiles:

* ``offline`` — only backends whose weights ship in installed packages (or need none).
* ``hub`` — the strong models of the papers, from the model hub or a local directory.
* ``auto`` — per role, the first hub backend whose weights are cached locally or whose hub is
  reachable; else the offline backend. The choice, and why, is logged and reported in
  :meth:`Profile.describe`, so that outputs can say which models ran.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import Errors, InputError, ModelUnavailableError
from ..log import get_logger
from . import roles as R

log = get_logger("pixlink.models")

KINDS = ("packaged", "hub", "classical", "trained")


@dataclass
class BackendSpec:
    """How to build one backend of one role.

    Attributes:
        role: one of :data:`pixlink.models.roles.ROLES`.
        name: registry name, unique within its role (``"clip"``, ``"litemedsam"``...).
        kind: ``packaged`` (weights in a registry package), ``hub`` (downloaded or local dir),
            ``classical`` (no weights), ``trained`` (pixlink's own artifact).
        factory: ``factory(**options) -> backend``; imports its libraries lazily.
        check: ``check() -> None`` when it can run here, else the reason it cannot.
        default_model: the weights it loads by default (hub id or package name).
        license: licence of the default weights.
        description: one line for ``pixlink models list``.
        notes: limits a user must know (e.g. "box prompts only").
    """

    role: str
    name: str
    kind: str
    factory: Callable[..., Any]
    check: Callable[[], str | None]
    default_model: str = ""
    license: str = ""
    description: str = ""
    notes: str = ""

    def availability(self) -> str | None:
        try:
            return self.check()
        except ImportError as exc:  # a missing optional package is a reason, not a crash
            return f"missing package: {exc.name or exc}"


_REGISTRY: dict[str, dict[str, BackendSpec]] = {r: {} for r in R.ROLES}
_loaded = False
_lock = threading.Lock()


def register_backend(
    role: str, name: str, kind: str, check: Callable[[], str | None], *, default_model: str = "",
    license: str = "", description: str = "", notes: str = "",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register ``factory`` as backend ``name`` of ``role``."""
    if role not in _REGISTRY:
        raise InputError(Errors.E301.format(role=role, roles=", ".join(R.ROLES)))
    if kind not in KINDS:
        raise InputError(Errors.E010.format(what="backend kind", value=kind, reason=f"expected one of {KINDS}"))

    def deco(factory: Callable[..., Any]) -> Callable[..., Any]:
        _REGISTRY[role][name] = BackendSpec(
            role=role, name=name, kind=kind, factory=factory, check=check, default_model=default_model,
            license=license, description=description, notes=notes,
        )
        return factory

    return deco


def _load_backend_modules() -> None:
    global _loaded
    with _lock:
        if _loaded:
            return
        import pixlink.models.backends as backends_pkg

        for info in pkgutil.iter_modules(backends_pkg.__path__):
            importlib.import_module(f"{backends_pkg.__name__}.{info.name}")
        _loaded = True


def list_backends(role: str | None = None) -> list[BackendSpec]:
    """Registered backends, of one role or all."""
    _load_backend_modules()
    if role is not None:
        if role not in _REGISTRY:
            raise InputError(Errors.E301.format(role=role, roles=", ".join(R.ROLES)))
        return list(_REGISTRY[role].values())
    return [s for r in R.ROLES for s in _REGISTRY[r].values()]


def get_spec(role: str, name: str) -> BackendSpec:
    _load_backend_modules()
    if role not in _REGISTRY:
        raise InputError(Errors.E301.format(role=role, roles=", ".join(R.ROLES)))
    try:
        return _REGISTRY[role][name]
    except KeyError:
        raise InputError(
            Errors.E302.format(role=role, name=name, names=", ".join(_REGISTRY[role]) or "none")
        ) from None


# Preference order per profile and role. Names absent from the registry are skipped.
PREFERENCES: dict[str, dict[str, tuple[str, ...]]] = {
    "offline": {
        R.IMAGE_TEXT: ("conse_efficientnet",),
        R.IMAGE_EMBED: ("efficientnet_lite",),
        R.TEXT_EMBED: ("minilm", "mpnet"),
        R.FACES: ("dlib",),
        R.SEGMENT: ("litemedsam", "grabcut"),
        R.SEGMENT_ALL: ("classical_proposals",),
        R.DETECT: ("coco_fallback", "proposals_fallback"),
        R.NER: ("pixlink_ner", "spacy_sm"),
        R.DESCRIBE: (),
        R.OCR: ("rapidocr",),
        R.GENERATE: ("gemma3_270m", "template"),
    },
    "hub": {
        R.IMAGE_TEXT: ("clip", "siglip"),
        R.IMAGE_EMBED: ("clip_vision",),
        R.TEXT_EMBED: ("hub_sentence_transformer", "mpnet", "minilm"),
        R.FACES: ("dlib",),
        R.SEGMENT: ("sam",),
        R.SEGMENT_ALL: ("sam_auto",),
        R.DETECT: ("owlv2", "grounding_dino"),
        R.NER: ("pixlink_ner", "spacy_sm"),
        R.DESCRIBE: ("hub_vlm",),
        R.OCR: ("rapidocr",),
        R.GENERATE: ("hub_lm",),
    },
}


@dataclass
class Choice:
    """Which backend a profile chose for a role, and why (reported in outputs).

    ``fallback`` is True when the profile's earlier preferences could not run here (they are
    listed in ``reason``, e.g. ``skipped: clip: openai/clip-vit-base-patch32 not cached;
    HF_HUB_OFFLINE is set``); ``model`` is the weights the backend will load.
    """

    role: str
    backend: str | None
    kind: str | None
    reason: str
    fallback: bool = False
    model: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "backend": self.backend, "kind": self.kind, "model": self.model,
                "reason": self.reason, "fallback": self.fallback}


@dataclass
class Profile:
    """A set of backends, one per role, built lazily and cached.

    ``overrides`` maps role -> backend name (from the CLI/config), ``options`` maps role ->
    factory keyword arguments (e.g. ``{"image_text": {"model": "openai/clip-vit-large-patch14"}}``).
    """

    name: str = "auto"
    overrides: dict[str, str] = field(default_factory=dict)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    _instances: dict[str, Any] = field(default_factory=dict, repr=False)
    _choices: dict[str, Choice] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.name not in ("offline", "hub", "auto"):
            raise InputError(Errors.E303.format(profile=self.name))

    def choose(self, role: str) -> Choice:
        """Decide (without loading) which backend serves ``role``."""
        if role in self._choices:
            return self._choices[role]
        _load_backend_modules()
        if role not in _REGISTRY:
            raise InputError(Errors.E301.format(role=role, roles=", ".join(R.ROLES)))
        tried: list[str] = []
        if role in self.overrides:
            spec = get_spec(role, self.overrides[role])
            why = spec.availability()
            choice = Choice(role, spec.name, spec.kind, "asked for", model=_model_of(spec, self.options.get(role)))
            if why is not None:
                choice = Choice(role, None, None, f"{spec.name}: {why}")
            self._choices[role] = choice
            return choice
        order: list[tuple[str, bool]] = []
        if self.name in ("hub", "auto"):
            order += [(n, False) for n in PREFERENCES["hub"].get(role, ())]
        if self.name in ("offline", "auto"):
            order += [(n, self.name == "auto") for n in PREFERENCES["offline"].get(role, ())]
        seen: set[str] = set()
        for n, _offline_pref in order:
            if n in seen or n not in _REGISTRY[role]:
                continue
            seen.add(n)
            spec = _REGISTRY[role][n]
            why = spec.availability()
            if why is None and self.name == "auto" and spec.kind == "hub":
                ok, where = hub_weights_status(spec, self.options.get(role))
                if not ok:
                    why = f"{_model_of(spec, self.options.get(role))} {where}"
            if why is None:
                # a fallback: the profile's earlier preferences could not run here (in ``auto``
                # typically the hub weights are absent); logged and flagged in outputs
                fb = bool(tried)
                reason = "first available" + (f" (skipped: {'; '.join(tried)})" if tried else "")
                choice = Choice(role, n, spec.kind, reason, fallback=fb, model=_model_of(spec, self.options.get(role)))
                if fb:
                    log.warning("role %s: using %s (%s) because %s", role, n, spec.kind, "; ".join(tried))
                self._choices[role] = choice
                return choice
            tried.append(f"{n}: {why}")
        choice = Choice(role, None, None, "; ".join(tried) or "no backend registered for this profile")
        self._choices[role] = choice
        return choice

    def get(self, role: str) -> Any:
        """The backend instance for ``role`` (built once). Raises E300 when none can run."""
        if role in self._instances:
            return self._instances[role]
        choice = self.choose(role)
        if choice.backend is None:
            raise ModelUnavailableError(Errors.E300.format(role=role, profile=self.name, reason=choice.reason))
        spec = _REGISTRY[role][choice.backend]
        log.info("role %s -> %s (%s)", role, spec.name, spec.kind)
        inst = spec.factory(**self.options.get(role, {}))
        self._instances[role] = inst
        return inst

    def has(self, role: str) -> bool:
        return self.choose(role).backend is not None

    def describe(self) -> dict[str, dict[str, Any]]:
        """role -> the choice made so far (for outputs: which backends ran and why)."""
        return {r: c.to_dict() for r, c in self._choices.items()}


def _model_of(spec: BackendSpec, options: dict[str, Any] | None) -> str | None:
    """The weights a backend will load: ``options["model"]`` or the spec's default."""
    return str((options or {}).get("model") or spec.default_model) or None


_reach_cache: dict[str, tuple[bool, str]] = {}


def hub_weights_status(spec: BackendSpec, options: dict[str, Any] | None = None) -> tuple[bool, str]:
    """For ``auto``: can this hub backend get its weights here, and why (not)?

    Returns ``(ok, where)``, ``where`` a short phrase ("cached", "not cached; HF_HUB_OFFLINE is
    set"...). The weights count when ``model`` is a local directory, when its
    ``config.json`` is in the cache the factory will use (``options["cache_dir"]``, default
    ``$PIXLINK_CACHE/hub``), or — unless ``HF_HUB_OFFLINE`` is set — when the hub answers for
    it (3 s timeout, answer remembered for the process). Only the errors that mean "cannot
    reach / no such repo" are caught: huggingface_hub's HTTP, offline and validation errors,
    ``OSError`` and httpx's transport errors.
    """
    from pathlib import Path

    from .hub import hub_cache_dir, hub_offline, looks_like_path

    model = _model_of(spec, options)
    if not model:
        return False, "no model configured"
    if Path(model).expanduser().is_dir():
        return True, "local directory"
    if looks_like_path(model):
        return False, "no such directory"
    try:
        from huggingface_hub import try_to_load_from_cache
        from huggingface_hub.errors import HFValidationError
    except ImportError as exc:
        return False, f"missing package: {exc.name or exc}"
    cache = hub_cache_dir((options or {}).get("cache_dir"))
    try:
        cached = try_to_load_from_cache(model, "config.json", cache_dir=str(cache))
        if not isinstance(cached, str):  # sentence-transformers repos are found by their modules.json too
            cached = try_to_load_from_cache(model, "modules.json", cache_dir=str(cache))
    except HFValidationError as exc:
        return False, f"not a hub id ({exc})"
    if isinstance(cached, str):
        return True, "cached"
    if hub_offline():
        return False, "not cached; HF_HUB_OFFLINE is set"
    if model in _reach_cache:
        return _reach_cache[model]
    from huggingface_hub import model_info

    try:
        model_info(model, timeout=3)
        status = (True, "hub reachable (will download)")
    except _network_errors() as exc:  # HfHubHTTPError, OfflineModeIsEnabled are OSErrors
        log.info("hub not reachable for %s: %s", model, type(exc).__name__)
        status = (False, f"not cached; hub not reachable ({type(exc).__name__})")
    _reach_cache[model] = status
    return status


def _network_errors() -> tuple[type[BaseException], ...]:
    """The exception types a failed hub request raises: OSError (HfHubHTTPError,
    OfflineModeIsEnabled) and the HTTP client's errors — huggingface_hub 1.x uses httpx,
    2.x its fork httpx2, so both are collected when installed."""
    errs: list[type[BaseException]] = [OSError]
    for mod in ("httpx", "httpx2"):
        try:
            errs.append(__import__(mod).HTTPError)
        except (ImportError, AttributeError):
            continue
    return tuple(errs)


def hub_weights_reachable(spec: BackendSpec, options: dict[str, Any] | None = None) -> bool:
    """For ``auto``: are the hub weights in the local cache, a local directory, or reachable?
    (See :func:`hub_weights_status` for the reason.)"""
    return hub_weights_status(spec, options)[0]
