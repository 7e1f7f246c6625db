"""Frozen-encoder features for training, computed once and cached on disk (resumable).

Every feature is cached through :func:`pixlink.index.embed.embed_items` (the KB embedding
cache: ``.npy`` shards and a SQLite catalogue per model, fingerprinted payloads, flushed as it
goes), so a stopped run resumes where it stopped and later runs (other seeds, ablations,
epochs) read the features instead of running the encoders. Each feature has its own cache
"model id" naming the encoder, the side, the image view and the layout, so features of
different models or settings never mix.

Layouts (one row per item, float16 on disk unless said):

* **vectors** of a bi-encoder space (:func:`space_vectors`): ``[present, v_1..v_D]`` —
  ``present`` is 0 when the item has nothing for the space (no image, no face), and the
  vector is then zeros;
* **IIER text** (:func:`iier_text`): ``[cls (D), tokens (L*D), mask (L)]``;
* **IIER image** (:func:`iier_image`): ``[present, cls layers (sum C_l), patches (P*C)]``.

A mention's payload is a JSON string of what its feature depends on (image path, region box,
text, words, view...), an entity's its id, text and image path: an edited item is encoded
again, an unchanged one never.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import Errors, InputError
from ..log import get_logger
from ..types import Entity, Mention, Region

log = get_logger("pixlink.train.features")

DTYPE = "float16"
"""On-disk precision of cached features (half the disk; about 1e-3 relative error)."""


def default_cache_dir() -> Path:
    """``$PIXLINK_CACHE/train-features``."""
    from ..config import cache_dir

    return cache_dir() / "train-features"


# ------------------------------------------------------------------------------------------------
# payloads
# ------------------------------------------------------------------------------------------------


def mention_payload(m: Mention, **extra: Any) -> str:
    """The JSON payload of a mention: what its features depend on."""
    r = m.region
    region = None
    if r is not None:
        region = {"box": [round(float(v), 3) for v in r.bbox]}
        if m.meta.get("mask_rle") is not None:
            region["mask"] = m.meta["mask_rle"]
        elif r.mask is not None:
            region["mask"] = r.to_rle()
    return json.dumps({"image": m.image, "region": region, "text": m.text, "surface": m.surface, **extra},
                      sort_keys=True, default=str)


def entity_payload(e: Entity, **extra: Any) -> str:
    """The JSON payload of an entity (id, label, description, images)."""
    return json.dumps({"id": e.id, "label": e.label, "description": e.description, "images": list(e.images), **extra},
                      sort_keys=True)


def mention_input(payload: str) -> Any:
    """A :class:`~pixlink.link.rerank.MentionInput` from a mention payload (the image read)."""
    from ..io import load_image
    from ..link.rerank import MentionInput

    d = json.loads(payload)
    image = load_image(d["image"]) if d.get("image") else None
    region = None
    if d.get("region") is not None and image is not None:
        reg = d["region"]
        if reg.get("mask") is not None:
            region = Region.from_rle(reg["mask"])
        else:
            region = Region(image_size=image.shape[:2], box=reg["box"], source="box")
    return MentionInput(image=image, region=region, text=d.get("text"), surface=d.get("surface"),
                        extra=d.get("extra"))


def entity_of(payload: str) -> Entity:
    d = json.loads(payload)
    return Entity(id=d["id"], label=d["label"], description=d.get("description") or "", images=tuple(d.get("images") or ()))


# ------------------------------------------------------------------------------------------------
# the packed store
# ------------------------------------------------------------------------------------------------


@dataclass
class Packed:
    """Cached features of ``N`` items in input order: ``rows(idx)`` reads ``(len(idx), W)``
    float32 (memory-mapped shards; only the rows asked are read). ``missing`` are the items that
    could not be encoded at all (e.g. an unreadable image), with why."""

    model_id: str
    width: int
    keys: list[str]
    shard_paths: list[Path]
    shard_of: np.ndarray
    row_of: np.ndarray
    missing: dict[int, str]
    computed: int = 0
    reused: int = 0
    _mm: dict[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.keys)

    def rows(self, idx: Sequence[int] | np.ndarray) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        out = np.zeros((len(idx), self.width), dtype=np.float32)
        if self._mm is None:
            self._mm = {}
        sh = self.shard_of[idx]
        for u in np.unique(sh):
            if u < 0:
                continue
            if int(u) not in self._mm:
                self._mm[int(u)] = np.load(self.shard_paths[int(u)], mmap_mode="r")
            sel = np.nonzero(sh == u)[0]
            rows = self.row_of[idx[sel]]
            order = np.argsort(rows)
            block = np.asarray(self._mm[int(u)][rows[order]], dtype=np.float32)
            out[sel[order]] = block
        return out

    def nbytes_on_disk(self) -> int:
        """Bytes of the shards these features live in (shared shards counted whole)."""
        return sum(p.stat().st_size for p in set(self.shard_paths) if p.exists())


FLUSH_BYTES = 64 << 20
"""Unwritten features kept in memory before a shard is written (float32 bytes)."""


def cached(items: Sequence[tuple[str, str]], encode: Callable[[list[str]], np.ndarray], model_id: str,
           cache_dir: str | Path | None = None, batch_size: int = 32, progress: bool = True,
           dtype: str = DTYPE, width: int | None = None) -> Packed:
    """Encode ``(key, payload)`` items with ``encode`` through the on-disk cache; the rows of
    the items ``encode`` could not take are in ``Packed.missing`` (and read as zeros).
    ``width`` (the row width, when known) bounds the memory of unwritten rows (:data:`FLUSH_BYTES`)."""
    from ..index.embed import embed_items

    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    flush = max(batch_size, FLUSH_BYTES // (4 * width)) if width else 8192
    store = embed_items(list(items), encode, cache_dir=root, model_id=model_id, batch_size=batch_size,
                        progress=progress, dtype=dtype, total=len(items), flush_every=flush)
    pos = {k: i for i, k in enumerate(store.keys)}
    n = len(items)
    shard_of = np.full(n, -1, dtype=np.int64)
    row_of = np.zeros(n, dtype=np.int64)
    for i, (k, _p) in enumerate(items):
        j = pos.get(k)
        if j is not None:
            shard_of[i] = int(store.shard_of[j])
            row_of[i] = int(store.row_of[j])
    missing = {}
    by_key = {k: i for i, (k, _p) in enumerate(items)}
    for e in store.errors:
        if e.item_id in by_key:
            missing[by_key[e.item_id]] = e.error
    if store.duplicates:
        raise InputError(Errors.E771.format(what="feature items", reason=f"{store.duplicates} repeated keys"))
    return Packed(model_id=model_id, width=int(store.dim), keys=[k for k, _ in items],
                  shard_paths=[store.path / "shards" / s for s in store.shards], shard_of=shard_of, row_of=row_of,
                  missing=missing, computed=store.computed, reused=store.reused)


# ------------------------------------------------------------------------------------------------
# bi-encoder spaces
# ------------------------------------------------------------------------------------------------


def _pack_vectors(v: np.ndarray) -> np.ndarray:
    present = ~np.isnan(v).any(axis=1)
    out = np.zeros((len(v), v.shape[1] + 1), dtype=np.float32)
    out[:, 0] = present
    out[present, 1:] = v[present]
    return out


def unpack_vectors(rows: np.ndarray) -> np.ndarray:
    """``(N, 1 + D)`` packed rows -> ``(N, D)`` with NaN rows where nothing was present."""
    v = rows[:, 1:].astype(np.float32)
    v[rows[:, 0] < 0.5] = np.nan
    return v


def space_vectors(space: str, backend: Any, side: str, items: Sequence[Mention] | Sequence[Entity], *,
                  key_prefix: str = "", view: str = "crop", margin: float = 0.1, cache_dir: str | Path | None = None,
                  progress: bool = True) -> Packed:
    """Frozen vectors of a bi-encoder ``space`` for mentions (``side="mention"``) or entities,
    cached (layout ``[present, v]``)."""
    from ..link.rerank import entity_vectors, mention_vectors, space_model_ids

    ids = space_model_ids(space, backend)
    if side == "mention":
        mid = f"pixlink-train|{space}|mention|{ids['mention']}|view={view}|margin={margin}"
        pairs = [(key_prefix + m.id, mention_payload(m, view=view, margin=margin)) for m in items]  # type: ignore[union-attr]

        def enc(payloads: list[str]) -> np.ndarray:
            return _pack_vectors(mention_vectors(space, backend, [mention_input(p) for p in payloads], view, margin))
    elif side == "entity":
        mid = f"pixlink-train|{space}|entity|{ids['entity']}"
        pairs = [(e.id, entity_payload(e)) for e in items]  # type: ignore[union-attr]

        def enc(payloads: list[str]) -> np.ndarray:
            return _pack_vectors(entity_vectors(space, backend, [entity_of(p) for p in payloads]))
    else:
        raise InputError(Errors.E774.format(name=space, reason=f"side {side!r} is not mention or entity"))
    return cached(pairs, enc, mid, cache_dir, progress=progress)


# ------------------------------------------------------------------------------------------------
# IIER
# ------------------------------------------------------------------------------------------------


@dataclass
class TextLayout:
    d: int
    length: int
    d_tokens: int

    @property
    def width(self) -> int:
        return self.d + self.length * self.d_tokens + self.length

    def split(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n, d, L, dt = len(rows), self.d, self.length, self.d_tokens
        return rows[:, :d], rows[:, d:d + L * dt].reshape(n, L, dt), rows[:, d + L * dt:]


def iier_text(encoder: Any, side: str, items: Sequence[Any], texts: Sequence[str], *, key_prefix: str = "",
              cache_dir: str | Path | None = None, progress: bool = True) -> tuple[Packed, TextLayout]:
    """IIER's text features of mentions or entities (``texts`` already in IIER's input form),
    cached (layout ``[cls, tokens, mask]``)."""
    probe = encoder.encode(["a"])
    layout = TextLayout(probe.cls.shape[1], int(encoder.max_length), probe.tokens.shape[2])
    mid = f"pixlink-train|iier-text|{side}|{encoder.model_id}"
    keys = [key_prefix + (getattr(x, "id")) for x in items]
    pairs = list(zip(keys, texts))

    def enc(payloads: list[str]) -> np.ndarray:
        f = encoder.encode(payloads)
        n = len(payloads)
        return np.concatenate([f.cls, f.tokens.reshape(n, -1), f.mask], axis=1)

    return cached(pairs, enc, mid, cache_dir, progress=progress, width=layout.width), layout


@dataclass
class ImageLayout:
    d_cls: int
    patches: int
    d_patch: int

    @property
    def width(self) -> int:
        return 1 + self.d_cls + self.patches * self.d_patch

    def split(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = len(rows)
        present = rows[:, 0] > 0.5
        cls = rows[:, 1:1 + self.d_cls]
        tok = rows[:, 1 + self.d_cls:].reshape(n, self.patches, self.d_patch)
        return present, cls, tok


def iier_image(backend: Any, side: str, items: Sequence[Any], layers: Sequence[int], *, view: str = "red_box",
               margin: float = 0.1, key_prefix: str = "", cache_dir: str | Path | None = None,
               progress: bool = True) -> tuple[Packed, ImageLayout]:
    """IIER's visual features (CLS of ``layers``, last-layer patches) of mentions (their ``view``)
    or entities (their first local image); an item without an image gets a blank image, as
    MIMIC gives one (``present`` = 0)."""
    from ..io import load_image
    from ..link.iier import image_features
    from ..link.rerank import first_local_image, view_of

    blank = np.zeros((32, 32, 3), np.uint8)
    probe_c, probe_p = image_features(backend, [blank], layers)
    layout = ImageLayout(probe_c.shape[1], probe_p.shape[1], probe_p.shape[2])
    lay = ",".join(str(int(x)) for x in layers)
    if side == "mention":
        mid = f"pixlink-train|iier-image|mention|{backend.model_id}|layers={lay}|view={view}|margin={margin}"
        pairs = [(key_prefix + m.id, mention_payload(m, view=view, margin=margin)) for m in items]

        def load(p: str) -> tuple[np.ndarray, bool]:
            v = view_of(mention_input(p), view, margin)
            return (blank, False) if v is None else (v, True)
    else:
        mid = f"pixlink-train|iier-image|entity|{backend.model_id}|layers={lay}"
        pairs = [(e.id, entity_payload(e)) for e in items]

        def load(p: str) -> tuple[np.ndarray, bool]:
            path = first_local_image(entity_of(p))
            return (blank, False) if path is None else (load_image(path), True)

    def enc(payloads: list[str]) -> np.ndarray:
        imgs, present = zip(*(load(p) for p in payloads))
        c, t = image_features(backend, list(imgs), layers)
        n = len(payloads)
        return np.concatenate([np.asarray(present, np.float32)[:, None], c, t.reshape(n, -1)], axis=1)

    return cached(pairs, enc, mid, cache_dir, progress=progress, batch_size=16, width=layout.width), layout


__all__ = ["Packed", "cached", "space_vectors", "unpack_vectors", "iier_text", "iier_image", "TextLayout",
           "ImageLayout", "mention_payload", "entity_payload", "mention_input", "default_cache_dir"]
