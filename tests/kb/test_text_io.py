"""Name folding, FTS query building, and the streaming JSON document reader."""

from __future__ import annotations

import io
import json
import random

import pytest

from pixlink.kb.sources._io import JSONDocError, iter_json_items
from pixlink.kb.text import fold, fts_query


def test_fold():
    assert fold("  Zürich ") == "zurich"
    assert fold("İzmir") == "izmir"
    assert fold("Ōsaka   Prefecture") == "osaka prefecture"
    assert fold("Straße") == "strasse"
    assert fold("Beyoncé") == fold("BEYONCE")
    assert fold("C++") != fold("C")  # punctuation is kept


def test_fts_query_quotes_words():
    assert fts_query('obama "AND" NEAR(x') == '"obama" OR "and" OR "near" OR "x"'
    assert fts_query("Zürich zürich") == '"zürich"'
    assert fts_query("!!! ...") is None


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 20])
def test_json_items_match_json_loads(chunk):
    rng = random.Random(chunk)
    doc = {f"Q{i}": {"label": "é" * rng.randint(0, 30), "n": rng.random(), "xs": list(range(rng.randint(0, 5))),
                     "nested": {"a": [None, True, 'x\\"y']}} for i in range(300)}
    doc["last"] = 12345  # a number at the very end must not be cut at a chunk boundary
    for text in (json.dumps(doc), json.dumps(doc, indent=2, ensure_ascii=False)):
        got = list(iter_json_items(io.StringIO(text), chunk=chunk))
        assert [(k, v) for _, k, v in got] == list(doc.items())
        lines = text.splitlines()
        for line, key, _ in got:
            assert f'"{key}"' in lines[line - 1]
    arr = list(doc.values())
    assert [v for _, _, v in iter_json_items(io.StringIO(json.dumps(arr)), chunk=chunk)] == arr


@pytest.mark.parametrize("text,expect", [
    ('{"a": 1, "b": ', "truncated"),
    ('{"a": 1 "b": 2}', "expected ','"),
    ('{"a": 1}} ', "extra data"),
    ("7", "must start"),
    ('{"a": [1, 2}', "malformed"),
])
def test_json_items_errors(text, expect):
    with pytest.raises(JSONDocError, match=expect):
        list(iter_json_items(io.StringIO(text), chunk=4))
