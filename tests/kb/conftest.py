"""Fixtures of the KB tests: a small Wikidata dump in the real Wikibase JSON layout, and the KB
built once per session from the shared FB15k-237 + CoDEx files."""

from __future__ import annotations

import bz2
import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest

from pixlink.kb import KB, build_kb


def _mono(lang: str, value: str) -> dict[str, str]:
    return {"language": lang, "value": value}


def _item(eid: str, prop: str, target: str, rank: str = "normal", snaktype: str = "value") -> dict[str, Any]:
    snak: dict[str, Any] = {"snaktype": snaktype, "property": prop, "hash": "5" * 40, "datatype": "wikibase-item"}
    if snaktype == "value":
        snak["datavalue"] = {"value": {"entity-type": "item", "numeric-id": int(target[1:]), "id": target},
                             "type": "wikibase-entityid"}
    return {"mainsnak": snak, "type": "statement", "id": f"{eid}$0-{prop}-{target}", "rank": rank,
            "qualifiers": {"P580": [{"snaktype": "value", "property": "P580", "hash": "6" * 40,
                                     "datavalue": {"value": {"time": "+2009-01-20T00:00:00Z", "timezone": 0,
                                                             "before": 0, "after": 0, "precision": 11,
                                                             "calendarmodel": "http://www.wikidata.org/entity/Q1985727"},
                                                   "type": "time"}, "datatype": "time"}]},
            "qualifiers-order": ["P580"]}


def _media(eid: str, name: str) -> dict[str, Any]:
    return {"mainsnak": {"snaktype": "value", "property": "P18", "hash": "7" * 40,
                         "datavalue": {"value": name, "type": "string"}, "datatype": "commonsMedia"},
            "type": "statement", "id": f"{eid}$P18", "rank": "normal"}


def _entity(eid: str, labels: dict[str, str], descriptions: dict[str, str] | None = None,
            aliases: dict[str, list[str]] | None = None, claims: dict[str, list] | None = None,
            sitelinks: dict[str, str] | None = None, typ: str = "item") -> dict[str, Any]:
    e: dict[str, Any] = {
        "type": typ, "id": eid,
        "labels": {lg: _mono(lg, v) for lg, v in labels.items()},
        "descriptions": {lg: _mono(lg, v) for lg, v in (descriptions or {}).items()},
        "aliases": {lg: [_mono(lg, v) for v in vs] for lg, vs in (aliases or {}).items()},
        "claims": claims or {},
        "lastrevid": 2000000000, "modified": "2024-05-01T10:00:00Z",
    }
    if typ == "item":
        e["sitelinks"] = {k: {"site": k, "title": v, "badges": []} for k, v in (sitelinks or {}).items()}
    else:
        e["datatype"] = "wikibase-item"
    return e


def wikidata_sample() -> list[dict[str, Any]]:
    """A few real-shaped Wikidata entities (ids, labels and links as on Wikidata, trimmed)."""
    return [
        _entity("Q76", {"en": "Barack Obama", "fr": "Barack Obama", "de": "Barack Obama"},
                {"en": "president of the United States from 2009 to 2017", "fr": "44e président des États-Unis"},
                {"en": ["Barack Hussein Obama II", "Obama", "Barry Obama", "Barack Obama"], "fr": ["Obama"]},
                {"P31": [_item("Q76", "P31", "Q5"), _item("Q76", "P31", "Q4167836", rank="deprecated")],
                 "P27": [_item("Q76", "P27", "Q30")],
                 "P18": [_media("Q76", "President Barack Obama.jpg")]},
                {"enwiki": "Barack Obama", "frwiki": "Barack Obama", "dewiki": "Barack Obama"}),
        _entity("Q5", {"en": "human", "fr": "être humain"}, {"en": "any member of Homo sapiens"},
                {"en": ["person", "people", "homo sapiens"]},
                {"P31": [_item("Q5", "P31", "Q55983715")],
                 "P279": [_item("Q5", "P279", "Q215627"), _item("Q5", "P279", "Q164509")]},
                {"enwiki": "Human"}),
        _entity("Q215627", {"en": "person"}, {"en": "being that has certain capacities or attributes"},
                None, {"P279": [_item("Q215627", "P279", "Q24229398")]}, {"enwiki": "Person"}),
        _entity("Q24229398", {"en": "agent"}, {"en": "entity that acts"}, None,
                {"P279": [_item("Q24229398", "P279", "Q35120")]}),
        _entity("Q35120", {"en": "entity"}, {"en": "anything that exists"}, None,
                {"P279": [_item("Q35120", "P279", "Q35120", snaktype="novalue")]}),
        _entity("Q164509", {"en": "omnivore"}, {"en": "animal that eats both plants and animals"}, None,
                {"P279": [_item("Q164509", "P279", "Q729")]}),
        _entity("Q729", {"en": "animal"}, {"en": "kingdom of multicellular eukaryotic organisms"}, None,
                {"P279": [_item("Q729", "P279", "Q7239")]}, {"enwiki": "Animal"}),
        _entity("Q42", {"en": "Douglas Adams", "fr": "Douglas Adams"}, {"en": "English writer and humorist (1952–2001)"},
                {"en": ["Douglas Noël Adams", "Douglas Noel Adams", "DNA"]},
                {"P31": [_item("Q42", "P31", "Q5")], "P18": [_media("Q42", "Douglas adams portrait cropped.jpg")]},
                {"enwiki": "Douglas Adams"}),
        _entity("Q90", {"en": "Paris", "fr": "Paris"}, {"en": "capital and largest city of France"},
                {"en": ["City of Light", "Paris, France"]},
                {"P31": [_item("Q90", "P31", "Q515"), _item("Q90", "P31", "Q1549591")]},
                {"enwiki": "Paris", "frwiki": "Paris", "dewiki": "Paris", "eswiki": "París"}),
        _entity("Q830149", {"en": "Paris", "fr": "Paris"}, {"en": "city in Lamar County, Texas, United States"},
                {"en": ["Paris, Texas"]}, {"P31": [_item("Q830149", "P31", "Q1093829")]}, {"enwiki": "Paris, Texas"}),
        _entity("Q1726", {"en": "Munich", "de": "München"}, {"en": "capital and most populous city of Bavaria"},
                {"en": ["München", "Muenchen"]}, {"P31": [_item("Q1726", "P31", "Q515")]},
                {"enwiki": "Munich", "dewiki": "München"}),
        _entity("Q515", {"en": "city"}, {"en": "large human settlement"}, None,
                {"P279": [_item("Q515", "P279", "Q486972")]}, {"enwiki": "City"}),
        # a label only in the multilingual "mul" code
        _entity("Q123456789", {"mul": "Zyxwv Quartet"}, {"en": "string quartet"}, None,
                {"P31": [_item("Q123456789", "P31", "Q207338")]}),
        # no English name at all: only facts, no other source names it -> reported, not imported
        _entity("Q987654321", {"ja": "名前"}, None, None, {"P31": [_item("Q987654321", "P31", "Q5")]}),
        _entity("P31", {"en": "instance of"}, {"en": "that class of which this subject is a particular example"},
                {"en": ["is a", "type"]}, None, typ="property"),
        {"type": "lexeme", "id": "L7", "lemmas": {"en": {"language": "en", "value": "cat"}}, "lexicalCategory": "Q1084",
         "language": "Q1860", "claims": {}, "forms": [], "senses": [], "lastrevid": 1},
    ]


def dump_bytes(entities: list[dict[str, Any]]) -> bytes:
    """Entities in the dump layout: ``[``, one entity a line ending with ``,``, ``]``."""
    lines = [orjson.dumps(e) for e in entities]
    return b"[\n" + b",\n".join(lines) + b"\n]\n"


def write_dump(path: Path, entities: list[dict[str, Any]] | None = None, data: bytes | None = None) -> Path:
    raw = data if data is not None else dump_bytes(entities if entities is not None else wikidata_sample())
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(raw))
    elif path.name.endswith(".bz2"):
        path.write_bytes(bz2.compress(raw))
    else:
        path.write_bytes(raw)
    return path


@pytest.fixture
def wd_sample() -> list[dict[str, Any]]:
    return wikidata_sample()


class DumpTools:
    """Helpers handed to tests (pytest's importlib mode does not import test helper modules)."""

    sample = staticmethod(wikidata_sample)
    dump_bytes = staticmethod(dump_bytes)
    write = staticmethod(write_dump)


@pytest.fixture
def wd() -> type[DumpTools]:
    return DumpTools


@pytest.fixture(scope="session")
def _kb_cache(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return {"dir": tmp_path_factory.mktemp("kb")}


@pytest.fixture
def real_kb(shared_data, _kb_cache: dict[str, Any]) -> KB:
    """FB15k-237 entities + CoDEx P31 types + CoDEx type labels (shared data), built once a session."""
    if "kb" not in _kb_cache:
        fb = shared_data("kb", "fb15k237_entity2wikidata.json")
        types = shared_data("kb", "codex_entity2types.json")
        labels = shared_data("kb", "codex_types_en.json")
        out = _kb_cache["dir"] / "fb15k_codex"
        _kb_cache["report"] = build_kb([fb, types, labels], out, progress=False)
        _kb_cache["kb"] = KB.open(out)
    return _kb_cache["kb"]


@pytest.fixture
def real_kb_report(real_kb: KB, _kb_cache: dict[str, Any]):
    return _kb_cache["report"]
