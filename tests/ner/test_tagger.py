"""The shipped tagger on real tweets: the RiVEG fixture, a valid split against the spaCy
baseline, label schemes, bad input, very long posts, and auxiliary knowledge."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from pixlink.errors import InputError  # noqa: E402
from pixlink.ner.aux import AuxKnowledge  # noqa: E402
from pixlink.ner.tagger import Tagger, default_weights_dir, tokenize  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tagger():
    from pixlink.ner import backend as ner_trained

    why = ner_trained.check(default_weights_dir())
    if why is not None:
        pytest.skip(f"the shipped NER model cannot run here: {why}")
    return Tagger()  # threads=N would set torch's process-wide count for every later test


def test_phillies_tweet_is_org(tagger, shared_data):
    from pixlink.eval.datasets.conll import read_conll

    post = read_conll(shared_data("riveg", "16_05_01_127.conll"))[0]
    assert post.text == "The Philadelphia Phillies are a good baseball team ."
    assert tagger.tag_tokens([post.tokens]) == [[(1, 3, "ORG")]]
    spans = tagger.tag([post.text])[0]
    assert [(s.text, s.type) for s in spans] == [("Philadelphia Phillies", "ORG")]
    assert post.text[spans[0].start : spans[0].end] == "Philadelphia Phillies"
    assert 0.0 < spans[0].score <= 1.0


def test_beats_spacy_baseline_on_twitter2017_valid(tagger, shared_data):
    """Real inference on 300 held-out tweets (never in training): the trained model must
    clearly beat the packaged spaCy pipeline (≈51 F1 on Twitter-2017)."""
    from pixlink.eval.datasets.conll import read_conll
    from pixlink.eval.metrics import span_prf
    from pixlink.models import get_spec

    posts = read_conll(shared_data("twitter2017", "valid.txt"))[:300]
    gold = [[(e.start, e.end, e.type) for e in p.entities] for p in posts]
    pred = tagger.tag_tokens([p.tokens for p in posts], label_scheme="twitter2017")
    ours = span_prf(gold, pred, types=["PER", "LOC", "ORG", "MISC"])
    spacy = get_spec("ner", "spacy_sm")
    if spacy.availability() is not None:
        pytest.skip(f"spacy_sm baseline unavailable: {spacy.availability()}")
    base_tagger = spacy.factory()
    safe = [[w if w.strip() and not any(c.isspace() for c in w) else "_" for w in p.tokens] for p in posts]
    base = span_prf(gold, base_tagger.tag_tokens(safe), types=["PER", "LOC", "ORG", "MISC"])
    assert ours["f1"] > base["f1"] + 0.15, (ours["f1"], base["f1"])
    assert ours["f1"] > 0.75
    assert ours["per_type"]["PER"]["f1"] > base["per_type"]["PER"]["f1"]


def test_label_scheme_names_the_fourth_type(tagger, shared_data):
    from pixlink.eval.datasets.conll import read_conll

    posts = read_conll(shared_data("twitter2015", "valid.txt"))[:40]
    toks = [p.tokens for p in posts]
    misc = tagger.tag_tokens(toks)
    other = tagger.tag_tokens(toks, label_scheme="OTHER")
    t2015 = tagger.tag_tokens(toks, label_scheme="twitter2015")
    assert any(t == "MISC" for sp in misc for _s, _e, t in sp)
    assert not any(t == "MISC" for sp in other + t2015 for _s, _e, t in sp)
    assert any(t == "OTHER" for sp in t2015 for _s, _e, t in sp)
    # "MISC" and "OTHER" only rename; a dataset name also tells the head its convention
    assert [[(s, e) for s, e, _ in sp] for sp in misc] == [[(s, e) for s, e, _ in sp] for sp in other]
    assert Tagger.labels.fget(type("T", (), {"label_scheme": "OTHER"})()) == ("PER", "LOC", "ORG", "OTHER")
    with pytest.raises(InputError, match="E502"):
        tagger.tag_tokens(toks[:1], label_scheme="wnut")


def test_bad_input(tagger):
    with pytest.raises(InputError, match="E500"):
        tagger.tag([""])
    with pytest.raises(InputError, match="E500"):
        tagger.tag(["a real text", "   \n"])
    with pytest.raises(InputError, match="E500"):
        tagger.tag("a bare string, not a list")
    with pytest.raises(InputError, match="E500"):
        tagger.tag_tokens([[]])
    with pytest.raises(InputError, match="E500"):
        tagger.tag_tokens([["ok", ""]])
    with pytest.raises(InputError, match="E500"):
        tagger.tag_tokens([["a"]], contexts=["x", "y"])
    assert tagger.tag([]) == []


def test_text_without_entities(tagger):
    assert tagger.tag(["i am so tired today , going to sleep now .", ":) :) !!!"]) == [[], []]


def test_very_long_post_is_tagged_to_its_end(tagger):
    """Far beyond the backbone's 256 sub-word window: every word still gets a tag."""
    text = "what a lovely day it was , " * 250 + "Barack Obama met Angela Merkel in Berlin"
    assert len(tokenize(text)) > 1500
    spans = tagger.tag([text])[0]
    found = {(s.text, s.type) for s in spans}
    assert ("Barack Obama", "PER") in found and ("Berlin", "LOC") in found
    for s in spans:
        assert text[s.start : s.end] == s.text


def test_long_text_scores_are_probabilities_and_windows_tag_as_well_as_tweets(tagger, shared_data):
    """Issue #11: 200 real tweets joined (~16 kB) gave 'confidences' up to 1.6 (257 of 326
    above 1). Scores are entity probabilities in [0, 1], and the joined text, tagged in windows,
    is tagged about as well as each tweet alone (gold: the tweets' own entities; measured F1
    0.845 joined vs 0.854 alone; the old single pass over the whole text gave 0.837)."""
    from pixlink.conll import read_conll
    from pixlink.spans import span_prf

    posts = read_conll(shared_data("twitter2017", "valid.txt"))[:200]
    texts = [p.text for p in posts]
    text = " ".join(texts)
    assert len(text) > 15000
    joined = tagger.tag([text], label_scheme="twitter2017")[0]
    assert len(joined) > 200
    assert all(0.0 <= s.score <= 1.0 for s in joined), max(s.score for s in joined)
    assert all(a.end <= b.start for a, b in zip(joined, joined[1:]))  # sorted, no overlap
    for s in joined:
        assert text[s.start : s.end] == s.text
    # gold entities and each tweet tagged alone, as character spans of the joined text
    gold, alone, offset = [], [], 0
    for p, spans in zip(posts, tagger.tag(texts, label_scheme="twitter2017")):
        starts = [sum(len(w) + 1 for w in p.tokens[:i]) for i in range(len(p.tokens))]
        gold += [(offset + starts[e.start], offset + starts[e.end - 1] + len(p.tokens[e.end - 1]), e.type)
                 for e in p.entities]
        alone += [(s.start + offset, s.end + offset, s.type) for s in spans]
        offset += len(p.text) + 1
    f_joined = span_prf([gold], [[(s.start, s.end, s.type) for s in joined]])["f1"]
    f_alone = span_prf([gold], [alone])["f1"]
    assert f_joined > 0.8 and f_joined > f_alone - 0.05, (f_joined, f_alone)


def test_tokenize_offsets():
    text = "RT @cnn: Franco's #NBA pic http://t.co/x1 !"
    toks = tokenize(text)
    assert [t for t, _a, _b in toks] == ["RT", "@cnn", ":", "Franco", "'", "s", "#", "NBA", "pic", "http://t.co/x1", "!"]
    assert all(text[a:b] == t for t, a, b in toks)


class _FakeLM:
    """A generate-role stand-in that records its prompts."""

    name = "fake_lm"
    model_id = "fake"

    def __init__(self, reply: str = "", fail_on: str | None = None) -> None:
        self.reply, self.fail_on, self.prompts = reply, fail_on, []

    def generate(self, prompt: str, max_new_tokens: int = 48, temperature: float = 0.0) -> str:
        self.prompts.append(prompt)
        if self.fail_on and self.fail_on in prompt:
            raise RuntimeError("generator crashed")
        return self.reply


def test_aux_knowledge_is_appended_and_tags_stay_on_the_post(tagger):
    lm = _FakeLM("The Philadelphia Phillies are an American professional baseball team based in Philadelphia.\n\nignored")
    aux = AuxKnowledge(lm)
    text = "Go Phillies ! great win tonight"
    plain = tagger.tag([text])[0]
    with_aux = Tagger.__new__(Tagger)
    with_aux.__dict__.update(tagger.__dict__)
    with_aux.aux = aux
    spans = with_aux.tag([text])[0]
    assert len(lm.prompts) == 1 and text in lm.prompts[0]
    assert aux.clean(lm.reply).endswith("Philadelphia.")
    # the context changes the post's features (it is really read) ...
    words = [t for t, _a, _b in tokenize(text)]
    feats_plain = tagger.backbone.features([words])[0]
    feats_ctx = tagger.backbone.features([words], contexts=[aux.clean(lm.reply)])[0]
    assert feats_ctx.shape == feats_plain.shape
    assert abs(feats_ctx.astype(float) - feats_plain.astype(float)).max() > 1e-3
    # ... and spans only ever cover the post, never the context
    for s in spans + plain:
        assert 0 <= s.start < s.end <= len(text)


def test_aux_clean_cuts_prompt_echo_and_loops():
    aux = AuxKnowledge(_FakeLM())
    assert aux.clean(" I love soccer. I love soccer. I love soccer. Messi plays. ") == "I love soccer. Messi plays."
    assert aux.clean(" The NHL is a league. Background: The NHL is big") == "The NHL is a league."
    assert aux.clean("Paris is in France.\n\nTweet: more") == "Paris is in France."
    assert len(AuxKnowledge(_FakeLM(), max_chars=20).clean("word " * 50)) <= 20


def test_aux_failures_raise_or_are_recorded(tagger):
    lm = _FakeLM("context", fail_on="second")
    strict = AuxKnowledge(lm)
    with pytest.raises(InputError, match="E506"):
        strict.contexts(["first post", "second post"])
    lenient = AuxKnowledge(lm, on_error="skip")
    assert lenient.contexts(["first post", "second post"]) == ["context", None]
    assert len(lenient.notes) == 1 and "post 1" in lenient.notes[0]
    t = Tagger.__new__(Tagger)
    t.__dict__.update(tagger.__dict__)
    t.aux = lenient
    out = t.tag(["Obama in Paris first", "Obama in Paris second"])
    assert len(out) == 2 and t.notes and "post 1" in t.notes[0]
    with pytest.raises(InputError, match="E500"):
        AuxKnowledge(lm, prompt="no placeholder")
    with pytest.raises(InputError, match="E500"):
        AuxKnowledge(object())
