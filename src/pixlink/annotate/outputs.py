"""What an annotation run writes, from its report (``report.jsonl``, one record an item).

* ``maskoven.json`` — COCO JSON in MaskOVEN-Wiki's exact shape: ``categories`` are QIDs with
  names; each annotation's ``segmentation`` is a *list* of COCO RLE (one per connected part) and
  ``bbox`` a *list* of XYXY boxes, with ``text_prompt``, ``label`` (phrases with scores),
  ``question`` and ``data_split``. pycocotools and pixlink's MaskOVEN loader read it.
* ``sample.jsonl`` — the manual-evaluation sample of PL-VEL: one item per entity, drawn per split
  in proportion to the split's size, ``n`` items (2,000 by default), seeded.
* ``labelstudio.json`` + ``labelstudio.xml`` — Label Studio tasks to import for review: per
  item the image, entity and question as task data, and a pre-annotation (a prediction) of a box,
  a brush mask (Label Studio's brush RLE) and the entity id in a per-region text field, scored by
  the region's score; with the labelling config they fit (``LABEL_STUDIO_CONFIG``).
* ``contact_NNN.png`` — contact sheets for reviewers: each item's image with its mask, the
  entity, and the rule or flags that decided it.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ..errors import PixlinkError
from ..geometry import mask_to_box, mask_to_rle, rle_to_mask
from ..labelstudio import brush_result, rectangle_result, result_base


def latest_records(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last record of each item id (a redone item's newest answer), in first-seen order."""
    by_id: dict[str, dict[str, Any]] = {}
    for r in records:
        by_id[r["id"]] = r
    return list(by_id.values())


def _parts(mask: np.ndarray, min_share: float = 0.01) -> list[np.ndarray]:
    """The mask as MaskOVEN lists it, one entry per visible part: each connected part holding at
    least ``min_share`` of the mask, and the smaller specks kept with the largest part (every
    pixel of the mask is in exactly one part)."""
    import cv2

    n, lab = cv2.connectedComponents(mask.astype(np.uint8))
    parts = [lab == i for i in range(1, n)]
    if len(parts) <= 1:
        return [mask]
    total = mask.sum()
    big = sorted((p for p in parts if p.sum() >= min_share * total), key=lambda p: -int(p.sum()))
    if not big:
        return [mask]
    for p in parts:
        if p.sum() < min_share * total:
            big[0] = big[0] | p
    return big


def _relative(path: str, root: Path | None) -> str:
    """``path`` relative to ``root`` (resolved), or as given when it is not under it."""
    if root is None:
        return path
    try:
        return Path(path).resolve().relative_to(root).as_posix()
    except ValueError:
        return path


def image_id(path: str) -> str:
    return f"{Path(path).stem}-{hashlib.blake2b(path.encode(), digest_size=4).hexdigest()}"


def maskoven_json(records: Sequence[dict[str, Any]], image_root: str | Path | None = None) -> dict[str, Any]:
    """COCO JSON of the accepted records, in MaskOVEN-Wiki's shape."""
    images: dict[str, dict[str, Any]] = {}
    cats: dict[str, str] = {}
    anns = []
    root = Path(image_root).resolve() if image_root is not None else None
    for r in records:
        if r["status"] != "accepted" or not r.get("region") or not r["region"].get("mask"):
            continue
        item = r["item"]
        path = item["image"]
        iid = image_id(path)
        h, w = r["image_size"]
        fname = _relative(path, root)
        images.setdefault(iid, {"id": iid, "file_name": fname, "height": int(h), "width": int(w)})
        cats.setdefault(item["entity"], r.get("entity_label") or item["entity"])
        mask = rle_to_mask(r["region"]["mask"])
        parts = _parts(mask)
        anns.append({
            "id": str(item["id"]), "image_id": iid, "category_id": item["entity"],
            "segmentation": [mask_to_rle(p) for p in parts],
            "bbox": [[round(float(v), 2) for v in mask_to_box(p)] for p in parts],
            "area": int(mask.sum()), "iscrowd": 0,
            "text_prompt": r.get("text_prompt", ""), "label": r.get("labels", []),
            "question": item.get("question") or "", "data_split": item.get("split") or "",
            "flags": r.get("flags", []), "rule": r.get("rule"),
        })
    return {"info": {"description": "pixlink reverse annotation (MaskOVEN-Wiki format)"},
            "images": list(images.values()), "categories": [{"id": k, "name": v} for k, v in cats.items()],
            "annotations": anns}


LABEL_STUDIO_CONFIG = """<View>
  <Image name="image" value="$image" zoom="true"/>
  <Header value="$entity_label ($entity)"/>
  <Text name="question" value="$question"/>
  <RectangleLabels name="box" toName="image"><Label value="entity"/></RectangleLabels>
  <BrushLabels name="mask" toName="image"><Label value="entity"/></BrushLabels>
  <TextArea name="qid" toName="image" perRegion="true" editable="true" placeholder="entity id"/>
  <Choices name="review" toName="image" choice="single"><Choice value="correct"/><Choice value="wrong mask"/><Choice value="wrong entity"/><Choice value="not visible"/></Choices>
</View>
"""
"""The labelling config the tasks of :func:`labelstudio_tasks` fit (the service's Label Studio
backend reads the same tag names: ``box``, ``mask``, ``qid``)."""


def labelstudio_tasks(records: Sequence[dict[str, Any]], image_url: str | None = None,
                      image_root: str | Path | None = None, model_version: str = "pixlink-annotate",
                      with_rejected: bool = True) -> list[dict[str, Any]]:
    """Label Studio tasks with pre-annotations, one per item that has a region.

    Args:
        records: the run's latest records.
        image_url: prefix of the images' URLs as Label Studio will fetch them (e.g.
            ``/data/local-files/?d=`` for its local-files storage, or ``https://host/images/``),
            joined with the image's path relative to ``image_root``; None keeps the item's path.
        image_root: the directory paths are made relative to (with ``image_url``).
        with_rejected: also the rejected items that kept a region (their task data say the rule
            that rejected them), so reviewers can rescue them.

    Returns:
        ``[{"data": {image, entity, entity_label, question, item_id, status, rule, flags},
        "predictions": [{"model_version", "score", "result": [rectanglelabels, brushlabels,
        textarea]}]}]``; the three results share one region ``id``; boxes are percent of the
        image (Label Studio's coordinates), masks Label Studio's brush RLE of the full image.
    """
    root = Path(image_root).resolve() if image_root is not None else None
    tasks = []
    for r in records:
        region = r.get("region") or {}
        if not region.get("mask") or r["status"] not in (("accepted", "rejected") if with_rejected else ("accepted",)):
            continue
        item = r["item"]
        path = item["image"]
        if image_url is not None:
            path = image_url + _relative(path, root)
        h, w = (int(v) for v in r["image_size"])
        mask = rle_to_mask(region["mask"])
        box = region.get("box") or mask_to_box(mask)
        base = result_base(hashlib.blake2b(str(item["id"]).encode(), digest_size=5).hexdigest(), "image", (h, w))
        score = float(region.get("score") or 0.0)
        result = [
            rectangle_result(base, "box", box, ["entity"]),
            brush_result(base, "mask", mask, ["entity"]),
            {**base, "from_name": "qid", "type": "textarea", "value": {"text": [item["entity"]]}},
        ]
        tasks.append({
            "data": {"image": path, "entity": item["entity"], "entity_label": r.get("entity_label") or item["entity"],
                     "question": item.get("question") or "", "item_id": str(item["id"]), "status": r["status"],
                     "rule": r.get("rule") or "", "flags": ", ".join(r.get("flags") or [])},
            "predictions": [{"model_version": model_version, "score": score, "result": result}],
        })
    return tasks


def manual_sample(records: Sequence[dict[str, Any]], n: int = 2000, seed: int = 0) -> list[dict[str, Any]]:
    """PL-VEL's manual-evaluation sample: one accepted item per entity, per split in proportion
    to the split's number of accepted items, ``n`` in all (fewer when there are fewer entities)."""
    rng = np.random.default_rng(seed)
    by_split: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r["status"] == "accepted":
            by_split[r["item"].get("split") or ""].append(r)
    total = sum(len(v) for v in by_split.values())
    out: list[dict[str, Any]] = []
    for split, recs in sorted(by_split.items()):
        want = int(round(n * len(recs) / total)) if total else 0
        order = rng.permutation(len(recs))
        seen: set[str] = set()
        for i in order:
            if len([x for x in out if (x["item"].get("split") or "") == split]) >= want:
                break
            e = recs[i]["item"]["entity"]
            if e in seen:
                continue
            seen.add(e)
            out.append(recs[i])
    return out


def contact_sheets(records: Sequence[dict[str, Any]], out_dir: str | Path, per_sheet: int = 48, cols: int = 8,
                   thumb: int = 240) -> list[Path]:
    """PNG grids of overlays: green mask = accepted, the rule in red = rejected, flags in orange."""
    from PIL import Image, ImageDraw

    from ..io import load_image
    from ..viz import _font

    out_dir = Path(out_dir)
    font = _font(12)
    paths = []
    for k in range(0, len(records), per_sheet):
        chunk = records[k:k + per_sheet]
        rows = (len(chunk) + cols - 1) // cols
        sheet = Image.new("RGB", (cols * thumb, rows * (thumb + 34)), (255, 255, 255))
        d = ImageDraw.Draw(sheet)
        for j, r in enumerate(chunk):
            x, y = (j % cols) * thumb, (j // cols) * (thumb + 34)
            try:
                img = load_image(r["item"]["image"], max_side=1024)
            except PixlinkError as exc:  # the cell says why it has no picture
                d.text((x + 4, y + 4), f"{r['id']}: no image ({exc.code})", fill=(200, 0, 0), font=font)
                continue
            pic = Image.fromarray(img)
            if r["status"] == "accepted" and r.get("region") and r["region"].get("mask"):
                m = rle_to_mask(r["region"]["mask"])
                mm = Image.fromarray((m * 255).astype(np.uint8)).resize(pic.size)
                green = Image.new("RGB", pic.size, (0, 200, 0))
                pic = Image.composite(Image.blend(pic, green, 0.45), pic, mm)
            pic.thumbnail((thumb, thumb))
            sheet.paste(pic, (x + (thumb - pic.width) // 2, y))
            colour = (0, 120, 0) if r["status"] == "accepted" else (200, 0, 0)
            d.text((x + 3, y + thumb + 2), f"{r['id']} {r.get('entity_label') or r['item']['entity']}"[:38],
                   fill=(0, 0, 0), font=font)
            why = r.get("rule") or r.get("code") or r["status"]
            flags = ",".join(r.get("flags") or [])
            d.text((x + 3, y + thumb + 17), f"{why} {flags}"[:40], fill=colour if not flags else (210, 110, 0), font=font)
        p = out_dir / f"contact_{k // per_sheet + 1:03d}.png"
        sheet.save(p)
        paths.append(p)
    return paths
