"""Synthetic Wikidata-shaped dumps, for benchmarks and large tests (never for real KBs).

:func:`write_wikidata_dump` writes ``n`` entities in the exact layout of a Wikidata JSON dump
(``[``, one Wikibase entity a line ending with ``,``, ``]``): labels / descriptions / aliases in
three languages, P31 statements to a class hierarchy (the first ``n_classes`` items are classes
with P279 parents), P18 image names on about 30 % of items, a P569 date and a P27 item claim on
instances, and sitelinks. Names are drawn from a pseudo-word vocabulary, so BM25 sees a realistic
mix of rare and frequent tokens. The same ``seed`` gives the same file.
"""

from __future__ import annotations

import bz2
import gzip
import random
from pathlib import Path
from typing import IO

import orjson

_SYL = ["ka", "lo", "mi", "ra", "ne", "to", "sa", "vi", "du", "pe", "ri", "an", "el", "or", "ul", "be", "go",
        "ha", "ju", "ki", "mo", "nu", "pa", "qu", "si", "te", "wa", "ye", "zo", "ch", "st", "br", "tr", "en"]


def _vocab(rng: random.Random, n: int) -> list[str]:
    words: dict[str, None] = {}
    while len(words) < n:
        w = "".join(rng.choice(_SYL) for _ in range(rng.randint(2, 4)))
        words[w.capitalize()] = None
    return list(words)


def _item_stmt(eid: str, prop: str, target: int, k: int) -> dict:
    return {"mainsnak": {"snaktype": "value", "property": prop, "hash": f"{target:040x}"[:40],
                         "datavalue": {"value": {"entity-type": "item", "numeric-id": target, "id": f"Q{target}"},
                                       "type": "wikibase-entityid"}, "datatype": "wikibase-item"},
            "type": "statement", "id": f"{eid}${k:08X}-0000-0000-0000-000000000000", "rank": "normal"}


def _str_stmt(eid: str, prop: str, value: str, k: int) -> dict:
    return {"mainsnak": {"snaktype": "value", "property": prop, "hash": "0" * 40,
                         "datavalue": {"value": value, "type": "string"}, "datatype": "commonsMedia"},
            "type": "statement", "id": f"{eid}${k:08X}-1111-0000-0000-000000000000", "rank": "normal"}


def _time_stmt(eid: str, year: int, k: int) -> dict:
    return {"mainsnak": {"snaktype": "value", "property": "P569", "hash": "1" * 40,
                         "datavalue": {"value": {"time": f"+{year}-01-01T00:00:00Z", "timezone": 0, "before": 0,
                                                 "after": 0, "precision": 11,
                                                 "calendarmodel": "http://www.wikidata.org/entity/Q1985727"},
                                       "type": "time"}, "datatype": "time"},
            "type": "statement", "id": f"{eid}${k:08X}-2222-0000-0000-000000000000", "rank": "normal",
            "references": [{"hash": "2" * 40, "snaks": {"P143": [{"snaktype": "value", "property": "P143",
                            "datavalue": {"value": {"entity-type": "item", "numeric-id": 328, "id": "Q328"},
                                          "type": "wikibase-entityid"}, "datatype": "wikibase-item"}]},
                            "snaks-order": ["P143"]}]}


def make_entity(i: int, rng: random.Random, vocab: list[str], n_classes: int) -> dict:
    """The ``i``-th synthetic entity (id ``Q{i}``, ``i >= 1``)."""
    eid = f"Q{i}"
    nw = rng.choice((1, 2, 2, 2, 3))
    label = " ".join(rng.choice(vocab) for _ in range(nw))
    lang_val = lambda lg, v: {"language": lg, "value": v}  # noqa: E731
    labels = {lg: lang_val(lg, label if lg == "en" else f"{label} {lg}") for lg in ("en", "de", "fr")}
    desc_words = " ".join(rng.choice(vocab).lower() for _ in range(rng.randint(3, 7)))
    descriptions = {"en": lang_val("en", desc_words), "de": lang_val("de", desc_words + " de")}
    aliases = {"en": [lang_val("en", " ".join(rng.choice(vocab) for _ in range(rng.randint(1, 3))))
                      for _ in range(rng.choice((0, 0, 1, 1, 2, 3)))]}
    claims: dict[str, list] = {}
    k = 0
    if i <= n_classes:
        claims["P31"] = [_item_stmt(eid, "P31", 16889133, k)]  # class
        if i > 1:
            claims["P279"] = [_item_stmt(eid, "P279", rng.randint(1, i - 1), k + j + 1) for j in range(rng.choice((1, 1, 2)))]
    else:
        claims["P31"] = [_item_stmt(eid, "P31", rng.randint(1, n_classes), k + j) for j in range(rng.choice((1, 1, 1, 2)))]
        claims["P569"] = [_time_stmt(eid, rng.randint(1800, 2000), 7)]
        claims["P27"] = [_item_stmt(eid, "P27", rng.randint(1, n_classes), 8)]
    if rng.random() < 0.3:
        claims["P18"] = [_str_stmt(eid, "P18", f"{label} {i}.jpg", 9)]
    sitelinks = {f"{lg}wiki": {"site": f"{lg}wiki", "title": labels[lg]["value"], "badges": []}
                 for lg in ("en", "de", "fr")[: rng.randint(0, 3)]}
    return {"type": "item", "id": eid, "labels": labels, "descriptions": descriptions, "aliases": aliases,
            "claims": claims, "sitelinks": sitelinks, "pageid": i + 100, "ns": 0, "title": eid,
            "lastrevid": 1000000 + i, "modified": "2024-01-01T00:00:00Z"}


def write_wikidata_dump(path: str | Path, n: int, seed: int = 0, n_classes: int | None = None,
                        vocab_size: int = 50000) -> Path:
    """Write a Wikidata-shaped dump of ``n`` entities to ``path`` (``.gz``/``.bz2`` compress)."""
    p = Path(path)
    rng = random.Random(seed)
    vocab = _vocab(rng, min(vocab_size, max(100, n)))
    nc = n_classes if n_classes is not None else max(1, min(5000, n // 100))
    opener = gzip.open if p.suffix == ".gz" else bz2.open if p.suffix == ".bz2" else open
    fh: IO[bytes]
    with opener(p, "wb") as fh:  # type: ignore[operator]
        fh.write(b"[\n")
        for i in range(1, n + 1):
            fh.write(orjson.dumps(make_entity(i, rng, vocab, nc)))
            fh.write(b",\n" if i < n else b"\n")
        fh.write(b"]\n")
    return p
