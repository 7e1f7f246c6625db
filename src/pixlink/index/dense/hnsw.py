"""The HNSW backend: a FAISS HNSW graph over scalar-quantised codes (``storage``, default
``SQ8``), candidates re-scored exactly from ``vectors.npy``. Fast to query, slow to build;
for KBs up to a few million vectors. CPU only (FAISS has no GPU HNSW).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from ...errors import Errors, InputError
from .approx import FaissIndex


class HNSWIndex(FaissIndex):
    """FAISS ``HNSW<hnsw_m>,<storage>``; search knobs ``ef_search`` and ``k_factor``."""

    kind: ClassVar[str] = "hnsw"
    search_knobs: ClassVar[tuple[str, ...]] = ("k_factor", "ef_search")
    gpu_unsupported: ClassVar[str | None] = "FAISS has no GPU version of HNSW"
    defaults: ClassVar[dict[str, Any]] = {
        "hnsw_m": 32,
        "ef_construction": 80,
        "storage": "SQ8",  # FAISS codes kept in RAM: SQ8, SQfp16, Flat, or PQ<m>
        "train_size": 262_144,
        "ef_search": 128,
        "k_factor": 4,
    }

    @classmethod
    def _factory(cls, p: dict[str, Any], dim: int, n: int, train_size: int) -> str:
        backend = cls.kind
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
        return f"HNSW{hm},{storage}"

    @classmethod
    def _before_training(cls, index: Any, p: dict[str, Any], seed: int) -> None:
        import faiss

        faiss.downcast_index(index).hnsw.efConstruction = int(p["ef_construction"])

    def _search_params(self, m: int, knobs: dict[str, Any]) -> tuple[int, Any]:
        import faiss

        n_cand = min(self._count, max(m, m * int(knobs["k_factor"])))
        return n_cand, faiss.SearchParametersHNSW(efSearch=max(int(knobs["ef_search"]), n_cand))
