"""What the FAISS backends (IVF-PQ, HNSW) share: training and adding from ``vectors.npy``,
``faiss.index`` (FAISS' own file, read with ``IO_FLAG_MMAP``), candidates from FAISS re-scored
exactly from ``vectors.npy``, and the device the FAISS index searches on.

FAISS is imported only when an approximate index is built or opened. FAISS stays on the CPU
unless :meth:`DenseIndex.open` is given a ``device`` that resolves to CUDA and the installed
faiss has GPU support; :data:`faiss_gpu_count` and :data:`index_to_gpu` are the hooks tests
replace to fake a GPU machine.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np

from ...device import requested_device, resolve_device
from ...errors import Errors, IndexError_, InputError
from .base import DenseIndex
from .store import RowReader


def _faiss_gpu_count() -> int:
    import faiss

    get = getattr(faiss, "get_num_gpus", None)  # absent from some faiss-cpu builds
    return int(get()) if get is not None else 0


def _index_to_gpu(index: Any, ordinal: int) -> tuple[Any, Any]:
    """``index`` cloned onto GPU ``ordinal``: ``(gpu index, GPU resources to keep alive)``.
    Raises RuntimeError when FAISS has no GPU version of the index type."""
    import faiss

    res = faiss.StandardGpuResources()
    opts = faiss.GpuClonerOptions()
    opts.useFloat16 = True  # float16 lookup tables: needed for PQ codes of 56 bytes and more
    return faiss.index_cpu_to_gpu(res, ordinal, index, opts), res


faiss_gpu_count: Callable[[], int] = _faiss_gpu_count
"""How many GPUs the installed faiss can use (0 for faiss-cpu)."""
index_to_gpu: Callable[[Any, int], tuple[Any, Any]] = _index_to_gpu
"""Clone a CPU FAISS index onto a GPU (see :func:`_index_to_gpu`)."""


class FaissIndex(DenseIndex):
    """A FAISS index proposes candidate rows, whose exact scores come from ``vectors.npy``.

    Subclasses give the FAISS factory string (:meth:`_factory`), their training settings and
    the search parameters of a query (:meth:`_search_params`)."""

    approximate: ClassVar[bool] = True
    default_dtype: ClassVar[str] = "float16"  # only the re-ranked rows are read
    gpu_unsupported: ClassVar[str | None] = None
    """Why this backend cannot search on a GPU (``None``: it can)."""

    def __init__(self, path: Path, meta: dict[str, Any], corpus_chunk_size: int) -> None:
        super().__init__(path, meta, corpus_chunk_size)
        self._faiss: Any = None
        self._faiss_lock: Any = contextlib.nullcontext()  # a Lock once the index is on a GPU
        self._gpu_keep: tuple[Any, ...] = ()  # objects the GPU index needs alive

    # -- building --------------------------------------------------------------------------
    @classmethod
    def _factory(cls, p: dict[str, Any], dim: int, n: int, train_size: int) -> str:
        """Check the build knobs in ``p`` (filling in the automatic ones) and return the FAISS
        index_factory string."""
        raise NotImplementedError

    @classmethod
    def _before_training(cls, index: Any, p: dict[str, Any], seed: int) -> None:
        """Set training options on the fresh FAISS index."""

    @classmethod
    def _after_adding(cls, index: Any, p: dict[str, Any]) -> None:
        """Set search-time options stored in the FAISS file."""

    @classmethod
    def _build_backend(
        cls, d: Path, metric: str, dim: int, n: int, params: dict[str, Any], chunk_size: int, progress: bool,
        seed: int,
    ) -> dict[str, Any]:
        import faiss

        from ...progress import progress as make_progress  # rich: only when a bar is drawn

        vec = np.load(d / "vectors.npy", mmap_mode="r")
        reader = RowReader(d / "vectors.npy", vec.dtype, n, dim, vec.offset)
        del vec  # only its header was needed
        fmetric = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
        train_size = int(params["train_size"])
        if train_size < 1:
            raise InputError(Errors.E231.format(name="train_size", value=train_size, backend=cls.kind, reason="must be >= 1"))
        p = dict(params)
        factory = cls._factory(p, dim, n, train_size)
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
        cls._before_training(index, p, seed)
        t = time.perf_counter()
        if not index.is_trained:
            index.train(train)
        p["train_s"] = round(time.perf_counter() - t, 3)
        del train
        t = time.perf_counter()
        with make_progress(disable=not progress) as bar:
            task = bar.add_task(f"adding to {cls.kind}", total=n, rate="")
            for _, block in reader.blocks(chunk_size):
                index.add(block)
                bar.advance(task, len(block))
        p["add_s"] = round(time.perf_counter() - t, 3)
        cls._after_adding(index, p)
        if index.ntotal != n:
            raise IndexError_(Errors.E221.format(path=str(d), reason=f"FAISS holds {index.ntotal} vectors, expected {n}"))
        faiss.write_index(index, str(d / "faiss.index"))
        return p

    # -- opening ---------------------------------------------------------------------------
    def _open_backend(self, *, mmap: bool, device: str | None) -> None:
        import faiss

        d, n, dim = self.path, self._count, self.dim
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
        if device is not None:
            self._place(device)

    def _place(self, device: str) -> None:
        """Move the FAISS index to the GPU ``device`` resolves to, when it can go there;
        otherwise keep it on the CPU and note why. An explicit ``cuda`` / ``cuda:N`` that
        this machine does not have is an error (E013), as everywhere in pixlink."""
        if requested_device(device) == "cpu":
            return
        if self.gpu_unsupported:
            self._note(f"device {device!r} is not used: {self.gpu_unsupported}; the index stays on the CPU")
            return
        dev = resolve_device(device)
        if not dev.startswith("cuda"):
            self._note(f"device {device!r} resolved to {dev!r}; FAISS searches on CUDA GPUs only, so the index stays on the CPU")
            return
        gpus = faiss_gpu_count()
        if gpus < 1:
            self._note(
                f"device {dev!r} was asked for but the installed faiss has no GPU support (faiss-cpu); "
                "the index stays on the CPU (install a faiss GPU build to search on the GPU)"
            )
            return
        ordinal = int(dev.split(":", 1)[1]) if ":" in dev else 0
        if ordinal >= gpus:
            raise InputError(Errors.E013.format(device=dev, reason=f"faiss sees {gpus} GPU(s) (cuda:0..cuda:{gpus - 1})"))
        try:
            gpu_index, keep = self._to_gpu(self._faiss, ordinal)
        except RuntimeError as exc:  # FAISS: "This index type is not implemented on GPU", out of memory...
            self._note(f"FAISS could not put this {self.backend} index on {dev} ({exc}); it stays on the CPU")
            return
        self._gpu_keep = (self._faiss, *keep)
        self._faiss = gpu_index
        self._faiss_lock = threading.Lock()  # FAISS GPU indexes are not safe for concurrent calls
        self.device = f"cuda:{ordinal}"

    def _to_gpu(self, index: Any, ordinal: int) -> tuple[Any, tuple[Any, ...]]:
        """``(gpu index, objects to keep alive)`` for the CPU FAISS ``index``."""
        gpu, res = index_to_gpu(index, ordinal)
        return gpu, (res,)

    # -- queries ---------------------------------------------------------------------------
    def _search_params(self, m: int, knobs: dict[str, Any]) -> tuple[int, Any]:
        """``(candidates to ask FAISS for, its SearchParameters)`` for ``m`` rows a query."""
        raise NotImplementedError

    def _candidates(self, q: np.ndarray, m: int, knobs: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """FAISS candidates then exact re-rank from ``vectors.npy`` (see
        :meth:`DenseIndex._candidates`); ``exhausted[i]`` is True when FAISS returned fewer
        candidates than asked."""
        n_cand, params = self._search_params(m, knobs)
        with self._faiss_lock:
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
