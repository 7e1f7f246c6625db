"""A build that imports nothing is a failure (issue #11), and a source in another encoding than
UTF-8 says so and how to fix it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pixlink.cli.main import app
from pixlink.errors import InputError, KBError
from pixlink.kb import KB, build_kb, build_kb_from_entities

runner = CliRunner()

RECORDS = [{"id": "Q1", "label": "Zürich", "description": "größte Stadt der Schweiz"},
           {"id": "Q2", "label": "Genève", "description": "ville de Suisse"}]


def _jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def test_an_empty_file_with_a_forced_format_fails(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    out = tmp_path / "kb"
    with pytest.raises(KBError, match=r"\[E122\].*jsonl:empty.jsonl: the file is empty"):
        build_kb([f"jsonl:{empty}"], out, progress=False)
    assert not out.exists()  # nothing is kept
    r = runner.invoke(app, ["kb", "build", f"jsonl:{empty}", "--out", str(out)])
    assert r.exit_code == 2 and "[E122]" in r.output
    with pytest.raises(KBError, match=r"\[E122\]"):
        build_kb_from_entities([], out)


@pytest.mark.parametrize("encoding,bom", [("utf-16", True), ("utf-16-le", False), ("utf-16-be", False),
                                          ("utf-32", True), ("utf-32-le", False)])
def test_a_utf16_or_utf32_file_names_its_encoding(tmp_path, encoding, bom):
    src = tmp_path / "ents.jsonl"
    src.write_bytes(_jsonl(RECORDS).encode(encoding))
    enc = encoding[:6].upper()
    out = tmp_path / "kb"
    with pytest.raises(KBError, match=rf"\[E122\].*\[E123\].*the file is {enc}.*convert it to UTF-8") as err:
        build_kb([f"jsonl:{src}"], out, progress=False)
    assert ("starts with the" in str(err.value)) == bom and ("no byte order mark" in str(err.value)) != bom
    assert not out.exists()
    # sniffed (no forced format): the format cannot be told, and the message says why
    with pytest.raises(InputError, match=rf"\[E106\].*the file is {enc}.*convert it to UTF-8"):
        build_kb([src], out, progress=False)
    r = runner.invoke(app, ["kb", "build", f"jsonl:{src}", "--out", str(out)])
    assert r.exit_code == 2 and f"the file is {enc}" in r.output


def test_latin1_lines_are_reported_as_not_utf8(tmp_path):
    src = tmp_path / "latin1.jsonl"
    src.write_bytes(_jsonl(RECORDS).encode("latin-1"))
    with pytest.raises(KBError, match=r"\[E122\].*2 records read: 2 malformed.*0xFC.*not UTF-8.*convert the file to UTF-8"):
        build_kb([src], tmp_path / "kb", progress=False)
    # one good line: the build is kept, the bad line is reported with its encoding
    src.write_bytes(_jsonl(RECORDS[:1]).encode("latin-1") + _jsonl([{"id": "Q3", "label": "Bern"}]).encode())
    rep = build_kb([src], tmp_path / "kb", progress=False)
    assert rep.counts["entities"] == 1 and rep.issues[0].code == "E108" and "not UTF-8" in rep.issues[0].message


def test_a_document_or_csv_that_is_not_utf8_says_so(tmp_path):
    doc = tmp_path / "ents.json"
    doc.write_bytes(json.dumps({r["id"]: r for r in RECORDS}, ensure_ascii=False).encode("latin-1"))
    with pytest.raises(KBError, match=r"\[E122\].*\[E123\].*byte 0xFC, which is not UTF-8.*convert it to UTF-8"):
        build_kb([doc], tmp_path / "kb", progress=False)
    csv = tmp_path / "ents.csv"
    csv.write_bytes("id,label\nQ1,Zürich\n".encode("latin-1"))
    with pytest.raises(KBError, match=r"\[E122\].*\[E123\].*byte 0xFC.*convert it to UTF-8"):
        build_kb([csv], tmp_path / "kb", progress=False)


def test_a_utf8_byte_order_mark_is_read(tmp_path):
    src = tmp_path / "bom.jsonl"
    src.write_bytes(b"\xef\xbb\xbf" + _jsonl(RECORDS).encode())
    rep = build_kb([f"jsonl:{src}"], tmp_path / "kb", progress=False)
    assert rep.n_issues == 0 and KB.open(tmp_path / "kb").get("Q1").label == "Zürich"


def test_only_nameless_records_is_an_empty_build(tmp_path):
    types = tmp_path / "types.json"
    types.write_text(json.dumps({"Q1": ["Q5"], "Q2": ["Q5"]}))
    with pytest.raises(KBError, match=r"\[E122\].*2 records read.*2 without a name.*\[E113\]"):
        build_kb([f"codex-types:{types}"], tmp_path / "kb", progress=False)
    kept = tmp_path / "kept"
    kept.mkdir()  # a directory the user made stays (empty), one the build made goes
    with pytest.raises(KBError, match=r"\[E122\]"):
        build_kb([f"codex-types:{types}"], kept, progress=False)
    assert kept.is_dir() and not any(kept.iterdir())
    assert not (tmp_path / "kb").exists()


def test_a_forced_rebuild_into_nothing_leaves_no_stale_kb(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text(_jsonl(RECORDS))
    out = tmp_path / "kb"
    build_kb([good], out, progress=False)
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    with pytest.raises(KBError, match=r"\[E122\]"):
        build_kb([f"jsonl:{empty}"], out, progress=False, overwrite=True)
    assert not Path(out, "kb.sqlite").exists()
