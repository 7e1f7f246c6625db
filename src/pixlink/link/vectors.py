"""The KB's vectors as the linker sees them: which index serves which signal.

A KB directory holds dense indexes under ``vectors/<space>/<model-slug>/`` (see
:mod:`pixlink.index.dense`; a ``meta.json`` there may instead record a Milvus collection,
:mod:`pixlink.index.milvus`, opened through the same interface), each tagged with the model that made it; vectors of several models
live side by side. A signal reads the index of its space (``Signal.space``) made by *the
model the linker runs for it* (``Signal.model_id(backend)``); vectors of another model are
never used in its place.

Indexes are opened once and shared by every thread of the process (:class:`KBVectors` is
thread-safe; the indexes' own searches are too).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any


class KBVectors:
    """Opens (once) and caches the dense indexes of one KB directory by (space, model id).

    Args:
        kb_dir: the KB directory.
        kb_build_id: the KB's build id; an index made from another build is refused.
    """

    def __init__(self, kb_dir: Path, kb_build_id: str | None = None):
        self.kb_dir = Path(kb_dir)
        self.kb_build_id = kb_build_id
        self._open: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def available(self) -> list[Any]:
        """Every index of the KB (:class:`pixlink.index.dense.IndexInfo`)."""
        from ..index.dense import list_indexes

        return list_indexes(self.kb_dir)

    def others(self, space: str, model_id: str) -> list[str]:
        """Models other than ``model_id`` whose vectors of ``space`` the KB holds."""
        return sorted({m.model_id for m in self.available() if m.space == space and m.model_id != model_id})

    def get(self, space: str, model_id: str) -> Any | None:
        """The index of ``space`` made by ``model_id``, or ``None`` when the KB has none."""
        key = (space, model_id)
        with self._lock:
            if key in self._open:
                return self._open[key]
            from ..index.dense import DenseIndex, index_dir

            path = index_dir(self.kb_dir, space, model_id)
            idx = None
            if (path / "meta.json").exists():
                from ..index.milvus import MilvusIndex, is_milvus_record

                # the KB directory records which backend serves these vectors: FAISS files or Milvus
                opener = MilvusIndex.open if is_milvus_record(path) else DenseIndex.open
                idx = opener(path, expect_model_id=model_id, expect_kb_build_id=self.kb_build_id)
            self._open[key] = idx
            return idx

    def close(self) -> None:
        with self._lock:
            for idx in self._open.values():
                if idx is not None:
                    idx.close()
            self._open.clear()
