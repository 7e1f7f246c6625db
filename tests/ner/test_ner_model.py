"""The CRF head: likelihood, Viterbi and BIO constraints checked against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pixlink.ner import model as M  # noqa: E402
from pixlink.spans import bio_tagset  # noqa: E402

TAGS = bio_tagset(("PER", "ORG"))  # O B-PER I-PER B-ORG I-ORG


def _cfg() -> dict:
    return {"n_layers": 3, "dim": 8, "n_chars": 10, "char_dim": 4, "char_filters": 5, "n_words": 7, "word_dim": 3,
            "proj": 6, "hidden": 4, "dropout": 0.0, "tags": TAGS}


def _path_score(crf, em, path):
    trans = crf._t()
    start = crf.start + crf.start_mask
    s = start[path[0]] + em[0, path[0]]
    for i in range(1, len(path)):
        s = s + trans[path[i - 1], path[i]] + em[i, path[i]]
    return s + crf.end[path[-1]]


def _random_crf(seed: int, n: int, scale: float = 1.0):
    """A CRF with random transitions, emissions ``(1, n, K)``, a full mask, and the score of
    every one of the K**n paths."""
    torch.manual_seed(seed)
    crf = M.build_head(_cfg()).crf
    with torch.no_grad():
        crf.trans.normal_()
        crf.start.normal_()
        crf.end.normal_()
    em = torch.randn(1, n, len(TAGS)) * scale
    mask = torch.ones(1, n, dtype=torch.bool)
    scores = {p: float(_path_score(crf, em[0], p).detach()) for p in itertools.product(range(len(TAGS)), repeat=n)}
    return crf, em, mask, scores


def test_crf_matches_brute_force():
    crf, em, mask, scores = _random_crf(0, 4)
    best = max(scores, key=scores.get)
    paths, probs = crf.decode(em, mask)
    assert tuple(paths[0]) == best
    # the best path never breaks BIO (I-X only after B-X / I-X)
    names = [TAGS[i] for i in best]
    for a, b in zip(["O"] + names, names):
        if b.startswith("I-"):
            assert a in (f"B-{b[2:]}", b)
    # NLL of a path = logZ - score(path)
    logz = torch.logsumexp(torch.tensor(list(scores.values())), 0)
    gold = torch.tensor([list(best)])
    nll = crf.nll(em, gold, mask)
    assert float(nll.detach()) == pytest.approx(float(logz) - scores[best], abs=1e-3)
    # marginals are probabilities, and they are the brute-force ones
    z = sum(np.exp(v) for v in scores.values())
    for i in range(4):
        want = sum(np.exp(v) for p, v in scores.items() if p[i] == best[i]) / z
        assert probs[0].tokens[i] == pytest.approx(want, abs=1e-6)
    assert all(0.0 < p <= 1.0 for p in probs[0].tokens)


def _brute_entity(scores, path, s, e, cont):
    """P(words s..e-1 carry path's tags and word e is not `cont`) by summing over every path."""
    z = sum(np.exp(v) for v in scores.values())
    hit = sum(np.exp(v) for p, v in scores.items()
              if tuple(p[s:e]) == tuple(path[s:e]) and (e >= len(p) or p[e] != cont))
    return hit / z


def test_entity_probability_is_the_brute_force_marginal():
    crf, em, mask, scores = _random_crf(3, 5, scale=2.0)
    paths, margs = crf.decode(em, mask)
    mg = margs[0]
    idx = {t: i for i, t in enumerate(TAGS)}
    # every entity-shaped segment, on paths made to hold one there
    for s, e, typ in [(0, 1, "PER"), (0, 2, "ORG"), (1, 4, "PER"), (3, 5, "ORG"), (4, 5, "PER")]:
        path = list(paths[0])
        path[s:e] = [idx[f"B-{typ}"]] + [idx[f"I-{typ}"]] * (e - s - 1)
        probe = M.PathMarginals(path, mg.log_alpha, mg.log_beta, mg.log_z, mg.em, mg.trans, mg.end)
        got = probe.entity(s, e, idx[f"I-{typ}"])
        want = _brute_entity(scores, path, s, e, idx[f"I-{typ}"])
        assert got == pytest.approx(want, rel=1e-6, abs=1e-12), (s, e, typ)
        assert got <= min(probe.tokens[s:e]) + 1e-12
    # paths_to_spans scores each entity of the decoded path with it
    for s, e, typ, sc in M.paths_to_spans(paths[0], TAGS, mg):
        assert sc == pytest.approx(_brute_entity(scores, paths[0], s, e, idx[f"I-{typ}"]), rel=1e-6)


def test_probabilities_stay_probabilities_on_very_long_posts():
    """3,000 words: log-scores reach ~4e4, where float32 steps are ~4e-3 nats; the float32
    forward-backward this replaced gave token 'marginals' up to 1.34 on these emissions (and up
    to 1.6 on 200 real tweets joined, issue #11). Every probability must stay in [0, 1]."""
    torch.manual_seed(4)
    head = M.build_head(_cfg())
    with torch.no_grad():
        head.crf.trans.normal_()
    n = 3000
    em = torch.randn(1, n, len(TAGS)) * 3 + 10
    paths, margs = head.crf.decode(em, torch.ones(1, n, dtype=torch.bool))
    mg = margs[0]
    assert np.abs(mg.log_alpha).max() > 3e4
    raw = np.exp(mg.log_alpha[np.arange(n), paths[0]] + mg.log_beta[np.arange(n), paths[0]] - mg.log_z)
    assert raw.max() <= 1.0 + 1e-9 and raw.min() >= 0.0
    # the marginals of each word's K tags sum to one
    total = np.exp(mg.log_alpha + mg.log_beta - mg.log_z).sum(axis=1)
    assert np.allclose(total, 1.0, atol=1e-6)
    ents = M.paths_to_spans(paths[0], TAGS, mg)
    assert ents and all(0.0 <= sc <= 1.0 for *_x, sc in ents)


def test_crf_respects_padding():
    torch.manual_seed(1)
    head = M.build_head(_cfg())
    em = torch.randn(2, 5, len(TAGS))
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    paths, _ = head.crf.decode(em, mask)
    assert len(paths[0]) == 3 and len(paths[1]) == 5
    alone, _ = head.crf.decode(em[:1, :3], mask[:1, :3])
    assert paths[0] == alone[0]
    nll_pad = head.crf.nll(em[:1], torch.zeros(1, 5, dtype=torch.long), mask[:1])
    nll_cut = head.crf.nll(em[:1, :3], torch.zeros(1, 3, dtype=torch.long), mask[:1, :3])
    assert float(nll_pad.detach()) == pytest.approx(float(nll_cut.detach()), abs=1e-4)


def test_case_features_see_what_an_uncased_backbone_cannot():
    f = M.case_features(["The", "NBA", "iPhone", "#", "Phillies", "@cnn", "http://t.co/x", "2017", "!"])
    col = {n: i for i, n in enumerate(M.CASE_FEATURES)}
    assert f[0, col["title"]] == 1 and f[0, col["first"]] == 1
    assert f[1, col["upper"]] == 1 and f[1, col["title"]] == 0
    assert f[2, col["mixed"]] == 1
    assert f[4, col["after_hash"]] == 1 and f[4, col["title"]] == 1
    assert f[5, col["mention"]] == 1
    assert f[6, col["url"]] == 1
    assert f[7, col["all_digit"]] == 1
    assert f[8, col["punct"]] == 1


def test_allowed_transitions_bio():
    ok = M.allowed_transitions(TAGS)
    i = {t: k for k, t in enumerate(TAGS)}
    assert not ok[i["O"], i["I-PER"]]
    assert not ok[i["B-ORG"], i["I-PER"]]
    assert ok[i["B-PER"], i["I-PER"]] and ok[i["I-PER"], i["I-PER"]]
    assert list(M.allowed_starts(TAGS)) == [True, True, False, True, False]
    assert np.all(ok[:, i["B-ORG"]])


def test_ensemble_of_identical_heads_decodes_like_one_head():
    torch.manual_seed(2)
    cfg = _cfg()
    one = M.build_ensemble(cfg, 1)
    two = M.build_ensemble(cfg, 2)
    st = {k.replace("heads.0.", ""): v for k, v in one.state_dict().items()}
    two.load_state_dict({f"heads.{i}.{k}": v for i in range(2) for k, v in st.items()})
    with torch.no_grad():
        for h in list(one.heads) + list(two.heads):
            h.crf.trans.copy_(torch.linspace(-1, 1, len(TAGS) ** 2).view(len(TAGS), len(TAGS)))
    items = [{"feats": np.random.RandomState(i).randn(n, 3, 8).astype(np.float16),
              "chars": np.ones((n, M.MAX_WORD_CHARS), dtype=np.int64), "case": M.case_features(["Ab"] * n),
              "words": np.ones(n, dtype=np.int64)} for i, n in enumerate((3, 5))]
    batch = M.collate(items, with_tags=False)
    one.eval()
    two.eval()
    p1, pr1 = one.decode(batch)
    p2, pr2 = two.decode(batch)
    assert p1 == p2
    assert np.allclose(pr1[1].tokens, pr2[1].tokens, atol=1e-5)
