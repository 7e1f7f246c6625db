"""Building a local-feature store, resumably (see :mod:`pixlink.index.local`).

:class:`LocalStoreWriter` receives the features of one KB image at a time and writes them in
*parts* to a staging folder next to the final one (``KBDIR/local_features/.<slug>.building``).
A part is committed by writing its JSON last (atomically), so a run that is stopped loses at
most the images of the part in progress; started again with the same model, KB build and
parameters, it skips the images already committed (:meth:`LocalStoreWriter.done`). Any other
staging folder is an earlier, different build: it is discarded (with a warning).

:meth:`LocalStoreWriter.finish` then concatenates the parts into the final arrays (written
through memory maps: the descriptors never need to fit in memory at once), builds one FAISS
index over all descriptors and moves the result into place, replacing an older store.

FAISS index: ``flat`` (exact) up to ``exact_max`` descriptors, else IVF (``nlist`` lists,
trained on a sample of ``train_size`` descriptors) with 8-bit scalar codes (RootSIFT, float)
or a binary IVF (ORB).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import Errors, IndexError_, InputError
from ...log import get_logger
from .store import ARRAYS, FORMAT, FORMAT_VERSION, LocalFeatureStore, rootsift

log = get_logger(__name__)

INDEX_DEFAULTS = {"exact_max": 100_000, "nlist": None, "train_size": 100_000, "nprobe": 16, "seed": 0}
"""FAISS knobs of :meth:`LocalStoreWriter.finish` (``nlist`` None = ``4 * sqrt(N)``, a power of 2)."""


class LocalStoreWriter:
    """Write the local features of a KB's images into a store at ``out_dir``, resumably.

    Args:
        out_dir: the final folder (``local_dir(kb_dir, model_id)``).
        model_id: the extractor's ``model_id``.
        kind: ``"float"`` (SIFT bins) or ``"binary"`` (packed bits).
        dim: bytes per descriptor row (128 for SIFT, 32 for ORB).
        kb_build_id: the KB build the images come from.
        params: the KB-side settings (features per image...): a staging folder made with other
            settings is not resumed.
        part_size: images per committed part.
        thumb_side: longer side of the stored thumbnails.
    """

    def __init__(self, out_dir: str | Path, *, model_id: str, kind: str, dim: int, kb_build_id: str | None,
                 params: dict[str, Any] | None = None, part_size: int = 256, thumb_side: int = 64) -> None:
        if kind not in ("float", "binary"):
            raise InputError(Errors.E264.format(what="kind", value=kind, reason="'float' or 'binary'"))
        if isinstance(part_size, bool) or not isinstance(part_size, int) or part_size < 1:
            raise InputError(Errors.E264.format(what="part_size", value=part_size, reason="an integer >= 1"))
        if isinstance(thumb_side, bool) or not isinstance(thumb_side, int) or not 8 <= thumb_side <= 512:
            raise InputError(Errors.E264.format(what="thumb_side", value=thumb_side, reason="an integer in [8, 512]"))
        self.out_dir = Path(out_dir)
        self.staging = self.out_dir.parent / f".{self.out_dir.name}.building"
        self.header = {"format": FORMAT, "format_version": FORMAT_VERSION, "model_id": model_id, "kind": kind,
                       "dim": int(dim), "kb_build_id": kb_build_id, "params": dict(params or {}),
                       "thumb_side": int(thumb_side)}
        self.part_size = int(part_size)
        self.thumb_side = int(thumb_side)
        self._done: set[tuple[str, str]] = set()
        self._parts: list[Path] = []
        self._buf: list[tuple[str, str, Any, np.ndarray]] = []
        self._errors: list[dict[str, Any]] = []
        self.resumed = 0
        self._open_staging()

    # -- staging ---------------------------------------------------------------------------
    def _open_staging(self) -> None:
        head = self.staging / "header.json"
        if head.is_file():
            try:
                old = json.loads(head.read_text("utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                old = None
            if old == self.header:
                for pj in sorted(self.staging.glob("part_*.json")):
                    try:
                        rec = json.loads(pj.read_text("utf-8"))
                    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                        log.warning("local features: part %s cannot be read (%s); its images are done again", pj, exc)
                        continue
                    if not all((self.staging / f"{pj.stem}.{a}.npy").is_file() for a in ARRAYS if a != "owner"):
                        continue
                    self._parts.append(pj)
                    for r in rec["images"]:
                        self._done.add((r["entity_id"], r["ref"]))
                    for e in rec.get("errors", []):
                        self._done.add((e["entity_id"], e["ref"]))
                        self._errors.append(e)
                self.resumed = len(self._done)
                if self.resumed:
                    log.info("local features: resuming %s (%d images already done)", self.staging, self.resumed)
                return
            log.warning("local features: discarding %s, an unfinished build with other settings", self.staging)
        if self.staging.exists():
            shutil.rmtree(self.staging)
        self.staging.mkdir(parents=True)
        _write_json(head, self.header)

    def done(self) -> set[tuple[str, str]]:
        """``(entity_id, ref)`` of the images already committed (with features or an error)."""
        return set(self._done)

    @property
    def errors(self) -> list[dict[str, Any]]:
        return list(self._errors)

    # -- adding ----------------------------------------------------------------------------
    def add(self, entity_id: str, ref: str, features: Any, thumb: np.ndarray) -> None:
        """Add one image's features (:class:`~pixlink.models.roles.LocalFeatures`, in the image's
        pixels) and its thumbnail ``(th, tw, 4)`` uint8 (RGB + support, longer side <= ``thumb_side``)."""
        th = np.asarray(thumb)
        if th.ndim != 3 or th.shape[2] != 4 or th.dtype != np.uint8 or max(th.shape[:2]) > self.thumb_side:
            raise InputError(Errors.E264.format(what="thumbnail", value=f"shape {th.shape}, dtype {th.dtype}",
                                                reason=f"(h, w, 4) uint8 with a side <= {self.thumb_side}"))
        if features.descriptors.shape[1:] != (self.header["dim"],) or features.kind != self.header["kind"]:
            raise InputError(Errors.E264.format(what="descriptors", value=f"{features.kind} {features.descriptors.shape}",
                                                reason=f"{self.header['kind']} (n, {self.header['dim']})"))
        self._buf.append((entity_id, ref, features, th))
        self._done.add((entity_id, ref))
        if len(self._buf) >= self.part_size:
            self.flush()

    def add_error(self, entity_id: str, ref: str, error: str, code: str | None = None) -> None:
        """Record an image that gave no features (unreadable...); it is reported, not retried on resume."""
        self._errors.append({"entity_id": entity_id, "ref": ref, "error": error, "code": code, "pending": True})
        self._done.add((entity_id, ref))

    def flush(self) -> None:
        """Commit the buffered images (and errors) as one part."""
        pending = [e for e in self._errors if e.get("pending")]
        if not self._buf and not pending:
            return
        name = f"part_{len(self._parts):05d}"
        T = self.thumb_side
        n = sum(len(f) for _, _, f, _ in self._buf)
        kp = np.zeros((n, 4), np.float32)
        desc = np.zeros((n, self.header["dim"]), np.uint8)
        col = np.zeros((n, 3), np.uint8)
        thumbs = np.zeros((len(self._buf), T, T, 4), np.uint8)
        rows, at = [], 0
        for j, (eid, ref, f, th) in enumerate(self._buf):
            m = len(f)
            kp[at:at + m, :2], kp[at:at + m, 2], kp[at:at + m, 3] = f.xy, f.size, f.angle
            desc[at:at + m], col[at:at + m] = f.descriptors, f.colour
            thumbs[j, : th.shape[0], : th.shape[1]] = th
            h, w = f.image_size
            rows.append({"entity_id": eid, "ref": ref, "height": int(h), "width": int(w), "count": int(m),
                         "thumb_h": int(th.shape[0]), "thumb_w": int(th.shape[1])})
            at += m
        for a, arr in (("keypoints", kp), ("descriptors", desc), ("colours", col), ("thumbs", thumbs)):
            tmp = self.staging / f".{name}.{a}.npy"
            np.save(tmp, arr)
            os.replace(tmp, self.staging / f"{name}.{a}.npy")
        for e in pending:
            e.pop("pending", None)
        _write_json(self.staging / f"{name}.json", {"images": rows, "errors": pending})
        self._parts.append(self.staging / f"{name}.json")
        self._buf = []

    # -- finishing -------------------------------------------------------------------------
    def finish(self, index_params: dict[str, Any] | None = None, progress: bool = False) -> LocalFeatureStore:
        """Concatenate the parts, build the FAISS index, move the store into place and open it.

        ``index_params``: see :data:`INDEX_DEFAULTS`. Raises E265 when no image gave features."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.flush()
        p = {**INDEX_DEFAULTS, **(index_params or {})}
        unknown = sorted(set(p) - set(INDEX_DEFAULTS))
        if unknown:
            raise InputError(Errors.E264.format(what="index parameters", value=unknown, reason=f"known: {sorted(INDEX_DEFAULTS)}"))
        records = [json.loads(pj.read_text("utf-8")) for pj in self._parts]
        images = [r for rec in records for r in rec["images"]]
        n = sum(r["count"] for r in images)
        if n == 0:
            raise IndexError_(Errors.E265.format(path=str(self.out_dir), images=len(images), errors=len(self._errors)))
        t0 = time.perf_counter()
        final = self.staging / "final"
        if final.exists():
            shutil.rmtree(final)
        final.mkdir()
        T, dim = self.thumb_side, self.header["dim"]
        out = {
            "keypoints": np.lib.format.open_memmap(final / "keypoints.npy", "w+", np.float32, (n, 4)),
            "descriptors": np.lib.format.open_memmap(final / "descriptors.npy", "w+", np.uint8, (n, dim)),
            "colours": np.lib.format.open_memmap(final / "colours.npy", "w+", np.uint8, (n, 3)),
            "owner": np.lib.format.open_memmap(final / "owner.npy", "w+", np.int32, (n,)),
            "thumbs": np.lib.format.open_memmap(final / "thumbs.npy", "w+", np.uint8, (len(images), T, T, 4)),
        }
        at, img_at, starts = 0, 0, []
        for pj, rec in zip(self._parts, records):
            parts = {a: np.load(self.staging / f"{pj.stem}.{a}.npy", mmap_mode="r") for a in ARRAYS if a != "owner"}
            m = len(parts["keypoints"])
            for a in ("keypoints", "descriptors", "colours"):
                out[a][at:at + m] = parts[a]
            k = len(rec["images"])
            out["thumbs"][img_at:img_at + k] = parts["thumbs"]
            for j, r in enumerate(rec["images"]):
                out["owner"][at:at + r["count"]] = img_at + j
                starts.append(at)
                at += r["count"]
            img_at += k
        for arr in out.values():
            arr.flush()
        del out
        table = pa.table({
            "entity_id": [r["entity_id"] for r in images], "ref": [r["ref"] for r in images],
            "height": pa.array([r["height"] for r in images], pa.int32()),
            "width": pa.array([r["width"] for r in images], pa.int32()),
            "start": pa.array(starts, pa.int64()), "count": pa.array([r["count"] for r in images], pa.int32()),
            "thumb_h": pa.array([r["thumb_h"] for r in images], pa.int16()),
            "thumb_w": pa.array([r["thumb_w"] for r in images], pa.int16()),
        })
        pq.write_table(table, final / "images.parquet")
        concat_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        index_meta = _build_faiss(final, self.header["kind"], dim, n, p, progress)
        index_meta["build_s"] = round(time.perf_counter() - t1, 3)
        meta = {**self.header, "n_images": len(images), "n_features": int(n),
                "entities": len({r["entity_id"] for r in images}), "errors": len(self._errors),
                "index": index_meta, "concat_s": round(concat_s, 3),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        _write_json(final / "meta.json", meta)
        _write_json(final / "errors.json", self._errors)
        # swap into place: the old store (if any) goes only once the new one is complete
        old = self.out_dir.parent / f".{self.out_dir.name}.old"
        if old.exists():
            shutil.rmtree(old)
        if self.out_dir.exists():
            os.replace(self.out_dir, old)
        os.replace(final, self.out_dir)
        shutil.rmtree(self.staging, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
        return LocalFeatureStore.open(self.out_dir)


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n", "utf-8")
    os.replace(tmp, path)


def _nlist(n: int, given: int | None) -> int:
    if given is not None:
        if isinstance(given, bool) or not isinstance(given, int) or given < 1:
            raise InputError(Errors.E264.format(what="nlist", value=given, reason="an integer >= 1"))
        return given
    return int(min(65536, max(64, 2 ** round(math.log2(4 * math.sqrt(n))))))


def _build_faiss(d: Path, kind: str, dim: int, n: int, p: dict[str, Any], progress: bool) -> dict[str, Any]:
    """Write ``d/faiss.index`` over ``d/descriptors.npy``; returns what meta.json records."""
    import faiss

    from ...progress import progress as make_progress

    desc = np.load(d / "descriptors.npy", mmap_mode="r")
    chunk = 65536
    flat = n <= int(p["exact_max"])
    nlist = 0 if flat else min(_nlist(n, p["nlist"]), max(1, n // 39))
    if kind == "float":
        index = faiss.IndexFlatL2(dim) if flat else faiss.index_factory(dim, f"IVF{nlist},SQ8", faiss.METRIC_L2)
    else:
        bits = dim * 8
        if flat:
            index = faiss.IndexBinaryFlat(bits)
        else:
            index = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(bits), bits, nlist)
    vec = (lambda a: rootsift(a)) if kind == "float" else (lambda a: np.ascontiguousarray(a, dtype=np.uint8))
    train_s = 0.0
    if not flat:
        rng = np.random.default_rng(int(p["seed"]))
        m = min(n, int(p["train_size"]))
        rows = np.sort(rng.choice(n, size=m, replace=False)) if m < n else np.arange(n)
        t = time.perf_counter()
        index.train(vec(desc[rows]))
        train_s = time.perf_counter() - t
    with make_progress(disable=not progress) as bar:
        task = bar.add_task("indexing local features", total=n, rate="")
        for s in range(0, n, chunk):
            index.add(vec(desc[s:s + chunk]))
            bar.advance(task, min(chunk, n - s))
    if kind == "float":
        faiss.write_index(index, str(d / "faiss.index"))
    else:
        faiss.write_index_binary(index, str(d / "faiss.index"))
    return {"type": "flat" if flat else "ivf", "nlist": nlist, "nprobe": int(p["nprobe"]),
            "codes": None if flat or kind == "binary" else "SQ8", "train_s": round(train_s, 3),
            "train_size": 0 if flat else int(min(n, int(p["train_size"])))}
