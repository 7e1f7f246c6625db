"""The exact backend: a chunked matmul over ``vectors.npy`` with an argpartition top-k.

Working memory is ``O(Q * corpus_chunk_size)`` whatever N; no file beyond the shared ones.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ...device import requested_device
from .base import DenseIndex


class ExactIndex(DenseIndex):
    """Every query is scored against every stored vector (:meth:`DenseIndex._scan`)."""

    kind: ClassVar[str] = "exact"
    defaults: ClassVar[dict[str, Any]] = {}
    default_dtype: ClassVar[str] = "float32"  # the scan reads every row: no float16 conversion per query

    def _open_backend(self, *, mmap: bool, device: str | None) -> None:
        if device is not None and requested_device(device) != "cpu":
            self._note(f"device {device!r} is not used: the exact backend scans with numpy on the CPU")
