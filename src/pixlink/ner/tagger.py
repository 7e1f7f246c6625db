"""The trained MNER tagger: pixlink's default ``ner`` backend (``pixlink_ner``).

:class:`Tagger` loads the committed head (``src/pixlink/ner/weights/``: ``model.safetensors``
+ ``config.json``, written by :mod:`pixlink.ner.train`) and the packaged backbone the config
names, and implements :class:`pixlink.models.roles.NERTagger`:

* ``tag(texts)`` -> per text, :class:`~pixlink.models.roles.TaggedSpan` character spans
  ``[start, end)``; texts are split into tweet tokens by :func:`tokenize` (URLs, @mentions,
  words, and every other non-space character alone, as the Twitter CoNLL files are split);
* ``tag_tokens(token_lists)`` -> per post, token spans ``(start, end_exclusive, type)``.

Scores: ``TaggedSpan.score`` (and the fourth field of :meth:`Tagger.tag_tokens_scored`) is the
entity's *marginal probability* under the CRF (forward-backward over every tagging of the post,
float64): the probability that exactly those words carry the entity's tags and the next word
does not continue it (:meth:`pixlink.ner.model.PathMarginals.entity`). It is in [0, 1] and
never above the probability of any of its words' tags.

Long texts: a post longer than the backbone's window (``max_length`` sub-words, 256 for the
shipped model; about 1 kB of English) is tagged in overlapping windows of whole words, each
window decoded on its own, and the entities merged deterministically
(:mod:`pixlink.ner.windows`). Tweets fit one window and are tagged whole.

Types are ``PER/LOC/ORG/MISC``; ``label_scheme="OTHER"`` (or a dataset name:
``"twitter2015"``, ``"gmner"`` -> ``OTHER``; ``"twitter2017"`` -> ``MISC``) names the fourth
type as that dataset does. Set it on the tagger or per call.

Auxiliary knowledge (RiVEG): with ``aux=`` an :class:`~pixlink.ner.aux.AuxKnowledge`, each
post's generated context is encoded after the post as a second segment; tags are predicted
over the post's tokens only. Without it (the default) the tagger reads the post alone.
Contexts can also be passed per call (``contexts=[...]``).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from pathlib import Path
from typing import Any, Sequence

from ..errors import Errors, InputError
from ..log import get_logger
from ..models import roles as R
from ..spans import UNIFIED_TYPES, check_scheme, rename_type

log = get_logger(__name__)

_TOKEN = re.compile(r"https?://\S+|www\.\S+|@\w+|\w+|[^\w\s]", re.UNICODE)


def default_weights_dir() -> Path:
    """Where the committed head lives (``pixlink/ner/weights``)."""
    return Path(__file__).resolve().parent / "weights"


def tokenize(text: str) -> list[tuple[str, int, int]]:
    """Tweet tokens with character offsets ``(token, start, end)``: URLs and ``@mentions``
    whole, ``#`` split from its hashtag, words, and every other non-space character alone
    (``Franco's`` -> ``Franco`` ``'`` ``s``), as the Twitter CoNLL files are tokenised."""
    return [(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text)]


def load_config(weights: Path) -> dict[str, Any]:
    cfg_path, st_path = weights / "config.json", weights / "model.safetensors"
    for p in (cfg_path, st_path):
        if not p.exists():
            raise InputError(Errors.E501.format(path=str(weights), reason=(
                f"{p.name} is missing; train one with `pixlink ner train` or reinstall pixlink")))
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(Errors.E501.format(path=str(weights), reason=f"config.json is not readable JSON ({exc})")) from exc
    if cfg.get("format") != "pixlink-ner":
        raise InputError(Errors.E501.format(path=str(weights), reason="config.json is not a pixlink-ner config"))
    return cfg


class Tagger:
    """pixlink's trained tweet NER (frozen packaged encoder + BiLSTM-CRF head).

    Args:
        weights: directory with ``model.safetensors`` + ``config.json`` (default: the
            committed model, :func:`default_weights_dir`).
        label_scheme: ``"MISC"`` (default), ``"OTHER"`` or a dataset name.
        aux: an :class:`~pixlink.ner.aux.AuxKnowledge` to append generated context, or None.
        threads: torch threads (None: torch's default). torch has one count per process: this
            sets it for every model of the process, not for the tagger alone. On a busy shared
            CPU 1 is fastest.
        batch_size: posts per backbone batch.
        overlap: share of the encoder window that consecutive windows of a long post share
            (0 <= overlap <= 0.5; see :mod:`pixlink.ner.windows`). Posts that fit one window
            (every tweet) do not use it.

    Attributes:
        name, model_id, labels: as :class:`~pixlink.models.roles.NERTagger` asks.
        notes: what the last call should report (aux-knowledge fallbacks).
    """

    name = "pixlink_ner"

    def __init__(self, weights: str | Path | None = None, label_scheme: str | None = None, aux: Any = None,
                 threads: int | None = None, batch_size: int = 32, overlap: float = 0.25) -> None:
        import torch
        from safetensors.torch import load_file

        from . import model as M
        from .backbone import Backbone

        if not (0.0 <= float(overlap) <= 0.5):
            raise InputError(Errors.E510.format(option="overlap", value=overlap, reason="must be in [0, 0.5]"))
        self.overlap = float(overlap)
        self.weights = Path(weights) if weights is not None else default_weights_dir()
        self.cfg = load_config(self.weights)
        self.label_scheme = label_scheme
        check_scheme(label_scheme)
        if threads:
            torch.set_num_threads(int(threads))
        self.head = M.build_ensemble(self.cfg)
        st = self.weights / "model.safetensors"
        try:
            state = load_file(str(st))
            if not any(k.startswith("heads.") for k in state):  # a single head saved without prefix
                state = {f"heads.0.{k}": v for k, v in state.items()}
            self.head.load_state_dict(state, strict=True)
        except (RuntimeError, OSError, ValueError) as exc:
            raise InputError(Errors.E501.format(path=str(self.weights), reason=f"model.safetensors does not fit config.json ({exc})")) from exc
        self.head.eval()
        self.backbone = Backbone(self.cfg["backbone"], max_length=int(self.cfg["max_length"]), layers=self.cfg.get("layers"))
        if (self.backbone.n_layers, self.backbone.dim) != (self.cfg["n_layers"], self.cfg["dim"]):
            raise InputError(Errors.E501.format(path=str(self.weights), reason=(
                f"the head was trained on {self.cfg['n_layers']} layers x {self.cfg['dim']}-d features but backbone "
                f"{self.cfg['backbone']!r} gives {self.backbone.n_layers} x {self.backbone.dim}")))
        digest = hashlib.sha1(st.read_bytes()).hexdigest()[:12]
        self.model_id = f"pixlink-ner-{digest}+{self.backbone.model_id}"
        self.aux = aux
        self.batch_size = int(batch_size)
        self.notes: list[str] = []
        # the backbone's fast tokenizer changes its truncation/padding settings per call and is
        # not safe to share between threads: one tagging at a time per tagger
        self._lock = threading.Lock()

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(rename_type(t, self.label_scheme) for t in UNIFIED_TYPES)

    # -- input checks ------------------------------------------------------------------------
    @staticmethod
    def _check_token_lists(tokens: Any) -> list[list[str]]:
        if isinstance(tokens, (str, bytes)) or not isinstance(tokens, Sequence):
            raise InputError(Errors.E500.format(what="tokens", index="-", reason="expected a list of token lists"))
        out = []
        for i, sent in enumerate(tokens):
            if isinstance(sent, (str, bytes)) or not isinstance(sent, Sequence):
                raise InputError(Errors.E500.format(what="token list", index=i, reason="expected a list of tokens, got "
                                                    + type(sent).__name__))
            if len(sent) == 0:
                raise InputError(Errors.E500.format(what="token list", index=i, reason="it is empty"))
            for j, w in enumerate(sent):
                if not isinstance(w, str) or not w:
                    raise InputError(Errors.E500.format(what="token list", index=i,
                                                        reason=f"token {j} ({w!r}) is not a non-empty string"))
            out.append(list(sent))
        return out

    @staticmethod
    def _check_texts(texts: Any) -> list[str]:
        if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
            raise InputError(Errors.E500.format(what="texts", index="-", reason="expected a list of strings (wrap one text in a list)"))
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise InputError(Errors.E500.format(what="text", index=i, reason=f"expected a string, got {type(t).__name__}"))
            if not t.strip():
                raise InputError(Errors.E500.format(what="text", index=i, reason="it is empty (nothing to tag)"))
        return list(texts)

    # -- tagging -----------------------------------------------------------------------------
    def _contexts(self, texts: Sequence[str], contexts: Sequence[str | None] | None) -> list[str | None] | None:
        if contexts is not None:
            if len(contexts) != len(texts):
                raise InputError(Errors.E500.format(what="contexts", index="-", reason=(
                    f"{len(contexts)} contexts for {len(texts)} posts; give one per post (None for none)")))
            return list(contexts)
        if self.aux is None:
            return None
        ctx = self.aux.contexts(texts)
        self.notes.extend(self.aux.notes)
        return ctx

    def _tag(self, posts: list[list[str]], scheme: str | None, ctx: list[str | None] | None
             ) -> list[list[tuple[int, int, str, float]]]:
        if not posts:
            return []
        with self._lock:
            return self._tag_locked(posts, scheme, ctx)

    def _tag_locked(self, posts: list[list[str]], scheme: str | None, ctx: list[str | None] | None
                    ) -> list[list[tuple[int, int, str, float]]]:
        from . import model as M
        from .train import decode_items
        from .windows import merge_window_spans, overlapping_windows

        # a post longer than one encoder window is tagged in overlapping windows (ner/windows.py);
        # a post that fits (every tweet) is one window, tagged whole
        budget = self.backbone.word_budget
        windows = [overlapping_windows(self.backbone.piece_counts(p), budget, self.overlap) for p in posts]
        flat = [(pi, a, b) for pi, ws in enumerate(windows) for a, b in ws]
        # windows go through the encoder and the head a chunk at a time, so that the features
        # held at once stay bounded however long the text (all 13 hidden states of a window)
        decoded = []
        chunk = max(1, self.batch_size * 4)
        for i in range(0, len(flat), chunk):
            part = flat[i:i + chunk]
            parts = [posts[pi][a:b] for pi, a, b in part]
            part_ctx = [ctx[pi] for pi, _a, _b in part] if ctx is not None else None
            feats = self.backbone.features(parts, contexts=part_ctx, batch_size=self.batch_size)
            # a head trained with --condition is told the dataset's annotation convention when the
            # scheme names a dataset (twitter2015, twitter2017); otherwise "unknown" (0)
            items = [M.make_item(p, f, self.cfg, M.scheme_id(scheme)) for p, f in zip(parts, feats)]
            decoded.extend(decode_items(self.head, items, self.cfg["tags"]))
            del feats, items
        per_post: list[list[list[tuple[int, int, str, float | None]]]] = [[] for _ in posts]
        for (pi, a, _b), spans in zip(flat, decoded):
            per_post[pi].append([(s + a, e + a, t, sc) for s, e, t, sc in spans])
        out = []
        for ws, spans in zip(windows, per_post):
            merged = merge_window_spans(ws, spans) if len(ws) > 1 else spans[0]
            out.append([(s, e, rename_type(t, scheme), float(sc or 0.0)) for s, e, t, sc in merged])
        return out

    def tag_tokens_scored(
        self, tokens: Sequence[Sequence[str]], label_scheme: str | None = None,
        contexts: Sequence[str | None] | None = None,
    ) -> list[list[tuple[int, int, str, float]]]:
        """Per post, ``(start, end_exclusive, type, probability)``: the probability is the
        entity's marginal under the CRF, in [0, 1] (see the module doc)."""
        posts = self._check_token_lists(tokens)
        scheme = label_scheme if label_scheme is not None else self.label_scheme
        check_scheme(scheme)
        self.notes = []
        ctx = self._contexts([" ".join(p) for p in posts], contexts)
        return self._tag(posts, scheme, ctx)

    def tag_tokens(
        self, tokens: Sequence[Sequence[str]], label_scheme: str | None = None,
        contexts: Sequence[str | None] | None = None,
    ) -> list[list[tuple[int, int, str]]]:
        """Per post of pre-split tokens (CoNLL), token spans ``(start, end_exclusive, type)``."""
        return [[(s, e, t) for s, e, t, _ in sp] for sp in self.tag_tokens_scored(tokens, label_scheme, contexts)]

    def tag(
        self, texts: Sequence[str], label_scheme: str | None = None, contexts: Sequence[str | None] | None = None,
    ) -> list[list[R.TaggedSpan]]:
        """Per text, entities as character spans ``[start, end)`` of that text. A text must
        hold at least one non-space character (E500 otherwise)."""
        items = self._check_texts(texts)
        scheme = label_scheme if label_scheme is not None else self.label_scheme
        check_scheme(scheme)
        self.notes = []
        toks = [tokenize(t) for t in items]
        ctx = self._contexts(items, contexts)
        spans = self._tag([[w for w, _s, _e in tk] for tk in toks], scheme, ctx)
        out: list[list[R.TaggedSpan]] = []
        for text, tk, sp in zip(items, toks, spans):
            row = []
            for s, e, t, sc in sp:
                a, b = tk[s][1], tk[e - 1][2]
                row.append(R.TaggedSpan(start=a, end=b, type=t, text=text[a:b], score=sc))
            out.append(row)
        return out
