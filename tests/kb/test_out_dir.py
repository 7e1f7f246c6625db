"""The output directory of a build (issue #11): every build has its own id, ``--force`` replaces
everything of the old KB (its vectors too), and what is not a pixlink KB is never written to
nor deleted."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pixlink.cli.main import app
from pixlink.errors import KBError
from pixlink.kb import KB, build_kb, remove_kb

runner = CliRunner()


@pytest.fixture
def src(tmp_path: Path) -> Path:
    p = tmp_path / "ents.jsonl"
    p.write_text("\n".join(json.dumps({"id": f"Q{i}", "label": f"thing {i}"}) for i in range(1, 6)) + "\n")
    return p


def _tree(d: Path) -> dict[str, str]:
    """Every file below ``d`` with the sha256 of its bytes."""
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*")) if p.is_file()}


def _foreign_db(d: Path) -> Path:
    d.mkdir()
    db = d / "kb.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE users(name TEXT)")
    con.execute("INSERT INTO users VALUES ('ada')")
    con.commit()
    con.close()
    return db


def test_every_build_has_its_own_id_and_force_removes_the_old_vectors(tmp_path, src):
    out = tmp_path / "kb"
    first = build_kb([src], out, progress=False)
    kb = KB.open(out)
    old_id = kb.build_id
    kb.close()
    assert old_id is not None and len(old_id) == 32 and int(old_id, 16) >= 0
    assert first.build_id == old_id and json.loads((out / "meta.json").read_text())["build_id"] == old_id
    # what `pixlink kb embed` leaves in a KB directory
    vec = out / "vectors" / "entity_text" / "some-model"
    vec.mkdir(parents=True)
    (vec / "meta.json").write_text('{"model_id": "some-model"}')
    (vec / "vectors.npy").write_bytes(b"\x93NUMPY")
    (out / "embed_cache.sqlite").write_bytes(b"cache")

    again = build_kb([src], out, progress=False, overwrite=True)
    assert not (out / "vectors").exists() and not (out / "embed_cache.sqlite").exists()
    assert sorted(p.name for p in out.iterdir()) == ["build_report.jsonl", "kb.sqlite", "meta.json"]
    with KB.open(out) as kb:
        assert kb.build_id == again.build_id != old_id and len(kb) == 5


def test_a_resumed_build_keeps_its_id_and_an_old_kb_has_none(tmp_path, src):
    out = tmp_path / "kb"
    part = build_kb([src], out, progress=False, max_records=2, batch_size=1)
    assert not part.complete and part.build_id
    done = build_kb([src], out, progress=False, resume=True)
    assert done.complete and done.build_id == part.build_id
    con = sqlite3.connect(out / "kb.sqlite")  # a KB built before build ids existed
    con.execute("DELETE FROM meta WHERE key='build_id'")
    con.commit()
    con.close()
    with KB.open(out) as kb:
        assert kb.build_id is None and kb.info()["build_id"] is None


def test_a_non_empty_directory_that_is_no_kb_is_left_alone(tmp_path, src):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "meta.json").write_text('{"mine": true}')
    (out / "build_report.jsonl").write_text("my notes\n")
    before = _tree(out)
    for kw in ({}, {"overwrite": True}, {"resume": True}):
        with pytest.raises(KBError, match=r"\[E120\].*not empty") as err:
            build_kb([src], out, progress=False, **kw)
        assert "force" not in str(err.value)
        assert _tree(out) == before
    r = runner.invoke(app, ["kb", "build", str(src), "--out", str(out), "--force"])
    assert r.exit_code == 2 and "[E120]" in r.output and "--force" not in r.output
    assert _tree(out) == before


def test_resume_does_not_touch_a_foreign_sqlite_database(tmp_path, src):
    out = tmp_path / "other"
    db = _foreign_db(out)
    before = _tree(out)
    with pytest.raises(KBError, match=r"\[E121\]") as err:
        build_kb([src], out, progress=False, resume=True)
    assert "force" not in str(err.value)
    assert _tree(out) == before
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    assert [n for (n,) in con.execute("SELECT name FROM sqlite_master")] == ["users"]
    con.close()
    r = runner.invoke(app, ["kb", "build", str(src), "--out", str(out), "--resume"])
    assert r.exit_code == 2 and "[E121]" in r.output and "--force" not in r.output
    assert _tree(out) == before


def test_force_does_not_delete_what_is_not_a_kb(tmp_path, src):
    out = tmp_path / "other"
    _foreign_db(out)
    (out / "data.csv").write_text("a,b\n")
    before = _tree(out)
    with pytest.raises(KBError, match=r"\[E121\]"):
        build_kb([src], out, progress=False, overwrite=True)
    assert _tree(out) == before
    r = runner.invoke(app, ["kb", "build", str(src), "--out", str(out), "--force"])
    assert r.exit_code == 2 and "[E121]" in r.output
    with pytest.raises(KBError, match=r"\[E121\]"):
        remove_kb(out)
    assert _tree(out) == before
    # a text file named kb.sqlite is no KB either
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "kb.sqlite").write_text("not a database")
    with pytest.raises(KBError, match=r"\[E121\].*not an SQLite database"):
        build_kb([src], odd, progress=False, overwrite=True)
    assert (odd / "kb.sqlite").read_text() == "not a database"


def test_remove_kb_removes_the_kb_with_its_vectors(tmp_path, src):
    out = tmp_path / "kb"
    build_kb([src], out, progress=False)
    (out / "vectors" / "x").mkdir(parents=True)
    (out / "vectors" / "x" / "v.npy").write_bytes(b"x")
    remove_kb(out)
    assert not out.exists()
    remove_kb(out)  # nothing there: nothing to do
    empty = tmp_path / "empty"
    empty.mkdir()
    build_kb([src], empty, progress=False)  # an empty directory is fine to build into
    assert KB.open(empty).build_id
