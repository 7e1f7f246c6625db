"""Dense vector index: one abstraction over an exact and approximate (FAISS) backends.

An index holds the vectors of ONE model in ONE space (``"entity_text"``, ``"entity_image"``,
``"entity_face"``) and is tagged with that model's id: opening it with another model's id is
an error (E222), never a silent re-use. Several vectors may share one entity id (an entity
with several images); :meth:`DenseIndex.search` returns k *distinct* entities, each with the
best score of its vectors.

Layout inside a KB directory (see :func:`index_dir`)::

    KBDIR/vectors/<space>/<model-slug>/
        meta.json            model_id, space, dim, metric, count, backend, params, created...
        vectors.npy          (N, D) float16 or float32, row i = vector i (opened with mmap)
        ids.parquet          column "id": the entity id of each row (N rows)
        entity_keys.npy      (E,) |S<w> sorted distinct entity ids, UTF-8
        row_entity.npy       (N,) int32/int64 row -> position in entity_keys
        entity_offsets.npy   (E+1,) int64 and entity_rows.npy (N,) int64: the rows of each
                             entity (CSR), for search_subset
        faiss.index          approximate backends only: FAISS' own file, read with IO_FLAG_MMAP

Backends:

* ``exact``: chunked matmul over ``vectors.npy`` (``corpus_chunk_size`` rows at a time) with
  an argpartition top-k; working memory is ``O(Q * corpus_chunk_size)`` whatever N.
* ``ivfpq``: FAISS IVF + PQ (optionally OPQ) codes; the ``k * k_factor`` best candidates are
  re-ranked ("refine") with 8-bit scalar-quantised copies kept in the FAISS file
  (``refine="SQ8"``, FAISS' IndexRefine), and the best ``2k`` of those get exact scores from
  ``vectors.npy``. Knobs: ``nprobe``, ``k_factor``. Working set: PQ codes (N * m bytes), ids
  (8 N), SQ8 codes (N * D bytes), centroids; all memory-mapped. The float vectors stay on disk
  and only ~2k rows a query are read. ``refine="vectors"`` drops the SQ copy and re-ranks all
  candidates from ``vectors.npy`` (smaller index, but fast only while that file is cached).
* ``hnsw``: FAISS HNSW graph over scalar-quantised codes (``storage``, default ``SQ8``), with
  the same refine. Fast to query, slow to build; for KBs up to a few million vectors.
* ``auto``: ``exact`` up to ``auto_exact_max`` vectors (default 100_000), else ``ivfpq``.

Scores: ``cosine`` (vectors and queries L2-normalised, score = cosine similarity), ``ip``
(raw inner product), ``l2`` (score = minus the squared Euclidean distance, so higher is always
better). Offline building (:meth:`DenseIndex.build`) is kept apart from search
(:meth:`DenseIndex.open`): a built index is read-only.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from ..errors import Errors, IndexError_, InputError
from ..log import get_logger

log = get_logger(__name__)

SPACES = ("entity_text", "entity_image", "entity_face")
"""Known vector spaces. Other names matching ``[a-z][a-z0-9_]*`` are allowed for new signals."""
METRICS = ("cosine", "ip", "l2")
BACKENDS = ("exact", "ivfpq", "hnsw", "auto")
FORMAT_VERSION = 1

_SPACE_RE = re.compile(r"^[a-z][a-z0-9_]*$")

# Defaults of the build and search knobs. Every one can be passed to build() (stored in
# meta.json as the index's defaults) and the search knobs again to search().
DEFAULTS: dict[str, dict[str, Any]] = {
    "exact": {},
    "ivfpq": {
        "nlist": None,  # None: 4 * sqrt(N) rounded to a power of two, at most N / 39
        "m": None,  # PQ sub-quantizers; None: the largest divisor of D that is <= D / 8
        "nbits": 8,
        "opq": False,
        "train_size": 262_144,  # vectors sampled to train the coarse quantizer and PQ
        "kmeans_iters": 10,  # FAISS' default for IVF training
        "quantizer": "auto",  # coarse quantizer: "flat", "hnsw" (HNSW over the centroids), auto: hnsw if nlist >= 8192
        "quantizer_ef_search": 64,  # HNSW quantizer only: its efSearch at query time (FAISS raises it to >= nprobe)
        # how the k * k_factor PQ candidates are re-ranked: by scalar-quantised copies kept in
        # faiss.index ("SQ8": D bytes a vector; "SQ6", "SQ4", "SQfp16"), the 2 * k best of
        # which then get exact scores from vectors.npy; or "vectors": all of them exactly
        # from vectors.npy (no extra copy, but fast only while that file is in page cache)
        "refine": "SQ8",
        "nprobe": 32,
        "k_factor": 40,  # re-rank k * 40 candidates: at 1M-6M x 512 this, not nprobe, limits recall
    },
    "hnsw": {
        "hnsw_m": 32,
        "ef_construction": 80,
        "storage": "SQ8",  # FAISS codes kept in RAM: SQ8, SQfp16, Flat, or PQ<m>
        "train_size": 262_144,
        "ef_search": 128,
        "k_factor": 4,
    },
}
SEARCH_KNOBS = {"nprobe", "k_factor", "ef_search"}
AUTO_EXACT_MAX = 100_000


# --------------------------------------------------------------------------------------------
# Layout helpers
# --------------------------------------------------------------------------------------------


def model_slug(model_id: str) -> str:
    """A directory name for ``model_id``: readable part + 8 hex of its SHA-1 (collision-free
    even when two ids differ only in characters the readable part replaces)."""
    if not isinstance(model_id, str) or not model_id.strip():
        raise InputError(Errors.E010.format(what="model_id", value=model_id, reason="must be a non-empty string"))
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id).strip("._-")[:80] or "model"
    return f"{readable}-{hashlib.sha1(model_id.encode('utf-8')).hexdigest()[:8]}"


def check_space(space: str) -> str:
    if not isinstance(space, str) or not _SPACE_RE.match(space):
        raise InputError(
            Errors.E227.format(space=space, reason="expected lower-case letters, digits and _", spaces=", ".join(SPACES))
        )
    return space


def index_dir(kb_dir: str | Path, space: str, model_id: str) -> Path:
    """``KBDIR/vectors/<space>/<model-slug>/``: where the index of ``model_id``'s vectors in
    ``space`` lives (the directory need not exist)."""
    return Path(kb_dir) / "vectors" / check_space(space) / model_slug(model_id)


@dataclass
class IndexInfo:
    """What :func:`list_indexes` reports for one index directory (from its meta.json)."""

    path: str
    space: str
    model_id: str
    dim: int
    count: int
    entities: int
    backend: str
    metric: str
    dtype: str
    created: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_indexes(kb_dir: str | Path) -> list[IndexInfo]:
    """Every dense index under ``KBDIR/vectors/``, sorted by space then model id.

    A directory whose meta.json cannot be read is logged at WARNING and left out (it is a
    build that did not finish, or damage: :meth:`DenseIndex.open` on it says which)."""
    root = Path(kb_dir) / "vectors"
    out: list[IndexInfo] = []
    if not root.is_dir():
        return out
    for meta_path in sorted(root.glob("*/*/meta.json")):
        try:
            meta = json.loads(meta_path.read_text("utf-8"))
            out.append(
                IndexInfo(
                    path=str(meta_path.parent), space=meta["space"], model_id=meta["model_id"], dim=int(meta["dim"]),
                    count=int(meta["count"]), entities=int(meta["entities"]), backend=meta["backend"],
                    metric=meta["metric"], dtype=meta["dtype"], created=meta["created"],
                )
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("skipping %s: %s", meta_path.parent, Errors.E221.format(path=str(meta_path.parent), reason=exc))
    out.sort(key=lambda i: (i.space, i.model_id))
    return out


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _progress(enabled: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), disable=not enabled, transient=False,
    )


def _as_chunks(vectors_or_chunks: Any, chunk_size: int) -> Iterator[np.ndarray]:
    """Yield 2-D arrays from an (N, D) array (sliced by ``chunk_size`` rows) or an iterable
    of (n_i, D) arrays."""
    if isinstance(vectors_or_chunks, np.ndarray):
        arr = vectors_or_chunks
        if arr.ndim != 2:
            raise InputError(Errors.E235.format(shape=arr.shape, reason=""))
        for s in range(0, arr.shape[0], chunk_size):
            yield arr[s : s + chunk_size]
        return
    for chunk in vectors_or_chunks:
        yield np.asarray(chunk)


def _normalise_rows(x: np.ndarray, row0: int, metric: str, what: str = "vector") -> np.ndarray:
    """Check finiteness (and non-zero norm for cosine); return float32, L2-normalised for cosine."""
    x = np.asarray(x, dtype=np.float32)
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise InputError(Errors.E224.format(row=row0 + r, metric=metric, reason=f"the {what} has NaN or infinite values"))
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1)
        zero = norms <= 1e-12
        if zero.any():
            r = int(np.flatnonzero(zero)[0])
            raise InputError(
                Errors.E224.format(row=row0 + r, metric=metric, reason=f"the {what} has zero norm (no direction)")
            )
        x = x / norms[:, None]
    return x


def _write_npy_header(fh: Any, dtype: np.dtype, shape: tuple[int, ...]) -> None:
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_2_0(fh, header)


def _encode_ids(ids: Sequence[str]) -> np.ndarray:
    """Validate ids and return them as a ``(N,)`` ``|S<w>`` UTF-8 array."""
    enc: list[bytes] = []
    for row, v in enumerate(ids):
        if not isinstance(v, str):
            raise InputError(Errors.E229.format(value=v, row=row, reason=f"must be a str, not {type(v).__name__}"))
        if not v.strip():
            raise InputError(Errors.E229.format(value=v, row=row, reason="must not be empty or blank"))
        if "\x00" in v:
            raise InputError(Errors.E229.format(value=v, row=row, reason="must not contain NUL characters"))
        enc.append(v.encode("utf-8"))
    return np.array(enc, dtype=bytes)


def _auto_nlist(n: int) -> int:
    target = 4.0 * math.sqrt(n)
    nlist = 2 ** max(0, int(round(math.log2(max(target, 1.0)))))
    return int(max(1, min(nlist, n // 39 if n >= 39 else 1)))


def _auto_pq_m(dim: int) -> int:
    cap = max(1, dim // 8)
    for m in range(cap, 0, -1):
        if dim % m == 0:
            return m
    return 1


class _RowReader:
    """Sequential blocks of an ``(N, D)`` .npy file read with ``pread`` into a reused buffer.

    Unlike slices of a memory map, the pages read do not stay mapped into the process, so a
    scan of a file of any size keeps the resident memory at one block."""

    def __init__(self, path: Path, dtype: np.dtype, n: int, dim: int, offset: int) -> None:
        self.path, self.dtype, self.n, self.dim, self.offset = path, np.dtype(dtype), n, dim, int(offset)
        self.row_bytes = self.dtype.itemsize * dim
        self._fd: int | None = None

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Rows ``rows`` (sorted for locality) as an ``(len(rows), D)`` array of the stored dtype.

        One pread per row: as fast as faulting them in through a memory map (measured 0.95
        vs 1.1 ms for 400 random rows of a 6 GB file in page cache), without the kernel's
        fault-around mapping 16 neighbouring pages per row into the process, which made a
        searching process show the whole file as resident."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        out = np.empty((len(rows), self.dim), dtype=self.dtype)
        mv = memoryview(out.reshape(-1).view(np.uint8))
        rb, off, fd, pread = self.row_bytes, self.offset, self._fd, os.preadv
        for j, r in enumerate(rows.tolist()):
            if pread(fd, [mv[j * rb : (j + 1) * rb]], off + r * rb) != rb:
                raise IndexError_(Errors.E221.format(path=str(self.path.parent), reason=f"{self.path.name} is truncated"))
        return out

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def blocks(self, block_rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(start_row, (n, D) float32 block)``; the block buffer is reused: copy it to keep it."""
        raw = np.empty((block_rows, self.dim), dtype=self.dtype)
        f32 = np.empty((block_rows, self.dim), dtype=np.float32) if self.dtype != np.float32 else raw
        fd = os.open(self.path, os.O_RDONLY)
        try:
            for start in range(0, self.n, block_rows):
                rows = min(block_rows, self.n - start)
                view = memoryview(raw[:rows].reshape(-1).view(np.uint8))
                got = os.preadv(fd, [view], self.offset + start * self.row_bytes)
                if got != rows * self.row_bytes:
                    raise IndexError_(Errors.E221.format(path=str(self.path.parent), reason=f"{self.path.name} is truncated"))
                if f32 is not raw:
                    f32[:rows] = raw[:rows]
                yield start, f32[:rows]
        finally:
            os.close(fd)


# --------------------------------------------------------------------------------------------
# The index
# --------------------------------------------------------------------------------------------


class DenseIndex:
    """A read-only dense index opened from disk. Build one with :meth:`build`, open it with
    :meth:`open`.

    Attributes:
        path: the index directory.
        model_id: the model that made the vectors (exact string).
        space: ``"entity_text"``, ``"entity_image"``, ``"entity_face"`` (or another name).
        dim: vector dimension D.
        metric: ``"cosine"``, ``"ip"`` or ``"l2"``.
        backend: ``"exact"``, ``"ivfpq"`` or ``"hnsw"`` (``"auto"`` is resolved at build).
        params: the backend's parameters; search knobs here are the defaults of search().
        corpus_chunk_size: rows scored at a time by exact scans (memory knob).
        meta: the whole meta.json.

    ``len(index)`` is the number of vector rows; :attr:`n_entities` the distinct entity ids.
    """

    def __init__(self, path: Path, meta: dict[str, Any], corpus_chunk_size: int) -> None:
        self.path = path
        self.meta = meta
        self.model_id: str = meta["model_id"]
        self.space: str = meta["space"]
        self.dim: int = int(meta["dim"])
        self.metric: str = meta["metric"]
        self.backend: str = meta["backend"]
        self.params: dict[str, Any] = dict(meta.get("params") or {})
        self.corpus_chunk_size = int(corpus_chunk_size)
        self._count = int(meta["count"])
        self._n_entities = int(meta["entities"])
        self._max_per_entity = int(meta["max_vectors_per_entity"])
        self._vectors: np.ndarray = np.empty((0, 0))
        self._keys: np.ndarray = np.empty(0, dtype="S1")
        self._row_entity: np.ndarray = np.empty(0, dtype=np.int64)
        self._offsets: np.ndarray = np.empty(0, dtype=np.int64)
        self._entity_rows: np.ndarray = np.empty(0, dtype=np.int64)
        self._faiss: Any = None
        self._reader: _RowReader | None = None

    # -- properties ------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._count

    @property
    def n_entities(self) -> int:
        return self._n_entities

    def __repr__(self) -> str:
        return (
            f"DenseIndex({str(self.path)!r}, model_id={self.model_id!r}, space={self.space!r}, dim={self.dim}, "
            f"vectors={self._count}, entities={self._n_entities}, backend={self.backend!r}, metric={self.metric!r})"
        )

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
        if backend not in BACKENDS:
            raise InputError(Errors.E225.format(backend=backend, backends=", ".join(BACKENDS)))
        if dtype not in ("auto", "float16", "float32"):
            raise InputError(Errors.E010.format(what="dtype", value=dtype, reason="expected 'auto', 'float16' or 'float32'"))
        if int(chunk_size) < 1:
            raise InputError(Errors.E010.format(what="chunk_size", value=chunk_size, reason="must be >= 1"))
        if out.exists() and not overwrite:
            raise InputError(Errors.E230.format(path=str(out)))
        ids_list = list(ids)
        n = len(ids_list)
        if n == 0:
            raise InputError(Errors.E235.format(shape=(0,), reason=" (no ids were given)"))
        keys_by_row = _encode_ids(ids_list)

        if backend == "auto":
            backend = "exact" if n <= int(auto_exact_max) else "ivfpq"
            log.info("backend 'auto' chose %r for %d vectors (auto_exact_max=%d)", backend, n, auto_exact_max)
        unknown = set(params) - set(DEFAULTS[backend])
        if unknown:
            name = sorted(unknown)[0]
            raise InputError(
                Errors.E231.format(
                    name=name, value=params[name], backend=backend,
                    reason=f"not a parameter of this backend (it takes: {', '.join(DEFAULTS[backend]) or 'none'})",
                )
            )
        full_params = {**DEFAULTS[backend], **params}
        if dtype == "auto":
            dtype = "float32" if backend == "exact" else "float16"

        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / f".{out.name}.building-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        try:
            dim = cls._write_vectors(tmp, vectors_or_chunks, n, metric, np.dtype(dtype), int(chunk_size), progress)
            entities, max_per = cls._write_ids(tmp, ids_list, keys_by_row)
            timings = {"vectors_s": round(time.perf_counter() - t0, 3)}
            if backend != "exact":
                full_params = cls._build_faiss(tmp, backend, metric, dim, n, full_params, int(chunk_size), progress, seed)
            timings["total_s"] = round(time.perf_counter() - t0, 3)
            meta = {
                "format_version": FORMAT_VERSION,
                "model_id": model_id,
                "space": space,
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
            if out.exists():
                old = out.parent / f".{out.name}.old-{os.getpid()}"
                out.rename(old)
                tmp.rename(out)
                shutil.rmtree(old)
            else:
                tmp.rename(out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log.info("built %s index of %d vectors (%d entities) in %.1f s at %s", backend, n, entities, timings["total_s"], out)
        return cls.open(out, expect_model_id=model_id)

    @staticmethod
    def _write_vectors(
        d: Path, source: Any, n: int, metric: str, dtype: np.dtype, chunk_size: int, progress: bool
    ) -> int:
        written = 0
        dim = -1
        path = d / "vectors.npy"
        with open(path, "wb") as fh, _progress(progress) as bar:
            task = bar.add_task("writing vectors", total=n)
            for chunk in _as_chunks(source, chunk_size):
                if chunk.ndim != 2 or chunk.shape[1] == 0 or not np.issubdtype(chunk.dtype, np.number):
                    raise InputError(Errors.E235.format(shape=chunk.shape, reason=f" (chunk at row {written})"))
                if dim < 0:
                    dim = int(chunk.shape[1])
                    _write_npy_header(fh, dtype, (n, dim))
                elif chunk.shape[1] != dim:
                    raise InputError(
                        Errors.E235.format(shape=chunk.shape, reason=f" (chunk at row {written} has D != {dim})")
                    )
                if written + chunk.shape[0] > n:
                    raise InputError(Errors.E228.format(n_ids=n, n_vectors=f"more than {n}"))
                for s in range(0, chunk.shape[0], chunk_size):
                    part = _normalise_rows(chunk[s : s + chunk_size], written, metric)
                    too_big = np.abs(part).max(axis=1) > np.finfo(dtype).max
                    if too_big.any():
                        r = int(np.flatnonzero(too_big)[0])
                        raise InputError(
                            Errors.E224.format(
                                row=written + r, metric=metric,
                                reason=f"its values overflow {dtype.name}; build with dtype='float32'",
                            )
                        )
                    fh.write(np.ascontiguousarray(part.astype(dtype)).tobytes())
                    written += part.shape[0]
                    bar.advance(task, part.shape[0])
        if written != n:
            raise InputError(Errors.E228.format(n_ids=n, n_vectors=written))
        return dim

    @staticmethod
    def _write_ids(d: Path, ids: list[str], keys_by_row: np.ndarray) -> tuple[int, int]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"id": pa.array(ids, type=pa.string())}), d / "ids.parquet")
        keys, row_entity = np.unique(keys_by_row, return_inverse=True)
        row_entity = row_entity.reshape(-1).astype(np.int32 if len(keys) < 2**31 else np.int64)
        counts = np.bincount(row_entity, minlength=len(keys)).astype(np.int64)
        offsets = np.zeros(len(keys) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        entity_rows = np.argsort(row_entity, kind="stable").astype(np.int64)
        np.save(d / "entity_keys.npy", keys)
        np.save(d / "row_entity.npy", row_entity)
        np.save(d / "entity_offsets.npy", offsets)
        np.save(d / "entity_rows.npy", entity_rows)
        return int(len(keys)), int(counts.max())

    @staticmethod
    def _build_faiss(
        d: Path, backend: str, metric: str, dim: int, n: int, params: dict[str, Any], chunk_size: int,
        progress: bool, seed: int,
    ) -> dict[str, Any]:
        import faiss

        vec = np.load(d / "vectors.npy", mmap_mode="r")
        reader = _RowReader(d / "vectors.npy", vec.dtype, n, dim, vec.offset)
        del vec  # only its header was needed
        fmetric = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
        train_size = int(params["train_size"])
        if train_size < 1:
            raise InputError(Errors.E231.format(name="train_size", value=train_size, backend=backend, reason="must be >= 1"))
        p = dict(params)
        if backend == "ivfpq":
            nlist = int(p["nlist"]) if p["nlist"] is not None else _auto_nlist(n)
            m = int(p["m"]) if p["m"] is not None else _auto_pq_m(dim)
            nbits = int(p["nbits"])
            if nlist < 1:
                raise InputError(Errors.E231.format(name="nlist", value=nlist, backend=backend, reason="must be >= 1"))
            if m < 1 or dim % m:
                raise InputError(Errors.E231.format(name="m", value=m, backend=backend, reason=f"must divide D={dim}"))
            if not 1 <= nbits <= 16:
                raise InputError(Errors.E231.format(name="nbits", value=nbits, backend=backend, reason="must be 1..16"))
            need = max(nlist, 2**nbits)
            if n < need or train_size < need:
                raise InputError(
                    Errors.E234.format(
                        backend=backend, n=min(n, train_size), need=need,
                        reason=f"k-means of nlist={nlist} lists and 2**nbits={2**nbits} PQ centroids",
                    )
                )
            p.update(nlist=nlist, m=m, nbits=nbits)
            quantizer = p["quantizer"]
            if quantizer == "auto":
                quantizer = "hnsw" if nlist >= 8192 else "flat"
            if quantizer not in ("flat", "hnsw"):
                raise InputError(
                    Errors.E231.format(name="quantizer", value=quantizer, backend=backend, reason="one of auto, flat, hnsw")
                )
            p["quantizer"] = quantizer
            refine = str(p["refine"])
            if refine not in ("vectors", "SQ8", "SQ6", "SQ4", "SQfp16"):
                raise InputError(
                    Errors.E231.format(name="refine", value=refine, backend=backend, reason="one of vectors, SQ8, SQ6, SQ4, SQfp16")
                )
            coarse = f"IVF{nlist}_HNSW32" if quantizer == "hnsw" else f"IVF{nlist}"
            factory = f"{'OPQ%d,' % m if p['opq'] else ''}{coarse},PQ{m}x{nbits}"
            if refine != "vectors":
                factory += f",Refine({refine})"
        else:
            hm = int(p["hnsw_m"])
            if hm < 2:
                raise InputError(Errors.E231.format(name="hnsw_m", value=hm, backend=backend, reason="must be >= 2"))
            storage = str(p["storage"])
            if not re.fullmatch(r"SQ8|SQ4|SQfp16|Flat|PQ\d+", storage):
                raise InputError(
                    Errors.E231.format(name="storage", value=storage, backend=backend, reason="one of SQ8, SQ4, SQfp16, Flat, PQ<m>")
                )
            if storage.startswith("PQ") and (int(storage[2:]) < 1 or dim % int(storage[2:])):
                raise InputError(Errors.E231.format(name="storage", value=storage, backend=backend, reason=f"m must divide D={dim}"))
            if storage.startswith("PQ") and n < 256:
                raise InputError(Errors.E234.format(backend=backend, n=n, need=256, reason="PQ needs 256 training points"))
            factory = f"HNSW{hm},{storage}" if storage != "Flat" else f"HNSW{hm},Flat"
        index = faiss.index_factory(dim, factory, fmetric)
        p["factory"] = factory

        # training sample: random rows, read in sorted order
        rng = np.random.default_rng(seed)
        n_train = min(n, train_size)
        rows = np.sort(rng.choice(n, size=n_train, replace=False)) if n_train < n else np.arange(n)
        train = np.empty((n_train, dim), dtype=np.float32)
        try:
            for s in range(0, n_train, chunk_size):
                train[s : s + chunk_size] = reader.take(rows[s : s + chunk_size])
        finally:
            reader.close()
        if backend == "ivfpq":
            ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
            ivf.cp.niter = int(p["kmeans_iters"])
            ivf.cp.seed = seed
            ivf.pq.cp.seed = seed
            # index_factory turns on polysemous training (a Hamming-order permutation of the
            # PQ codes, used only by polysemous search): it costs minutes and we never use it.
            ivf.do_polysemous_training = False
            if p["quantizer"] == "hnsw":
                # efSearch 16 while adding: the same speed as a flat BLAS assignment and 99.7%
                # the same list (measured at nlist=8192, 512-d; efSearch 128 made adding 5x slower)
                faiss.downcast_index(ivf.quantizer).hnsw.efSearch = 16
        elif backend == "hnsw":
            faiss.downcast_index(index).hnsw.efConstruction = int(p["ef_construction"])
        t = time.perf_counter()
        if not index.is_trained:
            index.train(train)
        p["train_s"] = round(time.perf_counter() - t, 3)
        del train
        t = time.perf_counter()
        with _progress(progress) as bar:
            task = bar.add_task(f"adding to {backend}", total=n)
            for _, block in reader.blocks(chunk_size):
                index.add(block)
                bar.advance(task, len(block))
        p["add_s"] = round(time.perf_counter() - t, 3)
        if backend == "ivfpq" and p["quantizer"] == "hnsw":
            qef = int(p["quantizer_ef_search"])
            if qef < 1:
                raise InputError(Errors.E231.format(name="quantizer_ef_search", value=qef, backend=backend, reason="must be >= 1"))
            faiss.downcast_index(faiss.extract_index_ivf(index).quantizer).hnsw.efSearch = qef
        if index.ntotal != n:
            raise IndexError_(Errors.E221.format(path=str(d), reason=f"FAISS holds {index.ntotal} vectors, expected {n}"))
        faiss.write_index(index, str(d / "faiss.index"))
        return p

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | Path,
        expect_model_id: str | None = None,
        *,
        expect_space: str | None = None,
        corpus_chunk_size: int = 65_536,
        mmap: bool = True,
    ) -> "DenseIndex":
        """Open the index at ``path``.

        Args:
            expect_model_id: the model whose vectors the caller will compare with; a
                different stored model raises :class:`IndexError_` E222.
            expect_space: likewise for the space (E232).
            corpus_chunk_size: rows scored at a time by exact scans; the scan's working memory
                is about ``Q * corpus_chunk_size * 4`` bytes plus one chunk as float32.
            mmap: read the FAISS file with ``IO_FLAG_MMAP`` (its codes stay in the page cache
                and are paged in as lists are probed) instead of loading it into RAM.
        """
        d = Path(path)
        meta_path = d / "meta.json"
        if not d.is_dir():
            raise IndexError_(Errors.E220.format(path=str(d), reason="the directory does not exist"))
        if not meta_path.is_file():
            raise IndexError_(Errors.E220.format(path=str(d), reason="it has no meta.json"))
        try:
            meta = json.loads(meta_path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise IndexError_(Errors.E221.format(path=str(d), reason=f"meta.json cannot be read ({exc})")) from exc
        need = ("format_version", "model_id", "space", "dim", "metric", "count", "entities", "backend", "dtype",
                "max_vectors_per_entity")
        missing = [k for k in need if k not in meta]
        if missing:
            raise IndexError_(Errors.E221.format(path=str(d), reason=f"meta.json lacks {missing}"))
        if meta["format_version"] != FORMAT_VERSION:
            raise IndexError_(
                Errors.E221.format(path=str(d), reason=f"format version {meta['format_version']}, this pixlink reads {FORMAT_VERSION}")
            )
        if expect_model_id is not None and meta["model_id"] != expect_model_id:
            raise IndexError_(Errors.E222.format(path=str(d), found=meta["model_id"], expected=expect_model_id))
        if expect_space is not None and meta["space"] != expect_space:
            raise IndexError_(Errors.E232.format(path=str(d), found=meta["space"], expected=expect_space))
        if int(corpus_chunk_size) < 1:
            raise InputError(Errors.E010.format(what="corpus_chunk_size", value=corpus_chunk_size, reason="must be >= 1"))
        self = cls(d, meta, corpus_chunk_size)
        n, dim = self._count, self.dim
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
        self._reader = _RowReader(d / "vectors.npy", self._vectors.dtype, n, dim, self._vectors.offset)
        if self.backend != "exact":
            import faiss

            fpath = d / "faiss.index"
            if not fpath.is_file():
                raise IndexError_(Errors.E221.format(path=str(d), reason="faiss.index is missing"))
            try:
                # IO_FLAG_MMAP_IFC (FAISS >= 1.10) maps inverted lists and flat codes (the SQ
                # refine copy); the older IO_FLAG_MMAP maps inverted lists only
                flag = getattr(faiss, "IO_FLAG_MMAP_IFC", faiss.IO_FLAG_MMAP) if mmap else 0
                self._faiss = faiss.read_index(str(fpath), flag)
            except RuntimeError as exc:
                raise IndexError_(Errors.E221.format(path=str(d), reason=f"faiss.index cannot be read ({exc})")) from exc
            if self._faiss.ntotal != n or self._faiss.d != dim:
                raise IndexError_(
                    Errors.E221.format(
                        path=str(d), reason=f"faiss.index holds {self._faiss.ntotal} x {self._faiss.d}, meta says {n} x {dim}"
                    )
                )
        return self

    # -- queries ---------------------------------------------------------------------------
    def _check_queries(self, queries: Any) -> np.ndarray:
        q = np.asarray(queries)
        if q.ndim != 2 or q.shape[1] != self.dim or q.shape[0] == 0 or not np.issubdtype(q.dtype, np.number):
            hint = " (for one query pass q[None, :])" if q.ndim == 1 else ""
            raise InputError(Errors.E223.format(shape=q.shape, dtype=q.dtype, dim=self.dim, reason=hint))
        return np.ascontiguousarray(_normalise_rows(q, 0, self.metric, what="query"))

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
            reader = _RowReader(self.path / "vectors.npy", self._vectors.dtype, self._count, self.dim, self._vectors.offset)
            blocks = reader.blocks(self.corpus_chunk_size)
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

    def _approx(self, q: np.ndarray, m: int, knobs: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """FAISS candidates (re-ranked by SQ codes when the index has them) then exact
        re-rank: ``(scores (Q, m), rows (Q, m), exhausted (Q,))``;
        rows of -1 (score -inf) pad queries with fewer candidates; ``exhausted[i]`` is True
        when FAISS returned fewer candidates than asked (asking for more will not help)."""
        import faiss

        k_factor = int(knobs["k_factor"])
        n_cand = min(self._count, max(m, m * k_factor))
        if self.backend == "ivfpq" and self.params.get("refine", "vectors") != "vectors":
            # FAISS re-ranks m * k_factor PQ candidates with the SQ codes and returns the best
            # 2m; those get exact scores below
            n_cand = min(self._count, 2 * m)
            params = faiss.IndexRefineSearchParameters(
                k_factor=max(1.0, m * k_factor / n_cand), base_index_params=faiss.SearchParametersIVF(nprobe=int(knobs["nprobe"]))
            )
        elif self.backend == "ivfpq":
            params = faiss.SearchParametersIVF(nprobe=int(knobs["nprobe"]))
        else:
            params = faiss.SearchParametersHNSW(efSearch=max(int(knobs["ef_search"]), n_cand))
        _, cand = self._faiss.search(q, n_cand, params=params)
        nq = q.shape[0]
        out_s = np.full((nq, m), -np.inf, dtype=np.float32)
        out_r = np.full((nq, m), -1, dtype=np.int64)
        exhausted = np.zeros(nq, dtype=bool)
        for i in range(nq):
            rows = cand[i][cand[i] >= 0]
            exhausted[i] = len(rows) < n_cand
            if not len(rows):
                continue
            rows = np.sort(rows)
            s = self._score_rows(q[i : i + 1], self._take(rows))[0]
            top = np.argsort(-s, kind="stable")[:m]
            out_s[i, : len(top)] = s[top]
            out_r[i, : len(top)] = rows[top]
        return out_s, out_r, exhausted

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
        """Release the file handle (the index is also released when garbage-collected)."""
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
                (ivfpq), ``ef_search``, ``k_factor`` (hnsw).

        Returns:
            ``(scores, ids)``: ``scores`` ``(Q, min(k, n_entities))`` float32 best first (see
            the module doc for the score of each metric), ``-inf`` where a query has fewer
            hits; ``ids[i]`` the entity ids of query i's hits, in the same order. Each entity
            appears once, with the best score of its vectors. Approximate backends return
            fewer than k hits only when the probed lists hold fewer entities (raise nprobe).
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InputError(Errors.E233.format(k=k))
        bad = set(knobs) - SEARCH_KNOBS
        if bad:
            name = sorted(bad)[0]
            raise InputError(
                Errors.E231.format(name=name, value=knobs[name], backend=self.backend,
                                   reason=f"not a search knob (knobs: {', '.join(sorted(SEARCH_KNOBS))})")
            )
        q = self._check_queries(queries)
        k_eff = int(min(k, self._n_entities))
        use_exact = exact or self.backend == "exact"
        eff = {**self.params, **knobs}
        if not use_exact:
            for name in ("k_factor", "nprobe" if self.backend == "ivfpq" else "ef_search"):
                v = eff.get(name)
                if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                    raise InputError(Errors.E231.format(name=name, value=v, backend=self.backend, reason="must be an integer >= 1"))
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
            if use_exact:
                s, r = self._scan(q[todo], m)
                exhausted = np.full(len(todo), m >= self._count)
            else:
                s, r, exhausted = self._approx(q[todo], m, eff)
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
        cands = list(candidate_ids)
        if cands and not isinstance(cands[0], str):
            if len(cands) != nq:
                raise InputError(
                    Errors.E010.format(what="candidate_ids", value=f"<{len(cands)} lists>",
                                       reason=f"expected one list of ids, or one list per query ({nq})")
                )
            per_query = [list(c) for c in cands]
        else:
            per_query = [cands] * nq
        results: list[tuple[np.ndarray, list[str]]] = []
        cache: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
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
        width = k if k is not None else max((len(r[1]) for r in results), default=0)
        out = np.full((nq, width), -np.inf, dtype=np.float32)
        for i, (s, _) in enumerate(results):
            out[i, : len(s)] = s
        return out, [r[1] for r in results]
