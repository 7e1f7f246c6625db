"""Fixtures of the CLI tests: a small picture, a guard that no model loads, and (for the slow
tests) a people KB built and embedded through the commands themselves."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from helpers import PHOTO_PEOPLE, shared
from pixlink.cli.main import app

PEOPLE = PHOTO_PEOPLE  # id -> (label, description, reference photo in ../shared/data/photos or None)


def invoke(*args: str):
    """Run ``pixlink ARGS`` in-process; stdout and stderr apart (``.stdout``, ``.stderr``)."""
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def cli():
    """``cli("kb", "info", path)`` runs ``pixlink kb info PATH`` in-process (see :func:`invoke`)."""
    return invoke


@pytest.fixture(autouse=True)
def _restore_log_level():
    """A command sets the ``pixlink`` logger's level from ``-v``; give other tests theirs back."""
    root = logging.getLogger("pixlink")
    level = root.level
    yield
    root.setLevel(level)


@pytest.fixture
def picture(tmp_path):
    """A 64 x 48 RGB PNG (W x H)."""
    p = tmp_path / "pic.png"
    Image.fromarray(np.full((48, 64, 3), 90, np.uint8)).save(p)
    return p


@pytest.fixture
def no_models(monkeypatch):
    """Fail the test if the linker or the GMNER pipeline is built (they load the models): the
    options must be refused before that."""
    from pixlink.link import Linker
    from pixlink.ner.gmner import GMNERPipeline

    def refuse(*a, **k):
        raise AssertionError("the command built its models before checking its options")

    monkeypatch.setattr(Linker, "from_kb", classmethod(refuse))
    monkeypatch.setattr(GMNERPipeline, "from_kb", classmethod(refuse))


@pytest.fixture(scope="session")
def people_kb(tmp_path_factory):
    """A KB of five people (four with a reference photo) built with ``pixlink kb build`` and
    embedded with ``pixlink kb embed --signals face --profile offline``; returns
    ``(kb_dir, embed_report)``. Tests that add vectors work on a copy."""
    photos = shared("photos")
    tmp = tmp_path_factory.mktemp("people_kb")
    src = tmp / "people.jsonl"
    with open(src, "w", encoding="utf-8") as fh:
        for qid, (label, desc, photo) in PEOPLE.items():
            fh.write(json.dumps({"id": qid, "label": label, "description": desc, "types": ["Q5"],
                                 "images": [str(photos / photo)] if photo else []}) + "\n")
    kb = tmp / "kb"
    r = invoke("kb", "build", src, "--out", kb, "--json")
    assert r.exit_code == 0, r.output
    r = invoke("kb", "embed", kb, "--signals", "face", "--profile", "offline", "--json")
    assert r.exit_code == 0, r.output
    return kb, json.loads(r.stdout)
