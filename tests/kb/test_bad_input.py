"""Bad input: every bad record is reported with its line and reason, the rest is imported."""

from __future__ import annotations

import bz2
import gzip
import json

import orjson
import pytest

from pixlink.errors import InputError, KBError
from pixlink.kb import KB, build_kb


def _ids(kb: KB) -> set[str]:
    return {e.id for e in kb.iter_entities()}


def _issues(rep, code):
    return [i for i in rep.issues if i.code == code]


def test_truncated_plain_dump(tmp_path, wd, wd_sample):
    raw = wd.dump_bytes(wd_sample)
    cut = raw.index(b'"id":"Q42"') + 40  # in the middle of Douglas Adams' line
    dump = wd.write(tmp_path / "cut.json", data=raw[:cut])
    rep = build_kb([dump], tmp_path / "kb", progress=False)
    kb = KB.open(tmp_path / "kb")
    assert rep.complete
    assert {"Q76", "Q5", "Q729"} <= _ids(kb) and "Q42" not in _ids(kb) and "Q90" not in _ids(kb)
    bad = _issues(rep, "E108")
    assert len(bad) == 1 and bad[0].line == 9  # "[" is line 1, Q42 is the 8th entity
    trunc = _issues(rep, "E111")
    assert len(trunc) == 1 and "closing ']'" in trunc[0].message
    assert rep.sources[0].counts.truncated == 1 and rep.sources[0].counts.bad == 1


@pytest.mark.parametrize("ext,compress", [("gz", gzip.compress), ("bz2", bz2.compress)])
def test_truncated_compressed_dump(tmp_path, wd, wd_sample, ext, compress):
    raw = wd.dump_bytes(wd_sample * 200)  # several bz2 blocks: the cut falls after many whole lines
    data = compress(raw)
    dump = tmp_path / f"cut.json.{ext}"
    dump.write_bytes(data[: len(data) * 2 // 3])
    rep = build_kb([dump], tmp_path / "kb", progress=False)
    assert rep.complete
    trunc = _issues(rep, "E111")
    assert len(trunc) == 1 and f"{'gzip' if ext == 'gz' else 'bz2'} stream" in trunc[0].message
    kb = KB.open(tmp_path / "kb")
    assert "Q76" in _ids(kb)
    # 200 copies of each id: all but the first are reported as duplicates, none is lost silently
    c = rep.sources[0].counts
    assert c.read > len(wd_sample) and c.duplicates == rep.issue_counts["E110"] > 0


def test_malformed_line_and_duplicate_id(tmp_path, wd, wd_sample):
    lines = [orjson.dumps(e) for e in wd_sample]
    lines.insert(3, b'{"type":"item","id":"Q999","labels":{"en":{"language":"en","value":"Broken"}')  # cut object
    lines.insert(5, b'{"type":"item","id":"Q1000","labels":"not an object"}')  # valid JSON, wrong shape
    dup = dict(wd_sample[0])
    dup["labels"] = {"en": {"language": "en", "value": "Second Obama"}}
    lines.append(orjson.dumps(dup))
    dump = wd.write(tmp_path / "bad.json", data=b"[\n" + b",\n".join(lines) + b"\n]\n")
    rep = build_kb([dump], tmp_path / "kb", progress=False)
    kb = KB.open(tmp_path / "kb")
    assert [(i.line, i.code) for i in rep.issues if i.level == "error"] == [(5, "E108"), (7, "E109"), (len(lines) + 1, "E110")]
    e109 = _issues(rep, "E109")[0]
    assert e109.item == "Q1000" and "unexpected Wikibase JSON shape" in e109.message
    e110 = _issues(rep, "E110")[0]
    assert e110.item == "Q76" and "first record (line 2)" in e110.message
    assert kb.get("Q76").label == "Barack Obama"  # the first record is kept
    assert "Q999" not in kb and "Q1000" not in kb and "Q90" in kb
    c = rep.sources[0].counts
    assert (c.bad, c.duplicates, c.read) == (2, 1, len(lines))
    # the same lines in the report file
    rows = [json.loads(x) for x in (tmp_path / "kb" / "build_report.jsonl").read_text().splitlines()]
    assert [(r["line"], r["code"]) for r in rows if r["level"] == "error"] == [(5, "E108"), (7, "E109"), (len(lines) + 1, "E110")]


def test_image_path_that_does_not_exist(tmp_path):
    img = tmp_path / "there.jpg"
    img.write_bytes(b"x")
    src = tmp_path / "ents.jsonl"
    src.write_text("\n".join(json.dumps(d) for d in [
        {"id": "X1", "label": "One", "images": [str(img)]},
        {"id": "X2", "label": "Two", "images": [str(tmp_path / "missing.jpg"), "rel/there.jpg"]},
        {"id": "X3", "label": "Three", "images": ["there.jpg"]},  # resolved beside the source file
    ]) + "\n")
    rep = build_kb([src], tmp_path / "kb", progress=False)
    kb = KB.open(tmp_path / "kb")
    assert kb.get("X1").images == (str(img),)
    assert kb.get("X3").images == (str(img.resolve()),)
    assert kb.get("X2").images == (str(tmp_path / "missing.jpg"), "rel/there.jpg")  # kept, unresolved
    miss = _issues(rep, "E112")
    assert [(i.item, i.line) for i in miss] == [("X2", 2), ("X2", 2)]
    assert "does not exist" in miss[0].message
    assert len(kb) == 3


def test_bad_records_in_json_document_and_csv(tmp_path):
    doc = tmp_path / "ents.json"
    doc.write_text(json.dumps({"Q1": {"label": "good one", "aliases": ["g1"]},
                               "Q2": {"label": 5},
                               "Q3": {"label": "fine", "popularity": "high"},
                               "Q4": {"label": "last"}}, indent=1))
    rep = build_kb([doc], tmp_path / "kb", progress=False)
    line_of = {k: n for n, ln in enumerate(doc.read_text().splitlines(), 1) for k in ("Q2", "Q3") if f'"{k}"' in ln}
    assert [(i.item, i.code, i.line) for i in rep.issues] == [("Q2", "E109", line_of["Q2"]), ("Q3", "E109", line_of["Q3"])]
    assert "'label' must be a string" in rep.issues[0].message and "'popularity' must be a number" in rep.issues[1].message
    assert _ids(KB.open(tmp_path / "kb")) == {"Q1", "Q4"}

    cut = tmp_path / "cut.json"
    cut.write_text(doc.read_text()[:-20])
    rep = build_kb([cut], tmp_path / "kb2", progress=False)
    assert rep.issue_counts.get("E111") == 1 and _ids(KB.open(tmp_path / "kb2")) == {"Q1"}

    csv = tmp_path / "ents.csv"
    csv.write_text('id,label,aliases,types,popularity,wiki\nA1,Alpha,"a|alfa",Q5,3,http://x\n'
                   'A2,Beta,"[""b"", 2]",,,\n,NoId,,,,\nA4,Gamma,,"[""Q5"",""Q6""]",x,\nA5,Delta\n')
    rep = build_kb([csv], tmp_path / "kb3", progress=False)
    assert [(i.line, i.code) for i in rep.issues] == [(3, "E109"), (4, "E109"), (5, "E109"), (6, "E109")]
    kb = KB.open(tmp_path / "kb3")
    a = kb.get("A1")
    assert (a.aliases, a.types, a.popularity, a.attrs) == (("a", "alfa"), ("Q5",), 3.0, {"wikipedia": "http://x"})


def test_source_errors_stop_before_building(tmp_path):
    with pytest.raises(InputError, match=r"\[E105\]"):
        build_kb([tmp_path / "nope.json"], tmp_path / "kb", progress=False)
    odd = tmp_path / "odd.json"
    odd.write_text('{"Q1": 5}')
    with pytest.raises(InputError, match=r"\[E106\].*FORMAT:PATH"):
        build_kb([odd], tmp_path / "kb", progress=False)
    with pytest.raises(InputError, match=r"\[E107\]"):
        build_kb([f"nosuchformat:{odd}"], tmp_path / "kb", progress=False)
    assert not (tmp_path / "kb").exists()
    ok = tmp_path / "ok.jsonl"
    ok.write_text('{"id": "Q1", "label": "x"}\n')
    build_kb([ok], tmp_path / "kb", progress=False)
    with pytest.raises(KBError, match=r"\[E103\]"):
        build_kb([ok], tmp_path / "kb", progress=False)
    build_kb([ok], tmp_path / "kb", progress=False, overwrite=True)
    with pytest.raises(InputError, match=r"\[E117\]"):
        build_kb([ok], tmp_path / "kb2", images_root=tmp_path / "no_dir", progress=False)
