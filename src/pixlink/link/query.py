"""Per-call state of the linker: everything one ``Linker.link`` call learns and reports.

A :class:`Query` is made for each call and thrown away after it, so that what an answer says
(the backends that ran, the notes, the timings) describes that call only — a service's answer
never lists models that an earlier request used.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from ..types import Region


@dataclass
class Query:
    """One mention being linked.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB, or ``None`` for a text-only mention.
        region: the region pointed at (XYXY box in original pixels, mask ``(H, W)`` bool).
        text: the caption that came with the image.
        surface: the mention's own words, when known.
        mention_type: the mention's type from NER or the caller (``PER``/``LOC``/``ORG``/``MISC``).
        notes: fallbacks and other things the user must know about this answer.
        timings: stage -> seconds.
        roles: model role -> backend name, for the roles this call used.
        signals: signal -> backend name, for the signals that produced a query vector or scores.
        vectors: signal -> ``(D,)`` float32 unit query vector (dense signals).
        recalled: signal -> {entity id -> raw score} of the candidates it recalled.
        face_found: a face was found in the region (the face signal sets it).
        image_key: the image's content key (:func:`pixlink.regions.image_key`), set when the
            linker keeps per-image work (an image cache).
        scratch: signal -> its own per-call state (e.g. the ``local`` signal's query features
            and verified matches, computed in ``prepare``/``recall`` and read in ``score``).
    """

    image: np.ndarray | None = None
    region: Region | None = None
    text: str | None = None
    surface: str | None = None
    mention_type: str | None = None
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)
    signals: dict[str, str] = field(default_factory=dict)
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    recalled: dict[str, dict[str, float]] = field(default_factory=dict)
    face_found: bool = False
    image_key: str | None = None
    scratch: dict[str, Any] = field(default_factory=dict)

    def note(self, message: str) -> None:
        """Add a note once."""
        if message not in self.notes:
            self.notes.append(message)

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - t0
