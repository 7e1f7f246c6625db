"""Settings read from the environment (never from edits to the source).

* ``PIXLINK_CACHE``  — cache directory for models and embeddings (default ``~/.cache/pixlink``).
* ``PIXLINK_PROFILE`` — model profile: ``offline``, ``hub`` or ``auto`` (default ``auto``).
* ``PIXLINK_DATA``   — the shared data folder for tests/benchmarks (default ``../shared/data``
  beside the checkout).
"""

from __future__ import annotations

import os
from pathlib import Path

PROFILES = ("offline", "hub", "auto")


def cache_dir() -> Path:
    p = Path(os.environ.get("PIXLINK_CACHE", Path.home() / ".cache" / "pixlink")).expanduser()
    p.mkdir(parents=True, exist_ok=True)
    return p


def default_profile() -> str:
    prof = os.environ.get("PIXLINK_PROFILE", "auto")
    if prof not in PROFILES:
        from .errors import Errors, InputError

        raise InputError(Errors.E010.format(what="PIXLINK_PROFILE", value=prof, reason=f"expected one of {PROFILES}"))
    return prof


def shared_data_dir() -> Path:
    env = os.environ.get("PIXLINK_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data"
