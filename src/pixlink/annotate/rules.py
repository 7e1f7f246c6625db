"""Agreement, correction and the filter rules of reverse annotation (PL-VEL's heuristic filter).

Every threshold is a named option of :class:`AnnotateConfig` with its default documented; the
class lists (non-visual categories, locations) are data (``annotate/data/rules.json``).

* **non_visual** — an entity whose KB classes include a non-visual category (events,
  software, games, languages, works of music...) is rejected: it has no region to draw.
* **location_whole_image** — a location entity (a city, a country, a park...) whose best
  proposal scores below ``location_min_score`` gets the whole image: the photo *is* the place.
* **agreement** — the chosen mask's IoU with the other annotators' (and references') masks;
  below ``agree_iou`` the item is flagged ``disagreement`` (kept, with the figures).
* **correction** (PL-VEL) — the most confident detector box that intersects the chosen mask
  (holds at least half of it);
  when the mask's own box differs from it (IoU < ``agree_iou``), the segmenter is prompted with
  that box instead (flag ``corrected``).
* **dense scenes** — at least ``dense_min_boxes`` detections of the chosen phrase (by a real
  detector, not the fallback's proposals) covering at least ``dense_min_cover`` of the image:
  the mask is opened (erosion then dilation, ``dense_kernel`` px at 512 px) and its connected
  components of at least 1% of it counted; more than ``dense_max_components`` is a rejection
  (``dense_fragmented``).
* **inversion** — a mask over ``inversion_min_area`` of the image that touches all four borders
  is the background around the object: it is inverted (flag ``inverted``), and rejected when
  the inverse is under ``min_area`` (``inverted_empty``).
* **min_area** — a final mask under this share of the image is rejected (``too_small``).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import Errors, InputError


@dataclass(frozen=True)
class AnnotateConfig:
    """Knobs of reverse annotation (every threshold named, with its default).

    Attributes:
        mode: ``maskoven`` (PL-VEL) or ``vpwiki`` (VP-MEL).
        references: which text references are grounded (label, intension, extension, question,
            mention).
        annotators: which annotators run (``face``, ``instance``, ``text``).
        agree_iou: masks agree at this IoU (agreement flag, correction rule, VPWiki's 0.5 rule).
        min_score: proposals below this score are not used.
        location_min_score: a location entity whose best proposal is below this gets the whole image.
        dense_min_boxes, dense_min_cover, dense_kernel, dense_max_components: the dense-scene rule.
        inversion_min_area: the inversion rule's area share.
        min_area: smallest final mask, as a share of the image.
        verify: link the final region back against the whole KB and flag a better other entity.
        verify_margin: flagged when another entity's fused score exceeds the target's by more.
        hypernym_depth: how far up P279 hypernyms are read for references and rules.
        rules_file, templates_file: replace the shipped data files.
        extension_generator: ask the ``generate`` role for the relational expression when it is a
            hub LLM (the packaged small LMs copy the prompt's examples: rules run instead).
    """

    mode: str = "maskoven"
    references: tuple[str, ...] = ("label", "intension", "extension")
    annotators: tuple[str, ...] = ("face", "instance", "text")
    agree_iou: float = 0.5
    min_score: float = 0.2
    location_min_score: float = 0.4
    dense_min_boxes: int = 3
    dense_min_cover: float = 0.5
    dense_kernel: int = 5
    dense_max_components: int = 4
    inversion_min_area: float = 0.9
    min_area: float = 0.001
    verify: bool = True
    verify_margin: float = 0.0
    hypernym_depth: int = 3
    rules_file: str | None = None
    templates_file: str | None = None
    extension_generator: bool = True

    def __post_init__(self) -> None:
        if self.mode not in ("maskoven", "vpwiki"):
            raise InputError(Errors.E713.format(what="mode", value=self.mode, reason="maskoven or vpwiki"))
        object.__setattr__(self, "references", tuple(self.references))
        object.__setattr__(self, "annotators", tuple(self.annotators))
        bad = [r for r in self.references if r not in ("label", "intension", "extension", "question", "mention")]
        if bad:
            raise InputError(Errors.E713.format(what="references", value=bad,
                                                reason="label, intension, extension, question, mention"))
        for name in ("agree_iou", "min_score", "location_min_score", "dense_min_cover", "inversion_min_area",
                     "min_area", "verify_margin"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
                raise InputError(Errors.E713.format(what=name, value=v, reason="a number in [0, 1]"))
        for name, lo in (("dense_min_boxes", 1), ("dense_kernel", 1), ("dense_max_components", 1), ("hypernym_depth", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise InputError(Errors.E713.format(what=name, value=v, reason=f"an integer >= {lo}"))

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(getattr(self, f.name)) if isinstance(getattr(self, f.name), tuple) else getattr(self, f.name))
                for f in fields(self)}


@functools.lru_cache(maxsize=4)
def load_rules(path: str | None = None) -> dict[str, set[str]]:
    try:
        text = (Path(path).read_text() if path else
                resources.files("pixlink.annotate").joinpath("data", "rules.json").read_text())
        d = json.loads(text)
        return {"non_visual": set(d["non_visual"]), "location": set(d["location"])}
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(Errors.E713.format(what="rules_file", value=path or "rules.json", reason=str(exc))) from exc


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.logical_and(a, b).sum()
    union = np.logical_or(a, b).sum()
    return float(inter / union) if union else 0.0


def agreement(chosen: np.ndarray, others: Sequence[np.ndarray]) -> float | None:
    """The chosen mask's best IoU with the other proposals' masks (None when there are none)."""
    ious = [mask_iou(chosen, m) for m in others if m is not None]
    return max(ious) if ious else None


def correction_box(mask: np.ndarray, boxes: Sequence[Sequence[float]], scores: Sequence[float],
                   min_cover: float = 0.5) -> tuple[list[float], float] | None:
    """PL-VEL's correction: the most confident detector box that intersects the mask — read as
    a box holding at least ``min_cover`` of the mask's pixels (a neighbour's box that grazes the
    mask's edge does not count)."""
    best = None
    total = max(int(mask.sum()), 1)
    for b, s in zip(boxes, scores):
        x1, y1, x2, y2 = (int(round(v)) for v in b)
        if x2 <= x1 or y2 <= y1:
            continue
        inside = int(mask[max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)].sum())
        if inside >= min_cover * total and (best is None or s > best[1]):
            best = ([float(v) for v in b], float(s))
    return best


def is_dense(boxes: Sequence[Sequence[float]], scores: Sequence[float], size: tuple[int, int], cfg: AnnotateConfig) -> bool:
    """At least ``dense_min_boxes`` confident boxes whose union covers ``dense_min_cover`` of the image."""
    h, w = size
    keep = [b for b, s in zip(boxes, scores) if s >= cfg.min_score]
    if len(keep) < cfg.dense_min_boxes:
        return False
    cover = np.zeros((h, w), bool)
    for b in keep:
        x1, y1, x2, y2 = (int(round(v)) for v in b)
        cover[max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)] = True
    return cover.mean() >= cfg.dense_min_cover


def open_and_count(mask: np.ndarray, kernel_at_512: int, min_share: float = 0.01) -> tuple[np.ndarray, int]:
    """Erode then dilate ``mask`` (kernel scaled from 512 px to the image), and count its
    connected components that hold at least ``min_share`` of the opened mask."""
    import cv2

    h, w = mask.shape
    k = max(3, int(round(kernel_at_512 * max(h, w) / 512))) | 1  # odd, so the kernel is centred
    ker = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    # outside the image is background: a speck in a corner is opened away like any other
    opened = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, ker, borderType=cv2.BORDER_CONSTANT,
                              borderValue=0) > 0
    n, lab, stats, _ = cv2.connectedComponentsWithStats(opened.astype(np.uint8))
    total = max(int(opened.sum()), 1)
    return opened, int(sum(1 for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= min_share * total))


def touches_all_borders(mask: np.ndarray) -> bool:
    return bool(mask[0, :].any() and mask[-1, :].any() and mask[:, 0].any() and mask[:, -1].any())
