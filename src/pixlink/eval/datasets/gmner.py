"""Twitter-GMNER (NUSTM/GMNER ``Twitter10000_v2.0``) and Twitter-SMNER gold: CoNLL + VOC boxes
(+ masks) -> :class:`~pixlink.types.Post` with grounded gold entities.

Files: the CoNLL split (``train.txt`` / ``dev.txt``, read by :func:`pixlink.conll.load_conll`) and
``xml/<IMGID>.xml``, one Pascal-VOC file per image with ``<size>`` and one ``<object>`` per box:
``<name>`` is the entity's text (tokens joined by one space), ``<bndbox>`` integer
``xmin, ymin, xmax, ymax`` in original pixels.

Grounding rule, as NUSTM/GMNER's ``model/data_pipe.py`` builds it: a gold entity is groundable
when its text equals the ``<name>`` of one or more objects; *all* those boxes are its gold
regions (the metric accepts IoU > 0.5 with any of them). An image without an xml file has no
groundable entity.

What each post gets:

* ``entity.groundable`` (True / False) and ``entity.region`` = its first box, with the image
  size from the xml;
* ``post.meta["gold_boxes"]``: aligned with ``post.entities``, the list of all XYXY boxes of
  each entity (``[]`` when not groundable) — the metric needs every box, a Region holds one;
* ``post.meta["image_size"]``: ``[H, W]`` from the xml when there is one;
* with ``masks`` (Twitter-SMNER): ``post.meta["gold_masks"]``, aligned the same way, lists of
  COCO RLE.

Twitter-SMNER masks are read from a JSONL file, one line per mask:
``{"image_id": "16_05_01_127", "entity": "Philadelphia Phillies", "mask": {"size": [h, w],
"counts": "..."}}`` (``"start"``/``"end"`` token indices may replace ``"entity"`` when a text
occurs twice). The released Twitter-SMNER files are not on these machines; convert them to this
form (documented in docs/eval.md).

Repairs, each counted in the :class:`LoadReport`: a box partly outside the image is clipped to
it; an xml object whose name matches no entity of the tweet is counted (it cannot be scored).
A malformed xml fails its tweet (reported), the others load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import DatasetError, Errors, InputError
from ...geometry import as_box, box_inside, clip_box, rle_to_mask
from ...io import iter_jsonl
from ...log import get_logger
from ...types import Post, Region
from .base import LoadResult, as_path
from ...conll import load_conll

log = get_logger(__name__)


def read_voc(path: str | Path) -> tuple[tuple[int, int] | None, list[tuple[str, list[float]]]]:
    """``((H, W) or None, [(name, [x1, y1, x2, y2]), ...])`` of a Pascal-VOC xml file.

    Raises ``InputError`` (E603) naming the file when it is not VOC xml or a box is not numbers.
    """
    import xml.etree.ElementTree as ET

    p = str(path)
    try:
        root = ET.parse(p).getroot()
    except (ET.ParseError, OSError) as exc:
        raise InputError(Errors.E603.format(item="(whole file)", path=p, reason=f"not readable XML ({exc})")) from exc
    size = None
    sz = root.find("size")
    if sz is not None:
        try:
            w, h = int(float(sz.findtext("width", ""))), int(float(sz.findtext("height", "")))
            size = (h, w) if h > 0 and w > 0 else None
        except ValueError:
            size = None
    objects: list[tuple[str, list[float]]] = []
    for i, obj in enumerate(root.findall("object")):
        name = (obj.findtext("name") or "").strip()
        bb = obj.find("bndbox")
        if not name or bb is None:
            raise InputError(Errors.E603.format(item=f"object {i}", path=p, reason="no <name> or no <bndbox>"))
        try:
            box = [float(bb.findtext(k, "")) for k in ("xmin", "ymin", "xmax", "ymax")]
        except ValueError as exc:
            raise InputError(Errors.E603.format(item=f"object {i} ({name!r})", path=p,
                                                reason=f"box is not numbers ({exc})")) from exc
        objects.append((name, box))
    return size, objects


def _read_masks(path: Path) -> dict[str, list[dict[str, Any]]]:
    by_image: dict[str, list[dict[str, Any]]] = {}
    for n, rec in iter_jsonl(path):
        if not isinstance(rec, dict) or "image_id" not in rec or "mask" not in rec:
            raise DatasetError(Errors.E603.format(item=f"line {n}", path=str(path),
                                                  reason="needs 'image_id', 'mask' and 'entity' or 'start'/'end'"))
        by_image.setdefault(str(rec["image_id"]), []).append(rec)
    return by_image


def load_gmner(
    conll_path: str | Path, xml_dir: str | Path | None = None, image_root: str | Path | None = None,
    masks: str | Path | None = None, dataset: str = "gmner",
) -> LoadResult[Post]:
    """Read a Twitter-GMNER split with its gold boxes (and Twitter-SMNER masks).

    Args:
        conll_path: ``train.txt`` / ``dev.txt`` / ``test.txt``.
        xml_dir: folder of ``<IMGID>.xml``; default ``xml/`` beside the CoNLL file.
        image_root: folder of the tweet images (``post.image = <root>/<IMGID>.jpg``).
        masks: optional Twitter-SMNER masks JSONL (format in the module docstring).
        dataset: label set to check types against (``"gmner"``: PER/LOC/ORG/OTHER).

    Returns:
        :class:`LoadResult` of posts (see the module docstring for ``meta``).
    """
    res = load_conll(conll_path, dataset=dataset, image_root=image_root, log_report=False)
    report = res.report
    xdir = as_path(xml_dir) if xml_dir is not None else as_path(conll_path).parent / "xml"
    if not xdir.is_dir():
        raise DatasetError(Errors.E600.format(path=str(xdir), reason="the VOC xml folder does not exist"))
    mask_index = _read_masks(as_path(masks)) if masks is not None else None
    posts: list[Post] = []
    for idx, post in enumerate(res.items):
        image_id = post.meta["image_id"]
        xml = xdir / f"{image_id}.xml"
        size: tuple[int, int] | None = None
        objects: list[tuple[str, list[float]]] = []
        if xml.exists():
            try:
                size, objects = read_voc(xml)
            except InputError as exc:
                report.error(idx, post.id, str(exc))
                continue
        gold_boxes: list[list[list[float]]] = []
        texts = {e.text for e in post.entities}
        unmatched = sorted({name for name, _ in objects if name not in texts})
        if unmatched:
            report.note("xml_name_unmatched", "an xml object's name matches no gold entity of its tweet (not scored)",
                        len(unmatched))
            post.meta["xml_unmatched"] = unmatched
        bad = None
        for ent in post.entities:
            boxes = []
            for name, b in objects:
                if name != ent.text:
                    continue
                try:
                    box = as_box(b)
                    if size is not None and not box_inside(box, size):
                        box = clip_box(box, size)
                        report.note("box_clipped", "a box partly outside its image was clipped to the image")
                except InputError as exc:
                    bad = Errors.E603.format(item=f"object {name!r}", path=str(xml), reason=str(exc))
                    break
                boxes.append([float(v) for v in box])
            if bad:
                break
            gold_boxes.append(boxes)
            ent.groundable = bool(boxes)
            ent.region = Region(image_size=size, box=boxes[0], source="gold") if boxes else None
        if bad:
            report.error(idx, post.id, bad)
            continue
        post.meta["gold_boxes"] = gold_boxes
        if size is not None:
            post.meta["image_size"] = [size[0], size[1]]
        if mask_index is not None:
            gm: list[list[dict[str, Any]]] = [[] for _ in post.entities]
            for rec in mask_index.get(image_id, []):
                hits = [i for i, e in enumerate(post.entities)
                        if ("start" in rec and (e.start, e.end) == (rec.get("start"), rec.get("end")))
                        or ("start" not in rec and e.text == rec.get("entity"))]
                if not hits:
                    report.note("mask_unmatched", "a mask names no gold entity of its tweet (not scored)")
                    continue
                try:
                    rle_to_mask(rec["mask"])
                except InputError as exc:
                    report.note("mask_invalid", f"a mask is not valid COCO RLE and was left out ({exc})")
                    continue
                gm[hits[0]].append(rec["mask"])
            post.meta["gold_masks"] = gm
        posts.append(post)
    if report.counts or report.errors:
        report.log()
    return LoadResult(posts, report)
