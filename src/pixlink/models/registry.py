"""One registry for every model role, and the profiles that choose among backends.

A backend declares itself with :func:`register_backend` in a module under
``pixlink.models.backends`` (imported lazily by :func:`_load_backend_modules`), or in a module
of another package named by an entry point of the group ``pixlink.backends`` (spaCy's plugin
pattern: ``pixlink.ner.backend`` registers the trained tagger that way, so that ``models``
imports no task package). An entry point is named ``<role>.<backend>`` and its value is the
module to import; a plugin that fails to import is not a crash: the backend is listed with the
failure as the reason it cannot run (and the failure is logged at WARNING). Heavy libraries are
imported inside a factory, never at registration, so that ``pixlink models list`` is fast and
works without the optional extras.

Profiles:

* ``offline`` — only backends whose weights ship in installed packages (or need none).
* ``hub`` — the strong models of the papers, from the model hub or a local directory.
* ``auto`` — per role, the first hub backend whose weights are cached locally or whose hub is
  reachable; else the offline backend. The choice, and why, is logged and reported in
  :meth:`Profile.describe`, so that outputs can say which models ran.

Devices: a factory registered with ``device=True`` (every torch backend) receives ``device=``
from the profile, resolved by :func:`pixlink.device.resolve_device` (``auto`` = CUDA where
present, else CPU; ``PIXLINK_DEVICE`` when nothing is given).

Long-running services: a :class:`Profile` builds each backend once even when many threads ask
at once, and the memory of "the hub is not reachable" expires (``PIXLINK_HUB_RETRY_SECONDS``,
default 300 s), so that a service sees the hub come back.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from ..device import requested_device, resolve_device
from ..errors import Errors, InputError, ModelUnavailableError
from ..log import get_logger
from . import roles as R

log = get_logger("pixlink.models")

KINDS = ("packaged", "hub", "classical", "trained")
PLUGIN_GROUP = "pixlink.backends"
"""Entry-point group of backends that live in other packages (``<role>.<backend> = module``)."""
DEFAULT_HUB_RETRY_SECONDS = 300.0


@dataclass
class BackendSpec:
    """How to build one backend of one role.

    Attributes:
        role: one of :data:`pixlink.models.roles.ROLES`.
        name: registry name, unique within its role (``"clip"``, ``"litemedsam"``...).
        kind: ``packaged`` (weights in a registry package), ``hub`` (downloaded or local dir),
            ``classical`` (no weights), ``trained`` (pixlink's own artifact); ``plugin`` only for
            a backend whose plugin module failed to load (it cannot run, ``check`` says why).
        factory: ``factory(**options) -> backend``; imports its libraries lazily.
        check: ``check() -> None`` when it can run here, else the reason it cannot.
        default_model: the weights it loads by default (hub id or package name).
        license: licence of the default weights.
        description: one line for ``pixlink models list``.
        notes: limits a user must know (e.g. "box prompts only").
        device: the factory takes ``device=`` (a torch backend): :class:`Profile` passes the
            resolved device to it.
        plugin: ``"<entry point> = <module>"`` when the backend came from an entry point.
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
    device: bool = False
    plugin: str = ""

    def availability(self) -> str | None:
        try:
            return self.check()
        except ImportError as exc:  # a missing optional package is a reason, not a crash
            return f"missing package: {exc.name or exc}"


_REGISTRY: dict[str, dict[str, BackendSpec]] = {r: {} for r in R.ROLES}
_loaded = False
_loading = False
_lock = threading.RLock()
_plugin_problems: list[str] = []


def register_backend(
    role: str, name: str, kind: str, check: Callable[[], str | None], *, default_model: str = "",
    license: str = "", description: str = "", notes: str = "", device: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register ``factory`` as backend ``name`` of ``role``.

    ``device=True`` declares that the factory takes ``device=`` (a torch device string, already
    resolved when it comes from a :class:`Profile`)."""
    if role not in _REGISTRY:
        raise InputError(Errors.E301.format(role=role, roles=", ".join(R.ROLES)))
    if kind not in KINDS:
        raise InputError(Errors.E010.format(what="backend kind", value=kind, reason=f"expected one of {KINDS}"))

    def deco(factory: Callable[..., Any]) -> Callable[..., Any]:
        _REGISTRY[role][name] = BackendSpec(
            role=role, name=name, kind=kind, factory=factory, check=check, default_model=default_model,
            license=license, description=description, notes=notes, device=bool(device),
        )
        return factory

    return deco


def _load_backend_modules() -> None:
    """Import every module of ``pixlink.models.backends``, then the plugins of
    :data:`PLUGIN_GROUP` (once per process; thread-safe; a re-entrant call while loading returns)."""
    global _loaded, _loading
    if _loaded:
        return
    with _lock:
        if _loaded or _loading:
            return
        _loading = True
        try:
            import pixlink.models.backends as backends_pkg

            for info in pkgutil.iter_modules(backends_pkg.__path__):
                importlib.import_module(f"{backends_pkg.__name__}.{info.name}")
            _load_plugins(_plugin_entry_points())
            _loaded = True
        finally:
            _loading = False


def _plugin_entry_points() -> list[Any]:
    """The installed entry points of :data:`PLUGIN_GROUP` (from the packages' metadata: after
    editing ``pyproject.toml``, reinstall with ``pip install -e .`` for it to show)."""
    from importlib.metadata import entry_points

    return list(entry_points(group=PLUGIN_GROUP))


def _load_plugins(eps: Iterable[Any]) -> None:
    """Import each plugin module; one that fails is registered as a backend that cannot run."""
    for ep in eps:
        role, _, name = ep.name.partition(".")
        if role not in _REGISTRY or not name:
            msg = (f"entry point {ep.name!r} = {ep.value!r} of group {PLUGIN_GROUP} is not named "
                   f"'<role>.<backend>' with a role of {', '.join(R.ROLES)}; ignored")
            log.warning("%s", msg)
            _plugin_problems.append(msg)
            continue
        try:
            ep.load()
        except Exception as exc:  # noqa: BLE001 - any import failure of a plugin is reported, never hidden:
            # logged at WARNING and given as the backend's unavailability reason (E390 when built)
            reason = f"{type(exc).__name__}: {exc}"
            log.warning("plugin %s = %s (group %s) failed to load: %s", ep.name, ep.value, PLUGIN_GROUP, reason)
            _register_unloadable(ep, role, name, reason)
            continue
        spec = _REGISTRY[role].get(name)
        if spec is None:
            _register_unloadable(ep, role, name, f"{ep.value} imported but registered no backend {role}/{name}")
        else:
            spec.plugin = f"{ep.name} = {ep.value}"


def _register_unloadable(ep: Any, role: str, name: str, reason: str) -> None:
    message = Errors.E390.format(role=role, name=name, target=ep.value, entry=ep.name, reason=reason)

    def factory(**_: Any) -> Any:
        raise ModelUnavailableError(message)

    _REGISTRY[role][name] = BackendSpec(
        role=role, name=name, kind="plugin", factory=factory, check=lambda: f"plugin {ep.value} failed: {reason}",
        description=f"backend of plugin {ep.value} (could not be loaded)", plugin=f"{ep.name} = {ep.value}",
    )


def plugin_problems() -> list[str]:
    """Entry points of :data:`PLUGIN_GROUP` that were ignored (badly named), for reports."""
    _load_backend_modules()
    return list(_plugin_problems)


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
        R.SEGMENT: ("grabcut", "litemedsam"),  # natural-image masks: docs/instance-matching.md
        R.SEGMENT_ALL: ("classical_proposals",),
        R.DETECT: ("coco_fallback", "proposals_fallback"),
        R.NER: ("pixlink_ner", "spacy_sm"),
        R.DESCRIBE: (),
        R.OCR: ("rapidocr",),
        R.GENERATE: ("gemma3_270m", "template"),
        R.LOCAL_FEATURES: ("sift", "orb"),
        R.INSTANCE_EMBED: ("efficientnet_lite_instance",),
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
        R.LOCAL_FEATURES: ("sift", "orb"),
        R.INSTANCE_EMBED: (),  # CLIP's image side does this job; the head's weight beside it is not fitted
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
    """A set of backends, one per role, built lazily and cached; safe to share between threads.

    Args:
        name: ``offline``, ``hub`` or ``auto``.
        overrides: role -> backend name (from the CLI/config).
        options: role -> factory keyword arguments (e.g.
            ``{"image_text": {"model": "openai/clip-vit-large-patch14"}}``); a ``device`` given
            there wins over the profile's for that role.
        device: the torch device of every torch backend (``auto``, ``cpu``, ``cuda``,
            ``cuda:N``, ``mps``); None = ``PIXLINK_DEVICE``, else ``auto``. Resolved (E013 for
            CUDA without CUDA) when a torch backend is built.
        hub_retry_seconds: how long ``auto`` remembers that the hub was not reachable (None =
            ``PIXLINK_HUB_RETRY_SECONDS``, else 300 s); a choice that rested on such an answer
            is made again after that time, as long as its backend has not been built.

    :meth:`get` builds each role's backend exactly once, even when threads ask at once (a lock
    per role: building one role does not wait for another).
    """

    name: str = "auto"
    overrides: dict[str, str] = field(default_factory=dict)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    device: str | None = None
    hub_retry_seconds: float | None = None
    _instances: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    _devices: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    _choices: dict[str, Choice] = field(default_factory=dict, repr=False, compare=False)
    _expires: dict[str, float] = field(default_factory=dict, repr=False, compare=False)
    _role_locks: dict[str, threading.RLock] = field(default_factory=dict, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.name not in ("offline", "hub", "auto"):
            raise InputError(Errors.E303.format(profile=self.name))
        if self.options is None:
            self.options = {}
        if not isinstance(self.options, Mapping) or not all(isinstance(v, Mapping) for v in self.options.values()):
            raise InputError(Errors.E010.format(what="profile options", value=self.options,
                                                reason="a mapping of role -> keyword arguments"))
        self.options = {str(role): dict(kw) for role, kw in self.options.items()}
        if self.device is not None:
            self.device = requested_device(self.device)  # E010 for a malformed device, now
        if self.hub_retry_seconds is not None:
            self.hub_retry_seconds = hub_retry_seconds(self.hub_retry_seconds)

    def _role_lock(self, role: str) -> threading.RLock:
        with self._lock:
            lock = self._role_locks.get(role)
            if lock is None:
                lock = self._role_locks[role] = threading.RLock()
            return lock

    def choose(self, role: str) -> Choice:
        """Decide (without loading) which backend serves ``role``."""
        _load_backend_modules()
        if role not in _REGISTRY:
            raise InputError(Errors.E301.format(role=role, roles=", ".join(R.ROLES)))
        with self._role_lock(role):
            cached = self._choices.get(role)
            if cached is not None:
                exp = self._expires.get(role)
                if exp is None or role in self._instances or _clock() < exp:
                    return cached
                log.info("role %s: the hub answer behind choosing %r is older than %.0f s; choosing again", role,
                         cached.backend, hub_retry_seconds(self.hub_retry_seconds))
            choice, transient = self._decide(role)
            self._choices[role] = choice
            if transient:
                self._expires[role] = _clock() + hub_retry_seconds(self.hub_retry_seconds)
            else:
                self._expires.pop(role, None)
            return choice

    def _decide(self, role: str) -> tuple[Choice, bool]:
        """``(choice, transient)``; transient when an answer of the hub (reachable or not) decided it."""
        if role in self.overrides:
            spec = get_spec(role, self.overrides[role])
            why = spec.availability()
            if why is not None:
                return Choice(role, None, None, f"{spec.name}: {why}"), False
            return Choice(role, spec.name, spec.kind, "asked for", model=_model_of(spec, self.options.get(role))), False
        tried: list[str] = []
        transient = False
        order: list[str] = []
        if self.name in ("hub", "auto"):
            order += list(PREFERENCES["hub"].get(role, ()))
        if self.name in ("offline", "auto"):
            order += list(PREFERENCES["offline"].get(role, ()))
        seen: set[str] = set()
        for n in order:
            if n in seen or n not in _REGISTRY[role]:
                continue
            seen.add(n)
            spec = _REGISTRY[role][n]
            why = spec.availability()
            if why is None and self.name == "auto" and spec.kind == "hub":
                ok, where, asked = _hub_status(spec, self.options.get(role), self.hub_retry_seconds)
                transient = transient or asked
                if not ok:
                    why = f"{_model_of(spec, self.options.get(role))} {where}"
            if why is None:
                # a fallback: the profile's earlier preferences could not run here (in ``auto``
                # typically the hub weights are absent); logged and flagged in outputs
                fb = bool(tried)
                reason = "first available" + (f" (skipped: {'; '.join(tried)})" if tried else "")
                if fb:
                    log.warning("role %s: using %s (%s) because %s", role, n, spec.kind, "; ".join(tried))
                return Choice(role, n, spec.kind, reason, fallback=fb, model=_model_of(spec, self.options.get(role))), \
                    transient
            tried.append(f"{n}: {why}")
        return Choice(role, None, None, "; ".join(tried) or "no backend registered for this profile"), transient

    def set_option(self, role: str, key: str, value: Any, why: str) -> None:
        """Set ``options[role][key]`` (a KB that carries its own weights for a role names them
        here), unless the role already has another value there: E391 names both (a built
        backend cannot change its weights; a profile shared by two KBs must not swap them)."""
        with self._role_lock(role):
            have = self.options.get(role, {}).get(key)
            if have is None and role in self._instances:
                have = "(the backend's default, already built)"
            if have is not None and have != value:
                raise InputError(Errors.E391.format(role=role, key=key, have=have, want=value, why=why))
            self.options.setdefault(role, {})[key] = value

    def get(self, role: str) -> Any:
        """The backend instance for ``role``, built once (also when threads ask at once).

        A factory registered with ``device=True`` receives ``device=`` resolved from the role's
        options, else the profile's ``device``, else ``PIXLINK_DEVICE``, else ``auto``
        (E013 when CUDA is asked for and absent). Raises E300 when no backend can run.
        """
        if role in self._instances:
            return self._instances[role]
        with self._role_lock(role):
            if role in self._instances:
                return self._instances[role]
            choice = self.choose(role)
            if choice.backend is None:
                raise ModelUnavailableError(Errors.E300.format(role=role, profile=self.name, reason=choice.reason))
            spec = _REGISTRY[role][choice.backend]
            kwargs = dict(self.options.get(role, {}))
            device = "cpu"  # backends that take no device run on the CPU (dlib, OpenCV, spaCy, onnxruntime...)
            if spec.device:
                device = resolve_device(kwargs.get("device") or self.device)
                kwargs["device"] = device
            log.info("role %s -> %s (%s) on %s", role, spec.name, spec.kind, device)
            inst = spec.factory(**kwargs)
            self._devices[role] = device
            self._instances[role] = inst
            return inst

    def has(self, role: str) -> bool:
        return self.choose(role).backend is not None

    def describe(self) -> dict[str, dict[str, Any]]:
        """role -> the choice made so far (for outputs: which backends ran and why), with
        ``device``: where the built backend runs (``"cpu"``, ``"cuda"``...), None if not built."""
        with self._lock:
            choices = dict(self._choices)
        return {r: {**c.to_dict(), "device": self._devices.get(r)} for r, c in choices.items()}


def _model_of(spec: BackendSpec, options: dict[str, Any] | None) -> str | None:
    """The weights a backend will load: ``options["model"]`` or the spec's default."""
    return str((options or {}).get("model") or spec.default_model) or None


def hub_retry_seconds(value: float | str | None = None) -> float:
    """How long an answer of the hub ("reachable" / "not reachable") is remembered, in seconds:
    ``value``, else ``PIXLINK_HUB_RETRY_SECONDS``, else 300. E010 for a negative or non-number."""
    raw: Any = value if value is not None else os.environ.get("PIXLINK_HUB_RETRY_SECONDS", "").strip() or None
    if raw is None:
        return DEFAULT_HUB_RETRY_SECONDS
    try:
        secs = float(raw)
    except (TypeError, ValueError):
        secs = float("nan")
    if not secs >= 0.0:
        raise InputError(Errors.E010.format(what="hub retry seconds (PIXLINK_HUB_RETRY_SECONDS)", value=raw,
                                            reason="expected a number of seconds >= 0"))
    return secs


_clock: Callable[[], float] = time.monotonic
"""The clock the hub answers are aged with (tests replace it)."""

_reach_cache: dict[str, tuple[float, tuple[bool, str]]] = {}
"""model -> (time of the answer, (ok, where)): what the hub said, kept for :func:`hub_retry_seconds`."""


def hub_weights_status(spec: BackendSpec, options: dict[str, Any] | None = None, *,
                       retry_seconds: float | None = None) -> tuple[bool, str]:
    """For ``auto``: can this hub backend get its weights here, and why (not)?

    Returns ``(ok, where)``, ``where`` a short phrase ("cached", "not cached; HF_HUB_OFFLINE is
    set"...). The weights count when ``model`` is a local directory, when its
    ``config.json`` is in the cache the factory will use (``options["cache_dir"]``, default
    ``$PIXLINK_CACHE/hub``), or — unless ``HF_HUB_OFFLINE`` is set — when the hub answers for
    it (3 s timeout). The hub's answer is remembered for ``retry_seconds`` (default
    :func:`hub_retry_seconds`), then asked again, so a long-running service sees the hub come
    back. Only the errors that mean "cannot reach / no such repo" are caught: huggingface_hub's
    HTTP, offline and validation errors, ``OSError`` and httpx's transport errors.
    """
    ok, where, _ = _hub_status(spec, options, retry_seconds)
    return ok, where


def _hub_status(spec: BackendSpec, options: dict[str, Any] | None,
                retry_seconds: float | None) -> tuple[bool, str, bool]:
    """:func:`hub_weights_status` plus whether the answer came from asking the hub."""
    from pathlib import Path

    from .hub import hub_cache_dir, hub_offline, looks_like_path

    model = _model_of(spec, options)
    if not model:
        return False, "no model configured", False
    if Path(model).expanduser().is_dir():
        return True, "local directory", False
    if looks_like_path(model):
        return False, "no such directory", False
    try:
        from huggingface_hub import try_to_load_from_cache
        from huggingface_hub.errors import HFValidationError
    except ImportError as exc:
        return False, f"missing package: {exc.name or exc}", False
    cache = hub_cache_dir((options or {}).get("cache_dir"))
    try:
        cached = try_to_load_from_cache(model, "config.json", cache_dir=str(cache))
        if not isinstance(cached, str):  # sentence-transformers repos are found by their modules.json too
            cached = try_to_load_from_cache(model, "modules.json", cache_dir=str(cache))
    except HFValidationError as exc:
        return False, f"not a hub id ({exc})", False
    if isinstance(cached, str):
        return True, "cached", False
    if hub_offline():
        return False, "not cached; HF_HUB_OFFLINE is set", False
    ttl = hub_retry_seconds(retry_seconds)
    now = _clock()
    hit = _reach_cache.get(model)
    if hit is not None and now - hit[0] < ttl:
        return (*hit[1], True)
    from huggingface_hub import model_info

    try:
        model_info(model, timeout=3)
        status = (True, "hub reachable (will download)")
    except _network_errors() as exc:  # HfHubHTTPError, OfflineModeIsEnabled are OSErrors
        log.info("hub not reachable for %s: %s (asking again in %.0f s)", model, type(exc).__name__, ttl)
        status = (False, f"not cached; hub not reachable ({type(exc).__name__})")
    _reach_cache[model] = (now, status)
    return (*status, True)


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
