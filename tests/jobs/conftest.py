"""Fixtures of the job tests: one small KB of real photos (built and embedded once per session),
a manifest of its photos with bad items, the job spec and the Python API's answers."""

from __future__ import annotations

import json

import pytest

from jobs.photo_kb import BAD, GOOD, api_answers, build_photo_kb, write_manifest

# rows a manifest reader cannot use: not JSON, no id, an id seen before
BAD_LINES = ['{not json', json.dumps({"text": "a row without an id"}), json.dumps({"id": "kit", "image": "x.jpg"})]


@pytest.fixture(scope="session")
def photo_kb(tmp_path_factory, shared_data):
    return build_photo_kb(tmp_path_factory.mktemp("jobs_kb"), shared_data)


@pytest.fixture(scope="session")
def link_spec(photo_kb):
    from pixlink.jobs import JobSpec
    from pixlink.link import LinkerConfig, LinkerSpec

    linker = LinkerSpec(kb=str(photo_kb), profile="offline", config=LinkerConfig(segment=False).to_dict())
    return JobSpec("link", {"linker": linker.to_dict(), "k": 5})


@pytest.fixture(scope="session")
def manifest(tmp_path_factory, shared_data):
    path = tmp_path_factory.mktemp("manifest") / "items.jsonl"
    write_manifest(path, shared_data, BAD_LINES)
    return path


@pytest.fixture(scope="session")
def api(link_spec, shared_data):
    """The Python API's answers, item by item (one linker, built from the same spec)."""
    from pixlink.link import LinkerSpec

    linker = LinkerSpec.from_dict(link_spec.params["linker"]).build()
    return api_answers(linker, shared_data, GOOD + BAD, k=5)
