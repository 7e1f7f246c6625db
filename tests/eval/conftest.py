"""Fixtures of tests/eval: small fake systems for runner and CLI tests (the real ones are tested in
their own areas), given to tests by the ``fakes`` fixture."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Sequence

import pytest

from pixlink.errors import Errors, InputError
from pixlink.types import BatchResult, Candidate, ItemError, Link, NamedEntity, Region


class GazetteerTagger:
    """Tags single tokens found in a word -> type table; rejects whitespace-only tokens the way
    the spaCy backend does (E320-like InputError), so item isolation can be tested."""

    name = "fake_gazetteer"
    model_id = "fake/gazetteer-1"

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table
        self.labels = tuple(sorted(set(table.values())))
        self.calls = 0

    def tag_tokens(self, tokens: Sequence[Sequence[str]]) -> list[list[tuple[int, int, str]]]:
        self.calls += 1
        out = []
        for sent in tokens:
            if any(not t.strip() for t in sent):
                raise InputError(Errors.E010.format(what="token", value=" ", reason="whitespace-only token"))
            out.append([(i, i + 1, self.table[t]) for i, t in enumerate(sent) if t in self.table])
        return out


class TableLinker:
    """Ranks the candidates listed for a mention's surface/text; an item whose text is 'FAIL' is
    reported as an ItemError, as Linker.link_batch does."""

    def __init__(self, table: dict[str, list[tuple[str, float]]], nil_below: float = 0.0) -> None:
        self.table = table
        self.nil_below = nil_below
        self.seen: list[str] = []
        self.kinds: dict[str, str | None] = {}

    def link_batch(self, mentions, k: int = 10) -> BatchResult[Link]:
        out: BatchResult[Link] = BatchResult()
        for i, m in enumerate(mentions):
            self.seen.append(m.id)
            self.kinds[m.id] = m.region.kind if m.region is not None else None
            if m.text == "FAIL":
                out.errors.append(ItemError(index=i, item_id=m.id, error="[E400] fake failure", code="E400"))
                continue
            cands = [Candidate(entity_id=e, score=s, label=e) for e, s in self.table.get(m.surface or m.text or "", [])]
            nil = not cands or cands[0].score < self.nil_below
            out.results.append((i, Link(candidates=cands[:k], nil=nil, nil_threshold=self.nil_below, mention_id=m.id,
                                        region=m.region)))
        return out


class ShiftPipeline:
    """A GMNER 'pipeline' that returns the gold entities of each post with every box shifted by
    ``dx`` pixels (so IoU falls as dx grows) and types renamed OTHER -> MISC."""

    def __init__(self, dx: float) -> None:
        self.dx = dx

    def run_batch(self, posts):
        out = BatchResult()
        for i, p in enumerate(posts):
            if p.id == "fail":
                out.errors.append(ItemError(index=i, item_id=p.id, error="[E500] fake failure", code="E500"))
                continue
            ents = []
            for e, boxes in zip(p.entities, p.meta["gold_boxes"]):
                reg = None
                if boxes:
                    b = boxes[0]
                    reg = Region(box=[b[0] + self.dx, b[1], b[2] + self.dx, b[3]])
                ents.append(NamedEntity(e.start, e.end, "MISC" if e.type == "OTHER" else e.type, text=e.text,
                                        groundable=bool(boxes), region=reg))
            out.results.append((i, ents))
        return out


@pytest.fixture
def fakes():
    return SimpleNamespace(GazetteerTagger=GazetteerTagger, TableLinker=TableLinker, ShiftPipeline=ShiftPipeline)
