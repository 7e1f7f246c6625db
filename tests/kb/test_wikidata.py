"""Importing Wikidata JSON dumps: fields, compression, hierarchy, images."""

from __future__ import annotations

import pytest

from pixlink.kb import KB, build_kb, detect_format


def _snapshot(kb: KB) -> list[dict]:
    out = []
    for e in kb.iter_entities(batch_size=3):
        d = e.to_dict()
        d.pop("source")  # names the file, which differs between plain / gz / bz2
        d["attrs"].pop("merged_from", None)
        out.append(d)
    return out


@pytest.fixture
def sample_kb(tmp_path, wd, wd_sample) -> KB:
    dump = wd.write(tmp_path / "sample.json", wd_sample)
    rep = build_kb([dump], tmp_path / "kb", progress=False)
    assert rep.complete
    return KB.open(tmp_path / "kb")


def test_fields_of_an_item(sample_kb):
    e = sample_kb.get("Q76")
    assert e.label == "Barack Obama"
    assert e.description == "president of the United States from 2009 to 2017"
    # English aliases only, the label itself is not repeated as an alias
    assert e.aliases == ("Barack Hussein Obama II", "Obama", "Barry Obama")
    assert e.types == ("Q5",)  # the deprecated P31 statement is left out
    assert e.images == ("President Barack Obama.jpg",)  # no images root: kept as the P18 file name
    assert e.popularity == 3.0  # sitelinks
    assert e.attrs == {"wikipedia": "Barack Obama"}
    assert e.source == "wikidata:sample.json"


def test_lang_fallbacks_properties_lexemes(sample_kb, tmp_path):
    assert sample_kb.get("Q123456789").label == "Zyxwv Quartet"  # "mul" label
    assert sample_kb.get("P31").label == "instance of"  # properties are entities too
    assert sample_kb.get("L7") is None
    assert sample_kb.get("Q987654321") is None  # no English name: reported, not imported
    rep = [line for line in (sample_kb.path / "build_report.jsonl").read_text().splitlines()]
    assert any('"item":"L7"' in r and '"code":"E115"' in r for r in rep)
    assert any('"item":"Q987654321"' in r and '"code":"E113"' in r for r in rep)
    # French build: French labels and aliases
    fr = build_kb([tmp_path / "sample.json"], tmp_path / "kb_fr", lang="fr", progress=False)
    assert fr.complete
    kb = KB.open(tmp_path / "kb_fr")
    assert kb.get("Q5").label == "être humain"
    assert kb.get("Q76").description == "44e président des États-Unis"
    assert kb.get("Q76").attrs == {"wikipedia": "Barack Obama"}  # frwiki title


def test_hypernym_chain_with_labels(sample_kb):
    chain = sample_kb.hypernyms("Q76")
    assert chain == [
        ("P31", "Q5", "human", 1),
        ("P279", "Q215627", "person", 2),
        ("P279", "Q164509", "omnivore", 2),
        ("P279", "Q24229398", "agent", 3),
        ("P279", "Q729", "animal", 3),
        ("P279", "Q35120", "entity", 4),
        ("P279", "Q7239", "", 4),  # not in the KB: no label
    ]
    assert sample_kb.hypernyms("Q76", max_depth=2) == chain[:3]
    assert sample_kb.hypernym_text("Q76", max_depth=3) == (
        "Barack Obama (Q76) — instance of: human (Q5) — subclass of: person (Q215627), omnivore (Q164509)"
        " — subclass of: agent (Q24229398), animal (Q729)")
    # a class: its own P31 and P279 at depth 1; the novalue P279 of "entity" is ignored
    assert sample_kb.hypernyms("Q5")[:3] == [("P31", "Q55983715", "", 1), ("P279", "Q215627", "person", 1),
                                             ("P279", "Q164509", "omnivore", 1)]
    assert sample_kb.hypernyms("Q35120") == []


def test_compressed_dumps_import_identically(tmp_path, wd, wd_sample):
    kbs = []
    for name in ("d.json", "d.json.gz", "d.json.bz2"):
        dump = wd.write(tmp_path / name, wd_sample)
        assert detect_format(dump) == "wikidata"
        rep = build_kb([dump], tmp_path / f"kb_{name}", progress=False)
        assert rep.complete and rep.sources[0].counts.read == len(wd_sample)
        kbs.append(KB.open(tmp_path / f"kb_{name}"))
    snaps = [_snapshot(kb) for kb in kbs]
    assert snaps[0] == snaps[1] == snaps[2]
    assert len(snaps[0]) == len(wd_sample) - 2  # the lexeme and the nameless item
    assert [kb.hypernyms("Q42") for kb in kbs][0] == kbs[2].hypernyms("Q42")
    assert [[(e.id, s) for e, s in kb.search("paris", k=5)] for kb in kbs].count(
        [(e.id, s) for e, s in kbs[0].search("paris", k=5)]) == 3


def test_images_resolved_against_root(tmp_path, wd, wd_sample):
    root = tmp_path / "images"
    root.mkdir()
    # on disk with underscores, as Commons files usually are
    (root / "President_Barack_Obama.jpg").write_bytes(b"\xff\xd8\xff\xe0 not decoded by the KB")
    dump = wd.write(tmp_path / "d.json", wd_sample)
    rep = build_kb([dump], tmp_path / "kb", images_root=root, progress=False)
    kb = KB.open(tmp_path / "kb")
    assert kb.get("Q76").images == (str((root / "President_Barack_Obama.jpg").resolve()),)
    # Douglas Adams' image is not there: reported (E112), kept as an unresolved reference
    assert kb.get("Q42").images == ("Douglas adams portrait cropped.jpg",)
    assert kb.image_refs("Q42") == [("Douglas adams portrait cropped.jpg", None)]
    missing = [i for i in rep.issues if i.code == "E112"]
    assert [i.item for i in missing] == ["Q42"] and missing[0].level == "warning"
    c = rep.sources[0].counts
    assert (c.images, c.images_resolved, c.images_missing) == (2, 1, 1)
    assert [e.id for e in kb.entities_with_images()] == ["Q76"]
    assert [e.id for e in kb.entities_with_images(resolved_only=False)] == ["Q76", "Q42"]
    assert kb.info()["counts"]["entities_with_images"] == 1


def test_hashed_commons_layout(tmp_path, wd, wd_sample):
    import hashlib

    name = "Douglas_adams_portrait_cropped.jpg"
    h = hashlib.md5(name.encode()).hexdigest()
    d = tmp_path / "commons" / h[0] / h[:2]
    d.mkdir(parents=True)
    (d / name).write_bytes(b"x")
    build_kb([wd.write(tmp_path / "d.json", wd_sample)], tmp_path / "kb", images_root=tmp_path / "commons", progress=False)
    assert KB.open(tmp_path / "kb").get("Q42").images == (str((d / name).resolve()),)
