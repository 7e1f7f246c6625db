"""Reverse annotation on the shared photos with the offline models: people are found by their
own faces and text, boxes agree with hand-drawn ones, masks lie inside the person, non-visual
entities are rejected by rule, a place gets the whole image, the COCO output loads in
pycocotools and in pixlink's MaskOVEN loader, a run resumes without redoing or duplicating."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helpers import shared
from pixlink.annotate import AnnotateConfig, ReverseAnnotator, read_items, run_annotation
from pixlink.geometry import box_iou, rle_to_mask
from pixlink.kb import KB, build_kb_from_entities
from pixlink.link.embed import embed_kb
from pixlink.models import Profile
from pixlink.types import Entity

pytestmark = [pytest.mark.slow, pytest.mark.data]

BOXES = json.loads((Path(__file__).parent / "fixtures" / "person_boxes.json").read_text())
PEOPLE = {"Q76": ("Barack Obama", "obama.jpg"), "Q6279": ("Joe Biden", "biden.jpg"),
          "Q357607": ("Kit Harington", "johnsnow_test1.jpg"), "Q461132": ("Rose Leslie", None)}


@pytest.fixture(scope="module")
def annotator(tmp_path_factory):
    photos = shared("photos")
    tmp = tmp_path_factory.mktemp("annotate")
    ents = [Entity(q, label, description="a person", types=("Q5",), images=(str(photos / p),) if p else ())
            for q, (label, p) in PEOPLE.items()]
    ents += [Entity("Q5", "human"), Entity("Q1656682", "event"), Entity("Q9143", "programming language"),
             Entity("Q5119", "capital city"),
             Entity("Q8023", "2008 Democratic National Convention", types=("Q1656682",)),
             Entity("Q28865", "Python", description="programming language", types=("Q9143",)),
             Entity("Q61", "Washington, D.C.", description="capital of the United States", types=("Q5119",))]
    build_kb_from_entities(ents, tmp / "kb")
    prof = Profile("offline")
    embed_kb(tmp / "kb", prof, ["face"], cache_dir=tmp / "cache", progress=False)
    cfg = AnnotateConfig(references=("label",), verify=False)
    return ReverseAnnotator(KB.open(tmp / "kb"), prof, cfg), tmp


def _items(tmp, rows):
    p = tmp / f"items-{len(rows)}.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return read_items(p)


def test_people_boxes_and_masks_and_the_rules(annotator):
    ann, tmp = annotator
    photos = shared("photos")
    rows = [{"id": "obama", "image": str(photos / "obama_and_biden.jpg"), "entity": "Q76", "split": "train"},
            {"id": "biden", "image": str(photos / "obama_and_biden.jpg"), "entity": "Q6279", "split": "train"},
            {"id": "kit", "image": str(photos / "kit_with_rose.jpg"), "entity": "Q357607", "split": "val"},
            {"id": "event", "image": str(photos / "obama_and_biden.jpg"), "entity": "Q8023"},
            {"id": "software", "image": str(photos / "obama.jpg"), "entity": "Q28865"},
            {"id": "city", "image": str(photos / "two_people.jpg"), "entity": "Q61", "question": "which city is this?"},
            {"id": "ghost", "image": str(photos / "obama.jpg"), "entity": "Q404"}]
    items, errors = _items(tmp, rows)
    assert not errors
    out = tmp / "run"
    summary = run_annotation(ann, items, out, progress=False, sheets=True)
    recs = {r["id"]: r for r in map(json.loads, (out / "report.jsonl").read_text().splitlines())}
    for rid, photo, qid in (("obama", "obama_and_biden.jpg", "Q76"), ("biden", "obama_and_biden.jpg", "Q6279"),
                            ("kit", "kit_with_rose.jpg", "Q357607")):
        r = recs[rid]
        assert r["status"] == "accepted", r
        hand = BOXES[photo][qid]
        assert box_iou(r["region"]["box"], hand) > 0.5, (rid, r["region"]["box"], hand)
        mask = rle_to_mask(r["region"]["mask"])
        x1, y1, x2, y2 = (int(v) for v in hand)
        inside = mask[y1:y2, x1:x2].sum() / mask.sum()
        assert inside > 0.9, (rid, inside)
        assert r["proposals"][0]["annotator"] == "face"  # found by its own face first
    assert recs["event"]["status"] == "rejected" and recs["event"]["rule"] == "non_visual"
    assert recs["event"]["figures"]["classes"] == ["Q1656682"]
    assert recs["software"]["rule"] == "non_visual"
    city = recs["city"]
    assert city["status"] == "accepted" and city["rule"] == "location_whole_image"
    assert rle_to_mask(city["region"]["mask"]).all()
    assert recs["ghost"]["status"] == "error" and recs["ghost"]["code"] == "E712"
    assert summary["rules"]["non_visual"] == 2 and summary["status"]["error"] == 1
    assert summary["outputs"]["contact_sheets"]

    # the COCO output: pycocotools reads it, and so does pixlink's MaskOVEN loader
    from pycocotools.coco import COCO

    coco = COCO(str(out / "maskoven.json"))
    assert set(coco.getCatIds()) == {"Q76", "Q6279", "Q357607", "Q61"}
    anns = {a["id"]: a for a in coco.loadAnns(coco.getAnnIds())}
    assert anns["kit"]["data_split"] == "val" and anns["kit"]["label"][0].startswith("face match(")
    assert isinstance(anns["kit"]["segmentation"], list) and isinstance(anns["kit"]["bbox"][0], list)
    from pixlink.eval.datasets.maskoven import load_maskoven

    loaded = {m.id: m for m in load_maskoven(out / "maskoven.json").items}
    assert loaded["kit"].gold == "Q357607" and loaded["obama"].gold == "Q76"
    union = rle_to_mask(loaded["kit"].meta["mask_rle"])
    assert np.array_equal(union, rle_to_mask(recs["kit"]["region"]["mask"]))

    # Label Studio tasks: the pre-annotated mask decodes with Label Studio's own decoder to the
    # run's mask, the box is in percent, and the three results of a region share its id
    ls_brush = pytest.importorskip("label_studio_sdk.converter.brush", reason="label-studio-sdk (requirements-nodeps.txt)")
    tasks = {t["data"]["item_id"]: t for t in json.loads((out / "labelstudio.json").read_text())}
    assert set(tasks) == {"obama", "biden", "kit", "city"}  # accepted with a mask; the rejected had none
    kit = tasks["kit"]["predictions"][0]["result"]
    assert [r["type"] for r in kit] == ["rectanglelabels", "brushlabels", "textarea"] and len({r["id"] for r in kit}) == 1
    h, w = recs["kit"]["image_size"]
    decoded = ls_brush.decode_rle(kit[1]["value"]["rle"]).reshape(h, w, 4)[:, :, 3] > 0
    assert np.array_equal(decoded, rle_to_mask(recs["kit"]["region"]["mask"]))
    x1, y1, x2, y2 = recs["kit"]["region"]["box"]
    assert kit[0]["value"]["x"] == pytest.approx(100 * x1 / w) and kit[0]["value"]["width"] == pytest.approx(100 * (x2 - x1) / w)
    assert kit[2]["value"]["text"] == ["Q357607"] and tasks["kit"]["data"]["image"].endswith("kit_with_rose.jpg")
    import xml.etree.ElementTree as ET

    names = {el.get("name") for el in ET.fromstring((out / "labelstudio.xml").read_text()).iter() if el.get("name")}
    assert {r["from_name"] for r in kit} <= names

    # resume: nothing is redone, nothing written twice; a changed item is redone
    again = run_annotation(ann, items, out, progress=False, sheets=False)
    assert again["reused"] == 6 and again["done_now"] == 1  # the error is retried
    rows[2]["question"] = "who is the man on the right?"
    items2, _ = _items(tmp, rows)
    third = run_annotation(ann, items2, out, progress=False, sheets=False)
    assert third["done_now"] == 2 and third["reused"] == 5
    lines = [json.loads(x) for x in (out / "report.jsonl").read_text().splitlines()]
    assert sum(1 for x in lines if x["id"] == "kit") == 2  # the newest record wins in the outputs
    assert len(json.loads((out / "maskoven.json").read_text())["annotations"]) == 4


def test_vpwiki_mode_writes_red_box_prompts_that_the_vpwiki_loader_reads(annotator):
    ann, tmp = annotator
    photos = shared("photos")
    vp = ReverseAnnotator(ann.kb, ann.profile, AnnotateConfig(mode="vpwiki", verify=False), linker=ann.linker)
    rows = [{"id": "0", "image": str(photos / "kit_with_rose.jpg"), "entity": "Q357607", "mention": "Kit Harington",
             "caption": "Kit Harington and Rose Leslie at the premiere"},
            {"id": "1", "image": str(photos / "obama.jpg"), "entity": "Q8023", "mention": "the convention",
             "caption": "Obama at the convention"}]
    items, _ = _items(tmp, rows)
    summary = run_annotation(vp, items, tmp / "vp", progress=False, sheets=False)
    assert summary["outputs"]["vpwiki_rows"] == 1
    recs = {r["id"]: r for r in map(json.loads, (tmp / "vp" / "report.jsonl").read_text().splitlines())}
    assert recs["0"]["status"] == "accepted" and recs["0"]["figures"]["paths_iou"] >= 0.5
    assert box_iou(recs["0"]["region"]["box"], BOXES["kit_with_rose.jpg"]["Q357607"]) > 0.5
    assert recs["1"]["status"] == "rejected"
    from pixlink.eval.datasets.vpwiki import load_vpwiki
    from pixlink.io import load_image

    got = load_vpwiki(tmp / "vp" / "vpwiki.jsonl").items
    assert [(m.id, m.gold, m.surface) for m in got] == [("0", "Q357607", "Kit Harington")]
    row = json.loads((tmp / "vp" / "vpwiki.jsonl").read_text())
    assert row["type"] == "Person" and row["imgPath"] == "vp_images/0.jpg"
    img = load_image(tmp / "vp" / row["imgPath"])
    x1, y1, x2, y2 = (int(v) for v in recs["0"]["region"]["box"])
    edge = img[y1 + 10:y2 - 10, x1 + 1].astype(int)
    assert (edge[:, 0] > 180).mean() > 0.9 and (edge[:, 1] < 80).mean() > 0.9  # the red box is drawn


def test_a_person_without_a_reference_face_is_not_given_someone_elses_box(annotator):
    """Rose Leslie has no face photo in the KB: the person box holding Kit Harington's face (he has
    one) is left out, so she gets her own box; linked back, the region is not Kit's."""
    ann, tmp = annotator
    verify = ReverseAnnotator(ann.kb, ann.profile, AnnotateConfig(references=("label",), verify=True),
                              linker=ann.linker)
    items, _ = _items(tmp, [{"id": "rose", "image": str(shared("photos") / "kit_with_rose.jpg"), "entity": "Q461132"}])
    res = verify.annotate(items[0])
    assert res.status == "accepted", res.to_record()
    assert box_iou(res.region.bbox, BOXES["kit_with_rose.jpg"]["Q461132"]) > 0.5, (res.region.bbox, res.notes)
    assert any("left out" in n and "Q357607" in n for n in res.notes), res.notes
    # linked back, her region holds no face the KB knows as hers or anyone's: NIL, not Kit
    assert res.verify is not None and res.verify["status"] == "nil" and "links_elsewhere" not in res.flags, res.verify
