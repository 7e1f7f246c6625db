"""Type consistency between what the region/mention is and what the entity is.

* ``type`` — a face was found in the region: an entity that the KB types (P31) as something,
  but not as a person, cannot be that face (0). Negative evidence only: being a person proves
  nothing by itself. Fused as a term of the weighted mean, as it always was.
* ``mention_type`` — the mention's type (from NER, the GMNER cascade or the caller:
  PER/LOC/ORG/MISC) against the entity's KB classes (P31 types and their P279 ancestors),
  mapped to coarse types by a data file (``link/data/type_classes.json``): a mention whose type
  is not compatible with any coarse type of the entity scores 0, and fusion uses it as a *gate*
  (it scales the fused score down) — a face in a "White House" (LOC) box must not link the
  place to the person. An entity whose classes map to nothing is never penalised.
"""

from __future__ import annotations

import functools
import json
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

from ...errors import Errors, InputError
from ..query import Query
from . import register_signal
from .base import Signal, check_range


@functools.lru_cache(maxsize=8)
def load_type_classes(path: str | None = None) -> dict[str, Any]:
    """The coarse-type mapping (see ``link/data/type_classes.json``); ``path`` replaces it."""
    try:
        if path is None:
            text = resources.files("pixlink.link").joinpath("data", "type_classes.json").read_text()
        else:
            text = Path(path).read_text()
        data = json.loads(text)
        classes = {t: set(v) for t, v in data["classes"].items()}
        compatible = {t: set(v) for t, v in data["compatible"].items()}
        aliases = dict(data.get("aliases", {}))
    except (OSError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(Errors.E010.format(what="type classes file", value=path or "type_classes.json",
                                            reason=f"cannot be read as a type mapping ({exc})")) from exc
    return {"classes": classes, "compatible": compatible, "aliases": aliases}


def person_classes() -> frozenset[str]:
    """The P31 ids that mean "a person": the PER classes of the shipped type file."""
    return frozenset(load_type_classes()["classes"]["PER"])


def not_a_person(types: Sequence[str], person: frozenset[str]) -> bool:
    """Whether an entity with these P31 ``types`` is typed, and as nothing in ``person``: it
    cannot be a face (untyped entities can)."""
    return bool(types) and not person.intersection(types)


class _EntityClasses:
    """The KB classes of entities (P31 + P279 ancestors), cached per entity (thread-safe)."""

    def __init__(self, max_depth: int, size: int = 50_000) -> None:
        self.max_depth = max_depth
        self.size = size
        self._cache: dict[str, frozenset[str]] = {}
        self._lock = threading.Lock()

    def of(self, kb: Any, eid: str) -> frozenset[str]:
        with self._lock:
            hit = self._cache.get(eid)
        if hit is not None:
            return hit
        try:
            got = frozenset(t for _, t, _, _ in kb.hypernyms(eid, max_depth=self.max_depth))
        except InputError:
            got = frozenset()
        with self._lock:
            if len(self._cache) >= self.size:
                self._cache.clear()
            self._cache[eid] = got
        return got


@dataclass(frozen=True)
class TypeOptions:
    """Knobs of the ``type`` signal.

    Attributes:
        person_classes: P31 ids that mean "a person"; None = the PER classes of the type file.
        max_depth: how far up P279 the entity's classes are followed.
    """

    person_classes: tuple[str, ...] | None = None
    max_depth: int = 1

    def __post_init__(self) -> None:
        check_range("type max_depth", self.max_depth, 1, 10)


@register_signal
class FaceTypeConsistency(Signal):
    name = "type"
    description = "a face in the region: entities typed as something other than a person score 0"
    Options = TypeOptions

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        people = self.options.person_classes
        self.person = frozenset(people) if people is not None else person_classes()
        self._classes = _EntityClasses(self.options.max_depth)

    def applies(self, q: Query) -> bool:
        return q.face_found and bool(self.person)

    def score(self, q: Query, ctx: Any, ids: Sequence[str]) -> dict[str, float]:
        if not self.applies(q):
            return {}
        out: dict[str, float] = {}
        for ent in ctx.kb.get_many(ids):
            if not_a_person(ent.types, self.person):
                out[ent.id] = 0.0  # it cannot be this face
        q.signals[self.name] = "kb"
        return out


@dataclass(frozen=True)
class MentionTypeOptions:
    """Knobs of the ``mention_type`` signal.

    Attributes:
        classes_file: a JSON in the shape of ``link/data/type_classes.json``; None = shipped.
        max_depth: how far up P279 the entity's classes are followed (a KB without the class
            hierarchy has depth 1 only).
    """

    classes_file: str | None = None
    max_depth: int = 3

    def __post_init__(self) -> None:
        check_range("mention_type max_depth", self.max_depth, 1, 10)


@register_signal
class MentionTypeConsistency(Signal):
    name = "mention_type"
    description = "the mention's type (NER / caller) <-> the entity's KB classes; a mismatch gates the score"
    Options = MentionTypeOptions

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.mapping = load_type_classes(self.options.classes_file)
        self._classes = _EntityClasses(self.options.max_depth)

    def coarse(self, mention_type: str | None) -> str | None:
        if not mention_type:
            return None
        t = mention_type.strip().upper()
        t = self.mapping["aliases"].get(t, t)
        return t if t in self.mapping["classes"] else None

    def entity_types(self, kb: Any, eid: str) -> set[str]:
        classes = self._classes.of(kb, eid)
        return {t for t, cls in self.mapping["classes"].items() if cls & classes}

    def applies(self, q: Query) -> bool:
        return self.coarse(q.mention_type) is not None

    def score(self, q: Query, ctx: Any, ids: Sequence[str]) -> dict[str, float]:
        mt = self.coarse(q.mention_type)
        if mt is None:
            return {}
        ok = self.mapping["compatible"].get(mt, {mt})
        out: dict[str, float] = {}
        for eid in ids:
            et = self.entity_types(ctx.kb, eid)
            if et and not (et & ok):
                out[eid] = 0.0
        q.signals[self.name] = "kb"
        return out
