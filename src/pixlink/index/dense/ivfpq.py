"""The IVF-PQ backend: FAISS IVF + PQ (optionally OPQ) codes, candidates re-ranked by
scalar-quantised copies kept in the FAISS file (``refine="SQ8"``, FAISS' IndexRefine), the
best ``2k`` of those scored exactly from ``vectors.npy``.

Working set: PQ codes (N * m bytes), ids (8 N), SQ8 codes (N * D bytes), centroids; all
memory-mapped. ``refine="vectors"`` drops the SQ copy and re-ranks all ``k * k_factor``
candidates from ``vectors.npy`` (smaller index, but fast only while that file is cached).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from ...errors import Errors, InputError
from . import approx
from .approx import FaissIndex

REFINES = ("vectors", "SQ8", "SQ6", "SQ4", "SQfp16")


def auto_nlist(n: int) -> int:
    """4 * sqrt(n) rounded to a power of two, at most n / 39 (FAISS wants 39 points a list)."""
    target = 4.0 * math.sqrt(n)
    nlist = 2 ** max(0, int(round(math.log2(max(target, 1.0)))))
    return int(max(1, min(nlist, n // 39 if n >= 39 else 1)))


def auto_pq_m(dim: int) -> int:
    """The largest divisor of ``dim`` that is <= dim / 8 (PQ sub-quantizers)."""
    cap = max(1, dim // 8)
    for m in range(cap, 0, -1):
        if dim % m == 0:
            return m
    return 1


class IVFPQIndex(FaissIndex):
    """FAISS ``[OPQ,]IVF<nlist>[_HNSW32],PQ<m>x<nbits>[,Refine(SQ8)]``; search knobs
    ``nprobe`` and ``k_factor``."""

    kind: ClassVar[str] = "ivfpq"
    search_knobs: ClassVar[tuple[str, ...]] = ("k_factor", "nprobe")
    defaults: ClassVar[dict[str, Any]] = {
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
    }

    @classmethod
    def _factory(cls, p: dict[str, Any], dim: int, n: int, train_size: int) -> str:
        backend = cls.kind
        nlist = int(p["nlist"]) if p["nlist"] is not None else auto_nlist(n)
        m = int(p["m"]) if p["m"] is not None else auto_pq_m(dim)
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
        if quantizer == "hnsw" and int(p["quantizer_ef_search"]) < 1:
            raise InputError(Errors.E231.format(name="quantizer_ef_search", value=p["quantizer_ef_search"], backend=backend,
                                                reason="must be >= 1"))
        refine = str(p["refine"])
        if refine not in REFINES:
            raise InputError(
                Errors.E231.format(name="refine", value=refine, backend=backend, reason=f"one of {', '.join(REFINES)}")
            )
        coarse = f"IVF{nlist}_HNSW32" if quantizer == "hnsw" else f"IVF{nlist}"
        factory = f"{'OPQ%d,' % m if p['opq'] else ''}{coarse},PQ{m}x{nbits}"
        if refine != "vectors":
            factory += f",Refine({refine})"
        return factory

    @classmethod
    def _before_training(cls, index: Any, p: dict[str, Any], seed: int) -> None:
        import faiss

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

    @classmethod
    def _after_adding(cls, index: Any, p: dict[str, Any]) -> None:
        import faiss

        if p["quantizer"] == "hnsw":
            faiss.downcast_index(faiss.extract_index_ivf(index).quantizer).hnsw.efSearch = int(p["quantizer_ef_search"])

    def _search_params(self, m: int, knobs: dict[str, Any]) -> tuple[int, Any]:
        import faiss

        k_factor = int(knobs["k_factor"])
        ivf = faiss.SearchParametersIVF(nprobe=int(knobs["nprobe"]))
        if self.params.get("refine", "vectors") != "vectors":
            # FAISS re-ranks m * k_factor PQ candidates with the SQ codes and returns the best
            # 2m; those get exact scores in _candidates
            n_cand = min(self._count, 2 * m)
            return n_cand, faiss.IndexRefineSearchParameters(k_factor=max(1.0, m * k_factor / n_cand), base_index_params=ivf)
        return min(self._count, max(m, m * k_factor)), ivf

    def _to_gpu(self, index: Any, ordinal: int) -> tuple[Any, tuple[Any, ...]]:
        """FAISS has no GPU IndexRefine: the IVF-PQ part goes to the GPU and a new
        IndexRefine over it keeps the SQ refine codes on the CPU."""
        import faiss

        top = faiss.downcast_index(index)
        if not isinstance(top, faiss.IndexRefine):
            gpu, res = approx.index_to_gpu(index, ordinal)
            return gpu, (res,)
        base_gpu, res = approx.index_to_gpu(top.base_index, ordinal)
        refine = faiss.IndexRefine(base_gpu, top.refine_index)
        refine.k_factor = top.k_factor
        return refine, (top, base_gpu, res)
