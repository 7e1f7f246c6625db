"""``pixlink demo`` end to end with the offline models (minutes): its summary's counts agree."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.slow]


def test_demo_summary_is_sane(cli, tmp_path):
    pytest.importorskip("skimage", reason="scikit-image is in the `demo` extra: pip install 'pixlink[demo]'")
    out = tmp_path / "demo"
    r = cli("demo", "--out", out, "--profile", "offline", "--json")
    if r.exit_code == 2 and ("[E761]" in r.stderr or "[E760]" in r.stderr):
        pytest.skip(f"demo material cannot be assembled here: {r.stderr.strip()[:300]}")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    rows = res["rows"]
    assert res["n"] == len(rows) > 0
    assert res["correct"] == sum(1 for row in rows if row["correct"])
    assert 0 < res["correct"] <= res["n"]
    assert len({row["id"] for row in rows}) == len(rows)
    # the face queries are the ones the offline models must get (dlib faces)
    faces = [row for row in rows if row["kind"] == "face"]
    assert faces and all(row["correct"] for row in faces), [(row["id"], row["predicted"]) for row in faces]
    for row in rows:
        assert (row["predicted"] is None) == (row["predicted_label"] == "NIL")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == res["n"] and summary["correct"] == res["correct"]
    assert (out / "summary.md").read_text().startswith(f"# pixlink demo: {res['correct']} of {res['n']}")
    assert all((out / f"{row['id']}.jpg").is_file() for row in rows)
