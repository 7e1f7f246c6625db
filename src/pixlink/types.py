"""Canonical typed records shared by every part of pixlink.

Every task reads and writes these, never ad-hoc dicts or joined strings:

* :class:`Entity` — a knowledge-base entry (Wikidata-style).
* :class:`Region` — what a person points at: a box, points, and/or a pixel mask.
* :class:`Mention` — one linking query or dataset item: image + region + text + gold.
* :class:`Candidate` / :class:`Link` — a ranked answer of the linker, with evidence.
* :class:`NamedEntity` / :class:`Post` — a named entity of a text+image post (GMNER/SMNER).
* :class:`ItemError` / :class:`BatchResult` — a batch keeps its good items and reports the bad.

Coordinates: boxes are XYXY in original-image pixels (continuous coordinates, the whole
image is ``[0, 0, W, H]``); masks are ``(H, W)`` bool arrays and travel as COCO RLE; points
are ``(x, y)``; image sizes are ``(H, W)``. See :mod:`pixlink.geometry`.
NIL (no entity in the KB) is ``None`` wherever an entity id is expected.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Generic, Iterator, Sequence, TypeVar

import numpy as np

from . import geometry as geo
from .errors import Errors, InputError

NIL = None
"""The entity id of 'no entity in the KB'."""


def _check_image_size(size: Any) -> tuple[int, int] | None:
    if size is None:
        return None
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError) as exc:
        raise InputError(Errors.E009.format(size=size)) from exc
    if h <= 0 or w <= 0:
        raise InputError(Errors.E009.format(size=size))
    return (h, w)


# --------------------------------------------------------------------------------------------
# Knowledge base
# --------------------------------------------------------------------------------------------


@dataclass
class Entity:
    """A knowledge-base entity.

    Attributes:
        id: KB id, e.g. a Wikidata QID ``"Q76"``.
        label: preferred name in the KB's language.
        aliases: other names.
        description: one-line description.
        types: instance-of (P31) ids.
        parents: subclass-of (P279) ids (for entities that are classes).
        images: image references: absolute local paths once resolved, else file names
            (e.g. Wikidata P18 values) that an image root may resolve later.
        popularity: a prior (sitelink count, page views...) when the source gives one.
        source: which importer / file the entity came from.
        attrs: other source fields kept as they are (e.g. MEL ``attr`` text, Wikipedia URL).
    """

    id: str
    label: str
    aliases: tuple[str, ...] = ()
    description: str = ""
    types: tuple[str, ...] = ()
    parents: tuple[str, ...] = ()
    images: tuple[str, ...] = ()
    popularity: float | None = None
    source: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id.strip():
            raise InputError(Errors.E010.format(what="Entity id", value=self.id, reason="must be a non-empty string"))
        if not isinstance(self.label, str):
            raise InputError(Errors.E010.format(what="Entity label", value=self.label, reason="must be a string"))
        self.aliases = tuple(self.aliases)
        self.types = tuple(self.types)
        self.parents = tuple(self.parents)
        self.images = tuple(self.images)

    def names(self) -> list[str]:
        """Label then aliases, without duplicates or empties."""
        seen: dict[str, None] = {}
        for n in (self.label, *self.aliases):
            if n and n not in seen:
                seen[n] = None
        return list(seen)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("aliases", "types", "parents", "images"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Entity":
        known = {f for f in cls.__dataclass_fields__}
        extra = {k: v for k, v in d.items() if k not in known}
        kwargs = {k: v for k, v in d.items() if k in known}
        if extra:
            kwargs["attrs"] = {**kwargs.get("attrs", {}), **extra}
        return cls(**kwargs)


# --------------------------------------------------------------------------------------------
# Regions
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Region:
    """What a person points at in an image.

    At least one of ``box``, ``points`` or ``mask`` is set. All coordinates are in
    original-image pixels; see :mod:`pixlink.geometry` for the conventions.

    Attributes:
        image_size: ``(H, W)`` of the image, or ``None`` when unknown (dataset records
            whose images are absent); bounds are checked only when it is known.
        box: ``(4,)`` float64 XYXY box.
        points: ``(N, 2)`` float64 ``(x, y)`` clicks.
        point_labels: ``(N,)`` int, 1 = foreground, 0 = background (default all 1).
        mask: ``(H, W)`` bool pixel mask.
        source: where the region came from: ``"box"``, ``"points"``, ``"mask"`` for a
            user prompt; the segmenter's name when the mask was computed.
        score: the segmenter's or detector's confidence, when one produced it.
    """

    image_size: tuple[int, int] | None = None
    box: np.ndarray | None = None
    points: np.ndarray | None = None
    point_labels: np.ndarray | None = None
    mask: np.ndarray | None = None
    source: str = ""
    score: float | None = None

    def __post_init__(self) -> None:
        self.image_size = _check_image_size(self.image_size)
        if self.box is None and self.points is None and self.mask is None:
            raise InputError(Errors.E008)
        if self.box is not None:
            self.box = geo.as_box(self.box)
            if self.image_size is not None and not geo.box_inside(self.box, self.image_size):
                raise InputError(
                    Errors.E003.format(box=self.box.tolist(), height=self.image_size[0], width=self.image_size[1])
                )
        if self.points is not None:
            try:
                pts = np.asarray(self.points, dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise InputError(Errors.E006.format(points=self.points, reason=f"not (x, y) number pairs ({exc})")) from exc
            if pts.ndim == 1 and pts.size == 2:
                pts = pts.reshape(1, 2)
            if pts.ndim != 2 or pts.shape[1] != 2 or pts.shape[0] == 0:
                raise InputError(Errors.E006.format(points=self.points, reason="expected (N, 2) (x, y) pairs"))
            if not np.all(np.isfinite(pts)):
                raise InputError(Errors.E006.format(points=self.points, reason="contains NaN or infinity"))
            if self.image_size is not None:
                h, w = self.image_size
                if np.any(pts[:, 0] < 0) or np.any(pts[:, 0] > w) or np.any(pts[:, 1] < 0) or np.any(pts[:, 1] > h):
                    raise InputError(
                        Errors.E006.format(points=pts.tolist(), reason=f"outside the image (H={h}, W={w})")
                    )
            self.points = pts
            if self.point_labels is None:
                self.point_labels = np.ones(len(pts), dtype=np.int64)
            else:
                try:
                    lab = np.asarray(self.point_labels, dtype=np.int64).reshape(-1)
                except (TypeError, ValueError, OverflowError) as exc:
                    raise InputError(Errors.E006.format(points=pts.tolist(), reason=f"point_labels are not integers ({exc})")) from exc
                if lab.shape != (len(pts),) or not np.all(np.isin(lab, (0, 1))):
                    raise InputError(
                        Errors.E006.format(points=pts.tolist(), reason="point_labels must be N values in {0, 1}")
                    )
                self.point_labels = lab
        if self.mask is not None:
            self.mask = geo.as_mask(self.mask, self.image_size)
            if self.image_size is None:
                self.image_size = (int(self.mask.shape[0]), int(self.mask.shape[1]))
        if not self.source:
            self.source = "mask" if self.mask is not None else "box" if self.box is not None else "points"

    # -- constructors ----------------------------------------------------------------------
    @classmethod
    def from_box(
        cls, box: Sequence[float], image_size: tuple[int, int] | None = None, clip: bool = False, **kw: Any
    ) -> "Region":
        """A box region. With ``clip=True`` a box partly outside the image is clipped to it
        (a box wholly outside still raises E003)."""
        b = geo.as_box(box)
        if clip and image_size is not None:
            b = geo.clip_box(b, _check_image_size(image_size))  # type: ignore[arg-type]
        return cls(image_size=image_size, box=b, **kw)

    @classmethod
    def from_points(
        cls, points: Sequence[Sequence[float]], image_size: tuple[int, int] | None = None,
        labels: Sequence[int] | None = None, **kw: Any,
    ) -> "Region":
        return cls(image_size=image_size, points=np.asarray(points, dtype=np.float64), point_labels=labels, **kw)

    @classmethod
    def from_mask(cls, mask: np.ndarray, **kw: Any) -> "Region":
        return cls(image_size=tuple(np.asarray(mask).shape[:2]), mask=mask, **kw)

    @classmethod
    def from_rle(cls, rle: dict[str, Any], **kw: Any) -> "Region":
        return cls.from_mask(geo.rle_to_mask(rle), **kw)

    # -- derived ---------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        """``"mask"`` if a mask is set, else ``"box"``, else ``"points"``."""
        return "mask" if self.mask is not None else "box" if self.box is not None else "points"

    @property
    def bbox(self) -> np.ndarray:
        """The region's XYXY box: the given box, else the mask's tight box, else the points' box
        (a one-pixel box around a single click)."""
        if self.box is not None:
            return self.box
        if self.mask is not None:
            return geo.mask_to_box(self.mask)
        assert self.points is not None
        pts = self.points[self.point_labels == 1] if self.point_labels is not None else self.points
        pts = pts if len(pts) else self.points
        return np.array([pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max() + 1, pts[:, 1].max() + 1])

    def with_mask(self, mask: np.ndarray, source: str, score: float | None = None) -> "Region":
        """A copy of this prompt region with a computed mask (the prompt is kept)."""
        return Region(
            image_size=self.image_size, box=self.box, points=self.points, point_labels=self.point_labels,
            mask=mask, source=source, score=score,
        )

    def as_mask(self) -> np.ndarray:
        """The region as an ``(H, W)`` bool mask: its mask, else its box filled (needs
        ``image_size``)."""
        if self.mask is not None:
            return self.mask
        if self.image_size is None:
            raise InputError(Errors.E009.format(size=None))
        return geo.box_to_mask(self.bbox, self.image_size)

    def area(self) -> float:
        if self.mask is not None:
            return float(self.mask.sum())
        return geo.box_area(self.bbox)

    def to_rle(self) -> dict[str, Any] | None:
        return geo.mask_to_rle(self.mask) if self.mask is not None else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the mask as COCO RLE, arrays as lists."""
        return {
            "image_size": list(self.image_size) if self.image_size else None,
            "box": self.bbox.tolist(),
            "prompt_box": self.box.tolist() if self.box is not None else None,
            "points": self.points.tolist() if self.points is not None else None,
            "point_labels": self.point_labels.tolist() if self.point_labels is not None else None,
            "mask": self.to_rle(),
            "source": self.source,
            "score": self.score,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Region":
        mask = geo.rle_to_mask(d["mask"]) if d.get("mask") else None
        box = d.get("prompt_box", d.get("box")) if "prompt_box" in d else d.get("box")
        return cls(
            image_size=d.get("image_size"), box=box, points=d.get("points"), point_labels=d.get("point_labels"),
            mask=mask, source=d.get("source", ""), score=d.get("score"),
        )


# --------------------------------------------------------------------------------------------
# Linking
# --------------------------------------------------------------------------------------------


@dataclass
class Mention:
    """One linking query or dataset item.

    Attributes:
        id: item id (unique within its dataset).
        image: path of the image, or ``None`` for text-only items.
        region: the region pointed at; ``None`` means the whole image.
        text: the caption / sentence / question that came with the image.
        surface: the mention's words in ``text``, when the dataset marks them.
        gold: gold entity id; ``None`` is NIL (only meaningful when ``labelled``).
        labelled: whether ``gold`` is a label (False for unlabelled queries).
        split: dataset split or subset (``"seen"``/``"unseen"``, ``"test"``...).
        meta: other dataset fields, kept as they are.
        type: the mention's type when known (PER / LOC / ORG / MISC, from the dataset or NER).
    """

    id: str
    image: str | None = None
    region: Region | None = None
    text: str | None = None
    surface: str | None = None
    gold: str | None = None
    labelled: bool = True
    split: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    type: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "image": self.image, "region": self.region.to_dict() if self.region else None,
            "text": self.text, "surface": self.surface, "gold": self.gold, "labelled": self.labelled,
            "split": self.split, "meta": self.meta, "type": self.type,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Mention":
        return cls(
            id=str(d["id"]), image=d.get("image"), region=Region.from_dict(d["region"]) if d.get("region") else None,
            text=d.get("text"), surface=d.get("surface"), gold=d.get("gold"), labelled=d.get("labelled", True),
            split=d.get("split"), meta=d.get("meta") or {}, type=d.get("type"),
        )


@dataclass
class Candidate:
    """One ranked answer: an entity with its fused score and the score of each signal.

    ``signals`` maps a signal name (``"v2t"``, ``"v2v"``, ``"face"``, ``"lexical"``,
    ``"dense_text"``, ``"rerank"``...) to that signal's score for this entity; a signal that
    did not run or did not retrieve the entity is absent, not zero.
    """

    entity_id: str
    score: float
    signals: dict[str, float] = field(default_factory=dict)
    label: str = ""
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Link:
    """The linker's answer for one mention.

    Attributes:
        candidates: ranked best first.
        nil: True when no candidate passed the NIL threshold (the answer is 'not in the KB').
        nil_threshold: the threshold that decided ``nil``.
        region: the region linked (with the mask the segmenter made, if any).
        backends: role -> backend that ran (e.g. ``{"segmenter": "litemedsam"}``).
        timings: stage -> seconds.
        notes: fallbacks and other things the user should know about this answer.
        signals: signal -> the backend that produced it, for the signals that ran in this call
            (``"kb"`` for signals computed from the KB alone).
    """

    candidates: list[Candidate]
    nil: bool = False
    nil_threshold: float | None = None
    mention_id: str | None = None
    region: Region | None = None
    backends: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    signals: dict[str, str] = field(default_factory=dict)

    @property
    def prediction(self) -> str | None:
        """The linked entity id, or ``None`` (NIL)."""
        if self.nil or not self.candidates:
            return NIL
        return self.candidates[0].entity_id

    def to_dict(self) -> dict[str, Any]:
        return {
            "mention_id": self.mention_id,
            "prediction": self.prediction,
            "nil": self.nil,
            "nil_threshold": self.nil_threshold,
            "candidates": [c.to_dict() for c in self.candidates],
            "region": self.region.to_dict() if self.region else None,
            "backends": self.backends,
            "timings": self.timings,
            "notes": self.notes,
            "signals": self.signals,
        }


# --------------------------------------------------------------------------------------------
# Named entities of a post (MNER / GMNER / SMNER)
# --------------------------------------------------------------------------------------------


@dataclass
class NamedEntity:
    """A named entity of a post.

    Attributes:
        start, end: token span ``[start, end)`` in the post's tokens.
        type: entity type as the dataset names it (PER / LOC / ORG / OTHER or MISC).
        text: the entity's words.
        groundable: whether it is visible in the image (``None`` = not decided).
        region: its box (and mask for SMNER) when groundable.
        expansion: RiVEG's entity expansion expression used to ground it.
        score: the tagger's confidence, when it gives one.
        link: the KB link, when linking ran.
    """

    start: int
    end: int
    type: str
    text: str = ""
    groundable: bool | None = None
    region: Region | None = None
    expansion: str | None = None
    score: float | None = None
    link: Link | None = None

    def __post_init__(self) -> None:
        if not (0 <= self.start < self.end):
            raise InputError(
                Errors.E010.format(what="Entity span", value=(self.start, self.end), reason="needs 0 <= start < end")
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start, "end": self.end, "type": self.type, "text": self.text,
            "groundable": self.groundable, "region": self.region.to_dict() if self.region else None,
            "expansion": self.expansion, "score": self.score,
            "link": self.link.to_dict() if self.link else None,
        }


@dataclass
class Post:
    """A text + image post (a tweet) with its tokens and, for datasets, gold entities."""

    id: str
    tokens: list[str]
    image: str | None = None
    entities: list[NamedEntity] = field(default_factory=list)
    split: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return " ".join(self.tokens)


# --------------------------------------------------------------------------------------------
# Batches
# --------------------------------------------------------------------------------------------


@dataclass
class ItemError:
    """A batch item that failed: where it was, what it was, and why."""

    index: int
    item_id: str | None
    error: str
    code: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


T = TypeVar("T")


@dataclass
class BatchResult(Generic[T]):
    """Results of a batch call: the good items (with their input index) and the errors."""

    results: list[tuple[int, T]] = field(default_factory=list)
    errors: list[ItemError] = field(default_factory=list)

    def __iter__(self) -> Iterator[tuple[int, T]]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    @property
    def ok(self) -> bool:
        return not self.errors
