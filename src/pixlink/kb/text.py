"""Name folding and FTS5 query building.

``fold(name)`` is the key of exact name matching: case folded, accents removed (NFKD, combining
marks dropped), whitespace collapsed. Punctuation is kept, so ``"C++"`` and ``"C"`` stay apart.
The FTS5 side folds case and accents itself (tokenizer ``unicode61 remove_diacritics 2``).
"""

from __future__ import annotations

import re
import unicodedata

_WORD = re.compile(r"\w+", re.UNICODE)

FTS_TOKENIZER = "unicode61 remove_diacritics 2"
"""The tokenizer of the KB's FTS5 table: unicode-aware, case and accent folding."""


def fold(name: str) -> str:
    """Folded form of a name: ``"  Zürich "`` -> ``"zurich"``, ``"İzmir"`` -> ``"izmir"``."""
    if name.isascii():
        return " ".join(name.lower().split())
    decomposed = unicodedata.normalize("NFKD", name)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().split())


def query_tokens(query: str) -> list[str]:
    """The word tokens of a free-text query (FTS5 operators and punctuation dropped)."""
    return _WORD.findall(query)


def fts_query(query: str) -> str | None:
    """An FTS5 MATCH expression that ORs the query's words, each quoted so that user text
    can never be read as FTS5 syntax (``AND``, ``NEAR``, ``col:``, ``"``, ``*``...).
    ``None`` when the query has no word."""
    toks = query_tokens(query)
    if not toks:
        return None
    seen: dict[str, None] = {}
    for t in toks:
        seen.setdefault(t.lower(), None)
    return " OR ".join(f'"{t}"' for t in seen)
