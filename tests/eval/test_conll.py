"""CoNLL reader (:mod:`pixlink.conll`, the ``conll`` format of :mod:`pixlink.eval.datasets`): a tiny
fixture in the real format (with the quirks of the real files) and the real Twitter-2015/2017/GMNER
files when ../shared/data is present."""

from __future__ import annotations

from pathlib import Path

import pytest

from pixlink.conll import load_conll, read_conll
from pixlink.errors import DatasetError

FIX = Path(__file__).parent / "fixtures"


def spans(post):
    return [(e.start, e.end, e.type) for e in post.entities]


def test_fixture_entities_repairs_and_errors():
    res = load_conll(FIX / "twitter2015_mini.txt", dataset="twitter2015")
    posts = {p.id: p for p in res.items}
    # 1003 has a line without TAB, 1004 a type outside Twitter-2015's label set
    assert sorted(posts) == ["1001", "1002", "1005"]
    assert sorted(e.item_id for e in res.report.errors) == ["1003", "1004"]
    assert all(e.code == "E601" for e in res.report.errors)
    assert "line 20" in next(e.error for e in res.report.errors if e.item_id == "1003")
    assert "PERSON" in next(e.error for e in res.report.errors if e.item_id == "1004")
    assert res.report.n_records == 5

    p1 = posts["1001"]
    assert p1.tokens[3:5] == ["New", "Orleans"]
    assert spans(p1) == [(3, 5, "LOC")]
    assert p1.entities[0].text == "New Orleans"
    assert p1.image == "1001.jpg" and p1.split == "twitter2015_mini"
    assert p1.meta["image_id"] == "1001" and p1.meta["dataset"] == "twitter2015"

    # I- without B- starts an entity (conlleval); I-LOC after B-ORG starts a LOC entity
    p2 = posts["1002"]
    assert spans(p2) == [(0, 2, "OTHER"), (4, 5, "PER"), (6, 7, "ORG"), (7, 8, "LOC")]
    assert len(p2.meta["repairs"]) == 3
    assert res.report.counts["i_without_b"] == 3
    # the lone no-break space stays a token so indices stay aligned
    assert p2.tokens[5] == "\xa0" and res.report.counts["blank_token"] == 1

    assert spans(posts["1005"]) == [(0, 2, "PER"), (3, 4, "LOC")]
    assert "1001" not in [e.item_id for e in res.report.errors]


def test_read_conll_returns_posts_and_image_root(tmp_path):
    posts = read_conll(FIX / "twitter2015_mini.txt", image_root=tmp_path)
    assert posts[0].image == str(tmp_path / "1001.jpg")
    # no dataset given and the folder is not a known dataset: any type accepted
    assert "1004" in [p.id for p in posts]


def test_unknown_dataset_and_unreadable_file(tmp_path):
    with pytest.raises(DatasetError, match="E602"):
        load_conll(FIX / "twitter2015_mini.txt", dataset="nope")
    with pytest.raises(DatasetError, match="E600"):
        load_conll(tmp_path / "absent.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("IMGID:1\nfoo bar baz\n\n")
    with pytest.raises(DatasetError, match="E611"):
        load_conll(bad, dataset="twitter2017")


def test_crlf_bom_non_utf8_and_missing_blank(tmp_path):
    f = tmp_path / "t.txt"
    f.write_bytes(b"\xef\xbb\xbfIMGID:a\r\nParis\tB-LOC\r\n\r\nIMGID:b\r\ncaf\xe9\tO\r\n\r\n"
                  b"IMGID:c\r\nRome\tB-LOC\r\nIMGID:d\r\nNYC\tB-LOC\r\n")
    res = load_conll(f, dataset="twitter2017")
    assert [p.id for p in res.items] == ["a", "c", "d"]
    assert [p.tokens for p in res.items] == [["Paris"], ["Rome"], ["NYC"]]
    assert res.report.errors[0].item_id == "b" and "UTF-8" in res.report.errors[0].error
    assert res.report.counts["imgid_without_blank"] == 1


def test_the_eval_format_is_the_ground_floor_reader():
    from pixlink.eval.datasets import POST_FORMATS
    from pixlink.eval.datasets import conll as eval_conll

    module, func = POST_FORMATS["conll"]
    assert getattr(eval_conll, func) is load_conll and module == "conll"


def test_a_bad_tag_names_its_line(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("IMGID:a\nParis\tB-LOC\n\nIMGID:b\nRome\tE-LOC\n\n")
    res = load_conll(f, dataset="twitter2017")
    assert [p.id for p in res.items] == ["a"]
    err = res.report.errors[0]
    assert err.code == "E601" and "line 5" in err.error and "'E-LOC'" in err.error


@pytest.mark.parametrize(
    "folder,name,n_tweets,types",
    [
        ("twitter2015", "valid.txt", 892, {"PER", "LOC", "ORG", "OTHER"}),
        ("twitter2017", "valid.txt", 625, {"PER", "LOC", "ORG", "MISC"}),
        ("gmner", "dev.txt", 1059, {"PER", "LOC", "ORG", "OTHER"}),
    ],
)
def test_real_files(shared_data, folder, name, n_tweets, types):
    path = shared_data(folder, name)
    res = load_conll(path)
    assert res.report.dataset == folder
    assert res.report.errors == []
    assert len(res.items) == n_tweets == len({p.id for p in res.items})
    assert {e.type for p in res.items for e in p.entities} == types
    # every B- tag of the file starts exactly one entity (plus repaired I- starts)
    n_b = sum(1 for line in path.read_text(encoding="utf-8").splitlines() if "\tB-" in line)
    n_ents = sum(len(p.entities) for p in res.items)
    assert n_ents == n_b + res.report.counts.get("i_without_b", 0)
    for p in res.items:
        for e in p.entities:
            assert 0 <= e.start < e.end <= len(p.tokens)


def test_real_twitter2015_quirks(shared_data):
    res = load_conll(shared_data("twitter2015", "valid.txt"))
    assert res.report.counts["i_without_b"] == 46
    assert res.report.counts["blank_token"] == 1
    p = next(p for p in res.items if p.id == "1766026")
    assert p.tokens[0] == "The" and p.entities[0].start == 0 and p.entities[0].type == "OTHER"
