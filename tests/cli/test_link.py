"""``pixlink link`` on real photos with the offline models: faces link to the right person, the
answer is JSON on stdout with the skipped signals as warnings on stderr, the overlay is written."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from helpers import shared

pytestmark = [pytest.mark.slow, pytest.mark.data]

# heads in obama_and_biden.jpg (XYXY, original pixels)
OBAMA = "1110,360,1380,645"
BIDEN = "715,420,945,665"


@pytest.fixture(scope="module")
def no_segment(tmp_path_factory):
    p = tmp_path_factory.mktemp("cfg") / "linker.json"
    # boxes stay boxes; every signal runs (none named, so none is required): those whose KB
    # vectors were not made (the KB has face vectors only) are skipped with a warning
    p.write_text(json.dumps({"segment": False}))
    return p


@pytest.mark.parametrize("box,qid", [(OBAMA, "Q76"), (BIDEN, "Q6279")])
def test_a_face_box_links_to_its_person(cli, people_kb, no_segment, box, qid):
    kb, _ = people_kb
    r = cli("link", shared("photos", "obama_and_biden.jpg"), "--kb", kb, "--box", box, "--profile", "offline",
            "--config", no_segment, "--json")
    assert r.exit_code == 0, r.output
    ans = json.loads(r.stdout)  # stdout is the JSON answer and nothing else
    assert ans["prediction"] == qid, ans["candidates"][:3]
    assert "face" in ans["candidates"][0]["signals"]
    assert ans["region"]["box"] == [float(v) for v in box.split(",")]
    # the KB has no image vectors: the skipped signals are warnings on stderr, also with --json
    skipped = [n for n in ans["notes"] if "run `pixlink kb embed" in n]
    assert skipped, ans["notes"]
    err = " ".join(r.stderr.split())
    for n in skipped:
        assert f"warning: {' '.join(n.split())}" in err
    assert "INFO" not in r.stderr and "info:" not in r.stderr  # no log lines without -v


def test_a_signal_named_in_the_config_is_required(cli, people_kb, tmp_path):
    kb, _ = people_kb
    cfg = tmp_path / "strict.json"
    cfg.write_text(json.dumps({"segment": False, "signals": ["face", "v2v"]}))
    r = cli("link", shared("photos", "obama_and_biden.jpg"), "--kb", kb, "--box", OBAMA, "--profile", "offline",
            "--config", cfg, "--json")
    assert r.exit_code == 2 and "E405" in r.output and "v2v" in r.output


def test_human_output_with_caption_and_overlay(cli, people_kb, no_segment, tmp_path):
    kb, _ = people_kb
    photo = shared("photos", "obama_and_biden.jpg")
    overlay = tmp_path / "answer.png"
    r = cli("link", photo, "--kb", kb, "--box", OBAMA, "--text", "Barack Obama speaks in Washington",
            "--profile", "offline", "--config", no_segment, "--overlay", overlay)
    assert r.exit_code == 0, r.output
    assert "linked to Q76" in r.stdout and "Barack Obama" in r.stdout
    assert "overlay written to" in r.stderr
    with Image.open(overlay) as im, Image.open(photo) as src:
        assert im.size == src.size
        drawn = np.asarray(im.convert("RGB")).astype(int)
        orig = np.asarray(src.convert("RGB")).astype(int)
    x1, y1, x2, y2 = (int(float(v)) for v in OBAMA.split(","))
    # the box outline is drawn on Obama's head, and the far corner of the picture is as it was
    assert np.abs(drawn[y1 + 5:y2 - 5, x1] - orig[y1 + 5:y2 - 5, x1]).mean() > 30
    assert np.abs(drawn[:40, :40] - orig[:40, :40]).mean() < 3


def test_calibrate_command_writes_a_fusion_that_link_and_eval_read(tmp_path):
    """`pixlink link calibrate` on labelled text mentions (a small KB, lexical only) writes fusion
    parameters that `pixlink link --fusion` and `pixlink eval link --fusion` take."""
    import json

    from typer.testing import CliRunner

    from pixlink.cli.main import app
    from pixlink.kb import build_kb_from_entities
    from pixlink.types import Entity

    names = ["Red Square", "Blue Lagoon", "Green Park", "Yellow River", "Black Forest", "White Sea",
             "Orange County", "Purple Mountain", "Silver Lake", "Golden Gate"]
    build_kb_from_entities([Entity(f"Q{i}", n, description=f"place number {i}") for i, n in enumerate(names, 1)],
                           tmp_path / "kb")
    lines = []
    for j in range(40):
        if j % 4 == 3:
            lines.append({"id": f"m{j}", "text": f"nothing like this {j}", "gold": None})
        else:
            i = j % len(names)
            lines.append({"id": f"m{j}", "text": f"a trip to {names[i]} today", "gold": f"Q{i + 1}"})
    (tmp_path / "mentions.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    (tmp_path / "config.json").write_text(json.dumps({"signals": ["lexical"], "segment": False,
                                                      "signal_options": {"lexical": {"ner": False}}}))
    runner = CliRunner()
    res = runner.invoke(app, ["link", "calibrate", str(tmp_path / "mentions.jsonl"), "--kb", str(tmp_path / "kb"),
                              "--out", str(tmp_path / "fusion.json"), "--config", str(tmp_path / "config.json"),
                              "--profile", "offline", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["n_fit"] + report["n_heldout"] == 40 and report["n_failed"] == 0
    assert report["after"]["accuracy"] >= report["before"]["accuracy"]
    fusion = json.loads((tmp_path / "fusion.json").read_text())
    assert "lexical:kb" in fusion["calibration"] or "lexical" in fusion["calibration"]
    # the offline set's image-only NIL class has none of these text mentions: kept, and said so
    assert report["nil_thresholds"]["image"]["n"] == 0 and report["nil_thresholds"]["default"]["n"] == report["n_fit"]
    assert fusion["nil_classes"] == [c for c in fusion["nil_classes"] if c["name"] == "image"]
    res = runner.invoke(app, ["link", "calibrate", str(tmp_path / "mentions.jsonl"), "--kb", str(tmp_path / "kb"),
                              "--out", str(tmp_path / "fusion2.json"), "--config", str(tmp_path / "config.json"),
                              "--profile", "offline"])
    assert res.exit_code == 0 and "image mentions" in res.output and "(kept: too few of them)" in res.output, res.output
    res = runner.invoke(app, ["eval", "link", str(tmp_path / "mentions.jsonl"), "--kb", str(tmp_path / "kb"),
                              "--profile", "offline", "--config", str(tmp_path / "config.json"),
                              "--fusion", str(tmp_path / "fusion.json"), "--out", str(tmp_path / "run"), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["n"] == 40
    res = runner.invoke(app, ["link", "calibrate", str(tmp_path / "mentions.jsonl"), "--kb", str(tmp_path / "kb"),
                              "--out", str(tmp_path / "nope" / "f.json")])
    assert res.exit_code == 2 and "E704" in res.output
