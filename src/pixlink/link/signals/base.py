"""What a linking signal is: one source of evidence that a region/caption is a given entity.

Each signal lives in one module of :mod:`pixlink.link.signals` and declares, in one place:

* ``role`` — the model role it needs (``faces``, ``image_embed`` ...), or ``None``;
* ``space`` — the KB vector space it reads (``entity_face`` ...), or ``None`` (no vectors);
* how it makes its query side (:meth:`Signal.prepare`: a query vector, or nothing);
* how it recalls candidates from the whole KB (:meth:`Signal.recall`) and scores a given list
  of candidates (:meth:`Signal.score`);
* its calibration key in :class:`~pixlink.link.fusion.Fusion` (its ``name``, refined by the
  backend that produced it: ``"v2v:efficientnet_lite"``);
* for signals with KB vectors, the KB side: which items of the KB it embeds
  (:meth:`Signal.kb_items`) and how (:meth:`Signal.kb_encoder`) — used by ``pixlink kb embed``.

Its knobs are an ``Options`` dataclass, filled from ``LinkerConfig.signal_options[name]``.
A signal instance is built once per linker and holds no per-call state (that is the
:class:`~pixlink.link.query.Query`), so one linker can serve many threads.

The linker (:class:`~pixlink.link.linker.Linker`) is what a signal sees as ``ctx``: it gives
backends (``ctx.backend(role, q)``), the KB (``ctx.kb``), the KB's indexes
(``ctx.index(signal, q)``) and the region's image view (``ctx.view(q)``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable, Sequence

import numpy as np

from ...errors import Errors, InputError
from ..query import Query

if TYPE_CHECKING:  # pragma: no cover
    from ...kb import KB


@dataclass(frozen=True)
class NoOptions:
    """A signal without knobs."""


class Signal:
    """Base class of a signal (see the module docstring). Subclass, set the class attributes,
    and register with :func:`pixlink.link.signals.register_signal`."""

    name: ClassVar[str] = ""
    role: ClassVar[str | None] = None
    space: ClassVar[str | None] = None
    needs_image: ClassVar[bool] = False
    description: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self.options = make_options(self.Options, options or {}, self.name)

    # -- the KB vectors this signal reads --------------------------------------------------
    def model_id(self, backend: Any) -> str:
        """The model id the KB vectors of this signal carry for ``backend``."""
        return str(backend.model_id)

    def kb_has_vectors(self, kb_dir: Path, available: Sequence[Any]) -> bool:
        """Whether the KB at ``kb_dir`` holds this signal's KB side made by *any* model
        (``available``: its dense indexes, :func:`pixlink.index.dense.list_indexes`); checked
        without loading a model, so a linker can refuse a named signal at once (E405) rather
        than at the first query that reaches it. Signals without KB vectors: True."""
        return self.space is None or any(getattr(i, "space", None) == self.space for i in available)

    # -- query side ------------------------------------------------------------------------
    def applies(self, q: Query) -> bool:
        """Whether the signal can say anything about this mention (an image signal needs an
        image and a region)."""
        return not self.needs_image or (q.image is not None and q.region is not None)

    def prepare(self, q: Query, ctx: Any) -> None:
        """Compute the query side (a vector into ``q.vectors[self.name]``); default: nothing."""

    def recall(self, q: Query, ctx: Any, k: int) -> dict[str, float] | None:
        """Up to ``k`` candidates from the whole KB: ``{entity id: raw score}``; ``None`` when
        the signal does not recall (it only scores)."""
        return None

    def score(self, q: Query, ctx: Any, ids: Sequence[str]) -> dict[str, float]:
        """Raw scores of the candidates ``ids`` that this signal can score (others absent)."""
        return {}

    # -- KB side ---------------------------------------------------------------------------
    def kb_items(self, kb: "KB") -> list[tuple[str, Any]]:
        """``(cache key, payload)`` items of the KB this signal embeds; keys map to entity ids
        by :func:`pixlink.index.embed.entity_of_key`. Signals without vectors: none."""
        return []

    def kb_selection(self, kb: "KB") -> tuple[list[tuple[str, Any]], dict[str, int]]:
        """:meth:`kb_items`, and ``{reason: entities}`` this signal leaves out on purpose (the
        embedding report's ``left_out``; none by default)."""
        return self.kb_items(kb), {}

    def kb_encoder(self, backend: Any, batch_size: int) -> Callable[[list[Any]], np.ndarray]:
        """A function from a batch of payloads to ``(N, D)`` float32 vectors."""
        raise InputError(Errors.E010.format(what="signal", value=self.name, reason="has no KB vectors to embed"))


class DenseSignal(Signal):
    """A signal that compares a query vector with the KB's vectors of its ``space`` (cosine).

    Subclasses implement :meth:`query_vector`; recall is a nearest-neighbour search of the
    KB's index, scoring is an exact cosine against each candidate's vectors (the best one).
    """

    def query_vector(self, q: Query, ctx: Any, backend: Any) -> np.ndarray | None:
        raise NotImplementedError

    def prepare(self, q: Query, ctx: Any) -> None:
        if not self.applies(q) or self.role is None:
            return
        backend = ctx.backend(self.role, q)
        if backend is None:
            return
        vec = self.query_vector(q, ctx, backend)
        if vec is None:
            return
        q.vectors[self.name] = vec
        q.signals[self.name] = q.roles.get(self.role) or str(getattr(backend, "name", ""))

    def recall(self, q: Query, ctx: Any, k: int) -> dict[str, float] | None:
        vec = q.vectors.get(self.name)
        if vec is None:
            return None
        index = ctx.index(self, q)
        if index is None:
            return None
        scores, ids = index.search(vec[None, :], k=k)
        return {e: float(s) for e, s in zip(ids[0], scores[0])}

    def score(self, q: Query, ctx: Any, ids: Sequence[str]) -> dict[str, float]:
        vec = q.vectors.get(self.name)
        if vec is None or not ids:
            return {}
        index = ctx.index(self, q)
        if index is None:
            return {}
        scores, got = index.search_subset(vec[None, :], list(ids))
        return {e: float(s) for e, s in zip(got[0], scores[0])}


def make_options(cls: type, given: dict[str, Any], signal: str) -> Any:
    """``cls(**given)`` with a coded error that names the unknown or malformed option."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(given) - known)
    if unknown:
        raise InputError(Errors.E010.format(what=f"{signal} signal options", value=unknown,
                                            reason=f"known options: {sorted(known) or 'none'}"))
    try:
        return cls(**given)
    except (TypeError, ValueError) as exc:
        raise InputError(Errors.E010.format(what=f"{signal} signal options", value=given, reason=str(exc))) from exc


def check_range(name: str, value: float, lo: float, hi: float) -> None:
    """Raise a coded error unless ``lo <= value <= hi`` (for Options ``__post_init__``)."""
    if not (lo <= float(value) <= hi):
        raise InputError(Errors.E010.format(what=name, value=value, reason=f"must be in [{lo}, {hi}]"))


def names_of(signals: Iterable[Signal]) -> list[str]:
    return [s.name for s in signals]
