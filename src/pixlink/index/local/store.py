"""The on-disk store of the KB's local features and its FAISS index (see :mod:`pixlink.index.local`).

:class:`LocalFeatureStore` opens a built store read-only: the arrays are memory-mapped (the
descriptors of a 10k-image KB stay on disk, in the page cache, not in the process's heap),
the image table is read once, and the FAISS index is read with ``IO_FLAG_MMAP`` when it is an
IVF index. One opened store can be shared by threads (searches are read-only).

Distances: for ``float`` stores (SIFT), descriptors are compared as RootSIFT vectors (unit L2
norm) and distances are Euclidean (0 = identical, sqrt(2) = orthogonal); for ``binary`` stores
(ORB) they are Hamming distances in bits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import Errors, IndexError_, InputError
from ...log import get_logger
from ..dense.layout import model_slug

log = get_logger(__name__)

FORMAT = "pixlink-local-features"
FORMAT_VERSION = 1
DIRNAME = "local_features"
"""Folder of the local-feature stores inside a KB directory (one sub-folder per model)."""
ARRAYS = ("keypoints", "descriptors", "colours", "owner", "thumbs")


def local_dir(kb_dir: str | Path, model_id: str) -> Path:
    """``KBDIR/local_features/<model-slug>/``: where the store of ``model_id`` lives (need not exist)."""
    return Path(kb_dir) / DIRNAME / model_slug(model_id)


def rootsift(desc: np.ndarray) -> np.ndarray:
    """RootSIFT of ``(N, 128)`` SIFT bins: L1-normalise, then the element-wise square root:
    ``(N, 128)`` float32 rows of unit L2 norm (all-zero rows stay zero)."""
    d = np.asarray(desc, dtype=np.float32)
    s = d.sum(axis=1, keepdims=True)
    return np.sqrt(d / np.maximum(s, 1e-7)).astype(np.float32)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(Na, Nb)`` Hamming distances (bits) between packed binary descriptors ``(Na, B)``, ``(Nb, B)`` uint8."""
    x = np.bitwise_xor(a[:, None, :], b[None, :, :])
    return _POPCOUNT[x].sum(axis=2, dtype=np.int32)


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


@dataclass(frozen=True)
class ImageRow:
    """One KB image of a store: row ``index``; its entity and reference; ``(height, width)``
    in pixels; its features are rows ``start .. start + count`` of the arrays; its thumbnail
    is ``thumbs[index, :thumb_h, :thumb_w]``."""

    index: int
    entity_id: str
    ref: str
    height: int
    width: int
    start: int
    count: int
    thumb_h: int
    thumb_w: int


class LocalFeatureStore:
    """A built store, opened read-only (use :meth:`open`)."""

    def __init__(self, path: Path, meta: dict[str, Any], table: dict[str, np.ndarray], arrays: dict[str, np.ndarray],
                 index: Any) -> None:
        self.path = path
        self.meta = meta
        self._table = table
        self._arrays = arrays
        self._index = index
        self._by_entity: dict[str, list[int]] = {}
        for i, e in enumerate(table["entity_id"].tolist()):
            self._by_entity.setdefault(e, []).append(i)

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, *, expect_model_id: str | None = None, expect_kb_build_id: str | None = None,
             mmap: bool = True) -> "LocalFeatureStore":
        """Open the store at ``path`` (a ``KBDIR/local_features/<slug>/`` folder).

        Args:
            expect_model_id: the extractor the caller will compare with; another model's store
                is refused (E262).
            expect_kb_build_id: the KB's build id; a store made from another build is refused
                (E263).
            mmap: memory-map the arrays and the FAISS file (else read them into memory).

        Raises:
            IndexError_: E260 (no store), E261 (damaged), E262, E263.
        """
        p = Path(path)
        meta_path = p / "meta.json"
        if not meta_path.is_file():
            raise IndexError_(Errors.E260.format(path=str(p), reason="it has no meta.json"))
        try:
            meta = json.loads(meta_path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise IndexError_(Errors.E261.format(path=str(p), reason=f"meta.json cannot be read ({exc})")) from exc
        if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
            raise IndexError_(Errors.E261.format(path=str(p), reason=f"meta.json is not {FORMAT} version {FORMAT_VERSION}"))
        if expect_model_id is not None and meta.get("model_id") != expect_model_id:
            raise IndexError_(Errors.E262.format(path=str(p), found=meta.get("model_id"), expected=expect_model_id))
        if expect_kb_build_id is not None and meta.get("kb_build_id") != expect_kb_build_id:
            found = f"KB build {meta['kb_build_id']!r}" if meta.get("kb_build_id") else "a KB whose build was not recorded"
            raise IndexError_(Errors.E263.format(path=str(p), found=found, expected=expect_kb_build_id))
        try:
            import pyarrow.parquet as pq

            t = pq.read_table(p / "images.parquet")
            table = {c: t.column(c).to_numpy(zero_copy_only=False) for c in t.column_names}
            arrays = {a: np.load(p / f"{a}.npy", mmap_mode="r" if mmap else None) for a in ARRAYS}
        except (OSError, ValueError, KeyError) as exc:
            raise IndexError_(Errors.E261.format(path=str(p), reason=f"{type(exc).__name__}: {exc}")) from exc
        n, n_img = int(meta["n_features"]), int(meta["n_images"])
        need = ("entity_id", "ref", "height", "width", "start", "count", "thumb_h", "thumb_w")
        if any(c not in table for c in need) or len(table["entity_id"]) != n_img:
            raise IndexError_(Errors.E261.format(path=str(p), reason=f"images.parquet does not hold {n_img} image rows"))
        shapes = {a: arrays[a].shape[0] for a in ARRAYS}
        if any(shapes[a] != n for a in ("keypoints", "descriptors", "colours", "owner")) or shapes["thumbs"] != n_img:
            raise IndexError_(Errors.E261.format(path=str(p), reason=f"array rows {shapes} do not match {n} features"))
        index = _read_faiss(p / "faiss.index", meta, mmap)
        if index.ntotal != n:
            raise IndexError_(Errors.E261.format(path=str(p), reason=f"faiss.index holds {index.ntotal} rows, meta says {n}"))
        return cls(p, meta, table, arrays, index)

    def close(self) -> None:
        self._arrays = {}
        self._index = None

    # -- what it holds ---------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        return str(self.meta["model_id"])

    @property
    def kind(self) -> str:
        return str(self.meta["kind"])

    @property
    def kb_build_id(self) -> str | None:
        return self.meta.get("kb_build_id")

    @property
    def n_images(self) -> int:
        return int(self.meta["n_images"])

    @property
    def n_features(self) -> int:
        return int(self.meta["n_features"])

    def entities(self) -> list[str]:
        """The entities that have at least one image in the store."""
        return list(self._by_entity)

    def items(self) -> set[tuple[str, str]]:
        """``(entity_id, image ref)`` of every stored image."""
        return set(zip(self._table["entity_id"].tolist(), self._table["ref"].tolist()))

    def images_of(self, entity_id: str) -> list[int]:
        """Image rows of ``entity_id`` (empty when it has none here)."""
        return list(self._by_entity.get(entity_id, ()))

    def image(self, i: int) -> ImageRow:
        t = self._table
        return ImageRow(index=int(i), entity_id=str(t["entity_id"][i]), ref=str(t["ref"][i]),
                        height=int(t["height"][i]), width=int(t["width"][i]), start=int(t["start"][i]),
                        count=int(t["count"][i]), thumb_h=int(t["thumb_h"][i]), thumb_w=int(t["thumb_w"][i]))

    def entity_of(self, i: int) -> str:
        return str(self._table["entity_id"][i])

    def counts(self) -> np.ndarray:
        """``(I,)`` int: features stored per image."""
        return np.asarray(self._table["count"], dtype=np.int64)

    def features(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Image ``i``'s features: ``(keypoints (n, 4) float32 [x, y, size, angle], descriptors
        (n, D) uint8, colours (n, 3) uint8)``, in the image's own pixels."""
        r = self.image(i)
        s = slice(r.start, r.start + r.count)
        return (np.asarray(self._arrays["keypoints"][s]), np.asarray(self._arrays["descriptors"][s]),
                np.asarray(self._arrays["colours"][s]))

    def thumb(self, i: int) -> np.ndarray:
        """Image ``i`` small: ``(th, tw, 4)`` uint8, RGB and its support (255 = the object)."""
        r = self.image(i)
        return np.asarray(self._arrays["thumbs"][i, : r.thumb_h, : r.thumb_w])

    # -- search ----------------------------------------------------------------------------
    def query_vectors(self, desc: np.ndarray) -> np.ndarray:
        """What the FAISS index compares: RootSIFT float32 rows (float stores) or the packed bits."""
        if self.kind == "float":
            return rootsift(desc)
        return np.ascontiguousarray(desc, dtype=np.uint8)

    def search(self, desc: np.ndarray, k: int, nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest stored descriptors of each query descriptor.

        Args:
            desc: ``(Q, D)`` uint8 descriptors of the store's kind.
            k: neighbours per query descriptor.
            nprobe: IVF lists visited (default: the store's ``nprobe``).

        Returns:
            ``(dist, rows)``: ``(Q, k)`` float32 distances (Euclidean between RootSIFT
            vectors, or Hamming bits) and ``(Q, k)`` int64 feature rows (``-1`` = none).
        """
        d = np.asarray(desc)
        if d.ndim != 2 or d.shape[1] != int(self.meta["dim"]) or d.dtype != np.uint8:
            raise InputError(Errors.E264.format(what="query descriptors", value=f"shape {d.shape}, dtype {d.dtype}",
                                                reason=f"expected (Q, {self.meta['dim']}) uint8"))
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InputError(Errors.E264.format(what="k", value=k, reason="an integer >= 1"))
        if len(d) == 0:
            return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
        q = self.query_vectors(d)
        if self.meta["index"]["type"] != "flat" and self.kind == "float":
            import faiss

            params = faiss.SearchParametersIVF(nprobe=int(nprobe or self.meta["index"]["nprobe"]))
            dist, rows = self._index.search(q, int(k), params=params)
        else:  # flat, or a binary IVF (its nprobe was set when it was opened)
            dist, rows = self._index.search(q, int(k))
        dist = np.asarray(dist, dtype=np.float32)
        if self.kind == "float":
            dist = np.sqrt(np.maximum(dist, 0.0))  # FAISS gives squared L2
        return dist, np.asarray(rows, dtype=np.int64)

    def vote(self, desc: np.ndarray, *, k: int = 10, max_dist: float, sigma: float, nprobe: int | None = None,
             burst: bool = True) -> np.ndarray:
        """Votes of a query's descriptors for the KB images: ``(I,)`` float32.

        Each query descriptor votes once for each image among its ``k`` nearest stored
        descriptors (with its nearest descriptor of that image), with weight
        ``exp(-(d / sigma)^2)`` when the distance ``d <= max_dist``. With ``burst`` a
        descriptor that votes for ``m`` images gives each ``1 / sqrt(m)`` of its weight (a
        generic descriptor, near many images, says little about any of them).
        """
        n_img = self.n_images
        dist, rows = self.search(desc, k, nprobe)
        ok = (rows >= 0) & (dist <= max_dist)
        if not ok.any():
            return np.zeros(n_img, np.float32)
        qi = np.nonzero(ok)[0]
        owner = np.asarray(self._arrays["owner"][rows[ok]], dtype=np.int64)
        d = dist[ok]
        # first occurrence of each (query, image) pair = its nearest descriptor (rows are sorted by distance)
        key = qi.astype(np.int64) * n_img + owner
        _, first = np.unique(key, return_index=True)
        qi, owner, d = qi[first], owner[first], d[first]
        w = np.exp(-((d / sigma) ** 2))
        if burst:
            per_q = np.bincount(qi, minlength=len(desc)).astype(np.float32)
            w = w / np.sqrt(np.maximum(per_q[qi], 1.0))
        return np.bincount(owner, weights=w, minlength=n_img).astype(np.float32)


    def spatial_votes(self, keypoints: np.ndarray, desc: np.ndarray, *, k: int = 10, max_dist: float, sigma: float,
                      nprobe: int | None = None, scale_bin: float = 1.0, angle_bin: float = 30.0,
                      location_bin: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
        """Votes of a query's descriptors for the KB images *that agree on a pose* (Lowe's
        Hough transform): ``(spatial (I,), plain (I,))`` float32.

        Every neighbour within ``max_dist`` (the nearest per query descriptor and image) is a
        correspondence, weighted ``exp(-(d / sigma)^2)``; with its two keypoints' scales and
        orientations it predicts where the KB image's centre falls in the query, at which
        scale and rotation. The predictions are binned — scale by factors of
        ``2 ** scale_bin``, rotation by ``angle_bin`` degrees, position by ``location_bin`` x
        the KB image's projected size — each into the two nearest bins of every dimension, and
        an image's spatial vote is the weight of its best bin: chance neighbours spread over
        many bins, an object's own features pile up in one. ``plain`` is the image's total weight.

        Args:
            keypoints: ``(Q, 4)`` float32 ``[x, y, size, angle]`` of the query's features.
            desc: ``(Q, D)`` uint8 descriptors.
        """
        n_img = self.n_images
        zero = np.zeros(n_img, np.float32)
        dist, rows = self.search(desc, k, nprobe)
        ok = (rows >= 0) & (dist <= max_dist)
        if not ok.any():
            return zero, zero.copy()
        qi = np.nonzero(ok)[0]
        r = rows[ok]
        owner = np.asarray(self._arrays["owner"][r], dtype=np.int64)
        d = dist[ok]
        key = qi.astype(np.int64) * n_img + owner
        _, first = np.unique(key, return_index=True)
        qi, r, owner, d = qi[first], r[first], owner[first], d[first]
        w = np.exp(-((d / sigma) ** 2)).astype(np.float64)
        plain = np.bincount(owner, weights=w, minlength=n_img).astype(np.float32)
        rk = np.asarray(self._arrays["keypoints"][np.sort(r)])[np.argsort(np.argsort(r))]
        qk = np.asarray(keypoints, dtype=np.float64)[qi]
        s = qk[:, 2] / np.maximum(rk[:, 2], 1e-6)
        ang = np.where(qk[:, 3] < 0, 0.0, qk[:, 3]) - np.where(rk[:, 3] < 0, 0.0, rk[:, 3])
        t = np.deg2rad(ang)
        W = np.asarray(self._table["width"], np.float64)[owner]
        H = np.asarray(self._table["height"], np.float64)[owner]
        vx, vy = W / 2 - rk[:, 0], H / 2 - rk[:, 1]
        cx = qk[:, 0] + s * (np.cos(t) * vx - np.sin(t) * vy)
        cy = qk[:, 1] + s * (np.sin(t) * vx + np.cos(t) * vy)
        span = np.maximum(location_bin * s * np.maximum(W, H), 1.0)
        dims = [np.log2(np.maximum(s, 1e-6)) / scale_bin, (ang % 360.0) / angle_bin, cx / span, cy / span]
        lo = [np.floor(x) for x in dims]
        other = [np.where(x - f >= 0.5, f + 1, f - 1) for x, f in zip(dims, lo)]
        n_ang = int(round(360.0 / angle_bin))
        best = np.zeros(n_img, np.float64)
        for m in range(16):
            b = [other[j] if (m >> j) & 1 else lo[j] for j in range(4)]
            bs = np.clip(b[0] + 32, 0, 63).astype(np.int64)
            ba = (b[1].astype(np.int64) % n_ang)
            bx = np.clip(b[2] + 512, 0, 1023).astype(np.int64)
            by = np.clip(b[3] + 512, 0, 1023).astype(np.int64)
            cell = (((owner * 64 + bs) * 64 + ba) * 1024 + bx) * 1024 + by
            u, inv = np.unique(cell, return_inverse=True)
            tot = np.bincount(inv, weights=w)
            img = u // (64 * 64 * 1024 * 1024)
            np.maximum.at(best, img, tot)
        return best.astype(np.float32), plain


def _read_faiss(path: Path, meta: dict[str, Any], mmap: bool) -> Any:
    import faiss

    if not path.is_file():
        raise IndexError_(Errors.E261.format(path=str(path.parent), reason="faiss.index is missing"))
    binary = meta.get("kind") == "binary"
    flat = meta.get("index", {}).get("type") == "flat"
    flag = faiss.IO_FLAG_MMAP if (mmap and not flat) else 0
    try:
        index = faiss.read_index_binary(str(path), flag) if binary else faiss.read_index(str(path), flag)
    except RuntimeError as exc:
        raise IndexError_(Errors.E261.format(path=str(path.parent), reason=f"faiss.index cannot be read ({exc})")) from exc
    if binary and not flat:
        index.nprobe = int(meta["index"]["nprobe"])
    return index
