"""A small KB of real photos for the job and Milvus tests, and a manifest over it.

Obama, Biden, Kit Harington and Lin-Manuel Miranda with their reference photos, Rose Leslie
without one, and ~60 text-only distractors from FB15k-237 (every 250th entity): small, so that
``embed_kb`` with the offline profile (the packaged models) makes its vectors in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

from helpers import PHOTO_PEOPLE

PEOPLE = PHOTO_PEOPLE

# good items: boxes around heads (XYXY, original pixels), a caption, a text-only mention
GOOD = [
    {"id": "obama-in-pair", "image": "obama_and_biden.jpg", "box": [1110, 360, 1380, 645]},
    {"id": "biden-in-pair", "image": "obama_and_biden.jpg", "prompt": {"box": [715, 420, 945, 665]}},
    {"id": "biden-two", "image": "two_people.jpg", "box": [760, 35, 985, 265]},
    {"id": "obama-two", "image": "two_people.jpg", "box": [235, 25, 430, 225]},
    {"id": "kit", "image": "kit_with_rose.jpg", "box": [230, 70, 370, 220]},
    {"id": "rose-named", "image": "kit_with_rose.jpg", "box": [65, 110, 170, 225],
     "text": "Rose Leslie and Kit Harington at the Game of Thrones premiere"},
    {"id": "text-only", "text": "Lin-Manuel Miranda on stage", "surface": "Lin-Manuel Miranda", "mention_type": "PER"},
]
# bad items: a missing image, a box outside the image, a prompt of the wrong kind
BAD = [
    {"id": "missing-image", "image": "no_such_photo.jpg", "box": [0, 0, 10, 10]},
    {"id": "box-outside", "image": "obama.jpg", "box": [5000, 5000, 6000, 6000]},
    {"id": "bad-prompt", "image": "obama.jpg", "prompt": "the face"},
]


def build_photo_kb(tmp: Path, shared, distractor_every: int = 250, first: int | None = None, embed: bool = True) -> Path:
    """Build (and with ``embed``, embed) the KB under ``tmp``; return its directory. Distractors:
    every ``distractor_every``-th FB15k entity, or the ``first`` ones when given."""
    from pixlink.kb import build_kb
    from pixlink.link.embed import embed_kb

    photos = shared("photos")
    fb = json.loads(shared("kb", "fb15k237_entity2wikidata.json").read_text())
    keys = sorted(fb)[:first] if first is not None else sorted(fb)[::distractor_every]
    (tmp / "distractors.json").write_text(json.dumps({k: fb[k] for k in keys}))
    with open(tmp / "people.jsonl", "w") as fh:
        for qid, (label, desc, photo) in PEOPLE.items():
            fh.write(json.dumps({"id": qid, "label": label, "description": desc, "types": ["Q5"],
                                 "images": [str(photos / photo)] if photo else []}) + "\n")
    kb_dir = tmp / "kb"
    build_kb([str(tmp / "people.jsonl"), f"fb15k237:{tmp / 'distractors.json'}"], kb_dir, progress=False)
    if embed:
        embed_kb(kb_dir, "offline", cache_dir=tmp / "cache", progress=False)
    return kb_dir


def write_manifest(path: Path, shared, extra_lines: list[str] = ()) -> list[dict]:
    """A JSONL manifest of GOOD + BAD items with image paths relative to the photos folder
    (``image_root``), plus raw ``extra_lines`` (bad JSON, a row without id, a repeated id)."""
    rows = GOOD + BAD
    with open(path, "w") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
        for line in extra_lines:
            fh.write(line + "\n")
    return rows


def api_answers(linker, shared, rows, k: int = 5) -> dict[str, dict]:
    """The Python API's answer (or error code) for each good/bad row, by id (images resolved
    against the photos folder, as the jobs get them with ``image_root``)."""
    from pixlink.errors import PixlinkError

    out = {}
    for r in rows:
        prompt = r.get("prompt", {"box": r["box"]} if "box" in r else None)
        image = str(shared("photos") / r["image"]) if r.get("image") else None
        try:
            link = linker.link(image, prompt, text=r.get("text"), k=k, mention_id=r["id"], surface=r.get("surface"),
                               mention_type=r.get("mention_type"))
            out[r["id"]] = {"ok": True, "answer": link.to_dict()}
        except PixlinkError as exc:
            out[r["id"]] = {"ok": False, "code": exc.code}
    return out


def same_link(job_row: dict, api: dict) -> None:
    """Assert that a job's row (ok, code, result JSON) answers as the API did."""
    assert job_row["ok"] == api["ok"], (job_row, api)
    if not api["ok"]:
        assert job_row["code"] == api["code"], (job_row, api)
        return
    got, want = json.loads(job_row["result"]), api["answer"]
    assert got["prediction"] == want["prediction"] and got["nil"] == want["nil"], (got["candidates"][:2], want["candidates"][:2])
    assert [c["entity_id"] for c in got["candidates"]] == [c["entity_id"] for c in want["candidates"]]
    for a, b in zip(got["candidates"], want["candidates"]):
        assert abs(a["score"] - b["score"]) <= 1e-5, (a, b)
        assert a["signals"].keys() == b["signals"].keys()
    assert job_row["prediction"] == want["prediction"]
