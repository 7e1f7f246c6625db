"""The :class:`DenseIndex` interface and what every backend shares: building (the vectors,
ids and entity tables, meta.json, atomic rename), opening (meta checks, memory maps), the
exact scan, k-distinct-entity search, :meth:`~DenseIndex.search_subset`, lookups.

A backend is a subclass that sets :attr:`DenseIndex.kind` (the ``backend`` of meta.json) and
fills in :meth:`~DenseIndex._build_backend` (its extra files), :meth:`~DenseIndex._open_backend`
and :meth:`~DenseIndex._candidates` (rows for a query). Subclasses register themselves, so
:meth:`DenseIndex.build` and :meth:`DenseIndex.open` pick the class from the backend name.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar, Iterable, Sequence

import numpy as np

from ...device import requested_device
from ...errors import Errors, IndexError_, InputError
from ...log import get_logger
from .layout import FORMAT_VERSION, META_REQUIRED, check_build_id, check_space
from .store import RowReader, check_rows, encode_ids, write_ids, write_vectors

log = get_logger(__name__)

METRICS = ("cosine", "ip", "l2")
AUTO_EXACT_MAX = 100_000


class IndexRecord:
    """What every dense index reads from its ``meta.json``, whatever holds its vectors (FAISS
    files: :class:`DenseIndex`; a Milvus collection: :class:`~pixlink.index.milvus.MilvusIndex`):
    ``path``, ``meta``, ``model_id``, ``space``, ``kb_build_id``, ``dim``, ``metric``,
    ``params``, ``notes``; ``len(index)`` is the number of vector rows, :attr:`n_entities` the
    distinct entity ids."""

    def __init__(self, path: Path, meta: dict[str, Any]) -> None:
        self.path = path
        self.meta = meta
        self.model_id: str = meta["model_id"]
        self.space: str = meta["space"]
        self.kb_build_id: str | None = meta.get("kb_build_id")
        self.dim: int = int(meta["dim"])
        self.metric: str = meta["metric"]
        self.params: dict[str, Any] = dict(meta.get("params") or {})
        self.notes: list[str] = []
        self._count = int(meta["count"])
        self._n_entities = int(meta["entities"])
        self._max_per_entity = int(meta["max_vectors_per_entity"])

    def __len__(self) -> int:
        return self._count

    @property
    def n_entities(self) -> int:
        return self._n_entities


class DenseIndex(IndexRecord):
    """A read-only dense index opened from disk. Build one with :meth:`build`, open it with
    :meth:`open`; both return the subclass of the index's backend (:class:`ExactIndex`,
    :class:`IVFPQIndex`, :class:`HNSWIndex`), all used through this interface.

    Attributes:
        path: the index directory.
        model_id: the model that made the vectors (exact string).
        space: ``"entity_text"``, ``"entity_image"``, ``"entity_face"`` (or another name).
        kb_build_id: the KB build the vectors were made from (``None``: not recorded).
        dim: vector dimension D.
        metric: ``"cosine"``, ``"ip"`` or ``"l2"``.
        backend: ``"exact"``, ``"ivfpq"`` or ``"hnsw"`` (``"auto"`` is resolved at build).
        params: the backend's parameters; search knobs here are the defaults of search().
        corpus_chunk_size: rows scored at a time by exact scans (memory knob).
        device: where the searchable structure is: ``"cpu"`` or ``"cuda:N"`` (FAISS on a GPU).
        notes: what the caller should know about how the index was opened (e.g. why it stayed
            on the CPU); each is also logged at WARNING.
        meta: the whole meta.json.

    ``len(index)`` is the number of vector rows; :attr:`n_entities` the distinct entity ids.

    Thread safety: one opened index may be shared by many threads; :meth:`search`,
    :meth:`search_subset`, :meth:`contains` and :meth:`vectors_of` keep no state between
    calls (the file descriptor is opened at open, a GPU index is searched under a lock) and
    give the answers of a serial run. :meth:`close` must not run while other threads search.
    """

    kind: ClassVar[str] = ""
    """The backend name stored in meta.json ("" for abstract classes)."""
    approximate: ClassVar[bool] = False
    defaults: ClassVar[dict[str, Any]] = {}
    """Build knobs of the backend and their defaults (search knobs are the index's defaults)."""
    search_knobs: ClassVar[tuple[str, ...]] = ()
    """Search knobs the backend uses, checked in this order."""
    default_dtype: ClassVar[str] = "float32"
    _registry: ClassVar[dict[str, type["DenseIndex"]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            DenseIndex._registry[cls.kind] = cls

    def __init__(self, path: Path, meta: dict[str, Any], corpus_chunk_size: int) -> None:
        super().__init__(path, meta)
        self.backend: str = meta["backend"]
        self.corpus_chunk_size = int(corpus_chunk_size)
        self.device = "cpu"
        self._vectors: np.ndarray = np.empty((0, 0))
        self._keys: np.ndarray = np.empty(0, dtype="S1")
        self._row_entity: np.ndarray = np.empty(0, dtype=np.int64)
        self._offsets: np.ndarray = np.empty(0, dtype=np.int64)
        self._entity_rows: np.ndarray = np.empty(0, dtype=np.int64)
        self._reader: RowReader | None = None

    # -- properties ------------------------------------------------------------------------
    def __repr__(self) -> str:
        return (
            f"DenseIndex({str(self.path)!r}, model_id={self.model_id!r}, space={self.space!r}, dim={self.dim}, "
            f"vectors={self._count}, entities={self._n_entities}, backend={self.backend!r}, metric={self.metric!r})"
        )

    @classmethod
    def backends(cls) -> tuple[str, ...]:
        """The backend names :meth:`build` takes (the registered ones, then ``"auto"``)."""
        return (*DenseIndex._registry, "auto")

    def _note(self, msg: str) -> None:
        log.warning("%s: %s", self.path, msg)
        self.notes.append(msg)

    # -- building --------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        out_dir: str | Path,
        vectors_or_chunks: np.ndarray | Iterable[np.ndarray],
        ids: Sequence[str],
        *,
        model_id: str,
        space: str,
        metric: str = "cosine",
        backend: str = "exact",
        dtype: str = "auto",
        overwrite: bool = False,
        chunk_size: int = 65_536,
        auto_exact_max: int = AUTO_EXACT_MAX,
        progress: bool = True,
        seed: int = 0,
        kb_build_id: str | None = None,
        **params: Any,
    ) -> "DenseIndex":
        """Write an index of ``vectors`` to ``out_dir`` and return it opened.

        Args:
            out_dir: the index directory (see :func:`index_dir`); written atomically (a build
                that fails or is killed leaves no half index behind).
            vectors_or_chunks: an ``(N, D)`` float array (a ``np.memmap`` works, it is read
                ``chunk_size`` rows at a time) or an iterable of ``(n_i, D)`` arrays with
                ``sum(n_i) == N``, so N x D never has to fit in RAM.
            ids: ``N`` entity ids, one per row; an id may repeat (several vectors of one entity).
            model_id: the exact model that made the vectors (the index's tag).
            space: the vector space (:data:`SPACES`).
            metric: ``"cosine"`` (vectors are L2-normalised here), ``"ip"`` or ``"l2"``.
            backend: ``"exact"``, ``"ivfpq"``, ``"hnsw"`` or ``"auto"``.
            dtype: storage of ``vectors.npy``: ``"float16"`` (half the disk and page cache;
                cosine scores within ~1e-3) or ``"float32"``; ``"auto"``: float32 for the exact
                backend (its scan reads every row, a float16 file would be converted at every
                query), float16 for approximate ones (they read only the re-ranked rows).
            overwrite: replace an existing index at ``out_dir``.
            chunk_size: rows read/converted/added at a time (a memory knob of the build).
            auto_exact_max: with ``backend="auto"``, the largest N that gets ``exact``.
            progress: show a progress bar on stderr.
            seed: seed of the training sample and of FAISS' k-means.
            kb_build_id: the build id of the KB the vectors were made from (``KB.build_id``),
                recorded in meta.json so that :meth:`open` can refuse vectors of another build.
            **params: backend knobs (see :data:`DEFAULTS`), e.g. ``nlist``, ``m``, ``nprobe``,
                ``k_factor``, ``opq`` for ivfpq; ``hnsw_m``, ``ef_construction``, ``ef_search``
                for hnsw.
        """
        t0 = time.perf_counter()
        out = Path(out_dir)
        check_space(space)
        if not isinstance(model_id, str) or not model_id.strip():
            raise InputError(Errors.E010.format(what="model_id", value=model_id, reason="must be a non-empty string"))
        if metric not in METRICS:
            raise InputError(Errors.E226.format(metric=metric, metrics=", ".join(METRICS)))
        if backend not in cls.backends():
            raise InputError(Errors.E225.format(backend=backend, backends=", ".join(cls.backends())))
        if dtype not in ("auto", "float16", "float32"):
            raise InputError(Errors.E010.format(what="dtype", value=dtype, reason="expected 'auto', 'float16' or 'float32'"))
        if int(chunk_size) < 1:
            raise InputError(Errors.E010.format(what="chunk_size", value=chunk_size, reason="must be >= 1"))
        check_build_id(kb_build_id)
        if out.exists() and not overwrite:
            raise InputError(Errors.E230.format(path=str(out)))
        ids_list = list(ids)
        n = len(ids_list)
        if n == 0:
            raise InputError(Errors.E235.format(shape=(0,), reason=" (no ids were given)"))
        keys_by_row = encode_ids(ids_list)

        if backend == "auto":
            backend = "exact" if n <= int(auto_exact_max) else "ivfpq"
            log.info("backend 'auto' chose %r for %d vectors (auto_exact_max=%d)", backend, n, auto_exact_max)
        impl = DenseIndex._registry[backend]
        unknown = set(params) - set(impl.defaults)
        if unknown:
            name = sorted(unknown)[0]
            raise InputError(
                Errors.E231.format(
                    name=name, value=params[name], backend=backend,
                    reason=f"not a parameter of this backend (it takes: {', '.join(impl.defaults) or 'none'})",
                )
            )
        full_params = {**impl.defaults, **params}
        if dtype == "auto":
            dtype = impl.default_dtype

        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / f".{out.name}.building-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        try:
            dim = write_vectors(tmp, vectors_or_chunks, n, metric, np.dtype(dtype), int(chunk_size), progress)
            entities, max_per = write_ids(tmp, ids_list, keys_by_row)
            timings = {"vectors_s": round(time.perf_counter() - t0, 3)}
            full_params = impl._build_backend(tmp, metric, dim, n, full_params, int(chunk_size), progress, seed)
            timings["total_s"] = round(time.perf_counter() - t0, 3)
            meta = {
                "format_version": FORMAT_VERSION,
                "model_id": model_id,
                "space": space,
                "kb_build_id": kb_build_id,
                "dim": dim,
                "metric": metric,
                "count": n,
                "entities": entities,
                "max_vectors_per_entity": max_per,
                "backend": backend,
                "params": full_params,
                "dtype": dtype,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "build_timings": timings,
            }
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2), "utf-8")
            swap_in(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log.info("built %s index of %d vectors (%d entities) in %.1f s at %s", backend, n, entities, timings["total_s"], out)
        return DenseIndex.open(out, expect_model_id=model_id)

    @classmethod
    def _build_backend(
        cls, d: Path, metric: str, dim: int, n: int, params: dict[str, Any], chunk_size: int, progress: bool,
        seed: int,
    ) -> dict[str, Any]:
        """Write the backend's own files into the build directory ``d`` (which already holds
        the vectors and entity tables); return the parameters to store in meta.json."""
        return params

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | Path,
        expect_model_id: str | None = None,
        *,
        expect_space: str | None = None,
        expect_kb_build_id: str | None = None,
        corpus_chunk_size: int = 65_536,
        mmap: bool = True,
        device: str | None = None,
    ) -> "DenseIndex":
        """Open the index at ``path``.

        Args:
            expect_model_id: the model whose vectors the caller will compare with; a
                different stored model raises :class:`IndexError_` E222.
            expect_space: likewise for the space (E232).
            expect_kb_build_id: the build id of the KB the caller links against
                (``KB.build_id``); an index made from another build, or with no recorded
                build, raises E250 (its vectors may name entities the KB no longer has).
            corpus_chunk_size: rows scored at a time by exact scans; the scan's working memory
                is about ``Q * corpus_chunk_size * 4`` bytes plus one chunk as float32.
            mmap: read the FAISS file with ``IO_FLAG_MMAP`` (its codes stay in the page cache
                and are paged in as lists are probed) instead of loading it into RAM.
            device: where FAISS searches: ``None`` or ``"cpu"`` (the default) keep it on the
                CPU; ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (:func:`pixlink.device.resolve_device`)
                put an IVF-PQ index on that GPU when the installed faiss has GPU support. When
                it cannot go there the index stays on the CPU and :attr:`notes` says why.
                The exact re-rank of the candidates always runs on the CPU.
        """
        d = Path(path)
        meta = _read_meta(d)
        check_expected(d, meta, expect_model_id, expect_space, expect_kb_build_id)
        if int(corpus_chunk_size) < 1:
            raise InputError(Errors.E010.format(what="corpus_chunk_size", value=corpus_chunk_size, reason="must be >= 1"))
        if device is not None:
            requested_device(device)  # validate the name before any file is opened
        impl = DenseIndex._registry.get(meta["backend"])
        if impl is None:
            raise IndexError_(
                Errors.E221.format(path=str(d), reason=f"meta.json names backend {meta['backend']!r}, this pixlink reads "
                                                       f"{', '.join(DenseIndex._registry)}")
            )
        self = impl(d, meta, corpus_chunk_size)
        self._open_common()
        self._open_backend(mmap=mmap, device=device)
        return self

    def _open_common(self) -> None:
        """Map the vectors and entity tables, check them against meta.json, open the reader."""
        d, n, dim, meta = self.path, self._count, self.dim, self.meta
        try:
            self._vectors = np.load(d / "vectors.npy", mmap_mode="r")
            self._keys = np.load(d / "entity_keys.npy", mmap_mode="r")
            self._row_entity = np.load(d / "row_entity.npy", mmap_mode="r")
            self._offsets = np.load(d / "entity_offsets.npy", mmap_mode="r")
            self._entity_rows = np.load(d / "entity_rows.npy", mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise IndexError_(Errors.E221.format(path=str(d), reason=str(exc))) from exc
        checks = [
            (self._vectors.shape == (n, dim), f"vectors.npy has shape {self._vectors.shape}, meta says ({n}, {dim})"),
            (self._vectors.dtype == np.dtype(meta["dtype"]), f"vectors.npy is {self._vectors.dtype}, meta says {meta['dtype']}"),
            (self._keys.shape == (self._n_entities,), "entity_keys.npy does not match the entity count"),
            (self._row_entity.shape == (n,), "row_entity.npy does not match the vector count"),
            (self._offsets.shape == (self._n_entities + 1,), "entity_offsets.npy does not match the entity count"),
            (self._entity_rows.shape == (n,), "entity_rows.npy does not match the vector count"),
            ((d / "ids.parquet").is_file(), "ids.parquet is missing"),
        ]
        for ok, reason in checks:
            if not ok:
                raise IndexError_(Errors.E221.format(path=str(d), reason=reason))
        self._reader = RowReader(d / "vectors.npy", self._vectors.dtype, n, dim, self._vectors.offset).open()

    def _open_backend(self, *, mmap: bool, device: str | None) -> None:
        """Load the backend's own files and place them on ``device`` (see :meth:`open`)."""

    # -- queries ---------------------------------------------------------------------------
    def _check_queries(self, queries: Any) -> np.ndarray:
        return check_queries(queries, self.dim, self.metric)

    def _score_rows(self, q: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Scores of queries ``q`` (Q, D) against rows ``x`` (R, D): (Q, R) float32."""
        x = np.asarray(x, dtype=np.float32)
        s = q @ x.T
        if self.metric == "l2":
            s = 2.0 * s - (x * x).sum(axis=1)[None, :] - (q * q).sum(axis=1)[:, None]
        return s.astype(np.float32, copy=False)

    def _scan(self, q: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-``m`` rows for each query: ``(scores (Q, m), rows (Q, m))``, best first.

        Reads the matrix ``corpus_chunk_size`` rows at a time: float32 straight from the memory
        map (no copy; the pages are file cache the kernel can drop), float16 with pread into one
        reused float32 chunk (so the resident memory stays at one chunk whatever N)."""
        nq = q.shape[0]
        m = min(m, self._count)
        best_s = np.full((nq, 0), -np.inf, dtype=np.float32)
        best_r = np.zeros((nq, 0), dtype=np.int64)
        if self._vectors.dtype == np.float32:
            cs = self.corpus_chunk_size
            blocks: Iterable[tuple[int, np.ndarray]] = (
                (st, self._vectors[st : st + cs]) for st in range(0, self._count, cs)
            )
        else:
            assert self._reader is not None
            blocks = self._reader.blocks(self.corpus_chunk_size)
        for start, block in blocks:
            s = self._score_rows(q, block)
            if s.shape[1] > m:
                part = np.argpartition(-s, m - 1, axis=1)[:, :m]
                s = np.take_along_axis(s, part, axis=1)
                r = part.astype(np.int64) + start
            else:
                r = np.broadcast_to(np.arange(start, start + s.shape[1], dtype=np.int64), s.shape)
            cat_s = np.concatenate([best_s, s], axis=1)
            cat_r = np.concatenate([best_r, r], axis=1)
            if cat_s.shape[1] > m:
                part = np.argpartition(-cat_s, m - 1, axis=1)[:, :m]
                cat_s = np.take_along_axis(cat_s, part, axis=1)
                cat_r = np.take_along_axis(cat_r, part, axis=1)
            best_s, best_r = cat_s, cat_r
        order = np.argsort(-best_s, axis=1, kind="stable")
        return np.take_along_axis(best_s, order, axis=1), np.take_along_axis(best_r, order, axis=1)

    def _exact_candidates(self, q: np.ndarray, m: int, knobs: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`_scan` in the shape of :meth:`_candidates` (an exact scan is never short)."""
        s, r = self._scan(q, m)
        return s, r, np.zeros(q.shape[0], dtype=bool)

    def _candidates(self, q: np.ndarray, m: int, knobs: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The backend's best ``m`` rows for each query with exact scores:
        ``(scores (Q, m), rows (Q, m), exhausted (Q,))`` best first; rows of -1 (score -inf)
        pad queries with fewer candidates; ``exhausted[i]`` is True when asking for more will
        not find more. The exact backend scans."""
        return self._exact_candidates(q, m, knobs)

    def _check_search_knobs(self, eff: dict[str, Any]) -> None:
        for name in self.search_knobs:
            v = eff.get(name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise InputError(Errors.E231.format(name=name, value=v, backend=self.backend, reason="must be an integer >= 1"))

    def _dedupe(self, scores: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Keep the first (best) row of each entity: ``(scores (k',), entity positions (k',))``."""
        valid = rows >= 0
        scores, rows = scores[valid], rows[valid]
        ents = np.asarray(self._row_entity[rows], dtype=np.int64)
        _, first = np.unique(ents, return_index=True)
        keep = np.sort(first)[:k]
        return scores[keep], ents[keep]

    def _take(self, rows: np.ndarray) -> np.ndarray:
        """Stored vectors of sorted ``rows``: ``(len(rows), D)`` float16/float32."""
        assert self._reader is not None
        return self._reader.take(rows)

    def close(self) -> None:
        """Release the file handle (the index is also released when garbage-collected). Not
        while other threads search."""
        if self._reader is not None:
            self._reader.close()

    def __enter__(self) -> "DenseIndex":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        reader = getattr(self, "_reader", None)
        if reader is not None:
            reader.close()

    def _key(self, e: int) -> str:
        return bytes(self._keys[e]).decode("utf-8")

    def search(
        self, queries: np.ndarray, k: int = 10, *, exact: bool = False, **knobs: Any
    ) -> tuple[np.ndarray, list[list[str]]]:
        """The ``k`` best distinct entities for each query.

        Args:
            queries: ``(Q, D)`` float array (float32 preferred) in this index's model space;
                for ``cosine`` they are L2-normalised here.
            k: entities per query (at most the number of entities in the index).
            exact: scan every vector exactly, whatever the backend (to measure recall).
            **knobs: search knobs overriding the index's defaults: ``nprobe``, ``k_factor``
                (ivfpq), ``ef_search``, ``k_factor`` (hnsw). A backend ignores the others.

        Returns:
            ``(scores, ids)``: ``scores`` ``(Q, min(k, n_entities))`` float32 best first (see
            :mod:`pixlink.index.dense` for the score of each metric), ``-inf`` where a query has fewer
            hits; ``ids[i]`` the entity ids of query i's hits, in the same order. Each entity
            appears once, with the best score of its vectors. Approximate backends return
            fewer than k hits only when the probed lists hold fewer entities (raise nprobe).
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InputError(Errors.E233.format(k=k))
        all_knobs = search_knobs()
        bad = set(knobs) - all_knobs
        if bad:
            name = sorted(bad)[0]
            raise InputError(
                Errors.E231.format(name=name, value=knobs[name], backend=self.backend,
                                   reason=f"not a search knob (knobs: {', '.join(sorted(all_knobs))})")
            )
        q = self._check_queries(queries)
        k_eff = int(min(k, self._n_entities))
        eff = {**self.params, **knobs}
        if exact:
            fetch = self._exact_candidates
        else:
            self._check_search_knobs(eff)
            fetch = self._candidates
        nq = q.shape[0]
        out_s = np.full((nq, k_eff), -np.inf, dtype=np.float32)
        out_ids: list[list[str]] = [[] for _ in range(nq)]
        # Over-fetch rows so that k distinct entities are among them: the k-th distinct
        # entity's best row is at most at position (k-1) * max_per_entity + 1. When that
        # bound is large, start lower and widen for the queries that came up short.
        mult = self._max_per_entity
        m = k_eff * mult if k_eff * mult <= max(4 * k_eff, 1024) else 4 * k_eff
        todo = np.arange(nq)
        while len(todo):
            m = min(m, self._count)
            s, r, exhausted = fetch(q[todo], m, eff)
            exhausted |= m >= self._count
            again = []
            for j, i in enumerate(todo):
                ds, de = self._dedupe(s[j], r[j], k_eff)
                if len(de) < k_eff and not exhausted[j]:
                    again.append(i)
                    continue
                out_s[i, : len(ds)] = ds
                out_ids[i] = [self._key(int(e)) for e in de]
            todo = np.asarray(again, dtype=np.int64)
            m *= 4
        return out_s, out_ids

    def _lookup(self, entity_ids: Sequence[str]) -> np.ndarray:
        """Positions in entity_keys of ``entity_ids`` (-1 when absent): (n,) int64."""
        width = self._keys.dtype.itemsize
        pos = np.full(len(entity_ids), -1, dtype=np.int64)
        enc, where = [], []
        for i, e in enumerate(entity_ids):
            if not isinstance(e, str):
                raise InputError(Errors.E229.format(value=e, row=i, reason=f"must be a str, not {type(e).__name__}"))
            b = e.encode("utf-8")
            if 0 < len(b) <= width and b"\x00" not in b:  # longer ids cannot be in the index
                enc.append(b)
                where.append(i)
        if not enc:
            return pos
        arr = np.array(enc, dtype=self._keys.dtype)
        p = np.searchsorted(self._keys, arr)
        pc = np.minimum(p, len(self._keys) - 1)
        hit = (p < len(self._keys)) & (np.asarray(self._keys[pc]) == arr)
        pos[np.asarray(where)[hit]] = p[hit]
        return pos

    def contains(self, entity_ids: Sequence[str]) -> np.ndarray:
        """``(n,)`` bool: which ids have at least one vector in this index."""
        return self._lookup(list(entity_ids)) >= 0

    def vectors_of(self, entity_id: str) -> np.ndarray:
        """The stored vectors of one entity: ``(n_i, D)`` float32 (normalised for cosine);
        ``(0, D)`` when the entity has none here."""
        e = int(self._lookup([entity_id])[0])
        if e < 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        rows = np.sort(np.asarray(self._entity_rows[self._offsets[e] : self._offsets[e + 1]]))
        return np.asarray(self._take(rows), dtype=np.float32)

    def search_subset(
        self, queries: np.ndarray, candidate_ids: Sequence[str] | Sequence[Sequence[str]], k: int | None = None
    ) -> tuple[np.ndarray, list[list[str]]]:
        """Exact scores of the given entities only (re-score a candidate list from another signal).

        Args:
            queries: ``(Q, D)`` float array.
            candidate_ids: one list of entity ids for every query, or ``Q`` lists (one per query).
            k: keep the best ``k`` per query; ``None`` keeps every candidate found.

        Returns:
            ``(scores (Q, K) float32, ids)`` best first, each entity once with the best score of
            its vectors; ``K`` is ``k`` or the largest number of candidates found; rows with
            fewer hits are padded with ``-inf``. Candidates with no vector in this index are
            not in the result (a signal that has nothing for an entity is absent, not zero);
            :meth:`contains` tells which.
        """
        if k is not None and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1):
            raise InputError(Errors.E233.format(k=k))
        q = self._check_queries(queries)
        nq = q.shape[0]
        per_query = candidates_per_query(candidate_ids, nq)
        results: list[tuple[np.ndarray, list[str]]] = []
        cache: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # this call's only
        for i in range(nq):
            key = tuple(per_query[i])
            if key not in cache:
                pos = self._lookup(per_query[i])
                ents = np.unique(pos[pos >= 0])
                if len(ents):
                    spans = [np.asarray(self._entity_rows[self._offsets[e] : self._offsets[e + 1]]) for e in ents]
                    rows = np.concatenate(spans)
                    owner = np.repeat(np.arange(len(ents)), [len(s) for s in spans])
                    order = np.argsort(rows)
                    rows, owner = rows[order], owner[order]
                else:
                    rows = np.zeros(0, dtype=np.int64)
                    owner = np.zeros(0, dtype=np.int64)
                cache[key] = (ents, rows, owner)
            ents, rows, owner = cache[key]
            if not len(ents):
                results.append((np.zeros(0, dtype=np.float32), []))
                continue
            s = self._score_rows(q[i : i + 1], self._take(rows))[0]
            best = np.full(len(ents), -np.inf, dtype=np.float32)
            np.maximum.at(best, owner, s)
            order = np.argsort(-best, kind="stable")
            if k is not None:
                order = order[:k]
            results.append((best[order], [self._key(int(ents[o])) for o in order]))
        return padded(results, k)


def swap_in(tmp: Path, out: Path) -> None:
    """Put the finished build directory ``tmp`` at ``out``, replacing what was there (a reader
    sees the old index or the new one, never a mix)."""
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old)
    else:
        tmp.rename(out)


def check_expected(d: Path, meta: dict[str, Any], expect_model_id: str | None, expect_space: str | None,
                   expect_kb_build_id: str | None) -> None:
    """The model (E222), space (E232) and KB build (E250) an index's meta.json records, against
    what the caller expects (``None``: anything)."""
    if expect_model_id is not None and meta["model_id"] != expect_model_id:
        raise IndexError_(Errors.E222.format(path=str(d), found=meta["model_id"], expected=expect_model_id))
    if expect_space is not None and meta["space"] != expect_space:
        raise IndexError_(Errors.E232.format(path=str(d), found=meta["space"], expected=expect_space))
    check_build_id(expect_kb_build_id, "expect_kb_build_id")
    found_build = meta.get("kb_build_id")
    if expect_kb_build_id is not None and found_build != expect_kb_build_id:
        found = f"KB build {found_build!r}" if found_build is not None else "a KB build it did not record"
        raise IndexError_(Errors.E250.format(path=str(d), found=found, expected=expect_kb_build_id))


def check_queries(queries: Any, dim: int, metric: str) -> np.ndarray:
    """``(Q, dim)`` queries as contiguous float32 (L2-normalised for cosine), else E223/E224."""
    q = np.asarray(queries)
    if q.ndim != 2 or q.shape[1] != dim or q.shape[0] == 0 or not np.issubdtype(q.dtype, np.number):
        hint = " (for one query pass q[None, :])" if q.ndim == 1 else ""
        raise InputError(Errors.E223.format(shape=q.shape, dtype=q.dtype, dim=dim, reason=hint))
    return np.ascontiguousarray(check_rows(q, 0, metric, what="query"))


def candidates_per_query(candidate_ids: Any, nq: int) -> list[list[str]]:
    """``search_subset``'s candidates as one list per query (one list given: the same for all)."""
    cands = list(candidate_ids)
    if cands and not isinstance(cands[0], str):
        if len(cands) != nq:
            raise InputError(
                Errors.E010.format(what="candidate_ids", value=f"<{len(cands)} lists>",
                                   reason=f"expected one list of ids, or one list per query ({nq})")
            )
        return [list(c) for c in cands]
    return [cands] * nq


def padded(results: list[tuple[np.ndarray, list[str]]], k: int | None) -> tuple[np.ndarray, list[list[str]]]:
    """Per-query ``(scores, ids)`` as one ``(Q, K)`` float32 array padded with ``-inf`` (K = ``k``
    or the longest list) and the id lists."""
    width = k if k is not None else max((len(r[1]) for r in results), default=0)
    out = np.full((len(results), width), -np.inf, dtype=np.float32)
    for i, (s, _) in enumerate(results):
        out[i, : len(s)] = s
    return out, [r[1] for r in results]


def search_knobs() -> set[str]:
    """Every search knob of every backend (:meth:`DenseIndex.search` accepts them all)."""
    return set().union(*(c.search_knobs for c in DenseIndex._registry.values()))


def _read_meta(d: Path) -> dict[str, Any]:
    """meta.json of the index at ``d``, checked for the keys and format version (E220/E221)."""
    meta_path = d / "meta.json"
    if not d.is_dir():
        raise IndexError_(Errors.E220.format(path=str(d), reason="the directory does not exist"))
    if not meta_path.is_file():
        raise IndexError_(Errors.E220.format(path=str(d), reason="it has no meta.json"))
    try:
        meta = json.loads(meta_path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexError_(Errors.E221.format(path=str(d), reason=f"meta.json cannot be read ({exc})")) from exc
    if not isinstance(meta, dict):
        raise IndexError_(Errors.E221.format(path=str(d), reason="meta.json is not a JSON object"))
    missing = [k for k in META_REQUIRED if k not in meta]
    if missing:
        raise IndexError_(Errors.E221.format(path=str(d), reason=f"meta.json lacks {missing}"))
    if meta["format_version"] != FORMAT_VERSION:
        raise IndexError_(
            Errors.E221.format(path=str(d), reason=f"format version {meta['format_version']}, this pixlink reads {FORMAT_VERSION}")
        )
    return meta
