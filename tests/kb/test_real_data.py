"""The KB built from the shared FB15k-237 entity file plus CoDEx P31 types and type labels."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.data


def test_counts_and_merge_report(real_kb, real_kb_report, shared_data):
    fb = json.loads(shared_data("kb", "fb15k237_entity2wikidata.json").read_text())
    et = json.loads(shared_data("kb", "codex_entity2types.json").read_text())
    tl = json.loads(shared_data("kb", "codex_types_en.json").read_text())
    qids = {v["wikidata_id"] for v in fb.values()}
    named_types = {q for q, v in tl.items() if v.get("label")}
    # every named id of either file is an entity, once
    assert len(real_kb) == len(qids | named_types)
    rep = real_kb_report
    fbc, etc, tlc = (s.counts for s in rep.sources)
    assert [s.format for s in rep.sources] == ["fb15k237", "codex-types", "entity-json"]
    assert fbc.read == len(fb) and fbc.duplicates == len(fb) - len(qids) == 1
    # codex types of ids nobody names are reported (E113), the others merged into their entities
    unmatched = [q for q in et if q not in qids and q not in named_types]
    assert etc.unmatched == len(unmatched) and etc.imported == len(et) - len(unmatched)
    assert tlc.unmatched == len(tl) - len(named_types)
    assert rep.issue_counts["E110"] == 1 and rep.issue_counts["E113"] == len(unmatched) + tlc.unmatched
    dup = [i for i in rep.issues if i.code == "E110"][0]
    assert dup.item == "Q2141" and dup.line is not None and dup.line > 1
    lines = rep.report_path.read_text().splitlines()
    assert len(lines) == rep.n_issues and json.loads(lines[0])["code"] in ("E110", "E113")


def test_entity_fields_from_both_sources(real_kb):
    obama = real_kb.get("Q76")
    assert obama.label == "Barack Obama"
    assert "Barry Obama" in obama.aliases and "Barack Obama" not in obama.aliases
    assert obama.types == ("Q5",)
    assert obama.attrs["freebase_mid"] == "/m/02mjmr"
    assert obama.attrs["merged_from"] == ["fb15k237:fb15k237_entity2wikidata.json", "codex-types:codex_entity2types.json"]
    # a type entity comes from the CoDEx label file
    human = real_kb.get("Q5")
    assert human.label == "human" and human.description.startswith("common name of Homo sapiens")


def test_search_by_label_and_alias(real_kb):
    top, score = real_kb.search("barack obama", k=5)[0]
    assert top.id == "Q76" and score >= 2.0  # exact label tier
    top, score = real_kb.search("Barry Obama", k=5)[0]
    assert top.id == "Q76" and 1.0 <= score < 2.0  # exact alias tier
    top, _ = real_kb.search("President Barack Obama", k=3)[0]
    assert top.id == "Q76"
    # accent and case folding: "zurich" finds Zürich (Q72) by label first
    hits = real_kb.search("ZURICH", k=5)
    assert hits[0][0].id == "Q72" and hits[0][0].label == "Zürich"
    assert [h[0].id for h in hits[:2]] == ["Q72", "Q11943"]  # then the canton, whose alias is "Zurich"
    scores = [s for _, s in hits]
    assert scores == sorted(scores, reverse=True)


def test_bm25_words_and_description(real_kb):
    # no entity is named "obama president", BM25 still finds him from label+alias words
    hits = real_kb.search("obama president", k=5)
    assert hits[0][0].id == "Q76" and hits[0][1] < 1.0
    # words that occur only in descriptions still retrieve, ranked below name matches
    hits = real_kb.search("county seat of El Paso County", k=10)
    assert "Q16562" in [e.id for e, _ in hits]


def test_by_name(real_kb):
    # two entities are labelled "Halifax" (Nova Scotia, West Yorkshire): both, in build order
    assert [e.id for e in real_kb.by_name("halifax")] == ["Q2141", "Q826561"]
    assert [e.id for e in real_kb.by_name("Obama")] == ["Q76"]  # an alias
    assert [e.id for e in real_kb.by_name("Barack  OBAMA ")] == ["Q76"]
    assert real_kb.by_name("no such name anywhere") == []


def test_hypernym_chain_of_known_entity(real_kb):
    assert real_kb.hypernyms("Q76") == [("P31", "Q5", "human", 1)]
    assert real_kb.hypernym_text("Q76") == "Barack Obama (Q76) — instance of: human (Q5)"
    # CoDEx types of a type entity: post-punk is an instance of punk rock, with labels
    chain = real_kb.hypernyms("Q598929")
    assert ("P31", "Q3071", "punk rock", 1) in chain
