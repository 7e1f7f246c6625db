"""Shared fixtures. The skip helpers live in ``tests/helpers.py`` (one copy for every test)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from helpers import shared  # noqa: E402


@pytest.fixture(scope="session")
def shared_data():
    return shared
