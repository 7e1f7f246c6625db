"""Twitter-GMNER (CoNLL + VOC xml + SMNER masks) and RiVEG label loaders: tiny fixtures in the
real formats, then the real files."""

from __future__ import annotations

from pathlib import Path

import pytest

from pixlink.errors import DatasetError
from pixlink.eval.datasets.gmner import load_gmner, read_voc
from pixlink.eval.datasets.riveg import load_riveg_labels, parse_riveg_line, riveg_grounded
from pixlink.eval.metrics import grounded_prf

FIX = Path(__file__).parent / "fixtures"


def test_gmner_fixture_boxes_clip_and_errors():
    res = load_gmner(FIX / "gmner" / "dev.txt", masks=FIX / "gmner" / "masks.jsonl")
    posts = {p.id: p for p in res.items}
    assert sorted(posts) == ["100", "200", "400"]                 # 300's xml is broken
    assert [e.item_id for e in res.report.errors] == ["300"] and res.report.errors[0].code == "E603"
    p = posts["100"]
    obama, biden, paris = p.entities
    assert obama.groundable is True and biden.groundable is False and paris.region is None
    # two boxes named "Barack Obama"; the second (x2 = 210 > W = 200) clipped
    assert p.meta["gold_boxes"] == [[[10, 5, 60, 90], [120, 10, 200, 95]], [], []]
    assert res.report.counts["box_clipped"] == 1
    assert obama.region.box.tolist() == [10, 5, 60, 90] and obama.region.image_size == (100, 200)
    assert p.meta["image_size"] == [100, 200]
    assert p.meta["xml_unmatched"] == ["Michelle"] and res.report.counts["xml_name_unmatched"] == 1
    # no xml: nothing groundable
    assert posts["200"].entities[0].groundable is False and posts["200"].meta["gold_boxes"] == [[]]
    # SMNER masks by text and by span; an unmatched one counted
    assert len(p.meta["gold_masks"][0]) == 1 and p.meta["gold_masks"][1] == []
    assert len(posts["200"].meta["gold_masks"][0]) == 1
    assert res.report.counts["mask_unmatched"] == 1


def test_gmner_missing_xml_dir(tmp_path):
    f = tmp_path / "dev.txt"
    f.write_text("IMGID:1\nParis\tB-LOC\n\n")
    with pytest.raises(DatasetError, match="E600"):
        load_gmner(f)


def test_riveg_fixture():
    res = load_riveg_labels(FIX / "riveg_labels.txt")
    assert [lab.text for lab in res.items] == ["Barack Obama", "Paris", "NBA finals"]
    assert sorted(int(e.item_id.split()[-1]) for e in res.report.errors) == [3, 5]
    ob = res.items[0]
    assert ob.image_id == "100" and ob.type == "PER" and ob.ve_label == 2 and len(ob.boxes) == 2
    assert res.items[1].groundable is False
    # VE says groundable but the box is [0,0,0,0]: counted; the boxes decide
    assert res.items[2].groundable is False and res.report.counts["ve_disagrees"] == 1
    g = riveg_grounded(res.items)
    assert g["100"][0] == ("Barack Obama", "PER", [[10.0, 5.0, 60.0, 90.0], [120.0, 10.0, 200.0, 95.0]])


def test_riveg_line_errors():
    with pytest.raises(ValueError, match="5"):
        parse_riveg_line("a###b")
    with pytest.raises(ValueError, match="4 numbers"):
        parse_riveg_line("1.jpg###X(PER)###e###2###&[1, 2, 3]")
    with pytest.raises(ValueError, match="x2 > x1"):
        parse_riveg_line("1.jpg###X(PER)###e###2###&[5, 2, 3, 9]")


def test_real_gmner_dev(shared_data):
    res = load_gmner(shared_data("gmner", "dev.txt"))
    assert res.report.errors == [] and len(res.items) == 1059
    ents = [e for p in res.items for e in p.entities]
    assert len(ents) == 1737
    assert sum(e.groundable for e in ents) == 714
    for p in res.items:
        assert len(p.meta["gold_boxes"]) == len(p.entities)
        for e, boxes in zip(p.entities, p.meta["gold_boxes"]):
            assert e.groundable == bool(boxes)


def test_real_riveg_tweet_and_sample(shared_data):
    conll = shared_data("riveg", "16_05_01_127.conll")
    size, objs = read_voc(shared_data("riveg", "16_05_01_127.xml"))
    assert size == (1024, 1099) and objs == [("Philadelphia Phillies", [55.0, 41.0, 1044.0, 963.0])]
    res = load_gmner(conll, xml_dir=conll.parent, dataset="riveg")
    (post,) = res.items
    assert [(e.text, e.type, e.groundable) for e in post.entities] == [("Philadelphia Phillies", "ORG", True)]
    labels = load_riveg_labels(shared_data("riveg", "label_format_sample.txt"))
    assert labels.report.errors == [] and len(labels.items) == 20
    assert sum(lab.groundable for lab in labels.items) == 9  # grep -c "###2###"
    # the gold scored against itself is perfect; dropping every box loses the groundable ones
    gold = list(riveg_grounded(labels.items).values())
    pred = [[(t, ty, b[0] if b else None) for t, ty, b in item] for item in gold]
    assert grounded_prf(gold, pred, "gmner")["f1"] == 1.0
    none = [[(t, ty, None) for t, ty, _ in item] for item in gold]
    assert grounded_prf(gold, none, "gmner")["n_correct"] == 11
