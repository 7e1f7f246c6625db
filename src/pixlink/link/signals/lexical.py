"""``lexical`` — names in the mention, the caption or the region's text against the entities'
labels and aliases (exact matches, then BM25 over the KB's full-text index).

Where names come from, strongest first (each a scale on the match score, see ``Options``):

* the mention's own words (``surface``), when known;
* otherwise the caption's names: spans of the ``ner`` role, and capitalised n-grams that are
  a KB label or alias (names the tagger missed: "Falcon 9");
* text read inside the region by the ``ocr`` role (off by default);
* with no name found, the whole caption, as weaker evidence.

Raw score of an entity: ``scale * 1.0`` for an exact label/alias match, ``scale * bm25_scale *
b / b_max`` for a BM25 hit (``b_max`` the query's best). A *named* mention (``surface`` known):
a candidate whose names do not match the mention's words at all gets 0 — a post naming Joe
Biden must not make its "White House" link to him.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

from ...models import roles as R
from ..query import Query
from . import register_signal
from .base import Signal, check_range


@dataclass(frozen=True)
class LexicalOptions:
    """Knobs of the lexical signal.

    Attributes:
        ner: find names in the caption with the ``ner`` role.
        gazetteer: also look up the caption's capitalised n-grams as KB labels/aliases.
        ocr: read text inside the region with the ``ocr`` role.
        bm25_scale: a BM25 hit's score relative to an exact match (x its share of the best).
        gazetteer_scale: an n-gram name relative to a tagged or given name.
        ocr_scale: text read in the region relative to a tagged or given name.
        caption_scale: the whole caption (no name found) relative to a name.
        max_ngram: longest n-gram looked up by the gazetteer.
    """

    ner: bool = True
    gazetteer: bool = True
    ocr: bool = False
    bm25_scale: float = 0.8
    gazetteer_scale: float = 0.9
    ocr_scale: float = 0.8
    caption_scale: float = 0.6
    max_ngram: int = 4

    def __post_init__(self) -> None:
        for name in ("bm25_scale", "gazetteer_scale", "ocr_scale", "caption_scale"):
            check_range(f"lexical {name}", getattr(self, name), 0.0, 1.0)
        check_range("lexical max_ngram", self.max_ngram, 1, 10)


@register_signal
class Lexical(Signal):
    name = "lexical"
    role = None
    space = None
    description = "names in the mention / caption / region text <-> entities' labels and aliases"
    Options = LexicalOptions

    def applies(self, q: Query) -> bool:
        return bool(q.surface or q.text)

    def _queries(self, q: Query, ctx: Any) -> list[tuple[str, float]]:
        o = self.options
        queries: list[tuple[str, float]] = []  # (string, scale)
        if q.surface:
            queries.append((q.surface, 1.0))
        # the caption's names are candidates for a region only when the mention's own words are
        # unknown: with a surface, the caption's other names belong to other mentions
        names_from_text = bool(q.text) and not q.surface
        if names_from_text and o.ner:
            tagger = ctx.backend(R.NER, q)
            if tagger is not None:
                for span in tagger.tag([q.text])[0]:
                    queries.append((span.text, 1.0))
        if q.text and o.ocr and q.image is not None and q.region is not None:
            reader = ctx.backend(R.OCR, q)
            if reader is not None:
                from ...regions import crop

                for line in reader.read(crop(q.image, q.region, 0.0)):
                    queries.append((line.text, o.ocr_scale))
        if names_from_text and o.gazetteer:
            seen = {m for m, _ in queries}
            for gram in name_ngrams(q.text or "", o.max_ngram):
                if gram not in seen and ctx.kb.by_name(gram):
                    queries.append((gram, o.gazetteer_scale))
                    seen.add(gram)
        if q.text and not queries:
            queries.append((q.text, o.caption_scale))
        return queries

    def recall(self, q: Query, ctx: Any, k: int) -> dict[str, float] | None:
        if not self.applies(q):
            return None
        queries = self._queries(q, ctx)
        found: dict[str, float] = {}
        for s, scale in queries:
            for ent in ctx.kb.by_name(s):
                found[ent.id] = max(found.get(ent.id, 0.0), scale)
            hits = ctx.kb.search(s, k=k)
            if hits:
                top = max(score for _, score in hits) or 1.0
                for ent, score in hits:
                    found[ent.id] = max(found.get(ent.id, 0.0), self.options.bm25_scale * scale * float(score) / top)
        q.signals[self.name] = "kb"
        return found

    def score(self, q: Query, ctx: Any, ids: Sequence[str]) -> dict[str, float]:
        recalled = q.recalled.get(self.name)
        if recalled is None:
            return {}
        out = {e: recalled[e] for e in ids if e in recalled}
        if q.surface:
            # a named mention: an entity whose names do not match its words at all (found through
            # the caption's meaning or the image only) has lexical score 0
            for eid in ids:
                out.setdefault(eid, 0.0)
        return out


_STOP = frozenset("a an the of in on at to for and or with by from as is are was were be this that these those "
                  "it its his her their our my your".split())


def name_ngrams(text: str, max_n: int = 4) -> list[str]:
    """Word n-grams of ``text`` (up to ``max_n`` words) that could be names: they contain a
    capitalised word or a number, and neither start nor end with a stop word; a single word
    must be capitalised and at least 3 characters long. Longest first."""
    words = re.findall(r"[\w][\w'.&-]*", text)
    out: list[str] = []
    for n in range(max_n, 0, -1):
        for i in range(len(words) - n + 1):
            gram = words[i : i + n]
            if gram[0].lower() in _STOP or gram[-1].lower() in _STOP:
                continue
            if not any(w[:1].isupper() or w[:1].isdigit() for w in gram):
                continue
            if n == 1 and not (gram[0][:1].isupper() and len(gram[0]) >= 3):
                continue  # a lone number or short word is too ambiguous to be a name
            out.append(" ".join(gram).rstrip("."))
    return out
