"""Shared fixtures. Data in ../shared/data is read in place, never copied; tests that need it
skip with the reason when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PIXLINK_DATA", REPO.parent / "shared" / "data"))


def shared(*parts: str) -> Path:
    """Path inside ../shared/data; skips the calling test with a clear reason if absent."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data {p} is absent (set PIXLINK_DATA to the folder holding it)")
    return p


@pytest.fixture(scope="session")
def shared_data():
    return shared
