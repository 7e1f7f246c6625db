"""Training data for the MNER tagger: one unified label set, deduplicated, and held apart
from every dev split it is scored on.

Twitter-GMNER is built from the Twitter-2015/2017 tweets, so the train split of one dataset
holds tweets of another's valid/dev split. :func:`build_training_set` therefore removes from
training every tweet that appears in *any* dev file (same IMGID, or same normalised text),
then drops duplicates within training, and reports every count (:class:`DataReport`).

Label sets: the model is trained on ``PER/LOC/ORG/MISC`` (:data:`~pixlink.spans.UNIFIED_TYPES`;
Twitter-2015's and GMNER's ``OTHER`` is read as ``MISC``). :func:`~pixlink.spans.rename_type`
names a type as a scheme asks: ``"MISC"`` (default), ``"OTHER"``, or a dataset name
(``"twitter2015"``, ``"gmner"`` -> ``OTHER``; ``"twitter2017"`` -> ``MISC``). Those names and
helpers live in :mod:`pixlink.spans`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..conll import read_conll
from ..errors import Errors, InputError
from ..log import get_logger
from ..spans import UNIFIED_TYPES, spans_to_bio, unify_type
from ..types import Post

log = get_logger(__name__)

__all__ = ["bio_tags", "text_key", "image_key", "DataReport", "build_training_set", "read_files"]


def bio_tags(post: Post) -> list[str]:
    """Unified BIO tags of a post's gold entities (``OTHER`` read as ``MISC``); E503 when an
    entity's type maps to none of :data:`~pixlink.spans.UNIFIED_TYPES` or the entities cannot
    be written as BIO (outside the tokens, overlapping)."""
    spans = []
    for e in post.entities:
        t = unify_type(e.type)
        if t not in UNIFIED_TYPES:
            raise InputError(Errors.E503.format(
                post=post.id, reason=f"entity type {e.type!r} maps to none of {list(UNIFIED_TYPES)}"))
        spans.append((e.start, e.end, t))
    try:
        return spans_to_bio(len(post.tokens), spans)
    except InputError as exc:
        raise InputError(Errors.E503.format(post=post.id, reason=str(exc))) from exc


_URL = re.compile(r"^(https?|http:?|t\.co|www\.)", re.I)


def text_key(tokens: Sequence[str]) -> str:
    """Normalised text of a tweet for duplicate detection: NFKC, lower case, URLs and every
    non-alphanumeric character dropped (the datasets tokenise URLs and punctuation
    differently: ``http://t.co/x`` vs ``https`` ``:`` ``//t.co/x``)."""
    words = [w for w in tokens if not _URL.match(w) and not w.lower().startswith("//t.co")]
    s = unicodedata.normalize("NFKC", "".join(words)).lower()
    return "".join(ch for ch in s if ch.isalnum())


def image_key(post: Post) -> str:
    """The tweet's IMGID (without the reader's ``#2`` suffix for repeated ids)."""
    return str(post.meta.get("image_id") or post.id.split("#")[0])


@dataclass
class DataReport:
    """What :func:`build_training_set` read and removed, per file and in total."""

    train_files: dict[str, int] = field(default_factory=dict)
    dev_files: dict[str, int] = field(default_factory=dict)
    removed_dev_overlap_id: int = 0
    removed_dev_overlap_text: int = 0
    removed_duplicates: int = 0
    kept: int = 0
    kept_per_file: dict[str, int] = field(default_factory=dict)
    entity_counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def build_training_set(
    train: Sequence[tuple[str, list[Post]]], dev: Sequence[tuple[str, list[Post]]],
) -> tuple[list[Post], DataReport]:
    """Training posts with every dev tweet removed and duplicates dropped.

    Args:
        train, dev: ``(name, posts)`` per file, in the order given (the first copy of a
            duplicated training tweet is kept).

    A training tweet is removed when its IMGID or its :func:`text_key` is that of any dev
    tweet; an empty text key (a tweet of URLs only) matches by IMGID only.
    """
    rep = DataReport()
    dev_ids: set[str] = set()
    dev_texts: set[str] = set()
    for name, posts in dev:
        rep.dev_files[name] = len(posts)
        for p in posts:
            dev_ids.add(image_key(p))
            k = text_key(p.tokens)
            if k:
                dev_texts.add(k)
    seen_ids: set[str] = set()
    seen_texts: set[str] = set()
    kept: list[Post] = []
    for name, posts in train:
        rep.train_files[name] = len(posts)
        n_kept = 0
        for p in posts:
            iid, k = image_key(p), text_key(p.tokens)
            if iid in dev_ids:
                rep.removed_dev_overlap_id += 1
                continue
            if k and k in dev_texts:
                rep.removed_dev_overlap_text += 1
                continue
            if iid in seen_ids or (k and k in seen_texts):
                rep.removed_duplicates += 1
                continue
            seen_ids.add(iid)
            if k:
                seen_texts.add(k)
            kept.append(p)
            n_kept += 1
        rep.kept_per_file[name] = n_kept
    rep.kept = len(kept)
    counts: dict[str, int] = {t: 0 for t in UNIFIED_TYPES}
    for p in kept:
        for e in p.entities:
            counts[unify_type(e.type)] = counts.get(unify_type(e.type), 0) + 1
    rep.entity_counts = counts
    return kept, rep


def read_files(paths: Iterable[str | Path]) -> list[tuple[str, list[Post]]]:
    """``(name, posts)`` for CoNLL files, via :func:`pixlink.conll.read_conll`;
    ``name`` is ``<folder>/<file>`` (``twitter2017/valid.txt``)."""
    out = []
    for p in paths:
        path = Path(p)
        out.append((f"{path.parent.name}/{path.name}", read_conll(path)))
    return out
