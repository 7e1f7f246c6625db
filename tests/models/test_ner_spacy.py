"""The packaged spaCy NER backends (spacy_sm, spacy_md) run for real."""

from __future__ import annotations

import pytest
from helpers import need_backend

from pixlink.errors import InputError
from pixlink.models import roles as R
from pixlink.models.backends.ner_spacy import ONTONOTES_TO_PIXLINK

SENTENCE = "Barack Obama met Angela Merkel in Berlin on Tuesday before flying to Paris with NATO officials."


@pytest.fixture(scope="module", params=("spacy_sm", "spacy_md"))
def tagger(request):
    return need_backend(R.NER, request.param)


def _read_conll(path, n):
    """First ``n`` sentences of a Twitter CoNLL file as (tokens, gold token spans)."""
    sents, cur = [], []
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if line.startswith("IMGID:"):
            continue
        if not line.strip():
            if cur:
                sents.append(cur)
                cur = []
            if len(sents) >= n:
                break
            continue
        tok, tag = line.split("\t")
        cur.append((tok, tag))
    out = []
    for s in sents:
        tags = [t for _, t in s] + ["O"]
        spans, start, typ = set(), None, None
        for i, t in enumerate(tags):
            if start is not None and not t.startswith("I-"):
                spans.add((start, i, typ))
                start = None
            if t.startswith("B-"):
                start, typ = i, t[2:]
        out.append(([w for w, _ in s], spans))
    return out


@pytest.mark.slow
def test_finds_people_and_places_with_char_offsets(tagger):
    assert isinstance(tagger, R.NERTagger)
    (spans,) = tagger.tag([SENTENCE])
    found = {(s.text, s.type) for s in spans}
    assert {("Barack Obama", "PER"), ("Angela Merkel", "PER"), ("Berlin", "LOC"), ("Paris", "LOC")} <= found
    for s in spans:
        assert SENTENCE[s.start:s.end] == s.text
        assert s.type in tagger.labels
    # dates are dropped by the mapping
    assert not any("Tuesday" in s.text for s in spans)


@pytest.mark.slow
def test_tag_tokens_keeps_the_given_tokens(tagger):
    words = ["RT", "@cnn", ":", "Barack", "Obama", "arrives", "in", "New", "York", "#", "UNGA"]
    (spans,) = tagger.tag_tokens([words])
    assert (3, 5, "PER") in spans
    assert any(s == 7 and e == 9 and t == "LOC" for s, e, t in spans)
    assert all(0 <= s < e <= len(words) for s, e, _ in spans)
    assert tagger.tag_tokens([[]]) == [[]]


@pytest.mark.slow
@pytest.mark.data
def test_recall_of_people_on_real_tweets(tagger, shared_data):
    sents = _read_conll(shared_data("twitter2017", "train.txt"), 200)
    preds = tagger.tag_tokens([w for w, _ in sents])
    gold_per = [(i, sp) for i, (_, spans) in enumerate(sents) for sp in spans if sp[2] == "PER"]
    hits = sum(1 for i, sp in gold_per if sp in set(preds[i]))
    # measured: spacy_sm 97/176 (0.55), spacy_md 107/176 (0.61) exact PER spans
    assert len(gold_per) > 100
    assert hits / len(gold_per) >= 0.4, (hits, len(gold_per))


@pytest.mark.slow
def test_misc_label_and_label_map():
    other = need_backend(R.NER, "spacy_sm", misc_label="OTHER")
    assert "OTHER" in other.labels and "MISC" not in other.labels
    (spans,) = other.tag(["The Paris Agreement was signed by French diplomats."])
    assert {s.type for s in spans} <= {"OTHER", "LOC", "PER", "ORG"} and any(s.type == "OTHER" for s in spans)
    with pytest.raises(InputError, match=r"\[E320\].*label_map"):
        need_backend(R.NER, "spacy_sm", label_map={"PERSON": "PER"})
    assert set(ONTONOTES_TO_PIXLINK.values()) == {"PER", "LOC", "ORG", "MISC", None}


@pytest.mark.slow
def test_bad_input(tagger):
    assert tagger.tag([]) == []
    assert tagger.tag_tokens([]) == []
    with pytest.raises(InputError, match=r"\[E320\]"):
        tagger.tag(SENTENCE)  # a string, not a list of strings
    with pytest.raises(InputError, match=r"\[E320\].*text 0"):
        tagger.tag([42])
    with pytest.raises(InputError, match=r"\[E320\].*token 1 of sentence 0"):
        tagger.tag_tokens([["New", "York City"]])
    with pytest.raises(InputError, match=r"\[E320\]"):
        tagger.tag_tokens([["ok", ""]])
    with pytest.raises(InputError, match=r"\[E320\]"):
        tagger.tag_tokens(["not", "lists"])
