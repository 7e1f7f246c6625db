"""The KB embedding cache: vectors computed in batches, with progress, kept on disk by
(model, item), resumable.

:func:`embed_items` takes ``(key, payload)`` items (an entity id and its text, an image key and
its path...) and an ``encode`` callable, and returns an :class:`EmbeddingStore` holding one
vector per good item. Vectors already in the cache for the same model, key and payload are
re-used; only the missing ones are encoded, so a run that was stopped (Ctrl-C, a crash, a
kill) picks up where it stopped when started again. A payload the encoder cannot read
(``encode`` raises :class:`~pixlink.errors.InputError`, e.g. an unreadable image) is isolated
by encoding its batch item by item and reported in :attr:`EmbeddingStore.errors`; the other
items go on. The same holds for any other :class:`~pixlink.errors.PixlinkError` about one item
(an oversized image a backend refuses...); only a broken encoder contract (E242) and a model
that cannot run at all (:class:`~pixlink.errors.ModelUnavailableError`) stop the run.

On disk, one directory per model::

    CACHE_DIR/<model-slug>/
        catalog.sqlite     table items(key, digest, shard, row): where each key's vector is,
                           and the fingerprint of the payload it was computed from
        shards/<name>.npy  (n, D) float32 or float16 blocks, append-only

A shard is written (and renamed into place) before the catalog rows that point at it are
committed, so a killed run loses at most the vectors not yet flushed (``flush_every``). A
changed payload (new label text, other image path) gets a new fingerprint and is encoded
again; the old vector stays in its shard unreferenced.

:func:`build_index_from_store` then writes a :class:`~pixlink.index.dense.DenseIndex`.
"""

from __future__ import annotations

import array
import hashlib
import json
import os
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from ..errors import Errors, IndexError_, InputError, ModelUnavailableError, PixlinkError
from ..log import get_logger
from ..types import Entity, ItemError
from .dense import DenseIndex, model_slug

log = get_logger(__name__)

CACHE_FORMAT = 1
_LOOKUP_GROUP = 512  # keys looked up in the catalog per query (below SQLite's variable limit)


# --------------------------------------------------------------------------------------------
# Keys and payloads
# --------------------------------------------------------------------------------------------


def image_key(entity_id: str, image_ref: str) -> str:
    """Cache key of one image of an entity: ``"<entity_id>\\t<image_ref>"``."""
    return f"{entity_id}\t{image_ref}"


def entity_of_key(key: str) -> str:
    """The entity id of a cache key: the part before the first tab (the whole key when it has
    none, as for text items keyed by entity id)."""
    return key.split("\t", 1)[0]


def entity_text(entity: Entity) -> str:
    """The text embedded for an entity: ``"label: description"`` (just the label when there
    is no description)."""
    return f"{entity.label}: {entity.description}" if entity.description else entity.label


def text_items(
    entities: Iterable[Entity], text: Callable[[Entity], str] = entity_text
) -> Iterator[tuple[str, str]]:
    """``(entity id, text)`` items for :func:`embed_items` (space ``"entity_text"``)."""
    for e in entities:
        yield e.id, text(e)


def image_items(entities: Iterable[Entity]) -> Iterator[tuple[str, str]]:
    """``(image_key(id, ref), ref)`` items, one per image of each entity (space
    ``"entity_image"``); the encoder resolves and reads ``ref``."""
    for e in entities:
        for ref in e.images:
            yield image_key(e.id, ref), ref


def fingerprint(payload: Any) -> str:
    """A short digest of a payload: str and bytes by content, paths by their string (not the
    file's bytes: an image rewritten in place under the same name keeps its fingerprint),
    numpy arrays by dtype, shape and bytes. Raises E245 for other types."""
    h = hashlib.blake2b(digest_size=12)
    if isinstance(payload, str):
        h.update(b"s")
        h.update(payload.encode("utf-8", "surrogatepass"))
    elif isinstance(payload, (bytes, bytearray, memoryview)):
        h.update(b"b")
        h.update(bytes(payload))
    elif isinstance(payload, os.PathLike):
        h.update(b"p")
        raw = os.fspath(payload)
        h.update(raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass"))
    elif isinstance(payload, np.ndarray):
        h.update(b"a")
        h.update(str((payload.dtype.str, payload.shape)).encode())
        h.update(np.ascontiguousarray(payload).tobytes())
    else:
        raise TypeError(type(payload).__name__)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------------


@dataclass
class EmbeddingStore:
    """Vectors of one model for a list of items, backed by the on-disk cache.

    Attributes:
        path: the model's cache directory.
        model_id: the model that made the vectors.
        dim: vector dimension D (0 when no vector exists).
        keys: keys of the items that have a vector, in input order (N keys).
        errors: the items that got no vector and why (input index, key, message, code).
        computed: vectors encoded by this run.
        reused: vectors found in the cache.
        duplicates: items skipped because their key came earlier in the input.
        notes: things the caller should know (e.g. duplicates), also logged.
    """

    path: Path
    model_id: str
    dim: int
    keys: list[str]
    shards: list[str]
    shard_of: np.ndarray  # (N,) int32 index into shards
    row_of: np.ndarray  # (N,) int64 row in that shard
    errors: list[ItemError] = field(default_factory=list)
    computed: int = 0
    reused: int = 0
    duplicates: int = 0
    notes: list[str] = field(default_factory=list)
    _mm: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    _pos: dict[str, int] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.keys)

    def _shard(self, i: int) -> np.ndarray:
        if i not in self._mm:
            p = self.path / "shards" / self.shards[i]
            try:
                self._mm[i] = np.load(p, mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise IndexError_(Errors.E241.format(path=str(self.path), reason=f"shard {p.name} cannot be read ({exc})")) from exc
        return self._mm[i]

    def vectors(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Vectors of ``keys[start:stop]``: ``(n, D)`` float32."""
        sh = self.shard_of[start:stop]
        rw = self.row_of[start:stop]
        out = np.empty((len(sh), self.dim), dtype=np.float32)
        for u in np.unique(sh):
            sel = sh == u
            rows = rw[sel]
            order = np.argsort(rows)
            block = np.asarray(self._shard(int(u))[rows[order]], dtype=np.float32)
            tmp = np.empty_like(block)
            tmp[order] = block
            out[sel] = tmp
        return out

    def iter_chunks(self, chunk_size: int = 65_536) -> Iterator[tuple[list[str], np.ndarray]]:
        """``(keys, (n, D) float32 vectors)`` blocks of at most ``chunk_size`` items, in order."""
        for s in range(0, len(self.keys), chunk_size):
            yield self.keys[s : s + chunk_size], self.vectors(s, s + chunk_size)

    def vector(self, key: str) -> np.ndarray:
        """The ``(D,)`` float32 vector of ``key`` (KeyError when it has none)."""
        if self._pos is None:
            self._pos = {k: i for i, k in enumerate(self.keys)}
        i = self._pos[key]
        return self.vectors(i, i + 1)[0]

    def report(self) -> dict[str, Any]:
        """A JSON-ready summary (counts, errors, notes)."""
        return {
            "model_id": self.model_id, "dim": self.dim, "vectors": len(self.keys), "computed": self.computed,
            "reused": self.reused, "duplicates": self.duplicates, "errors": [e.to_dict() for e in self.errors],
            "notes": self.notes,
        }


# --------------------------------------------------------------------------------------------
# The cache
# --------------------------------------------------------------------------------------------


def _open_catalog(mdir: Path, model_id: str) -> tuple[sqlite3.Connection, int]:
    """Open (creating) the catalog of a model directory; return it and the cached dim (0 if none)."""
    (mdir / "shards").mkdir(parents=True, exist_ok=True)
    path = mdir / "catalog.sqlite"
    try:
        con = sqlite3.connect(path, timeout=60)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        with con:
            con.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            con.execute(
                "CREATE TABLE IF NOT EXISTS items (key TEXT PRIMARY KEY, digest TEXT NOT NULL, "
                "shard TEXT NOT NULL, row INTEGER NOT NULL) WITHOUT ROWID"
            )
            con.execute("INSERT OR IGNORE INTO meta VALUES ('model_id', ?)", (model_id,))
            con.execute("INSERT OR IGNORE INTO meta VALUES ('format', ?)", (str(CACHE_FORMAT),))
            con.execute("INSERT OR IGNORE INTO meta VALUES ('dim', '0')")
        meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.DatabaseError as exc:
        raise IndexError_(Errors.E241.format(path=str(mdir), reason=f"catalog.sqlite: {exc}")) from exc
    if meta.get("model_id") != model_id:
        con.close()
        raise IndexError_(Errors.E240.format(path=str(mdir), found=meta.get("model_id"), expected=model_id))
    if meta.get("format") != str(CACHE_FORMAT):
        con.close()
        raise IndexError_(Errors.E241.format(path=str(mdir), reason=f"cache format {meta.get('format')}, expected {CACHE_FORMAT}"))
    return con, int(meta.get("dim", "0"))


def _stops_the_run(exc: PixlinkError) -> bool:
    """An encoder error that is not about one item: the encoder broke its contract (E242) or
    its model cannot run here (every item would fail the same way)."""
    return exc.code == "E242" or isinstance(exc, ModelUnavailableError)


class _Run:
    """State of one embed_items call."""

    def __init__(self, mdir: Path, con: sqlite3.Connection, model_id: str, dim: int, encode: Callable,
                 dtype: np.dtype, flush_every: int) -> None:
        self.mdir, self.con, self.model_id, self.dim = mdir, con, model_id, dim
        self.encode, self.dtype, self.flush_every = encode, dtype, flush_every
        self.keys: list[str] = []
        self.slot_shard = array.array("q")  # compact: millions of items
        self.slot_row = array.array("q")
        self.shards: list[str] = []
        self.shard_on_disk: dict[str, bool] = {}
        self.shard_ids: dict[str, int] = {}
        self.errors: list[ItemError] = []
        self.computed = 0
        self.reused = 0
        self.lost = 0  # catalogued vectors whose shard file is gone (encoded again)
        # buffer of encoded, not yet flushed vectors
        self.buf_slots: list[int] = []
        self.buf_keys: list[str] = []
        self.buf_digests: list[str] = []
        self.buf_vecs: list[np.ndarray] = []

    def shard_id(self, name: str) -> int:
        if name not in self.shard_ids:
            self.shard_ids[name] = len(self.shards)
            self.shards.append(name)
        return self.shard_ids[name]

    def lookup(self, group: list[tuple[int, int, str, str, Any]]) -> list[tuple[int, int, str, str, Any]]:
        """Fill the slots found in the catalog with a matching digest; return the others."""
        keys = [g[2] for g in group]
        qmarks = ",".join("?" * len(keys))
        found = {
            k: (d, s, r)
            for k, d, s, r in self.con.execute(f"SELECT key, digest, shard, row FROM items WHERE key IN ({qmarks})", keys)
        }
        missing = []
        for g in group:
            slot, _, key, digest, _ = g
            hit = found.get(key)
            if hit is not None and hit[1] not in self.shard_on_disk:
                self.shard_on_disk[hit[1]] = (self.mdir / "shards" / hit[1]).is_file()
            if hit is not None and hit[0] == digest and self.shard_on_disk[hit[1]]:
                self.slot_shard[slot] = self.shard_id(hit[1])
                self.slot_row[slot] = int(hit[2])
                self.reused += 1
            else:
                if hit is not None and hit[0] == digest:
                    self.lost += 1
                missing.append(g)
        return missing

    def _check_output(self, out: Any, n: int) -> np.ndarray:
        arr = np.asarray(out)
        ok = arr.ndim == 2 and arr.shape[0] == n and arr.shape[1] > 0 and np.issubdtype(arr.dtype, np.number)
        if ok and self.dim and arr.shape[1] != self.dim:
            ok = False
        if not ok:
            raise InputError(
                Errors.E242.format(model=self.model_id, what=f"shape {arr.shape} dtype {arr.dtype}", n=n, dim=self.dim or "D")
            )
        if not self.dim:
            self.dim = int(arr.shape[1])
        return arr.astype(np.float32, copy=False)

    def encode_batch(self, batch: list[tuple[int, int, str, str, Any]]) -> int:
        """Encode one batch (item by item when the batch raises a PixlinkError about an
        item); return how many items were settled (vector or error)."""
        try:
            vecs = self._check_output(self.encode([g[4] for g in batch]), len(batch))
            pairs = list(zip(batch, vecs))
        except PixlinkError as exc:
            if _stops_the_run(exc):
                raise
            pairs = []
            for g in batch:
                try:
                    v = self._check_output(self.encode([g[4]]), 1)[0]
                except PixlinkError as item_exc:
                    if _stops_the_run(item_exc):
                        raise
                    self.errors.append(ItemError(index=g[1], item_id=g[2], error=str(item_exc), code=item_exc.code))
                    continue
                pairs.append((g, v))
        for g, v in pairs:
            if not np.isfinite(v).all():
                msg = Errors.E243.format(model=self.model_id, key=g[2])
                self.errors.append(ItemError(index=g[1], item_id=g[2], error=msg, code="E243"))
                continue
            self.buf_slots.append(g[0])
            self.buf_keys.append(g[2])
            self.buf_digests.append(g[3])
            self.buf_vecs.append(v)
            self.computed += 1
        if len(self.buf_slots) >= self.flush_every:
            self.flush()
        return len(batch)

    def flush(self) -> None:
        if not self.buf_slots:
            return
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.npy"
        final = self.mdir / "shards" / name
        tmp = final.with_suffix(".npy.tmp")
        arr = np.stack(self.buf_vecs).astype(self.dtype)
        with open(tmp, "wb") as fh:
            np.save(fh, arr)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        with self.con:
            self.con.executemany(
                "INSERT OR REPLACE INTO items (key, digest, shard, row) VALUES (?, ?, ?, ?)",
                [(k, d, name, i) for i, (k, d) in enumerate(zip(self.buf_keys, self.buf_digests))],
            )
            self.con.execute("UPDATE meta SET value = ? WHERE key = 'dim'", (str(self.dim),))
        sid = self.shard_id(name)
        for i, slot in enumerate(self.buf_slots):
            self.slot_shard[slot] = sid
            self.slot_row[slot] = i
        self.buf_slots, self.buf_keys, self.buf_digests, self.buf_vecs = [], [], [], []


def embed_items(
    items: Iterable[tuple[str, Any]],
    encode: Callable[[list[Any]], np.ndarray],
    *,
    cache_dir: str | Path | None = None,
    model_id: str,
    batch_size: int = 64,
    progress: bool = True,
    total: int | None = None,
    flush_every: int = 8192,
    dtype: str = "float32",
    fingerprint_fn: Callable[[Any], str] | None = None,
) -> EmbeddingStore:
    """Embed ``items`` with ``encode``, re-using and filling the on-disk cache.

    Args:
        items: ``(key, payload)`` pairs; the key names the item in the cache (an entity id,
            :func:`image_key`), the payload is what ``encode`` takes (a text, an image path).
            A key seen again later in the input is skipped (counted in ``duplicates``).
        encode: ``list of payloads -> (n, D) float array`` (row i for payload i). It raises
            :class:`~pixlink.errors.InputError` (or another
            :class:`~pixlink.errors.PixlinkError`) for a payload it cannot use: the batch is
            then encoded item by item and the bad items become item errors.
            :class:`~pixlink.errors.ModelUnavailableError`, an output of the wrong shape
            (E242) and other exceptions stop the run (after the vectors computed so far are
            saved).
        cache_dir: the cache root (default ``$PIXLINK_CACHE/embeddings``); the model's vectors
            go in ``cache_dir/<model-slug>/``.
        model_id: the exact model behind ``encode`` (vectors are cached per model).
        batch_size: payloads per ``encode`` call.
        progress: show a progress bar on stderr.
        total: number of items, for the progress bar when ``items`` has no ``len``.
        flush_every: a shard is written at the end of the first batch that brings the
            unwritten vectors to this many (so a killed run loses fewer than
            ``flush_every + batch_size``; a memory knob: about ``flush_every * D * 4`` bytes).
        dtype: ``"float32"`` or ``"float16"`` (half the disk; about 1e-3 relative error).
        fingerprint_fn: payload -> digest string; default :func:`fingerprint` (str, bytes,
            paths, arrays). A cached vector is re-used only when the digest matches.

    Returns:
        An :class:`EmbeddingStore` with the keys that have a vector, in input order, and the
        errors of the items that have none.
    """
    from ..config import cache_dir as default_cache_dir
    from ..progress import progress as make_progress  # rich: only when a bar is drawn

    if not isinstance(model_id, str) or not model_id.strip():
        raise InputError(Errors.E010.format(what="model_id", value=model_id, reason="must be a non-empty string"))
    for name, v in (("batch_size", batch_size), ("flush_every", flush_every)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise InputError(Errors.E010.format(what=name, value=v, reason="must be an integer >= 1"))
    if dtype not in ("float32", "float16"):
        raise InputError(Errors.E010.format(what="dtype", value=dtype, reason="expected 'float32' or 'float16'"))
    fp = fingerprint_fn or fingerprint
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "embeddings"
    mdir = root / model_slug(model_id)
    con, dim = _open_catalog(mdir, model_id)
    run = _Run(mdir, con, model_id, dim, encode, np.dtype(dtype), flush_every)
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    seen: set[str] = set()
    duplicates = 0
    group: list[tuple[int, int, str, str, Any]] = []
    pending: list[tuple[int, int, str, str, Any]] = []

    try:
        with make_progress(disable=not progress) as bar:
            task = bar.add_task(f"embedding with {model_id}", total=total, rate="")

            def status() -> None:
                bar.update(task, description=(
                    f"embedding with {model_id} (computed {run.computed}, cached {run.reused}, "
                    f"errors {len(run.errors)})"))

            def drain(final: bool) -> None:
                nonlocal pending
                while pending and (final or len(pending) >= batch_size):
                    batch, pending = pending[:batch_size], pending[batch_size:]
                    bar.advance(task, run.encode_batch(batch))
                    status()

            def settle_group() -> None:
                nonlocal group
                if group:
                    miss = run.lookup(group)
                    bar.advance(task, len(group) - len(miss))
                    pending.extend(miss)
                    group = []
                drain(False)

            for index, item in enumerate(items):
                try:
                    key, payload = item
                except (TypeError, ValueError):
                    msg = Errors.E244.format(key=None, index=index, reason="an item is a (key, payload) pair")
                    run.errors.append(ItemError(index=index, item_id=None, error=msg, code="E244"))
                    bar.advance(task, 1)
                    continue
                if not isinstance(key, str) or not key.strip() or "\x00" in key:
                    msg = Errors.E244.format(key=key, index=index, reason="keys are non-empty strings without NUL")
                    run.errors.append(ItemError(index=index, item_id=str(key), error=msg, code="E244"))
                    bar.advance(task, 1)
                    continue
                if key in seen:
                    duplicates += 1
                    bar.advance(task, 1)
                    continue
                try:
                    digest = fp(payload)
                except TypeError:
                    msg = Errors.E245.format(key=key, type=type(payload).__name__)
                    run.errors.append(ItemError(index=index, item_id=key, error=msg, code="E245"))
                    bar.advance(task, 1)
                    continue
                seen.add(key)
                slot = len(run.keys)
                run.keys.append(key)
                run.slot_shard.append(-1)
                run.slot_row.append(-1)
                group.append((slot, index, key, digest, payload))
                if len(group) >= _LOOKUP_GROUP:
                    settle_group()
            settle_group()
            drain(True)
            status()
    finally:
        try:
            run.flush()
        finally:
            con.close()

    shard_of = np.frombuffer(run.slot_shard, dtype=np.int64).astype(np.int32)
    row_of = np.frombuffer(run.slot_row, dtype=np.int64).copy()
    have = shard_of >= 0
    keys = [k for k, h in zip(run.keys, have) if h]
    notes: list[str] = []
    if duplicates:
        notes.append(f"{duplicates} items repeated an earlier key and were skipped")
    if run.lost:
        notes.append(f"{run.lost} cached vectors pointed to deleted shard files and were encoded again")
    if run.errors:
        notes.append(f"{len(run.errors)} items got no vector (see errors)")
    for n in notes:
        log.warning("embed_items(%s): %s", model_id, n)
    log.info("embed_items(%s): %d vectors (%d computed, %d from cache)", model_id, len(keys), run.computed, run.reused)
    return EmbeddingStore(
        path=mdir, model_id=model_id, dim=run.dim, keys=keys, shards=run.shards, shard_of=shard_of[have],
        row_of=row_of[have], errors=run.errors, computed=run.computed, reused=run.reused, duplicates=duplicates,
        notes=notes,
    )


def build_index_from_store(
    store: EmbeddingStore,
    out_dir: str | Path,
    space: str,
    *,
    backend: str = "auto",
    metric: str = "cosine",
    entity_of: Callable[[str], str] = entity_of_key,
    chunk_size: int = 65_536,
    kb_build_id: str | None = None,
    **build_kwargs: Any,
) -> DenseIndex:
    """Write a :class:`DenseIndex` of ``store``'s vectors to ``out_dir`` (usually
    :func:`~pixlink.index.dense.index_dir` of the KB, the space and ``store.model_id``).

    ``entity_of`` maps a cache key to its entity id (default :func:`entity_of_key`: the text
    before the first tab, so image keys made by :func:`image_key` give the entity's id and
    several images of one entity become several vectors of that entity). ``kb_build_id`` is
    the build id of the KB the items came from (``KB.build_id``), recorded in the index so
    that opening it against another build fails (E250). Other keyword arguments go to
    :meth:`DenseIndex.build` (``dtype``, ``overwrite``, backend knobs...).
    """
    if not len(store):
        raise IndexError_(
            Errors.E246.format(model=store.model_id, reason=f"{len(store.errors)} items failed, none has a vector")
        )
    ids = [entity_of(k) for k in store.keys]
    chunks = (v for _, v in store.iter_chunks(chunk_size))
    index = DenseIndex.build(
        out_dir, chunks, ids, model_id=store.model_id, space=space, metric=metric, backend=backend,
        chunk_size=chunk_size, kb_build_id=kb_build_id, **build_kwargs,
    )
    report = store.report()
    (Path(out_dir) / "embed_report.json").write_text(json.dumps(report, indent=2), "utf-8")
    return index


__all__: Sequence[str] = (
    "EmbeddingStore", "embed_items", "build_index_from_store", "fingerprint", "image_key", "entity_of_key",
    "entity_text", "text_items", "image_items",
)
