"""OVEN's Wiki6M knowledge base (``Wiki6M_ver_1_0.jsonl[.gz]``, 6,063,945 entities, and its
``_title_only`` variant).

One JSON object a line::

    {"wikidata_id": "Q7767", "wikipedia_title": "Tank", "wikipedia_summary": "A tank is an armoured
     fighting vehicle ...", "wikipedia_content": "...", "wikipedia_image_url": "https://..."}

Only ``wikidata_id`` and ``wikipedia_title`` are required. The label is the title; a title with a
parenthesised qualifier (``"Paris (mythology)"``) also gets the bare name as an alias. The
description is the first sentence of the summary (else of the content), at most 300 characters;
the article text itself is not stored. ``wikipedia_image_url`` becomes an image reference (its file
name is looked up under the images root).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator


from ...errors import Errors
from ..text import fold
from ._io import Bad, Opened, iter_jsonl_objects

_QUALIFIER = re.compile(r"^(.*\S)\s+\([^()]*\)$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


def first_sentence(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    if not text:
        return ""
    m = _SENTENCE_END.search(text, 20)
    s = text[: m.start()] if m else text
    if len(s) > limit:
        s = s[:limit].rsplit(" ", 1)[0] + "…"
    return s


def read(op: Opened, start: int, lang: str, path: Path) -> Iterator[tuple[int, int, Any]]:
    for n, obj in iter_jsonl_objects(op, start, path):
        if type(obj) is Bad:
            yield n, n, obj
            continue
        if not isinstance(obj, dict):
            yield n, n, Bad.of(Errors.E109.format(line=n, path=path, reason="expected a JSON object"))
            continue
        qid, title = obj.get("wikidata_id"), obj.get("wikipedia_title")
        if not isinstance(qid, str) or not qid.strip() or not isinstance(title, str) or not title.strip():
            yield n, n, Bad.of(Errors.E109.format(
                line=n, path=path, reason=f"needs string 'wikidata_id' and 'wikipedia_title', got {qid!r}, {title!r}"),
                item=qid if isinstance(qid, str) else None)
            continue
        title = title.strip()
        aliases = []
        m = _QUALIFIER.match(title)
        if m:
            aliases.append((m.group(1), fold(m.group(1))))
        summary = obj.get("wikipedia_summary") or obj.get("wikipedia_content") or ""
        desc = first_sentence(summary) if isinstance(summary, str) else ""
        img = obj.get("wikipedia_image_url")
        images = [img] if isinstance(img, str) and img else []
        attrs = {"wikipedia_title": title}
        url = obj.get("url") or obj.get("wikipedia_url")
        if isinstance(url, str) and url:
            attrs["wikipedia"] = url
        yield n, n, (qid.strip(), title, desc, aliases, [], [], images, None, attrs, qid, False)
