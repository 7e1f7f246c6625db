"""WIKIPerson (ict-bigdatalab/VNEL, "Visual Named Entity Linking"): person boxes -> Wikidata QIDs.

``WIKIPerson_Test.json`` is a JSON list of ``{"id": 0, "image": "462710.jpg", "boundingbox":
"[55.47, 15.35, 73.56, 42.03]", "wikiid": "Q259082"}``: the box is a *string* holding an XYXY
list, in the coordinates of the ~224-px images VNEL distributes; some coordinates are negative
(183 of 6,142 boxes in the test file) and some exceed 224 (71).

Each record becomes a :class:`~pixlink.types.Mention` with ``region`` = the box, ``gold`` = the
QID, no text (VNEL links from the image alone). Negative coordinates are clipped to 0 and
counted (``box_clipped_negative``); the image size is unknown without the images, so the far
side is not clipped — pass ``image_size`` (e.g. ``(224, 224)``) to clip it too and to have the
Region check bounds (``box_clipped_far``). A box that is malformed or empty after clipping
fails its record (reported).
"""

from __future__ import annotations

from pathlib import Path

import orjson

from ...errors import Errors, InputError
from ...geometry import as_box, clip_box
from ...types import Mention, Region
from .base import LoadReport, LoadResult, as_path, read_records, resolve_image


def parse_box_string(s: object) -> list[float]:
    """``"[x1, y1, x2, y2]"`` (or a list) -> 4 floats; ``InputError`` (E002) otherwise."""
    if isinstance(s, str):
        try:
            s = orjson.loads(s)
        except orjson.JSONDecodeError as exc:
            raise InputError(Errors.E002.format(box=s, reason=f"not a JSON list ({exc})")) from exc
    if not isinstance(s, list) or len(s) != 4:
        raise InputError(Errors.E002.format(box=s, reason="expected 4 numbers"))
    try:
        return [float(v) for v in s]
    except (TypeError, ValueError) as exc:
        raise InputError(Errors.E002.format(box=s, reason="not numbers")) from exc


def load_wikiperson(
    path: str | Path, image_root: str | Path | None = None, image_size: tuple[int, int] | None = None,
) -> LoadResult[Mention]:
    """Read ``WIKIPerson_*.json`` into mentions (see the module docstring)."""
    p = as_path(path)
    report = LoadReport(path=str(p), dataset="wikiperson")
    out: list[Mention] = []
    for idx, (key, rec) in enumerate(read_records(p, report)):
        report.n_records += 1
        item = str(rec.get("id", key)) if isinstance(rec, dict) else key
        try:
            if not isinstance(rec, dict) or not {"image", "boundingbox", "wikiid"} <= set(rec):
                raise InputError(Errors.E603.format(item=item, path=str(p), reason="needs image, boundingbox, wikiid"))
            raw = parse_box_string(rec["boundingbox"])
            box = list(raw)
            if min(box) < 0:
                box = [max(v, 0.0) for v in box]
                report.note("box_clipped_negative", "a box had negative coordinates; they were clipped to 0")
            b = as_box(box)
            if image_size is not None:
                clipped = clip_box(b, image_size)
                if not (clipped == b).all():
                    report.note("box_clipped_far", f"a box went past the image size {image_size}; it was clipped")
                b = clipped
            gold = rec["wikiid"]
            if not isinstance(gold, str) or not gold.strip():
                raise InputError(Errors.E603.format(item=item, path=str(p), reason=f"wikiid {gold!r} is not a QID"))
            out.append(Mention(
                id=item, image=resolve_image(str(rec["image"]), image_root),
                region=Region(image_size=image_size, box=b, source="box"),
                gold=gold.strip(), split="test" if "test" in p.stem.lower() else None,
                meta={"boundingbox_raw": rec["boundingbox"], "prompt": "box"},
            ))
        except InputError as exc:
            report.error(idx, item, str(exc))
    if report.counts or report.errors:
        report.log()
    return LoadResult(out, report)
