"""One small KB and one loaded engine for the service's tests.

KB: Obama, Biden, Kit Harington, Lin-Manuel Miranda with their reference photos, Rose Leslie
without one, 40 text-only FB15k-237 distractors and the CoDEx types of these; embedded with the offline models. The
engine (offline profile, GMNER on) loads once per session; each test builds its own app around
it with the limits it tests (:func:`make_app`).
"""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import pytest

from helpers import PHOTO_PEOPLE, codex_types_of, need_module

PEOPLE = PHOTO_PEOPLE
# obama_and_biden.jpg (2000 x 1428): a click on Obama's face (x, y) and boxes on the two heads (XYXY)
SPOTS = SimpleNamespace(obama_face=(1245, 500), obama_box=[1110, 360, 1380, 645], biden_box=[715, 420, 945, 665])


@pytest.fixture(scope="session")
def people_kb(tmp_path_factory, shared_data):
    from pixlink.kb import build_kb
    from pixlink.link.embed import embed_kb

    photos = shared_data("photos")
    fb = json.loads(shared_data("kb", "fb15k237_entity2wikidata.json").read_text())
    tmp = tmp_path_factory.mktemp("serve_kb")
    keys = sorted(fb)
    distractors = {k: fb[k] for k in keys[:: len(keys) // 40][:40]}
    (tmp / "distractors.json").write_text(json.dumps(distractors))
    with open(tmp / "people.jsonl", "w") as fh:
        for qid, (label, desc, photo) in PEOPLE.items():
            fh.write(json.dumps({"id": qid, "label": label, "description": desc, "types": ["Q5"],
                                 "images": [str(photos / photo)] if photo else []}) + "\n")
    types = codex_types_of([*PEOPLE, *(v["wikidata_id"] for v in distractors.values())], tmp)
    kb_dir = tmp / "kb"
    build_kb([str(tmp / "people.jsonl"), f"fb15k237:{tmp / 'distractors.json'}", *types], kb_dir, progress=False)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    report = embed_kb(kb_dir, "offline", cache_dir=tmp / "cache", progress=False)
    assert report["face"]["entities"] == 4, report["face"]
    return kb_dir


@pytest.fixture(scope="session")
def settings(people_kb):
    need_module("fastapi", "the service needs pixlink[serve]")
    from pixlink.serve import ServeSettings

    return ServeSettings(kb=str(people_kb), profile="offline")


@pytest.fixture(scope="session")
def engine(settings):
    from pixlink.serve.engine import Engine

    eng = Engine(settings)
    eng.start()
    assert eng.ready, eng.error
    yield eng
    eng.close()


@pytest.fixture
def make_app(engine, settings):
    """``make_app(**changes)`` -> a TestClient (entered) of an app around the session's engine with
    settings ``changes``; closed after the test."""
    from dataclasses import replace

    from fastapi.testclient import TestClient

    from pixlink.serve import create_app

    clients = []

    def make(raise_server_exceptions: bool = True, **changes):
        s = replace(settings, **changes)
        app = create_app(s, engine=engine.with_settings(s), load=False)
        c = TestClient(app, raise_server_exceptions=raise_server_exceptions)
        c.__enter__()
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def client(make_app):
    return make_app()


@pytest.fixture(scope="session")
def spots():
    return SPOTS


@pytest.fixture(scope="session")
def obama_biden(shared_data):
    return shared_data("photos", "obama_and_biden.jpg").read_bytes()
