"""The trained head: layer mix of the frozen backbone + char-CNN + case features + word
embeddings -> BiLSTM -> CRF with BIO constraints.

Shapes: ``feats (B, T, L, D)`` float (backbone hidden states per word), ``chars (B, T, C)``
long, ``case (B, T, F)`` float, ``words (B, T)`` long, ``mask (B, T)`` bool (True = a real
word; every row has at least one). Emissions are ``(B, T, K)`` for K BIO tags.

Torch is imported by the functions that build the modules (:func:`build_head`), so that
importing :mod:`pixlink.ner` stays light.
"""

from __future__ import annotations

import unicodedata
from typing import Any, Sequence

import numpy as np

from ..spans import bio_to_spans

CASE_FEATURES = (
    "title", "upper", "lower", "mixed", "has_digit", "all_digit", "punct", "hashtag", "mention",
    "url", "after_hash", "after_at", "first", "long",
)
"""Per-word surface features (case matters for NER; an uncased backbone cannot see it)."""

MAX_WORD_CHARS = 24
PAD, UNK = 0, 1


SCHEME_IDS: dict[str, int] = {"twitter2015": 1, "twitter2017": 2}
"""Annotation conventions a head can be told about (``--condition``): Twitter-2015's and
Twitter-2017's annotators differ (OTHER vs MISC, hashtags, handles). 0 = unknown: a post of
another source, or a caller that names no dataset. Datasets are known by their folder name."""


def scheme_id(name: str | None) -> int:
    """The :data:`SCHEME_IDS` id of a dataset / label-scheme name (0 when unknown)."""
    return SCHEME_IDS.get(str(name or ""), 0)


def case_features(words: Sequence[str]) -> np.ndarray:
    """``(T, F)`` float32 0/1 features of :data:`CASE_FEATURES`."""
    out = np.zeros((len(words), len(CASE_FEATURES)), dtype=np.float32)
    for i, w in enumerate(words):
        letters = [c for c in w if c.isalpha()]
        f = out[i]
        if letters:
            f[0] = letters[0].isupper() and all(c.islower() for c in letters[1:])
            f[1] = len(letters) > 1 and all(c.isupper() for c in letters)
            f[2] = all(c.islower() for c in letters)
            f[3] = letters[0].islower() and any(c.isupper() for c in letters)
        f[4] = any(c.isdigit() for c in w)
        f[5] = w.isdigit()
        f[6] = bool(w) and all(unicodedata.category(c).startswith(("P", "S")) for c in w)
        f[7] = w.startswith("#")
        f[8] = w.startswith("@")
        lw = w.lower()
        f[9] = lw.startswith(("http", "www.", "//t.co", "t.co/"))
        f[10] = i > 0 and words[i - 1] == "#"
        f[11] = i > 0 and words[i - 1] == "@"
        f[12] = i == 0
        f[13] = len(w) > 12
    return out


def char_ids(words: Sequence[str], vocab: dict[str, int]) -> np.ndarray:
    """``(T, MAX_WORD_CHARS)`` int64 char ids (cased; 0 pad, 1 unknown)."""
    out = np.zeros((len(words), MAX_WORD_CHARS), dtype=np.int64)
    for i, w in enumerate(words):
        for j, c in enumerate(w[:MAX_WORD_CHARS]):
            out[i, j] = vocab.get(c, UNK)
    return out


def word_ids(words: Sequence[str], vocab: dict[str, int]) -> np.ndarray:
    """``(T,)`` int64 ids of the words as written (cased; 0 pad, 1 unknown)."""
    return np.array([vocab.get(w, UNK) for w in words], dtype=np.int64)


def make_item(tokens: Sequence[str], feats: np.ndarray, cfg: dict[str, Any], scheme: int = 0) -> dict[str, Any]:
    """One post's head inputs (see :func:`collate`): ``feats (T, L, D)`` from the backbone, the
    char / case / word ids of ``tokens`` under ``cfg``'s vocabularies, and its convention id
    (``scheme``, kept only for a head trained with ``--condition``)."""
    return {"feats": feats, "chars": char_ids(tokens, cfg["char_vocab"]), "case": case_features(tokens),
            "words": word_ids(tokens, cfg["word_vocab"]), "scheme": int(scheme) if cfg.get("n_schemes") else 0}


def allowed_transitions(tags: Sequence[str]) -> np.ndarray:
    """``(K, K)`` bool: may tag j follow tag i under BIO (``I-X`` only after ``B-X``/``I-X``)."""
    k = len(tags)
    ok = np.ones((k, k), dtype=bool)
    for j, t in enumerate(tags):
        if t.startswith("I-"):
            for i, s in enumerate(tags):
                ok[i, j] = s[2:] == t[2:] and s != "O"
    return ok


def allowed_starts(tags: Sequence[str]) -> np.ndarray:
    return np.array([not t.startswith("I-") for t in tags], dtype=bool)


def _logsumexp(x: np.ndarray, axis: int = -1) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    return np.squeeze(m, axis=axis) + np.log(np.sum(np.exp(x - m), axis=axis))


class PathMarginals:
    """Forward-backward quantities of one post under a linear-chain CRF, and its Viterbi path.

    Arrays are float64: ``log_alpha``, ``log_beta`` and ``em`` are ``(T, K)`` (T words, K tags;
    ``log_alpha[i, k]`` scores every prefix ending in tag k at word i, emissions of 0..i included;
    ``log_beta[i, k]`` every suffix after word i given tag k there), ``trans (K, K)`` and ``end
    (K,)`` the scores the path was decoded with (BIO masks included), ``log_z`` the log partition.
    """

    def __init__(self, path: Sequence[int], log_alpha: np.ndarray, log_beta: np.ndarray, log_z: float,
                 em: np.ndarray, trans: np.ndarray, end: np.ndarray) -> None:
        self.path = [int(k) for k in path]
        self.log_alpha, self.log_beta, self.log_z = log_alpha, log_beta, float(log_z)
        self.em, self.trans, self.end = em, trans, end

    @property
    def tokens(self) -> np.ndarray:
        """``(T,)`` marginal probability of each word's tag on the path, ``P(y_i = path_i)``."""
        i = np.arange(len(self.path))
        lp = self.log_alpha[i, self.path] + self.log_beta[i, self.path] - self.log_z
        return np.clip(np.exp(lp), 0.0, 1.0)

    def entity(self, start: int, end: int, continue_tag: int | None) -> float:
        """Marginal probability of the entity on words ``[start, end)``: that those words carry
        exactly the path's tags there (``B-X I-X ...``) *and* word ``end`` does not continue the
        entity (its tag is not ``continue_tag``, the ``I-X``; or the post ends). Summed over every
        tagging of the rest of the post, so it is a probability in [0, 1], and never more than the
        smallest marginal of the entity's words."""
        p = self.path
        lp = self.log_alpha[start, p[start]]
        for i in range(start + 1, end):
            lp += self.trans[p[i - 1], p[i]] + self.em[i, p[i]]
        last = p[end - 1]
        if end >= len(p):
            lp += self.end[last]
        else:
            nxt = self.trans[last] + self.em[end] + self.log_beta[end]  # (K,) every tag of word `end`
            if continue_tag is not None:
                nxt = np.delete(nxt, continue_tag)
            lp += _logsumexp(nxt)
        # rounding can leave a probability of one a hair above it; nothing else can
        return float(min(1.0, np.exp(lp - self.log_z)))


def build_head(cfg: dict[str, Any]) -> Any:
    """The head module for a config (see :class:`TweetNERHead` built inside)."""
    import torch
    from torch import nn

    class CRF(nn.Module):
        """Linear-chain CRF; invalid BIO transitions get a fixed -1e4 score."""

        def __init__(self, tags: Sequence[str]) -> None:
            super().__init__()
            k = len(tags)
            self.trans = nn.Parameter(torch.zeros(k, k))
            self.start = nn.Parameter(torch.zeros(k))
            self.end = nn.Parameter(torch.zeros(k))
            self.register_buffer("trans_mask", torch.tensor(~allowed_transitions(tags)) * -1e4, persistent=False)
            self.register_buffer("start_mask", torch.tensor(~allowed_starts(tags)) * -1e4, persistent=False)

        def _t(self) -> Any:
            return self.trans + self.trans_mask

        def nll(self, em: Any, tags: Any, mask: Any) -> Any:
            """Mean negative log-likelihood of gold ``tags (B, T)`` under emissions ``(B, T, K)``."""
            b, t, _k = em.shape
            trans, start = self._t(), self.start + self.start_mask
            maskf = mask.float()
            # gold score
            idx = torch.arange(b)
            score = start[tags[:, 0]] + em[idx, 0, tags[:, 0]]
            for i in range(1, t):
                s = trans[tags[:, i - 1], tags[:, i]] + em[idx, i, tags[:, i]]
                score = score + s * maskf[:, i]
            lengths = mask.long().sum(1)
            last = tags[idx, lengths - 1]
            score = score + self.end[last]
            # partition
            alpha = start.unsqueeze(0) + em[:, 0]  # (B, K)
            for i in range(1, t):
                nxt = torch.logsumexp(alpha.unsqueeze(2) + trans.unsqueeze(0) + em[:, i].unsqueeze(1), dim=1)
                m = mask[:, i].unsqueeze(1)
                alpha = torch.where(m, nxt, alpha)
            z = torch.logsumexp(alpha + self.end.unsqueeze(0), dim=1)
            return (z - score).mean()

        def decode(self, em: Any, mask: Any) -> tuple[list[list[int]], list[PathMarginals]]:
            """Viterbi paths and their :class:`PathMarginals` (probabilities of the chosen tags
            and of each entity), one per post."""
            with torch.no_grad():
                return self.decode_with(em.detach(), mask, self.trans, self.start, self.end)

        def decode_with(self, em: Any, mask: Any, trans: Any, start: Any, end: Any
                        ) -> tuple[list[list[int]], list[PathMarginals]]:
            """Decode with given transition/start/end scores (an ensemble's averages)."""
            b, t, k = em.shape
            trans, start = trans + self.trans_mask, start + self.start_mask
            score = start.unsqueeze(0) + em[:, 0]
            back = []
            for i in range(1, t):
                cand = score.unsqueeze(2) + trans.unsqueeze(0)  # (B, K, K)
                best, arg = cand.max(dim=1)
                nxt = best + em[:, i]
                m = mask[:, i].unsqueeze(1)
                score = torch.where(m, nxt, score)
                back.append(torch.where(m, arg, torch.arange(k).unsqueeze(0).expand(b, k)))
            score = score + end.unsqueeze(0)
            # forward-backward in float64: log-scores grow with the length of the post, and in
            # float32 their rounding made "probabilities" above 1 on long texts (issue #11)
            emd, transd, startd, endd = em.double(), trans.double(), start.double(), end.double()
            alpha = [startd.unsqueeze(0) + emd[:, 0]]
            for i in range(1, t):
                nxt = torch.logsumexp(alpha[-1].unsqueeze(2) + transd.unsqueeze(0) + emd[:, i].unsqueeze(1), dim=1)
                alpha.append(torch.where(mask[:, i].unsqueeze(1), nxt, alpha[-1]))
            beta = [endd.unsqueeze(0).expand(b, k)]
            for i in range(t - 1, 0, -1):
                nxt = torch.logsumexp(transd.unsqueeze(0) + (emd[:, i] + beta[0]).unsqueeze(1), dim=2)
                beta.insert(0, torch.where(mask[:, i].unsqueeze(1), nxt, beta[0]))
            z = torch.logsumexp(alpha[-1] + endd.unsqueeze(0), dim=1)
            log_alpha = torch.stack(alpha, dim=1).cpu().numpy()  # (B, T, K)
            log_beta = torch.stack(beta, dim=1).cpu().numpy()
            emn, transn, endn, zn = emd.cpu().numpy(), transd.cpu().numpy(), endd.cpu().numpy(), z.cpu().numpy()
            lengths = mask.long().sum(1).tolist()
            paths: list[list[int]] = []
            margs: list[PathMarginals] = []
            best_last = score.argmax(1).tolist()
            for r in range(b):
                n = lengths[r]
                p = [best_last[r]]
                for i in range(n - 1, 0, -1):
                    p.insert(0, int(back[i - 1][r, p[0]]))
                paths.append(p)
                margs.append(PathMarginals(p, log_alpha[r, :n], log_beta[r, :n], float(zn[r]), emn[r, :n], transn, endn))
            return paths, margs

    class TweetNERHead(nn.Module):
        def __init__(self, c: dict[str, Any]) -> None:
            super().__init__()
            self.c = c
            self.layer_w = nn.Parameter(torch.zeros(c["n_layers"]))
            self.gamma = nn.Parameter(torch.ones(1))
            self.char_emb = nn.Embedding(c["n_chars"], c["char_dim"], padding_idx=PAD)
            self.char_cnn = nn.Conv1d(c["char_dim"], c["char_filters"], kernel_size=3, padding=1)
            self.word_emb = nn.Embedding(c["n_words"], c["word_dim"], padding_idx=PAD) if c["word_dim"] else None
            # the annotation convention a post follows (0 unknown, see SCHEME_IDS), when trained with it
            n_schemes, scheme_dim = int(c.get("n_schemes", 0)), int(c.get("scheme_dim", 0))
            self.scheme_emb = nn.Embedding(n_schemes, scheme_dim) if n_schemes and scheme_dim else None
            n_in = (c["dim"] + c["char_filters"] + len(CASE_FEATURES) + (c["word_dim"] or 0)
                    + (scheme_dim if self.scheme_emb is not None else 0))
            self.drop = nn.Dropout(c["dropout"])
            self.proj = nn.Linear(n_in, c["proj"])
            self.lstm = nn.LSTM(c["proj"], c["hidden"], batch_first=True, bidirectional=True)
            self.out = nn.Linear(2 * c["hidden"], len(c["tags"]))
            self.crf = CRF(c["tags"])

        def emissions(self, feats: Any, chars: Any, case: Any, words: Any, mask: Any, scheme: Any = None,
                      mix_unknown: bool = True) -> Any:
            """``(B, T, K)`` emission scores. A conditioned head (``n_schemes`` > 0) reads each
            post's convention id ``scheme (B,)``; for a post whose convention is unknown (0)
            and ``mix_unknown``, the emissions are the mean over every id (0, 1, 2), which tags
            better than id 0 alone (training sets ``mix_unknown=False``)."""
            if self.scheme_emb is None or not mix_unknown:
                return self._emissions(feats, chars, case, words, mask, scheme)
            b = chars.shape[0]
            sid = scheme if scheme is not None else torch.zeros(b, dtype=torch.long)
            outs = torch.stack([self._emissions(feats, chars, case, words, mask, torch.full_like(sid, k))
                                for k in range(self.scheme_emb.num_embeddings)])  # (S, B, T, K)
            own = outs[sid, torch.arange(b)]
            return torch.where((sid == 0).view(b, 1, 1), outs.mean(0), own)

        def _emissions(self, feats: Any, chars: Any, case: Any, words: Any, mask: Any, scheme: Any = None) -> Any:
            w = torch.softmax(self.layer_w, 0)
            x = self.gamma * (feats * w.view(1, 1, -1, 1)).sum(2)  # (B, T, D)
            b, t, cl = chars.shape
            ce = self.char_emb(chars.view(b * t, cl)).transpose(1, 2)  # (BT, E, C)
            cf = torch.relu(self.char_cnn(ce))
            cf = cf.masked_fill((chars.view(b * t, cl) == PAD).unsqueeze(1), -1e4).max(2).values
            cf = torch.where(cf < -1e3, torch.zeros_like(cf), cf).view(b, t, -1)
            parts = [x, cf, case]
            if self.word_emb is not None:
                parts.append(self.word_emb(words))
            if self.scheme_emb is not None:
                sid = scheme if scheme is not None else torch.zeros(b, dtype=torch.long)
                parts.append(self.scheme_emb(sid).unsqueeze(1).expand(b, t, -1))
            h = torch.relu(self.proj(self.drop(torch.cat(parts, dim=-1))))
            lengths = mask.long().sum(1).cpu()
            packed = nn.utils.rnn.pack_padded_sequence(h, lengths, batch_first=True, enforce_sorted=False)
            o, _ = self.lstm(packed)
            o, _ = nn.utils.rnn.pad_packed_sequence(o, batch_first=True, total_length=t)
            return self.out(self.drop(o))

        def loss(self, batch: dict[str, Any]) -> Any:
            em = self.emissions(batch["feats"], batch["chars"], batch["case"], batch["words"], batch["mask"],
                                batch.get("scheme"), mix_unknown=False)
            return self.crf.nll(em, batch["tags"], batch["mask"])

        def decode(self, batch: dict[str, Any]) -> tuple[list[list[int]], list[PathMarginals]]:
            em = self.emissions(batch["feats"], batch["chars"], batch["case"], batch["words"], batch["mask"],
                                batch.get("scheme"))
            return self.crf.decode(em, batch["mask"])

    return TweetNERHead(cfg)


def build_ensemble(cfg: dict[str, Any], n_heads: int | None = None) -> Any:
    """``n_heads`` heads of one config (default ``cfg["n_heads"]``, 1) decoded together.

    A CRF path score is linear in emissions and transition scores, so the mean of the heads'
    path scores is the path score under their *averaged* emissions, transitions, start and end
    scores: Viterbi on those averages finds the path the heads agree on best.
    """
    import torch
    from torch import nn

    n = int(n_heads if n_heads is not None else cfg.get("n_heads", 1))

    class Ensemble(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.heads = nn.ModuleList([build_head(cfg) for _ in range(n)])

        def decode(self, batch: dict[str, Any]) -> tuple[list[list[int]], list[PathMarginals]]:
            with torch.no_grad():
                em = torch.stack([h.emissions(batch["feats"], batch["chars"], batch["case"], batch["words"],
                                              batch["mask"], batch.get("scheme")) for h in self.heads]).mean(0)
                crfs = [h.crf for h in self.heads]
                trans = torch.stack([c.trans for c in crfs]).mean(0)
                start = torch.stack([c.start for c in crfs]).mean(0)
                end = torch.stack([c.end for c in crfs]).mean(0)
                return crfs[0].decode_with(em, batch["mask"], trans, start, end)

    return Ensemble()


def collate(items: Sequence[dict[str, np.ndarray]], with_tags: bool = True) -> dict[str, Any]:
    """Pad per-post arrays (``feats (T, L, D)``, ``chars``, ``case``, ``words``, ``tags``) into a batch."""
    import torch

    b = len(items)
    t = max(len(it["words"]) for it in items)
    l, d = items[0]["feats"].shape[1:]
    feats = torch.zeros((b, t, l, d), dtype=torch.float32)
    chars = torch.zeros((b, t, MAX_WORD_CHARS), dtype=torch.long)
    case = torch.zeros((b, t, len(CASE_FEATURES)), dtype=torch.float32)
    words = torch.zeros((b, t), dtype=torch.long)
    tags = torch.zeros((b, t), dtype=torch.long)
    mask = torch.zeros((b, t), dtype=torch.bool)
    scheme = torch.tensor([int(it.get("scheme", 0)) for it in items], dtype=torch.long)
    for r, it in enumerate(items):
        n = len(it["words"])
        feats[r, :n] = torch.from_numpy(it["feats"].astype(np.float32))
        chars[r, :n] = torch.from_numpy(it["chars"])
        case[r, :n] = torch.from_numpy(it["case"])
        words[r, :n] = torch.from_numpy(it["words"])
        if with_tags:
            tags[r, :n] = torch.from_numpy(it["tags"])
        mask[r, :n] = True
    return {"feats": feats, "chars": chars, "case": case, "words": words, "tags": tags, "mask": mask, "scheme": scheme}


def paths_to_spans(path: Sequence[int], tags: Sequence[str], marginals: PathMarginals | None = None
                   ) -> list[tuple[int, int, str, float | None]]:
    """``(start, end_exclusive, type, score)`` entities of a decoded BIO path; the score is the
    entity's marginal probability under the CRF (:meth:`PathMarginals.entity`), None without
    ``marginals``."""
    spans, _ = bio_to_spans([tags[i] for i in path])
    index = {t: i for i, t in enumerate(tags)}
    out = []
    for s, e, t in spans:
        sc = marginals.entity(s, e, index.get(f"I-{t}")) if marginals is not None else None
        out.append((s, e, t, sc))
    return out
