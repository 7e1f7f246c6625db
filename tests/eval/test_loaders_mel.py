"""Mention loaders: a tiny fixture in each benchmark's real format, then the real files of
../shared/data (WIKIPerson, MELBench) when present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pixlink.errors import DatasetError
from pixlink.eval.datasets import guess_format, load_any, load_mentions_dataset
from pixlink.eval.datasets.base import LoadReport
from pixlink.eval.datasets.maskoven import load_maskoven
from pixlink.eval.datasets.melbench import load_melbench
from pixlink.eval.datasets.mentions import load_mentions, materialize_masks
from pixlink.eval.datasets.oven import iter_wiki6m, load_oven
from pixlink.eval.datasets.vpwiki import load_vpwiki, load_vpwiki_kb
from pixlink.eval.datasets.wikidiverse import load_wikidiverse
from pixlink.eval.datasets.wikiperson import load_wikiperson
from pixlink.geometry import rle_to_mask

FIX = Path(__file__).parent / "fixtures"


def _errs(res):
    return sorted(str(e.item_id) for e in res.report.errors)


def test_mentions_jsonl():
    res = load_mentions(FIX / "mentions.jsonl")
    by = {m.id: m for m in res.items}
    assert sorted(by) == ["click", "masked", "obama", "query"]
    assert _errs(res) == ["badbox", "badgold", "obama", "twokinds"]  # the 2nd "obama" is a duplicate
    o = by["obama"]
    assert o.image == str(FIX / "photos/obama.jpg") and o.region.box.tolist() == [10, 20, 110, 220]
    assert o.gold == "Q76" and o.labelled and o.split == "seen" and o.text == "The president"
    c = by["click"]
    assert c.region.kind == "points" and c.region.point_labels.tolist() == [1, 0] and c.gold is None and c.labelled
    q = by["query"]
    assert q.region is None and not q.labelled and q.meta["prompt"] == "image"
    m = by["masked"]
    assert m.image == "/abs/x.jpg" and m.meta["prompt"] == "mask" and m.meta["source_note"] == "kept in meta"
    # counts [5, 2, 9] on 4x4, column-major: pixels 5, 6 -> column 1, rows 1-2
    assert m.region.box.tolist() == [1, 1, 2, 3] and m.region.mask is None
    (mm,) = materialize_masks([m])
    assert mm.region.kind == "mask" and mm.region.mask.sum() == 2 and mm.region.box is None
    assert "mask_rle" not in mm.meta and "mask_rle" in m.meta  # the original is untouched


def test_wikiperson_fixture():
    res = load_wikiperson(FIX / "wikiperson_mini.json")
    assert [m.id for m in res.items] == ["0", "1", "2"]
    assert _errs(res) == ["3", "4", "5"]  # x2 < x1, 3 numbers, no wikiid
    assert res.items[1].region.box.tolist() == [0.0, 74.6, 152.0, 96.2]
    assert res.report.counts["box_clipped_negative"] == 1
    res = load_wikiperson(FIX / "wikiperson_mini.json", image_size=(224, 224), image_root="/imgs")
    assert res.items[2].region.box[2] == 224 and res.report.counts["box_clipped_far"] == 1
    assert res.items[0].image == "/imgs/462710.jpg" and res.items[0].gold == "Q259082"


def test_melbench_fixtures():
    res = load_melbench(FIX / "wikimel_mini.json")
    assert res.report.dataset == "wikimel"
    assert [m.id for m in res.items] == ["21717", "46351-0", "46351-1", "11"]
    assert _errs(res) == ["10", "9"]
    two = res.items[2]
    assert two.surface == "Powers" and two.gold == "Q256474" and two.meta["entity_name"] == "Stefanie Powers"
    assert two.text.startswith("Powers with") and two.image is None
    assert res.items[3].gold is None  # "nil"
    rich = load_melbench(FIX / "richpedia_mini.json", image_root="/img")
    assert rich.report.dataset == "richpediamel" and [m.gold for m in rich.items] == ["Q23", "Q42"]
    assert rich.items[0].surface == "Washington" and rich.items[0].image == "/img/Q23.jpg"


def test_melbench_entities():
    from pixlink.eval.datasets.melbench import melbench_entities

    res = load_melbench(FIX / "wikimel_mini.json")
    ents = {e.id: e for e in melbench_entities(res.items)}
    assert set(ents) == {m.gold for m in res.items if m.gold}
    assert ents["Q256474"].label == "Stefanie Powers"
    assert all("Powers" != e.label for e in ents.values())  # mention words never become names


def test_vpwiki_and_kb():
    res = load_vpwiki(FIX / "vpwiki_mini.json", image_root="/vp")
    assert [m.id for m in res.items] == ["0", "1"] and _errs(res) == ["2"]
    a, b = res.items
    assert a.surface is None and a.region is None and a.split == "vpwiki" and a.image == "/vp/test_img/mention_0.jpg"
    # the wk prefix stays: it is the id the VPWiki KB (and `kb build mel:`) holds
    assert b.gold == "wkQ1189" and b.split == "wikimel" and b.meta["answer_raw"] == "wkQ1189"
    assert b.meta["qid"] == "Q1189" and a.meta["qid"] == "Q381794"
    kb = load_vpwiki_kb(FIX / "vpwiki_kb_mini.json")
    assert [e.id for e in kb.items] == ["Q381794", "wkQ1189", "Q1189"]  # wkQ1189 and Q1189 are two entries
    assert _errs(kb) == ["Q7"]  # Q7 has no name
    assert kb.items[1].attrs["qid"] == "Q1189" and b.gold in {e.id for e in kb.items}
    assert kb.items[0].images == ("a.jpg", "b.jpg") and kb.items[0].description == "Belgian cyclist"


def test_vpwiki_nil_answer(tmp_path):
    f = tmp_path / "vpwiki.json"
    f.write_text('[{"id": "0", "sentence": "s", "mentions": "x", "answer": "nil", "imgPath": "a.jpg"},'
                 ' {"id": "1", "sentence": "s", "mentions": "x", "answer": "NIL", "imgPath": "b.jpg"},'
                 ' {"id": "2", "sentence": "s", "mentions": "x", "answer": "Q5", "imgPath": "c.jpg"}]')
    res = load_vpwiki(f)
    assert [m.gold for m in res.items] == [None, None, "Q5"] and all(m.labelled for m in res.items)
    assert res.report.counts["nil_answer"] == 2


def test_vpwiki_gold_matches_kb_build_mel(tmp_path):
    """A wk answer is found in the KB that `kb build mel:` makes of the VPWiki KB file."""
    from pixlink.kb import KB, build_kb

    build_kb([f"mel:{FIX / 'vpwiki_kb_mini.json'}"], tmp_path / "kb", progress=False)
    kb = KB.open(tmp_path / "kb")
    golds = [m.gold for m in load_vpwiki(FIX / "vpwiki_mini.json").items]
    assert all(kb.get(g) is not None for g in golds), golds
    kb.close()


def test_oven_and_wiki6m():
    res = load_oven(FIX / "oven_mini.jsonl", image_root="/oven")
    assert [m.id for m in res.items] == ["oven_q_1", "oven_e_2"]
    assert len(res.report.errors) == 2  # no entity_id; a line that is not JSON
    assert res.items[0].image == "/oven/oven_00000001.jpg" and res.items[0].meta["seen"] == "seen"
    assert res.items[1].split == "entity_val_unseen" and res.items[1].meta["seen"] == "unseen"
    rep = LoadReport(path="wiki6m")
    ents = list(iter_wiki6m(FIX / "wiki6m_mini.jsonl", rep))
    assert [e.id for e in ents] == ["Q243", "Q140"] and len(rep.errors) == 1
    assert ents[0].description == "The Eiffel Tower is a wrought-iron lattice tower in Paris, France."


def test_maskoven_parts_unioned():
    res = load_maskoven(FIX / "maskoven_mini.json", image_root="/mo")
    assert [m.id for m in res.items] == ["10", "11"]
    assert _errs(res) == ["12", "13", "14"]  # unknown image; mask size != image size; bad RLE
    a = res.items[0]
    assert a.meta["n_parts"] == 2 and res.report.counts["parts_unioned"] == 1
    assert a.region.box.tolist() == [10, 5, 50, 30] and a.gold == "Q76" and a.split == "val_seen"
    union = rle_to_mask(a.meta["mask_rle"])
    assert union.shape == (40, 60) and union.sum() == 200
    (m,) = materialize_masks([a])
    assert m.region.kind == "mask" and m.region.box.tolist() == [10, 5, 50, 30] and m.region.mask.sum() == 200


def test_wikidiverse():
    res = load_wikidiverse(FIX / "wikidiverse_mini.json", image_root="/wd")
    assert [m.id for m in res.items] == ["0-0", "0-1", "1-0", "1-1"] and _errs(res) == ["2"]
    assert res.items[0].gold == "https://en.wikipedia.org/wiki/Detroit_Lions" and res.items[0].split == "sports"
    assert res.items[2].gold is None and res.items[3].image == "/wd/Paris view.jpg"
    mapped = load_wikidiverse(FIX / "wikidiverse_mini.json", url_map={"Detroit Lions": "Q271880"})
    # an unmapped URL stays the gold (a miss for any QID linker), never NIL
    assert mapped.items[0].gold == "Q271880"
    assert mapped.items[1].gold == "https://en.wikipedia.org/wiki/Green_Bay_Packers"
    assert mapped.items[1].meta["gold_unmapped"] is True and "gold_unmapped" not in mapped.items[0].meta
    assert mapped.items[2].gold is None  # an empty URL is NIL
    assert mapped.report.counts["url_unmapped"] == 2
    from pixlink.eval.metrics import link_metrics

    r = link_metrics([{"gold": m.gold, "prediction": None, "candidates": []} for m in mapped.items])
    assert r["n_linkable"] == 3 and r["n_nil"] == 1  # the unmapped mentions are linkable: NIL is wrong for them


def test_format_registry(tmp_path):
    assert guess_format("x/WIKIPerson_Test.json") == "wikiperson"
    assert guess_format("x/Richpedia-MEL.json") == "richpediamel"
    assert guess_format("x/gmner/dev.txt") == "gmner" and guess_format("x/twitter2017/valid.txt") == "conll"
    assert len(load_mentions_dataset(FIX / "vpwiki_mini.json", fmt="vpwiki")) == 2
    with pytest.raises(DatasetError, match="E610"):
        load_mentions_dataset(FIX / "vpwiki_mini.json", fmt="nope")
    with pytest.raises(DatasetError, match="E610"):
        load_mentions_dataset(tmp_path / "unknown.bin")
    assert len(load_any(FIX / "riveg_labels.txt", fmt="riveg")) == 3


def test_real_wikiperson(shared_data):
    res = load_wikiperson(shared_data("wikiperson", "WIKIPerson_Test.json"))
    assert len(res.items) == 6142 and res.report.errors == []
    assert res.report.counts["box_clipped_negative"] == 183
    boxes = np.stack([m.region.box for m in res.items])
    assert (boxes >= 0).all() and (boxes[:, 2] > boxes[:, 0]).all()
    assert all(m.gold.startswith("Q") for m in res.items)


def test_real_melbench(shared_data):
    wm = load_melbench(shared_data("melbench", "Wikidata-MEL.json"))
    assert wm.report.n_records == 22136 and wm.report.errors == []
    assert len(wm.items) == 25846 == len({m.id for m in wm.items})  # 1-5 mentions per record
    rp = load_melbench(shared_data("melbench", "Richpedia-MEL.json"))
    assert len(rp.items) == 17805 and rp.report.errors == []
    assert all(m.surface and m.gold for m in rp.items)
