"""The knowledge base: an embedded SQLite store (one directory per KB), its importers, lexical
search and the P31/P279 hierarchy.

Building (offline) and reading (inference) are kept apart::

    from pixlink.kb import build_kb, KB
    report = build_kb(["kb/fb15k237_entity2wikidata.json", "kb/codex_entity2types.json",
                       "kb/codex_types_en.json"], "my_kb")
    kb = KB.open("my_kb")
    kb.search("barack obama", k=5)       # [(Entity, score), ...]
    kb.hypernym_text("Q76")              # "Barack Obama (Q76) — instance of: human (Q5)"

See ``docs/kb.md`` for the formats, the directory layout and the search scores.
"""

from __future__ import annotations

from .builder import build_kb, build_kb_from_entities, remove_kb
from .report import BuildReport, Issue, SourceCounts, SourceReport
from .sources import FORMATS, SourceSpec, detect_format
from .store import BM25_WEIGHTS, KB
from .text import fold

__all__ = [
    "KB", "build_kb", "build_kb_from_entities", "remove_kb", "BuildReport", "Issue", "SourceCounts", "SourceReport",
    "SourceSpec", "FORMATS", "detect_format", "fold", "BM25_WEIGHTS",
]
