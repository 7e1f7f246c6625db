"""Training data: the seeded 7:1:2 split on the real WikiMEL file, files round-trip, filtering
against a KB, data hashes."""

from __future__ import annotations

from collections import Counter

import pytest
from helpers import shared

from pixlink.errors import InputError
from pixlink.eval.datasets.melbench import load_melbench
from pixlink.train.data import (data_hash, parse_ratios, read_dataset, split_mentions, subsample, usable,
                                write_mentions)


@pytest.fixture(scope="module")
def wikimel():
    return load_melbench(shared("melbench", "Wikidata-MEL.json")).items


def test_split_is_seeded_keeps_records_and_follows_the_ratios(wikimel):
    a = split_mentions(wikimel, (7, 1, 2), seed=0)
    b = split_mentions(wikimel, (7, 1, 2), seed=0)
    c = split_mentions(wikimel, (7, 1, 2), seed=1)
    assert [m.id for m in a["test"]] == [m.id for m in b["test"]]
    assert [m.id for m in a["test"]] != [m.id for m in c["test"]]
    assert sum(len(v) for v in a.values()) == len(wikimel)
    assert len({m.id for v in a.values() for m in v}) == len(wikimel)
    records = {k: {m.meta["record"] for m in v} for k, v in a.items()}
    assert not (records["train"] & records["dev"]) and not (records["train"] & records["test"])
    n_rec = len({m.meta["record"] for m in wikimel})
    assert len(records["train"]) == round(0.7 * n_rec) and len(records["dev"]) == round(0.8 * n_rec) - round(0.7 * n_rec)
    assert {m.split for m in a["dev"]} == {"dev"} and a["dev"][0].meta["dataset_split"] == "wikimel"


def test_bad_ratios():
    with pytest.raises(InputError, match="E777"):
        split_mentions([], (7, 1), seed=0)
    with pytest.raises(InputError, match="E777"):
        parse_ratios("7-1-2")
    assert parse_ratios("7:1:2") == (7.0, 1.0, 2.0)


def test_written_split_reads_back(wikimel, tmp_path):
    part = split_mentions(wikimel[:300], seed=0)["dev"]
    f = write_mentions(part, tmp_path / "dev.mentions.jsonl")
    back, rep = read_dataset(str(f))
    assert [(m.id, m.text, m.surface, m.gold, m.split) for m in back] == \
           [(m.id, m.text, m.surface, m.gold, m.split) for m in part]
    assert rep["n_errors"] == 0 and data_hash(back) == data_hash(part)
    back[0].text = back[0].text + "!"
    assert data_hash(back) != data_hash(part)
    again, _ = read_dataset(f"wikimel:{shared('melbench', 'Wikidata-MEL.json')}")
    assert len(again) == len(wikimel)
    with pytest.raises(InputError, match="E771"):
        read_dataset(str(tmp_path / "absent.jsonl"))


def test_usable_counts_what_is_left_out(wikimel):
    kb = {m.gold for m in wikimel[:50]}
    sample = wikimel[:100]
    keep, why = usable(sample, kb)
    assert all(m.gold in kb for m in keep)
    assert len(keep) + sum(why.values()) == 100 and why.get("gold_not_in_kb", 0) == sum(1 for m in sample if m.gold not in kb)
    assert Counter(m.id for m in subsample(wikimel, 30, seed=3)) == Counter(m.id for m in subsample(wikimel, 30, seed=3))
