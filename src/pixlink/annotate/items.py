"""What reverse annotation takes: items of (image, entity[, question, mention, caption, split]).

ITEMS is JSONL, one item a line::

    {"id": "0", "image": "photos/obama.jpg", "entity": "Q76", "question": "who is this?",
     "mention": "Barack Obama", "caption": "...", "split": "train"}

or the output of a dataset loader (:class:`~pixlink.types.Mention`: ``gold`` is the entity,
``text`` the question or caption, ``surface`` the mention). A bad line is reported and the
rest go on.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

import orjson

from ..errors import Errors, InputError
from ..io import iter_jsonl
from ..types import ItemError, Mention

FIELDS = ("id", "image", "entity", "question", "mention", "caption", "split")


@dataclass(frozen=True)
class AnnotationItem:
    """One thing to annotate: the region of ``image`` that shows KB entity ``entity``.

    Attributes:
        id: unique within the run (the line number when the file gives none).
        image: path of the image (absolute, or relative to the items file's folder / --images).
        entity: the KB entity id.
        question: OVEN-style question about the image ("what is the girl wearing in her hair?").
        mention: the mention's words in the caption (VPWiki mode).
        caption: the text that came with the image (VPWiki mode: the sentence).
        split: dataset split, kept in the outputs.
    """

    id: str
    image: str
    entity: str
    question: str | None = None
    mention: str | None = None
    caption: str | None = None
    split: str | None = None

    def __post_init__(self) -> None:
        for name in ("id", "image", "entity"):
            v = getattr(self, name)
            if not isinstance(v, str) or not v.strip():
                raise InputError(Errors.E710.format(item=self.id, reason=f"{name!r} must be a non-empty string, got {v!r}"))
        for name in ("question", "mention", "caption", "split"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, str):
                raise InputError(Errors.E710.format(item=self.id, reason=f"{name!r} must be a string, got {type(v).__name__}"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def digest(self) -> str:
        """A hash of the item's content (resume redoes an item whose content changed)."""
        return hashlib.blake2b(orjson.dumps(self.to_dict(), option=orjson.OPT_SORT_KEYS), digest_size=10).hexdigest()

    @classmethod
    def from_dict(cls, d: Any, default_id: str, root: Path | None = None) -> "AnnotationItem":
        if not isinstance(d, dict):
            raise InputError(Errors.E710.format(item=default_id, reason=f"expected a JSON object, got {type(d).__name__}"))
        unknown = sorted(set(d) - set(FIELDS))
        if unknown:
            raise InputError(Errors.E710.format(item=d.get("id", default_id), reason=f"unknown fields {unknown}; fields are {FIELDS}"))
        vals = {k: d.get(k) for k in FIELDS}
        vals["id"] = str(vals["id"]) if vals.get("id") is not None else default_id
        img = vals.get("image")
        if isinstance(img, str) and root is not None and img and not Path(img).is_absolute():
            vals["image"] = str(root / img)
        return cls(**vals)

    @classmethod
    def from_mention(cls, m: Mention) -> "AnnotationItem":
        """From a dataset loader's mention (``gold`` -> entity, ``text`` -> question / caption)."""
        if not m.image or not m.gold:
            raise InputError(Errors.E710.format(item=m.id, reason="a mention needs an image and a gold entity"))
        return cls(id=str(m.id), image=str(m.image), entity=str(m.gold), question=m.text if not m.surface else None,
                   mention=m.surface, caption=m.text if m.surface else None, split=m.split)


def read_items(path: str | Path, image_root: str | Path | None = None
               ) -> tuple[list[AnnotationItem], list[ItemError]]:
    """The items of a JSONL file and the lines that are not items (reported, not fatal).

    Relative image paths are read against ``image_root`` (default: the file's folder).
    Duplicate ids are errors (the second one is reported)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(Errors.E711.format(path=str(p), reason="no such file"))
    root = Path(image_root) if image_root is not None else p.parent
    items: list[AnnotationItem] = []
    errors: list[ItemError] = []
    seen: set[str] = set()
    for n, obj in iter_jsonl(p, strict=False):
        try:
            if isinstance(obj, InputError):
                raise obj
            item = AnnotationItem.from_dict(obj, default_id=f"line{n}", root=root)
            if item.id in seen:
                raise InputError(Errors.E710.format(item=item.id, reason=f"duplicate id (line {n})"))
        except InputError as exc:
            errors.append(ItemError(index=n, item_id=f"line{n}", error=str(exc), code=exc.code))
            continue
        seen.add(item.id)
        items.append(item)
    return items, errors


def items_from_mentions(mentions: Iterable[Mention]) -> tuple[list[AnnotationItem], list[ItemError]]:
    items, errors = [], []
    for i, m in enumerate(mentions):
        try:
            items.append(AnnotationItem.from_mention(m))
        except InputError as exc:
            errors.append(ItemError(index=i, item_id=str(m.id), error=str(exc), code=exc.code))
    return items, errors
