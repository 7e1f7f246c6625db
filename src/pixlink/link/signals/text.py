"""``dense_text`` — the caption against the entities' text (``label: description``) with a
sentence-embedding model (role ``text_embed``: MiniLM / mpnet offline; space ``entity_text``).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ...models import roles as R
from ...vecmath import l2_normalise
from ..query import Query
from . import register_signal
from .base import DenseSignal


@register_signal
class DenseText(DenseSignal):
    name = "dense_text"
    role = R.TEXT_EMBED
    space = "entity_text"
    description = "the caption <-> entities' text (sentence embeddings)"

    def applies(self, q: Query) -> bool:
        return bool(q.text)

    def query_vector(self, q: Query, ctx: Any, backend: Any) -> np.ndarray | None:
        return l2_normalise(backend.encode([q.text], query=True)[0])

    def kb_items(self, kb: Any) -> list[tuple[str, Any]]:
        from ...index.embed import text_items

        return list(text_items(kb.iter_entities()))

    def kb_encoder(self, backend: Any, batch_size: int) -> Callable[[list[Any]], np.ndarray]:
        return lambda texts: backend.encode(texts, batch_size=batch_size)
