"""Fixtures of the model tests. Skip helpers come from ``tests/helpers.py`` (one copy for the
suite); this adds the sample images that installed packages ship (matplotlib, scikit-learn),
which are test material, not backends: their absence skips, also in CI."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import shared

from pixlink.io import load_image
from pixlink.models.packaged import package_file


def _package_sample(package: str, relpath: str) -> Path:
    p = package_file(package, relpath)
    if p is None:
        pytest.skip(f"sample image {relpath} of package {package} is not installed here")
    return p


@pytest.fixture(scope="session")
def package_sample():
    """``package_sample(package, relpath) -> Path`` of a file an installed package ships, or skip."""
    return _package_sample


@pytest.fixture(scope="session")
def probe_image():
    """``probe_image(ref) -> Path`` for the image references of
    ``benchmarks/data/offline_vision_probe.json``: ``shared:<path in shared data>`` or
    ``pkg:<package>/<path inside it>``."""

    def resolve(ref: str) -> Path:
        kind, rest = ref.split(":", 1)
        if kind == "shared":
            return shared(*rest.split("/"))
        pkg, sub = rest.split("/", 1)
        return _package_sample(pkg, sub)

    return resolve


@pytest.fixture(scope="module")
def two_people():
    """``two_people.jpg`` (Obama and Biden, 1126 x 661) as ``(H, W, 3)`` uint8 RGB."""
    return load_image(shared("photos", "two_people.jpg"))
