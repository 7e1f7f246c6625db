"""Weights that ship inside installed registry packages: find them without importing the
package (several of those packages import torchvision or timm at import time)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def package_file(package: str, relpath: str) -> Path | None:
    """``<package dir>/<relpath>`` if the package is installed and holds that file, else None."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        p = Path(loc) / relpath
        if p.is_file():
            return p
    return None


def check_packaged_weights(package: str, relpath: str, install_hint: str = "") -> str | None:
    """``None`` when torch and the weight file are there, else the reason (for a backend's
    ``check``)."""
    if importlib.util.find_spec("torch") is None:
        return "missing package: torch"
    if importlib.util.find_spec(package) is None:
        return f"missing package: {package}{install_hint}"
    if package_file(package, relpath) is None:
        return f"{package} holds no {relpath}"
    return None
