"""Output a person can read (issue #10): INFO lines only with ``-v``, warnings always (also with
``--json``), and ``pixlink link`` as a group whose default command links an image."""

from __future__ import annotations

import logging

import pytest

from pixlink.cli.common import report_notes
from pixlink.cli.link import link_app
from pixlink.log import forget_warnings, get_logger, set_verbosity

SKIPPED = "v2v: the KB has no entity_image vectors for efficientnet-lite0; run `pixlink kb embed`"
INFORMATIVE = "face: no face found in the region; the face signal did not run"


@pytest.mark.parametrize("flags,level", [([], logging.WARNING), (["-v"], logging.INFO), (["-vv"], logging.DEBUG),
                                         (["--verbose", "--verbose", "--verbose"], logging.DEBUG)])
def test_verbose_flag_sets_the_level(cli, flags, level):
    r = cli(*flags, "version")
    assert r.exit_code == 0, r.output
    assert logging.getLogger("pixlink").level == level


def test_info_lines_only_with_v_and_warnings_always(capsys):
    log = get_logger("pixlink.test_cli")
    set_verbosity(0)
    log.info("loaded a model")
    log.warning("a fallback ran")
    err = capsys.readouterr().err
    assert "loaded a model" not in err
    assert "warning: a fallback ran" in err
    set_verbosity(1)
    log.info("loaded a model")
    log.debug("a detail")
    err = capsys.readouterr().err
    assert "info: loaded a model" in err and "a detail" not in err
    set_verbosity(2)
    log.debug("a detail")
    assert "debug pixlink.test_cli: a detail" in capsys.readouterr().err


def test_notes_that_matter_reach_stderr_also_with_json(capsys):
    set_verbosity(0)
    forget_warnings()
    report_notes([SKIPPED, INFORMATIVE, SKIPPED], as_json=True)
    cap = capsys.readouterr()
    assert cap.out == ""
    assert cap.err.count("run `pixlink kb embed`") == 1  # once, though the answer listed it twice
    assert cap.err.startswith("warning: v2v")
    assert INFORMATIVE not in cap.err  # in the JSON only
    forget_warnings()  # as a new command does
    report_notes([SKIPPED, INFORMATIVE], as_json=False)
    err = capsys.readouterr().err
    assert "warning: v2v" in err and f"note: {INFORMATIVE}" in err


def test_a_note_the_library_already_logged_is_not_repeated(capsys):
    set_verbosity(0)
    forget_warnings()
    msg = "detect: not available (no backend can run here)"
    get_logger("pixlink.ner.gmner").warning(msg)
    report_notes([msg], as_json=True)
    assert capsys.readouterr().err.count(msg) == 1


def test_link_is_a_group_with_a_default_command(cli, picture):
    r = cli("link", "--help")
    assert r.exit_code == 0 and "image" in r.stdout and "(default)" in r.stdout
    # the image command runs without its name, as `pixlink link IMAGE --kb KB ...` always did,
    # with the options in any order
    for args in (["link", picture, "--kb", "nokb", "--box", "1,1,9,9"],
                 ["link", "--kb", "nokb", picture, "--box", "1,1,9,9"],
                 ["link", "image", picture, "--kb", "nokb", "--box", "1,1,9,9"]):
        r = cli(*args)
        assert r.exit_code == 2 and "[E100]" in r.stderr, (args, r.output)
    r = cli("link", picture, "--help")
    assert r.exit_code == 0 and "--overlay" in r.stdout


def test_a_sub_command_added_to_link_is_listed_and_dispatched(cli, picture):
    def calibrate(mentions: str) -> None:
        """Fit the fusion (test stand-in)."""
        print(f"calibrating {mentions}")

    link_app.command("calibrate")(calibrate)
    try:
        r = cli("link", "--help")
        assert "calibrate" in r.stdout and "image" in r.stdout
        r = cli("link", "calibrate", "m.jsonl")
        assert r.exit_code == 0 and "calibrating m.jsonl" in r.stdout, r.output
        r = cli("link", picture, "--kb", "nokb", "--box", "1,1,9,9")
        assert "[E100]" in r.stderr
    finally:
        link_app.registered_commands.pop()


def test_kb_embed_is_a_kb_command(cli):
    r = cli("kb", "--help")
    assert r.exit_code == 0 and "embed" in r.stdout
    r = cli("kb", "embed", "--help")
    assert r.exit_code == 0 and "--signals" in r.stdout
