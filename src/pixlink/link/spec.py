"""A linker described by a small serialisable spec, for worker processes and Ray actors.

A :class:`~pixlink.link.Linker` holds SQLite connections, memory-mapped indexes and loaded
models: it is never pickled. What travels to another process is a :class:`LinkerSpec` — the KB
directory, the profile (with backend overrides and options), the linker config, the fusion
parameters and the device — as JSON; the receiving process builds its own linker from it,
once (``spec.build()``). Pickling a linker built from a spec sends only the spec.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from ..errors import Errors, InputError


@dataclass(frozen=True)
class LinkerSpec:
    """Everything needed to build the same linker in another process.

    Attributes:
        kb: the KB directory (as the receiving process sees it).
        profile: ``offline``, ``hub`` or ``auto``.
        overrides: role -> backend name (as :class:`~pixlink.models.Profile` takes them).
        options: role -> backend factory options.
        config: :class:`~pixlink.link.LinkerConfig` as a dict (``LinkerConfig.to_dict()``).
        fusion: the path of a fusion JSON, the fusion parameters as a dict
            (``Fusion.to_dict()``), or None for the shipped ones.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or None (``PIXLINK_DEVICE``, else auto).
    """

    kb: str
    profile: str = "auto"
    overrides: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    fusion: str | Mapping[str, Any] | None = None
    device: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.kb, str) or not self.kb:
            raise InputError(Errors.E406.format(reason=f"kb must be a directory path, got {self.kb!r}"))
        if self.profile not in ("offline", "hub", "auto"):
            raise InputError(Errors.E406.format(reason=f"profile must be offline, hub or auto, got {self.profile!r}"))
        for name in ("overrides", "options", "config"):
            if not isinstance(getattr(self, name), Mapping):
                raise InputError(Errors.E406.format(reason=f"{name} must be a mapping"))
        if self.fusion is not None and not isinstance(self.fusion, (str, Mapping)):
            raise InputError(Errors.E406.format(reason="fusion must be a path, a parameters dict or null"))
        if self.device is not None:
            from ..device import requested_device

            requested_device(self.device)
        from .config import LinkerConfig

        LinkerConfig.from_dict(dict(self.config), where="spec config")  # validate now, not in the worker

    # -- serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["overrides"] = dict(self.overrides)
        d["options"] = {k: dict(v) for k, v in self.options.items()}
        d["config"] = dict(self.config)
        d["fusion"] = dict(self.fusion) if isinstance(self.fusion, Mapping) else self.fusion
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: Any) -> "LinkerSpec":
        if not isinstance(d, Mapping):
            raise InputError(Errors.E406.format(reason=f"expected a JSON object, got {type(d).__name__}"))
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise InputError(Errors.E406.format(reason=f"unknown keys {unknown}; keys are {sorted(names)}"))
        if "kb" not in d:
            raise InputError(Errors.E406.format(reason="it names no kb"))
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> "LinkerSpec":
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise InputError(Errors.E406.format(reason=f"not JSON ({exc})")) from exc

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "LinkerSpec":
        try:
            return cls.from_json(Path(path).read_text())
        except OSError as exc:
            raise InputError(Errors.E406.format(reason=f"cannot read {path}: {exc}")) from exc

    # -- building --------------------------------------------------------------------------
    def make_profile(self) -> Any:
        from ..models import Profile

        kwargs: dict[str, Any] = {"overrides": dict(self.overrides), "options": {k: dict(v) for k, v in self.options.items()}}
        if self.device is not None:
            kwargs["device"] = self.device
        return Profile(self.profile, **kwargs)

    def build(self) -> Any:
        """Open the KB and build the :class:`~pixlink.link.Linker` this spec describes."""
        from ..kb import KB
        from .config import LinkerConfig
        from .fusion import Fusion
        from .linker import Linker

        fusion = None
        if isinstance(self.fusion, str):
            fusion = Fusion.load(self.fusion)
        elif isinstance(self.fusion, Mapping):
            fusion = Fusion.from_dict(self.fusion, name=str(self.fusion.get("name") or "spec"))
        config = LinkerConfig.from_dict(dict(self.config), where="spec config")
        return Linker(KB.open(self.kb), self.make_profile(), config, fusion, spec=self)


def _build_from_dict(d: dict[str, Any]) -> Any:
    """Unpickling a linker: build it again from its spec."""
    return LinkerSpec.from_dict(d).build()
