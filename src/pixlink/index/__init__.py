"""Indexes over a knowledge base.

* :mod:`pixlink.index.dense` — dense vector index (exact + FAISS IVF-PQ / HNSW), one model
  and one space per index: :class:`DenseIndex`, :func:`index_dir`, :func:`list_indexes`.
* :mod:`pixlink.index.embed` — KB embedding cache (batched, resumable, keyed by model and
  item): :func:`embed_items`, :class:`EmbeddingStore`, :func:`build_index_from_store`.
* :mod:`pixlink.index.lexical` — lexical (BM25) index, in its own module.

FAISS is imported only when an approximate backend is built or opened.
"""

from __future__ import annotations

from .dense import SPACES, DenseIndex, IndexInfo, index_dir, list_indexes, model_slug
from .embed import EmbeddingStore, build_index_from_store, embed_items

__all__ = [
    "SPACES",
    "DenseIndex",
    "IndexInfo",
    "index_dir",
    "list_indexes",
    "model_slug",
    "EmbeddingStore",
    "embed_items",
    "build_index_from_store",
]
