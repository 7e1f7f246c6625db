"""``pixlink kb embed`` on a KB of five people (four with a reference photo), offline models."""

from __future__ import annotations

import json
import shutil

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.data]


def test_embed_report_counts_what_the_kb_holds(people_kb):
    kb, report = people_kb
    assert set(report) == {"face"}
    face = report["face"]
    # a face vector for each of the four people with a photo; Rose Leslie has none
    assert face["entities"] == 4 and face["vectors"] == 4 and face["items"] == 4 and face["errors"] == [], face
    assert face["space"] == "entity_face" and "dlib" in face["model_id"]
    assert (kb / "vectors" / "entity_face").is_dir()


def test_embed_text_vectors_into_a_copy(cli, people_kb, tmp_path):
    kb = tmp_path / "kb"
    shutil.copytree(people_kb[0], kb)
    r = cli("kb", "embed", kb, "--signals", "dense_text", "--profile", "offline", "--json")
    assert r.exit_code == 0, r.output
    text = json.loads(r.stdout)["dense_text"]
    assert text["entities"] == 5 and text["vectors"] == 5 and text["space"] == "entity_text", text
    # again, human-readable: the vectors come from the cache; one line per signal on stderr
    r = cli("kb", "embed", kb, "--signals", "dense_text", "--profile", "offline")
    assert r.exit_code == 0 and r.stdout == "", r.output
    assert "dense_text: 5 vectors of 5 entities" in " ".join(r.stderr.split())


def test_embed_of_a_directory_that_is_not_a_kb(cli, tmp_path):
    (tmp_path / "notes.txt").write_text("not a KB\n")
    r = cli("kb", "embed", tmp_path, "--signals", "face", "--profile", "offline")
    assert r.exit_code == 2 and "[E100]" in r.stderr, r.output


def test_a_kb_image_without_a_face_is_reported_by_its_own_code(cli, tmp_path):
    """An entity whose only image shows no face (a cup, untyped) gets no face vector; the report
    names the image and says why (E326), and the person beside it is embedded. An entity typed as
    something other than a person (a country) is not tried at all, and counted."""
    from helpers import shared
    from pixlink.demo.materials import skimage_photo

    src = tmp_path / "kb.jsonl"
    rows = [{"id": "Q76", "label": "Barack Obama", "types": ["Q5"], "images": [str(shared("photos") / "obama.jpg")]},
            {"id": "Q8486", "label": "coffee", "images": [str(skimage_photo("coffee.png"))]},
            {"id": "Q30", "label": "United States", "types": ["Q6256"], "images": [str(skimage_photo("astronaut.png"))]}]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert cli("kb", "build", src, "--out", tmp_path / "kb", "--json").exit_code == 0
    r = cli("kb", "embed", tmp_path / "kb", "--signals", "face", "--profile", "offline", "--json")
    assert r.exit_code == 0, r.output
    face = json.loads(r.stdout)["face"]
    assert face["vectors"] == 1 and [e["code"] for e in face["errors"]] == ["E326"], face
    # the astronaut's face is in the country's image, and a country is not a person: left out
    assert face["items"] == 2 and face["left_out"] == {"typed as something other than a person": 1}, face
    err = face["errors"][0]["error"]
    assert "coffee.png" in err and "no face found" in err and "KB directory" not in err, err
    r = cli("kb", "embed", tmp_path / "kb", "--signals", "face", "--profile", "offline")
    assert r.exit_code == 0 and "1 entity left out (typed as something other than a person)" in " ".join(r.stderr.split()), r.output
