"""MaskOVEN-Wiki: OVEN-style questions with entity masks, COCO-style json.

``{"images": [{"id", "file_name", "height", "width"}], "categories": [{"id": QID, "name"}],
"annotations": [{"id", "image_id", "category_id": QID, "segmentation": [RLE, ...],
"bbox": [[x1, y1, x2, y2], ...], "text_prompt", "label", "question", "data_split"}]}``.

Unlike COCO, ``segmentation`` is a *list* of COCO RLE masks and ``bbox`` a *list* of XYXY
boxes (one per visible part of the entity). pixlink's Mention has one region, so the parts are
**unioned**: the mask is the union of the RLE masks and the box the box enclosing all boxes.
Items with more than one part are counted in the report (``parts_unioned``) and keep
``meta["n_parts"]``. Masks stay encoded (``meta["mask_rle"]``, see
:func:`.mentions.materialize_masks`); ``region`` is the union box with ``meta["prompt"] =
"box"`` so a linker gets the box prompt and, once materialised, the mask too.

``gold`` = ``category_id`` (a QID), ``text`` = ``question`` (else ``text_prompt``), ``split`` =
``data_split``; ``meta`` keeps ``text_prompt``, ``label`` (hypernyms with scores) and the
category name. Image path: ``<image_root>/<file_name>``. An annotation whose image is not in
``images``, whose RLE is malformed or does not match the image size, fails (reported).
"""

from __future__ import annotations

from pathlib import Path

import orjson

from ...errors import DatasetError, Errors, InputError
from ...geometry import as_box, box_iou
from ...types import Mention, Region
from .base import LoadReport, LoadResult, as_path, merge_rles, resolve_image, rle_bbox


def load_maskoven(path: str | Path, image_root: str | Path | None = None) -> LoadResult[Mention]:
    p = as_path(path)
    try:
        data = orjson.loads(p.read_bytes())
    except OSError as exc:
        raise DatasetError(Errors.E600.format(path=str(p), reason=f"{type(exc).__name__}: {exc}")) from exc
    except orjson.JSONDecodeError as exc:
        raise DatasetError(Errors.E600.format(path=str(p), reason=f"not JSON ({exc})")) from exc
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise DatasetError(Errors.E600.format(path=str(p), reason="not COCO-style: no 'annotations' list"))
    images = {im.get("id"): im for im in data.get("images") or [] if isinstance(im, dict)}
    cats = {c.get("id"): c.get("name") for c in data.get("categories") or [] if isinstance(c, dict)}
    report = LoadReport(path=str(p), dataset="maskoven")
    out: list[Mention] = []
    for idx, ann in enumerate(data["annotations"]):
        report.n_records += 1
        item = str(ann.get("id", idx)) if isinstance(ann, dict) else str(idx)
        try:
            if not isinstance(ann, dict):
                raise InputError(Errors.E603.format(item=item, path=str(p), reason="annotation is not an object"))
            im = images.get(ann.get("image_id"))
            if im is None:
                raise InputError(Errors.E603.format(item=item, path=str(p), reason=f"image_id {ann.get('image_id')!r} not in images"))
            size = (int(im["height"]), int(im["width"])) if im.get("height") and im.get("width") else None
            segs = ann.get("segmentation") or []
            boxes = ann.get("bbox") or []
            segs = [segs] if isinstance(segs, dict) else segs
            boxes = [boxes] if boxes and not isinstance(boxes[0], (list, tuple)) else boxes
            if not segs and not boxes:
                raise InputError(Errors.E603.format(item=item, path=str(p), reason="no segmentation and no bbox"))
            meta = {"text_prompt": ann.get("text_prompt"), "label": ann.get("label"),
                    "category_name": cats.get(ann.get("category_id")), "n_parts": max(len(segs), len(boxes)),
                    "prompt": "box"}
            if max(len(segs), len(boxes)) > 1:
                report.note("parts_unioned", "an entity had several masks/boxes; they were unioned into one region")
            mask_box = None
            if segs:
                rle = merge_rles(segs)
                if size is not None and tuple(rle["size"]) != size:
                    raise InputError(Errors.E005.format(shape=tuple(rle["size"]), height=size[0], width=size[1]))
                meta["mask_rle"] = rle
                mask_box = rle_bbox(rle)
            if boxes:
                bs = [as_box(b) for b in boxes]
                box = [min(b[0] for b in bs), min(b[1] for b in bs), max(b[2] for b in bs), max(b[3] for b in bs)]
                if mask_box is not None and box_iou(box, mask_box) < 0.5:
                    report.note("box_mask_disagree", "the union box and the union mask's box overlap by IoU < 0.5")
            else:
                box = mask_box
            gold = ann.get("category_id")
            if not isinstance(gold, str) or not gold:
                raise InputError(Errors.E603.format(item=item, path=str(p), reason=f"category_id {gold!r} is not a QID"))
            out.append(Mention(
                id=item, image=resolve_image(str(im.get("file_name")), image_root),
                region=Region.from_box(box, image_size=size, clip=True, source="box"),
                text=ann.get("question") or ann.get("text_prompt"), gold=gold, split=ann.get("data_split"), meta=meta,
            ))
        except InputError as exc:
            report.error(idx, item, str(exc))
    if report.counts or report.errors:
        report.log()
    return LoadResult(out, report)
