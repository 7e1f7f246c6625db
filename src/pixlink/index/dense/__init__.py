"""Dense vector index: one interface (:class:`DenseIndex`) over an exact and two approximate
(FAISS) backends, one class each.

An index holds the vectors of ONE model in ONE space (``"entity_text"``, ``"entity_image"``,
``"entity_face"``) made from ONE build of the KB, and is tagged with that model's id and that
build's id: opening it with another model's id is an error (E222), with another KB build id
E250, never a silent re-use. Several vectors may share one entity id (an entity with several
images); :meth:`DenseIndex.search` returns k *distinct* entities, each with the best score of
its vectors.

Layout inside a KB directory (see :func:`index_dir`); several models of a space side by side::

    KBDIR/vectors/<space>/<model-slug>/
        meta.json            model_id, space, kb_build_id, dim, metric, count, backend, params...
        vectors.npy          (N, D) float16 or float32, row i = vector i (opened with mmap)
        ids.parquet          column "id": the entity id of each row (N rows)
        entity_keys.npy      (E,) |S<w> sorted distinct entity ids, UTF-8
        row_entity.npy       (N,) int32/int64 row -> position in entity_keys
        entity_offsets.npy   (E+1,) int64 and entity_rows.npy (N,) int64: the rows of each
                             entity (CSR), for search_subset
        faiss.index          approximate backends only: FAISS' own file, read with IO_FLAG_MMAP

Backends (modules):

* ``exact`` (:mod:`.exact`, :class:`ExactIndex`): chunked matmul over ``vectors.npy``
  (``corpus_chunk_size`` rows at a time) with an argpartition top-k; working memory is
  ``O(Q * corpus_chunk_size)`` whatever N.
* ``ivfpq`` (:mod:`.ivfpq`, :class:`IVFPQIndex`): FAISS IVF + PQ (optionally OPQ) codes; the
  ``k * k_factor`` best candidates are re-ranked ("refine") with 8-bit scalar-quantised copies
  kept in the FAISS file (``refine="SQ8"``, FAISS' IndexRefine), and the best ``2k`` of those
  get exact scores from ``vectors.npy``. Knobs: ``nprobe``, ``k_factor``.
* ``hnsw`` (:mod:`.hnsw`, :class:`HNSWIndex`): FAISS HNSW graph over scalar-quantised codes
  (``storage``, default ``SQ8``), with the same exact re-rank.
* ``auto``: ``exact`` up to ``auto_exact_max`` vectors (default 100_000), else ``ivfpq``.

What they share lives in :mod:`.base` (the interface, build/open, the exact scan, dedupe,
search_subset), :mod:`.store` (the vector and id files), :mod:`.approx` (FAISS training,
candidates, GPU placement) and :mod:`.layout` (directories, :func:`list_indexes`).

Scores: ``cosine`` (vectors and queries L2-normalised, score = cosine similarity), ``ip``
(raw inner product), ``l2`` (score = minus the squared Euclidean distance, so higher is always
better). Offline building (:meth:`DenseIndex.build`) is kept apart from search
(:meth:`DenseIndex.open`): a built index is read-only, and one opened index can be shared by
the threads of a service.
"""

from __future__ import annotations

from .approx import FaissIndex
from .base import AUTO_EXACT_MAX, METRICS, DenseIndex, search_knobs

# the backends register themselves on import, in this order (the order errors list them in)
from .exact import ExactIndex  # noqa: I001
from .ivfpq import IVFPQIndex
from .hnsw import HNSWIndex
from .layout import FORMAT_VERSION, SPACES, IndexInfo, check_space, index_dir, list_indexes, model_slug

BACKENDS = DenseIndex.backends()
"""Backend names :meth:`DenseIndex.build` takes: ``exact``, ``ivfpq``, ``hnsw``, ``auto``."""
DEFAULTS = {kind: dict(impl.defaults) for kind, impl in DenseIndex._registry.items()}
"""Build and search knobs of each backend with their defaults (a copy; the classes hold them)."""
SEARCH_KNOBS = search_knobs()
"""Knobs :meth:`DenseIndex.search` takes (each backend uses its own, ignores the others)."""

__all__ = [
    "AUTO_EXACT_MAX",
    "BACKENDS",
    "DEFAULTS",
    "FORMAT_VERSION",
    "METRICS",
    "SEARCH_KNOBS",
    "SPACES",
    "DenseIndex",
    "ExactIndex",
    "FaissIndex",
    "HNSWIndex",
    "IVFPQIndex",
    "IndexInfo",
    "check_space",
    "index_dir",
    "list_indexes",
    "model_slug",
]
