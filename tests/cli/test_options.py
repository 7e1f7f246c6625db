"""Options read from files are checked before any model loads, each bad one with a coded error
and exit 2 (issue #11). Every case here ended in a traceback, or after the work, before.

The ``no_models`` fixture makes building the linker / the GMNER pipeline fail the test, so a
passing test also shows that the check came first."""

from __future__ import annotations

import json

import pytest

MISSING_KB = "no-such-kb"


def _link(cli, picture, *extra):
    return cli("link", picture, "--kb", MISSING_KB, "--box", "5,5,40,30", *extra)


def _assert_refused(r, code: str) -> None:
    assert r.exit_code == 2, (r.exit_code, r.output)
    assert f"[{code}]" in r.stderr, r.stderr
    assert "Traceback" not in r.output
    assert r.stdout == ""


# --------------------------------------------------------------------------------------------
# --config
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("body,code,words", [
    (None, "E700", "No such file"),  # missing file
    ('{"segment": false,', "E700", "not valid JSON"),
    ("[1, 2]", "E700", "not a JSON object"),
    ('{"segmnet": false}', "E701", "did you mean 'segment'"),
    ('{"recall_k": "many"}', "E702", "'recall_k' must be an integer, not the string 'many'"),
    ('{"signals": "face"}', "E702", "'signals' must be a list"),
    ('{"nil_threshold": true}', "E702", "'nil_threshold' must be a number or null"),
    ('{"segment": 1}', "E702", "'segment' must be true or false"),
    ('{"mode": "magic"}', "E010", "mode"),  # a value the config itself refuses
])
def test_bad_config_is_refused_before_the_models(cli, picture, tmp_path, no_models, body, code, words):
    cfg = tmp_path / "cfg.json"
    if body is not None:
        cfg.write_text(body, encoding="utf-8")
    r = _link(cli, picture, "--config", cfg)
    _assert_refused(r, code)
    assert words in r.stderr.replace("\n", " "), r.stderr


def test_config_that_is_not_utf8_or_a_directory(cli, picture, tmp_path, no_models):
    cfg = tmp_path / "latin1.json"
    cfg.write_bytes('{"extra": {"name": "caf\u00e9"}}'.encode("latin-1"))
    _assert_refused(_link(cli, picture, "--config", cfg), "E700")
    _assert_refused(_link(cli, picture, "--config", tmp_path), "E700")


def test_good_config_and_view_reach_the_kb(cli, picture, tmp_path):
    """A valid config passes every check: the command goes on and stops at the missing KB."""
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"segment": False, "signals": ["face", "lexical"], "recall_k": 10, "nil_threshold": 0.3}))
    r = _link(cli, picture, "--config", cfg, "--view", "crop")
    _assert_refused(r, "E100")


# --------------------------------------------------------------------------------------------
# --overlay and other outputs
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,code", [("o.xyz", "E703"), ("overlay", "E703"), ("o.PDF", "E703")])
def test_overlay_with_unknown_extension(cli, picture, tmp_path, no_models, name, code):
    r = _link(cli, picture, "--overlay", tmp_path / name, "--json")
    _assert_refused(r, code)
    assert ".png" in r.stderr


def test_overlay_in_a_missing_directory_creates_nothing(cli, picture, tmp_path, no_models):
    r = _link(cli, picture, "--overlay", tmp_path / "nodir" / "deeper" / "o.png")
    _assert_refused(r, "E704")
    assert "does not exist" in r.stderr
    assert not (tmp_path / "nodir").exists()


def test_overlay_that_is_a_directory(cli, picture, tmp_path, no_models):
    (tmp_path / "d.png").mkdir()
    _assert_refused(_link(cli, picture, "--overlay", tmp_path / "d.png"), "E704")


def test_gmner_checks_overlay_and_riveg_before_the_models(cli, picture, tmp_path, no_models):
    r = cli("gmner", picture, "--text", "Obama in Paris", "--overlay", tmp_path / "g.gif", "--json")
    _assert_refused(r, "E703")
    r = cli("gmner", picture, "--text", "Obama in Paris", "--riveg", tmp_path / "nodir" / "r.txt")
    _assert_refused(r, "E704")
    assert not (tmp_path / "nodir").exists()
    r = cli("gmner", picture, "--text", "Obama in Paris", "--scheme", "WHAT")
    _assert_refused(r, "E010")


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("box", ["nan,5,40,30", "5,5,inf,30", "5,5,40", "a,b,c,d"])
def test_bad_box_numbers(cli, picture, no_models, box):
    r = cli("link", picture, "--kb", MISSING_KB, "--box", box)
    _assert_refused(r, "E010")


def test_missing_image_and_mask_fail_before_the_models(cli, picture, tmp_path, no_models):
    _assert_refused(cli("link", tmp_path / "nope.jpg", "--kb", MISSING_KB, "--box", "5,5,40,30"), "E001")
    _assert_refused(cli("link", picture, "--kb", MISSING_KB, "--mask", tmp_path / "nope.png"), "E012")


def test_ner_weights_that_do_not_exist(cli, tmp_path):
    _assert_refused(cli("ner", "tag", "Obama in Paris", "--weights", tmp_path / "none"), "E705")


def test_kb_embed_refuses_an_unknown_signal_before_anything(cli, tmp_path):
    r = cli("kb", "embed", tmp_path, "--signals", "dense_text,telepathy")
    _assert_refused(r, "E010")
    assert "telepathy" in r.stderr


def test_eval_folders_and_masks_that_do_not_exist(cli, tmp_path):
    conll = tmp_path / "dev.txt"
    conll.write_text("IMGID:1\nObama\tB-PER\n\n", encoding="utf-8")
    r = cli("eval", "gmner", conll, "--images", tmp_path / "no-images")
    _assert_refused(r, "E705")
    r = cli("eval", "gmner", conll, "--images", tmp_path, "--masks", tmp_path / "no-masks.jsonl")
    _assert_refused(r, "E705")
    r = cli("eval", "link", conll, "--kb", MISSING_KB, "--images", tmp_path / "no-images")
    _assert_refused(r, "E705")


@pytest.mark.parametrize("command", [
    ["models", "tiny", "{d}/a/b/tiny", "--arch", "clip"],
    ["kb", "build", "{src}", "--out", "{d}/a/b/kb"],
    ["eval", "ner", "{src}", "--out", "{d}/a/b/run"],
    ["demo", "--out", "{d}/a/b/demo"],
])
def test_output_folders_are_made_one_level_only(cli, tmp_path, command):
    """The folder a command is told to write is made; missing folders above it are not."""
    src = tmp_path / "src.jsonl"
    src.write_text('{"id": "Q1", "label": "One"}\n', encoding="utf-8")
    r = cli(*[c.format(d=tmp_path, src=src) for c in command])
    _assert_refused(r, "E704")
    assert not (tmp_path / "a").exists()
