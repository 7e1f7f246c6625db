"""RiVEG's entity-level GMNER label files (JinYuanLi0012/RiVEG, ``GMNER_finall_label.txt``).

One line per entity::

    475049.jpg###San Francisco City Hall(LOC)###a prominent ... city hall###2###&[1.0, 339.0, 597.0, 631.0]

fields separated by ``###``: the image file, the entity text with its type in parentheses, the
entity expansion expression (an LLM's short description used to ground it), the visual
entailment label (``0`` = not groundable, ``2`` = groundable) and one or more ``&[x1, y1, x2,
y2]`` boxes (XYXY, original pixels). ``[0, 0, 0, 0]`` means not groundable. RiVEG's
``statistic/statistic.py`` matches a prediction to a gold line by image + entity text (+ type
for GMNER, without for EEG) and tests IoU >= 0.5 with any gold box.

:func:`load_riveg_labels` reads such a file into :class:`RivegLabel` records (a malformed line
is reported, the others load); :func:`riveg_grounded` groups them per image into the
``(text, type, boxes)`` form that :func:`pixlink.eval.metrics.grounded_prf` scores. pixlink
writes its own predictions as JSONL, never in this ``###`` form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import DatasetError, Errors
from ...log import get_logger
from .base import LoadReport, LoadResult, as_path

log = get_logger(__name__)

_BOX = re.compile(r"\[([^\]]*)\]")


@dataclass
class RivegLabel:
    """One entity line of a RiVEG label file.

    ``boxes`` are XYXY floats; empty when the entity is not groundable (``[0, 0, 0, 0]``).
    ``ve_label`` is the visual-entailment field (0 / 2). ``groundable`` is True when at least one
    box is not ``[0, 0, 0, 0]``; a line whose VE field disagrees with its boxes is counted in the
    report (the boxes decide, as in RiVEG's scoring of gold lines).
    """

    image: str
    text: str
    type: str
    expansion: str
    ve_label: int
    boxes: list[list[float]] = field(default_factory=list)
    line: int = 0

    @property
    def groundable(self) -> bool:
        return bool(self.boxes)

    @property
    def image_id(self) -> str:
        return self.image[:-4] if self.image.lower().endswith(".jpg") else self.image

    def to_dict(self) -> dict[str, Any]:
        return {"image": self.image, "text": self.text, "type": self.type, "expansion": self.expansion,
                "ve_label": self.ve_label, "boxes": self.boxes, "line": self.line}


def parse_riveg_line(line: str) -> RivegLabel:
    """Parse one label line; ``ValueError`` saying what is wrong otherwise."""
    parts = line.rstrip("\r\n").split("###")
    if len(parts) != 5:
        raise ValueError(f"expected 5 '###'-separated fields, got {len(parts)}")
    image, ent, expansion, ve, boxes_s = parts
    text, sep, typ = ent.rpartition("(")
    if not sep or not typ.endswith(")") or not text.strip():
        raise ValueError(f"entity field {ent!r} is not 'Entity text(TYPE)'")
    try:
        ve_label = int(ve.strip())
    except ValueError as exc:
        raise ValueError(f"visual entailment field {ve!r} is not an integer") from exc
    if not boxes_s.startswith("&"):
        raise ValueError(f"box field {boxes_s[:40]!r} does not start with '&['")
    boxes: list[list[float]] = []
    found = _BOX.findall(boxes_s)
    if not found:
        raise ValueError(f"box field {boxes_s[:40]!r} holds no [x1, y1, x2, y2]")
    for b in found:
        try:
            vals = [float(v) for v in b.split(",")]
        except ValueError as exc:
            raise ValueError(f"box [{b}] is not numbers") from exc
        if len(vals) != 4:
            raise ValueError(f"box [{b}] does not have 4 numbers")
        if vals == [0.0, 0.0, 0.0, 0.0]:
            continue
        if vals[2] <= vals[0] or vals[3] <= vals[1]:
            raise ValueError(f"box [{b}] needs x2 > x1 and y2 > y1")
        boxes.append(vals)
    return RivegLabel(image=image.strip(), text=text, type=typ[:-1], expansion=expansion, ve_label=ve_label,
                      boxes=boxes)


def load_riveg_labels(path: str | Path) -> LoadResult[RivegLabel]:
    """Read a RiVEG label file; malformed lines go to the report with their line number."""
    p = as_path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise DatasetError(Errors.E600.format(path=str(p), reason=f"{type(exc).__name__}: {exc}")) from exc
    report = LoadReport(path=str(p), dataset="riveg")
    out: list[RivegLabel] = []
    for n, bline in enumerate(raw.split(b"\n"), start=1):
        if not bline.strip():
            continue
        report.n_records += 1
        try:
            lab = parse_riveg_line(bline.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            report.error(n - 1, f"line {n}", Errors.E601.format(path=str(p), line=n, reason=str(exc)))
            continue
        lab.line = n
        if (lab.ve_label == 0) == lab.groundable:
            report.note("ve_disagrees", "the visual-entailment field disagrees with the boxes (the boxes decide)")
        out.append(lab)
    if not out and report.n_records:
        raise DatasetError(Errors.E611.format(path=str(p), n_errors=len(report.errors),
                                              first=report.errors[0].error if report.errors else "empty"))
    if report.counts or report.errors:
        report.log()
    return LoadResult(out, report)


def riveg_grounded(labels: list[RivegLabel]) -> dict[str, list[tuple[str, str, list[list[float]]]]]:
    """image id -> ``[(text, type, boxes)]``, the gold form of :func:`~pixlink.eval.metrics.grounded_prf`
    with text keys."""
    out: dict[str, list[tuple[str, str, list[list[float]]]]] = {}
    for lab in labels:
        out.setdefault(lab.image_id, []).append((lab.text, lab.type, lab.boxes))
    return out
