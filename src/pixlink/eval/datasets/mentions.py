"""pixlink's own mention format, ``mentions.jsonl``, and how masks travel with mentions.

One JSON object per line::

    {"image": "photos/obama.jpg", "box": [x1, y1, x2, y2], "text": "optional caption", "gold": "Q76"}
    {"image": "a.jpg", "points": [[x, y], ...], "point_labels": [1, 0], "gold": null}
    {"image": "a.jpg", "mask": {"size": [h, w], "counts": "..."}, "gold": "Q1"}

* ``image``: path, relative to ``image_root`` (default: the JSONL file's folder) unless
  absolute; ``null`` for a text-only mention.
* the region: at most one of ``box`` (XYXY, original pixels), ``points`` (``[[x, y], ...]``,
  optional ``point_labels`` 1 = foreground / 0 = background) or ``mask`` (COCO RLE); none =
  the whole image.
* ``gold``: an entity id of the KB, or ``null`` for NIL. Leave the key out for an unlabelled
  query (``labelled`` False).
* optional: ``id`` (default ``line<N>``), ``text``, ``surface`` (the mention's words), ``split``,
  ``image_size`` ``[H, W]`` (checks the region's bounds), ``meta`` (kept).

Masks and memory: a dataset may hold tens of thousands of masks, so loaders do not decode
them. A mention whose region is a mask carries it as ``meta["mask_rle"]`` and its ``region``
is the mask's box with ``source="mask_rle"`` (``meta["prompt"]`` says which prompt the dataset
gave: ``"box"``, ``"points"``, ``"mask"`` or ``"image"``). :func:`materialize_masks` decodes
them batch by batch (the runner calls it before linking).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Sequence

from ...errors import Errors, InputError
from ...log import get_logger
from ...types import Mention, Region
from .base import LoadReport, LoadResult, as_path, read_records, resolve_image, rle_bbox

log = get_logger(__name__)

_KNOWN = {"id", "image", "box", "points", "point_labels", "mask", "text", "surface", "gold", "labelled", "split",
          "image_size", "meta"}


def mention_from_record(rec: dict[str, Any], default_id: str, image_root: str | Path | None) -> Mention:
    """One ``mentions.jsonl`` record -> :class:`Mention`; ``InputError`` saying what is wrong."""
    if not isinstance(rec, dict):
        raise InputError(Errors.E010.format(what="mention record", value=rec, reason="must be a JSON object"))
    kinds = [k for k in ("box", "points", "mask") if rec.get(k) is not None]
    if len(kinds) > 1:
        raise InputError(Errors.E010.format(what="mention region", value=kinds, reason="give one of box, points, mask"))
    image = rec.get("image")
    if image is not None and not isinstance(image, str):
        raise InputError(Errors.E010.format(what="image", value=image, reason="must be a path string or null"))
    gold = rec.get("gold")
    if gold is not None and not isinstance(gold, str):
        raise InputError(Errors.E010.format(what="gold", value=gold, reason="must be an entity id string or null"))
    size = rec.get("image_size")
    meta = dict(rec.get("meta") or {})
    extra = {k: v for k, v in rec.items() if k not in _KNOWN}
    if extra:
        meta.update(extra)
    region = None
    if kinds == ["box"]:
        region = Region.from_box(rec["box"], image_size=size)
        meta["prompt"] = "box"
    elif kinds == ["points"]:
        region = Region.from_points(rec["points"], image_size=size, labels=rec.get("point_labels"))
        meta["prompt"] = "points"
    elif kinds == ["mask"]:
        rle = rec["mask"]
        box = rle_bbox(rle)
        region = Region(image_size=tuple(rle["size"]), box=box, source="mask_rle")
        meta["mask_rle"] = rle
        meta["prompt"] = "mask"
    else:
        meta["prompt"] = "image"
    return Mention(
        id=str(rec.get("id", default_id)), image=resolve_image(image, image_root), region=region,
        text=rec.get("text"), surface=rec.get("surface"), gold=gold,
        labelled=bool(rec.get("labelled", "gold" in rec)), split=rec.get("split"), meta=meta,
    )


def load_mentions(path: str | Path, image_root: str | Path | None = None) -> LoadResult[Mention]:
    """Read a ``mentions.jsonl`` (or a JSON list of the same records); bad records are reported."""
    p = as_path(path)
    root = image_root if image_root is not None else p.parent
    report = LoadReport(path=str(p), dataset="mentions")
    out: list[Mention] = []
    seen: set[str] = set()
    for idx, (key, rec) in enumerate(read_records(p, report)):
        report.n_records += 1
        try:
            m = mention_from_record(rec, key, root)
        except InputError as exc:
            report.error(idx, str(rec.get("id", key)) if isinstance(rec, dict) else key, str(exc))
            continue
        if m.id in seen:
            report.error(idx, m.id, Errors.E603.format(item=m.id, path=str(p), reason="duplicate id"))
            continue
        seen.add(m.id)
        out.append(m)
    if report.counts or report.errors:
        report.log()
    return LoadResult(out, report)


def materialize_masks(mentions: Sequence[Mention]) -> list[Mention]:
    """Copies of ``mentions`` whose region carries the decoded mask of ``meta["mask_rle"]``.

    The dataset's prompt box is kept with the mask when the prompt was a box (MaskOVEN gives
    both); a mask-only prompt keeps no box. Mentions without ``mask_rle`` are returned as they are.
    """
    from ...geometry import rle_to_mask

    out = []
    for m in mentions:
        rle = m.meta.get("mask_rle")
        if rle is None:
            out.append(m)
            continue
        mask = rle_to_mask(rle)
        m2 = copy.copy(m)
        m2.meta = {k: v for k, v in m.meta.items() if k != "mask_rle"}
        prompt_box = m.region.box if (m.region is not None and m.meta.get("prompt") == "box") else None
        m2.region = Region(image_size=mask.shape, box=prompt_box, mask=mask, source="mask")
        out.append(m2)
    return out
