"""Training-set assembly on the real Twitter-2015/2017/GMNER files: dev tweets never leak
into training, duplicates are dropped, labels are unified."""

from __future__ import annotations

import pytest

from pixlink.errors import InputError
from pixlink.ner.data import bio_tags, build_training_set, image_key, read_files, text_key
from pixlink.types import NamedEntity, Post


def test_text_key_ignores_tokenisation_of_urls_and_punctuation():
    a = ["RT", "@cnn", ":", "Obama", "'s", "visit", "http://t.co/abc"]
    b = ["RT", "@cnn", ":", "Obama", "'", "s", "visit", "https", ":", "//t.co/abc"]
    assert text_key(a) == text_key(b) == "rtcnnobamasvisit"


def test_bio_tags_are_unified():
    post = Post(id="1", tokens=["The", "Phillies", "won", "in", "NYC"],
                entities=[NamedEntity(1, 2, "OTHER"), NamedEntity(4, 5, "LOC")])
    assert bio_tags(post) == ["O", "B-MISC", "O", "O", "B-LOC"]
    with pytest.raises(InputError, match="E503.*'DATE'"):
        bio_tags(Post(id="2", tokens=["today"], entities=[NamedEntity(0, 1, "DATE")]))
    with pytest.raises(InputError, match="E503.*overlaps"):
        bio_tags(Post(id="3", tokens=["a", "b"], entities=[NamedEntity(0, 2, "PER"), NamedEntity(1, 2, "LOC")]))


def test_dev_tweets_are_removed_from_training(shared_data):
    files = [shared_data("twitter2015", "train.txt"), shared_data("twitter2017", "train.txt"),
             shared_data("gmner", "train.txt")]
    devs = [shared_data("twitter2015", "valid.txt"), shared_data("twitter2017", "valid.txt"),
            shared_data("gmner", "dev.txt")]
    train_sets, dev_sets = read_files(files), read_files(devs)
    kept, rep = build_training_set(train_sets, dev_sets)
    n_in = sum(len(p) for _n, p in train_sets)
    assert rep.kept == len(kept)
    assert n_in == rep.kept + rep.removed_dev_overlap_id + rep.removed_dev_overlap_text + rep.removed_duplicates
    # GMNER is built from the Twitter-2015/2017 tweets: the overlap is real and large
    assert rep.removed_dev_overlap_id > 100 and rep.removed_duplicates > 1000
    dev_ids = {image_key(p) for _n, ps in dev_sets for p in ps}
    dev_texts = {text_key(p.tokens) for _n, ps in dev_sets for p in ps} - {""}
    assert not any(image_key(p) in dev_ids for p in kept)
    assert not any(text_key(p.tokens) in dev_texts for p in kept)
    keys = [text_key(p.tokens) for p in kept if text_key(p.tokens)]
    assert len(keys) == len(set(keys))
    assert set(rep.entity_counts) == {"PER", "LOC", "ORG", "MISC"}


def test_first_copy_of_a_duplicate_wins():
    a = Post(id="1", tokens=["Obama", "speaks"], entities=[NamedEntity(0, 1, "PER")], meta={"image_id": "1"})
    b = Post(id="9", tokens=["Obama", "speaks"], entities=[NamedEntity(0, 1, "OTHER")], meta={"image_id": "9"})
    c = Post(id="2", tokens=["Paris"], entities=[NamedEntity(0, 1, "LOC")], meta={"image_id": "2"})
    kept, rep = build_training_set([("a", [a, b]), ("b", [c])], [("dev", [Post(id="2", tokens=["x"])])])
    assert [p.id for p in kept] == ["1"]
    assert rep.removed_duplicates == 1 and rep.removed_dev_overlap_id == 1
