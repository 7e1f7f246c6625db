"""Wiki6M, MEL, JSONL/entity-json records, format sniffing, and merging sources of several formats."""

from __future__ import annotations

import gzip
import json

import pytest

from pixlink.errors import InputError
from pixlink.kb import KB, build_kb, build_kb_from_entities, detect_format
from pixlink.kb.sources import SourceSpec
from pixlink.types import Entity

# Rows in the layout of OVEN's Wiki6M_ver_1_0.jsonl (fields as read by the OVEN / UniIR tools).
WIKI6M = [
    {"wikidata_id": "Q90", "wikipedia_title": "Paris",
     "wikipedia_summary": "Paris is the capital and most populous city of France. With an estimated population of 2,102,650 residents...",
     "wikipedia_content": "Paris is the capital and most populous city of France. ...",
     "wikipedia_image_url": "https://upload.wikimedia.org/wikipedia/commons/4/4b/La_Tour_Eiffel_vue_de_la_Tour_Saint-Jacques%2C_Paris_ao%C3%BBt_2014_%282%29.jpg"},
    {"wikidata_id": "Q190065", "wikipedia_title": "Paris (mythology)",
     "wikipedia_summary": "Paris, also known as Alexander, the son of King Priam and Queen Hecuba of Troy, appears in a number of Greek legends.",
     "wikipedia_content": "..."},
    {"wikidata_id": "Q7767", "wikipedia_title": "Tank", "wikipedia_content": "A tank is an armoured fighting vehicle intended as a primary offensive weapon in front-line ground combat."},
]


def test_wiki6m(tmp_path):
    src = tmp_path / "Wiki6M_ver_1_0.jsonl.gz"
    with gzip.open(src, "wt") as fh:
        for r in WIKI6M:
            fh.write(json.dumps(r) + "\n")
        fh.write('{"wikidata_id": "Q1"}\n')  # no title: reported
    assert detect_format(src) == "wiki6m"
    images = tmp_path / "img"
    images.mkdir()
    eiffel = images / "La_Tour_Eiffel_vue_de_la_Tour_Saint-Jacques,_Paris_août_2014_(2).jpg"
    eiffel.write_bytes(b"x")
    rep = build_kb([src], tmp_path / "kb", images_root=images, progress=False)
    kb = KB.open(tmp_path / "kb")
    assert [(i.line, i.code) for i in rep.issues] == [(4, "E109")]
    paris = kb.get("Q90")
    assert paris.description == "Paris is the capital and most populous city of France."
    assert paris.images == (str(eiffel.resolve()),)  # URL file name found under the root
    myth = kb.get("Q190065")
    assert myth.label == "Paris (mythology)" and myth.aliases == ("Paris",)
    assert kb.get("Q7767").description.startswith("A tank is an armoured fighting vehicle")
    assert [e.id for e in kb.by_name("paris")] == ["Q90", "Q190065"]  # label match, then alias match


def test_mel_kb_with_images(tmp_path):
    images = tmp_path / "kb_images"
    images.mkdir()
    (images / "Q76_0.jpg").write_bytes(b"x")
    mel = tmp_path / "kb_entity.json"
    mel.write_text(json.dumps({
        "Q76": {"entity_name": "Barack Obama", "attr": "Date of birth: 1961. Occupation: politician.",
                "image_list": ["Q76_0.jpg", "Q76_1.jpg"], "type": "Q5"},
        "Q6279": {"entity_name": "Joe Biden", "attr": "Occupation: politician.", "image_list": [], "type": "PER"},
        "wkQ19198": {"entity_name": "Gert Steegmans", "attr": "", "image_list": []},
    }))
    assert detect_format(mel) == "mel"
    rep = build_kb([mel], tmp_path / "kb", images_root=images, progress=False)
    kb = KB.open(tmp_path / "kb")
    o = kb.get("Q76")
    assert o.types == ("Q5",) and o.attrs["attr"].startswith("Date of birth")
    assert o.images == (str((images / "Q76_0.jpg").resolve()), "Q76_1.jpg")
    assert [(i.item, i.code) for i in rep.issues] == [("Q76", "E112")]
    assert kb.get("Q6279").attrs["type"] == "PER" and kb.get("Q6279").types == ()
    assert kb.get("wkQ19198").label == "Gert Steegmans"
    # the list form, ids in the records
    mel_list = tmp_path / "kb_list.json"
    mel_list.write_text(json.dumps([{"qid": "Q76", "entity_name": "Barack Obama", "image_list": []}]))
    assert detect_format(mel_list) == "mel"


def test_sniffing_and_explicit_formats(tmp_path, wd, wd_sample):
    jl = tmp_path / "e.jsonl"
    jl.write_text(json.dumps({"id": "Q1", "label": "a"}) + "\n")
    ej = tmp_path / "e.json"
    ej.write_text(json.dumps({"Q1": {"label": "a"}}))
    ct = tmp_path / "t.json"
    ct.write_text(json.dumps({"Q1": ["Q5"]}))
    fb = tmp_path / "fb.json"
    fb.write_text(json.dumps({"/m/01": {"label": "a", "wikidata_id": "Q1", "alternatives": []}}, indent=2))
    cs = tmp_path / "e.csv"
    cs.write_text("id,label\nQ1,a\n")
    wd_lines = tmp_path / "wd.jsonl"  # Wikibase entities one a line, without the brackets
    wd_lines.write_text("\n".join(json.dumps(e) for e in wd_sample[:3]) + "\n")
    got = {p.name: detect_format(p) for p in (jl, ej, ct, fb, cs, wd_lines)}
    assert got == {"e.jsonl": "jsonl", "e.json": "entity-json", "t.json": "codex-types", "fb.json": "fb15k237",
                   "e.csv": "csv", "wd.jsonl": "wikidata"}
    # a real dump's first entity can be longer than the sniffed head
    big = dict(wd_sample[0])
    big["claims"] = {**big["claims"], "P1559": [{"pad": "x" * 200_000}]}
    assert detect_format(wd.write(tmp_path / "big.json.gz", [big])) == "wikidata"
    assert SourceSpec.parse(f"entity-json:{jl}") == SourceSpec(jl, "entity-json")
    with pytest.raises(InputError, match=r"\[E106\]"):
        (tmp_path / "empty.json").write_text("")
        detect_format(tmp_path / "empty.json")


def test_merge_sources_of_different_formats(tmp_path, wd, wd_sample):
    dump = wd.write(tmp_path / "wd.json.bz2", wd_sample)
    extra = tmp_path / "extra.jsonl"
    extra.write_text("\n".join(json.dumps(d) for d in [
        # same id as the dump: aliases/types/images are added, the dump's label and description stay
        {"id": "Q76", "label": "Obama, Barack", "aliases": ["POTUS 44", "Obama"], "description": "other text",
         "types": ["Q82955", "Q5"], "images": ["obama_local.jpg"], "popularity": 10, "attrs": {"wikipedia": "x", "k": 1}},
        {"id": "Q6279", "label": "Joe Biden", "types": ["Q5"]},
    ]) + "\n")
    (tmp_path / "obama_local.jpg").write_bytes(b"x")
    types = tmp_path / "types.json"
    types.write_text(json.dumps({"Q6279": ["Q82955"], "Q555": ["Q5"]}))
    rep = build_kb([dump, extra, f"codex-types:{types}"], tmp_path / "kb", progress=False)
    kb = KB.open(tmp_path / "kb")
    o = kb.get("Q76")
    assert o.label == "Barack Obama" and o.description.startswith("president of the United States")
    assert o.aliases == ("Barack Hussein Obama II", "Obama", "Barry Obama", "Obama, Barack", "POTUS 44")
    assert o.types == ("Q5", "Q82955")
    assert o.images == ("President Barack Obama.jpg", str((tmp_path / "obama_local.jpg").resolve()))
    assert o.popularity == 10.0  # the highest
    assert o.attrs["wikipedia"] == "Barack Obama" and o.attrs["k"] == 1  # first source wins per key
    assert o.attrs["merged_from"] == ["wikidata:wd.json.bz2", "jsonl:extra.jsonl"]
    assert kb.get("Q6279").types == ("Q5", "Q82955")
    assert "Q555" not in kb
    assert [s.counts.merged for s in rep.sources] == [0, 1, 1]
    assert [s.counts.unmatched for s in rep.sources] == [1, 0, 1]  # Q987654321 in the dump, Q555 in types
    assert kb.search("POTUS 44", k=1)[0][0].id == "Q76"


def test_build_from_entities(tmp_path):
    ents = [Entity("Q76", "Barack Obama", aliases=("Obama",), types=("Q5",)),
            Entity("Q5", "human", parents=("Q215627",)),
            Entity("Q215627", "person"),
            {"id": "Q6279", "label": "Joe Biden", "types": ["Q5"]},
            "not an entity",
            Entity("Q76", "Barack Obama again")]
    rep = build_kb_from_entities(ents, tmp_path / "demo")
    kb = KB.open(tmp_path / "demo")
    assert len(kb) == 4
    assert [(i.line, i.code) for i in rep.issues] == [(5, "E109"), (6, "E110")]
    assert kb.hypernym_text("Q6279") == "Joe Biden (Q6279) — instance of: human (Q5) — subclass of: person (Q215627)"
    assert kb.get("Q76").source == "entities:<entities>"
