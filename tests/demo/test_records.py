"""The demo's records are data (``pixlink/demo/data/materials.json``, shipped with the package):
read and checked by :func:`pixlink.demo.materials.load_records`, which refuses broken records
with a reason. Needs none of the `demo` extra's packages."""

from __future__ import annotations

import copy
import importlib.resources
import json

import pytest

from pixlink.demo import materials


def test_the_records_ship_with_the_package_and_are_valid():
    shipped = importlib.resources.files("pixlink.demo") / "data" / "materials.json"
    assert shipped.is_file() and materials.DATA_PATH.samefile(str(shipped))
    data = materials.load_records()
    assert materials.check_records(json.loads(shipped.read_text(encoding="utf-8"))) == data
    ids = [r["id"] for g in ("people", "countries", "brands", "text_only") for r in data[g]["records"]]
    queries = data["queries"] + data["composites"]
    assert len(ids) == len(set(ids)) and all(q["expected"] is None or q["expected"] in ids for q in queries)
    assert {q["kind"] for q in queries} == {"face", "image", "caption", "nil"}
    # the pinned downloads the module uses are the records'
    assert materials.COUNTRY_FLAGS_NPM.sha256 == data["downloads"]["country_flags"]["sha256"]
    assert materials.FACE_RECOGNITION_SDIST.filename == data["downloads"]["face_recognition"]["filename"]


def _query(data, qid):
    return next(q for q in data["queries"] + data["composites"] if q["id"] == qid)


def _swap_box(d):
    q = _query(d, "nil_cat")
    q["box"] = [q["box"][2], q["box"][1], q["box"][0], q["box"][3]]


def _composite_label(d):
    q = _query(d, "composite_flag_japan")
    q["description"] = q["description"].replace("COMPOSITE", "Generated")


@pytest.mark.parametrize("break_it,reason", [
    (lambda d: d.update(version=99), "version 1"),
    (_swap_box, "is not \\[x1, y1, x2, y2\\]"),
    (lambda d: _query(d, "nil_cat").update(expected="Q999999999"), "expects 'Q999999999', which is not in the KB"),
    (lambda d: _query(d, "caption_falcon_9").update(attribution="photo by {someone}"), "unknown placeholder \\{someone\\}"),
    (_composite_label, "says COMPOSITE"),
    (lambda d: _query(d, "composite_flag_france")["draw"].update(step="spray"), "draw step must be one of"),
    (lambda d: _query(d, "composite_logo_github")["foreground"].update(logo="nosuchbrand"), "foreground flag of"),
    (lambda d: d["brands"]["records"].append(dict(d["brands"]["records"][0])), "is not a QID or is repeated"),
    (lambda d: d["countries"]["records"][0].update(check="hearsay"), "needs a label, a description and a check"),
    (lambda d: _query(d, "nil_cat").update(image={"package": "pooch", "file": "x.png"}), "must name a package"),
])
def test_broken_records_are_refused_with_a_reason(break_it, reason):
    data = copy.deepcopy(materials.load_records())
    break_it(data)
    with pytest.raises(materials.DemoMaterialError, match=rf"\[E764\].*materials.json: .*{reason}"):
        materials.check_records(data)


def test_an_unreadable_data_file_fails_clearly(tmp_path):
    bad = tmp_path / "materials.json"
    bad.write_text('{"format": "pixlink-demo-materials", ')
    with pytest.raises(materials.DemoMaterialError, match=r"\[E764\].*cannot be read"):
        materials.load_records(bad)
