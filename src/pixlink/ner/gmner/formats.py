"""Writers for the GMNER formats: RiVEG's entity-level labels and Twitter-GMNER CoNLL + VOC xml.

(The readers are in :mod:`pixlink.eval.datasets`.)

* RiVEG: one line per entity, ``img###Entity(TYPE)###expansion###{0,2}###&[x1,y1,x2,y2]``
  where the fourth field is 2 for a groundable entity and 0 otherwise, and ``[0, 0, 0, 0]``
  stands for "no box".
* Twitter-GMNER: ``IMGID:<id>`` then ``token\\tBIO`` lines; boxes in a Pascal-VOC xml per
  image whose ``<object><name>`` is the entity text and ``<bndbox>`` integer original pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence
from xml.sax.saxutils import escape

from ...spans import spans_to_bio
from ...types import NamedEntity


def riveg_line(image: str, ent: NamedEntity) -> str:
    """One RiVEG label line for an entity (its expansion's expression, or empty)."""
    expr = ""
    if ent.expansion:
        expr = ent.expansion.split(" - ", 1)[1] if " - " in ent.expansion else ent.expansion
    expr = expr.replace("###", " ")
    if ent.region is not None and ent.groundable:
        x1, y1, x2, y2 = (float(v) for v in ent.region.bbox)
        return f"{image}###{ent.text}({ent.type})###{expr}###2###&[{x1}, {y1}, {x2}, {y2}]"
    return f"{image}###{ent.text}({ent.type})###{expr}###0###&[0, 0, 0, 0]"


def write_riveg(path: str | Path, items: Iterable[tuple[str, Sequence[NamedEntity]]]) -> int:
    """Write (image file name, entities) pairs as RiVEG label lines; returns the line count."""
    n = 0
    with open(path, "w", encoding="utf-8") as fh:
        for image, ents in items:
            for e in ents:
                fh.write(riveg_line(image, e) + "\n")
                n += 1
    return n


def bio_tags(n_tokens: int, ents: Sequence[NamedEntity]) -> list[str]:
    """BIO tags of a post's entities (:func:`pixlink.spans.spans_to_bio`)."""
    return spans_to_bio(n_tokens, ents)


def write_conll(path: str | Path, posts: Iterable[tuple[str, Sequence[str], Sequence[NamedEntity]]]) -> None:
    """Twitter-GMNER CoNLL: ``IMGID:<id>`` then ``token\\tTAG`` lines, a blank line between posts."""
    with open(path, "w", encoding="utf-8") as fh:
        for img_id, tokens, ents in posts:
            fh.write(f"IMGID:{img_id}\n")
            for tok, tag in zip(tokens, bio_tags(len(tokens), ents)):
                fh.write(f"{tok}\t{tag}\n")
            fh.write("\n")


def voc_xml(filename: str, size: tuple[int, int], ents: Sequence[NamedEntity]) -> str:
    """A Pascal-VOC annotation with one object per grounded entity (integer pixel box)."""
    h, w = size
    objs = []
    for e in ents:
        if e.region is None or not e.groundable:
            continue
        x1, y1, x2, y2 = (int(round(float(v))) for v in e.region.bbox)
        objs.append(
            f"\t<object>\n\t\t<name>{escape(e.text)}</name>\n\t\t<pose>Unspecified</pose>\n\t\t<truncated>0</truncated>\n"
            f"\t\t<difficult>0</difficult>\n\t\t<bndbox>\n\t\t\t<xmin>{x1}</xmin>\n\t\t\t<ymin>{y1}</ymin>\n"
            f"\t\t\t<xmax>{x2}</xmax>\n\t\t\t<ymax>{y2}</ymax>\n\t\t</bndbox>\n\t</object>\n"
        )
    return (f"<annotation>\n\t<filename>{escape(filename)}</filename>\n\t<size>\n\t\t<width>{w}</width>\n"
            f"\t\t<height>{h}</height>\n\t\t<depth>3</depth>\n\t</size>\n\t<segmented>0</segmented>\n"
            + "".join(objs) + "</annotation>\n")
