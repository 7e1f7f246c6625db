"""Dataset loaders: each benchmark's files -> canonical records (:class:`~pixlink.types.Mention`
for linking, :class:`~pixlink.types.Post` for MNER/GMNER), with a :class:`LoadReport` of what was
repaired or could not be read. Loaders are imported on use.

============== ================================================= ==========================
format         files                                             loader
============== ================================================= ==========================
mentions       pixlink's ``mentions.jsonl``                      :mod:`.mentions`
wikiperson     WIKIPerson ``WIKIPerson_*.json``                  :mod:`.wikiperson`
wikimel        MELBench ``Wikidata-MEL.json``                    :mod:`.melbench`
richpediamel   MELBench ``Richpedia-MEL.json``                   :mod:`.melbench`
vpwiki         VP-MEL VPWiki mentions (+ KB json)                :mod:`.vpwiki`
maskoven       MaskOVEN-Wiki COCO-style json                     :mod:`.maskoven`
oven           OVEN jsonl (+ Wiki6M KB)                          :mod:`.oven`
wikidiverse    WikiDiverse json                                  :mod:`.wikidiverse`
conll          Twitter-2015/2017/GMNER CoNLL                     :mod:`.conll`
gmner          Twitter-GMNER CoNLL + VOC xml (+ SMNER masks)     :mod:`.gmner`
riveg          RiVEG entity-level label lines                    :mod:`.riveg`
============== ================================================= ==========================
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from ...errors import DatasetError, Errors
from .base import LoadReport, LoadResult

MENTION_FORMATS: dict[str, tuple[str, str]] = {
    "mentions": ("mentions", "load_mentions"),
    "wikiperson": ("wikiperson", "load_wikiperson"),
    "wikimel": ("melbench", "load_melbench"),
    "richpediamel": ("melbench", "load_melbench"),
    "vpwiki": ("vpwiki", "load_vpwiki"),
    "maskoven": ("maskoven", "load_maskoven"),
    "oven": ("oven", "load_oven"),
    "wikidiverse": ("wikidiverse", "load_wikidiverse"),
}
"""Formats whose items are mentions (for ``pixlink eval link``): name -> (module, function)."""

POST_FORMATS: dict[str, tuple[str, str]] = {
    "conll": ("conll", "load_conll"),
    "gmner": ("gmner", "load_gmner"),
    "riveg": ("riveg", "load_riveg_labels"),
}

FORMATS = {**MENTION_FORMATS, **POST_FORMATS}


def guess_format(path: str | Path) -> str | None:
    """The format a file's name says, or ``None``."""
    name = Path(path).name.lower()
    parent = Path(path).parent.name.lower()
    if name.endswith("mentions.jsonl"):
        return "mentions"
    if "wikiperson" in name:
        return "wikiperson"
    if "wikidata-mel" in name or "wikimel" in name:
        return "wikimel"
    if "richpedia" in name:
        return "richpediamel"
    if "vpwiki" in name or "vp-mel" in name:
        return "vpwiki"
    if "maskoven" in name:
        return "maskoven"
    if "oven" in name and name.endswith(".jsonl"):
        return "oven"
    if "wikidiverse" in name or "wiki_diverse" in name:
        return "wikidiverse"
    if "label" in name and parent == "riveg" or name.endswith("finall_label.txt"):
        return "riveg"
    if name.endswith((".txt", ".conll")):
        return "gmner" if parent == "gmner" else "conll"
    return None


def _resolve(path: str | Path, fmt: str, table: dict[str, tuple[str, str]]) -> tuple[str, Any]:
    if fmt == "auto":
        guessed = guess_format(path)
        if guessed is None or guessed not in table:
            raise DatasetError(Errors.E610.format(
                fmt=f"auto (nothing known in the name {Path(path).name!r}; pass --format)", formats=", ".join(table)))
        fmt = guessed
    if fmt not in table:
        raise DatasetError(Errors.E610.format(fmt=fmt, formats=", ".join(table)))
    mod, fn = table[fmt]
    return fmt, getattr(importlib.import_module(f"{__name__}.{mod}"), fn)


def load_mentions_dataset(path: str | Path, fmt: str = "auto", image_root: str | Path | None = None,
                          **kwargs: Any) -> LoadResult:
    """Load any mention dataset (``fmt`` from :data:`MENTION_FORMATS`, or ``"auto"``)."""
    fmt, loader = _resolve(path, fmt, MENTION_FORMATS)
    if fmt in ("wikimel", "richpediamel"):
        kwargs.setdefault("dataset", fmt)
    return loader(path, image_root=image_root, **kwargs)


def load_any(path: str | Path, fmt: str = "auto", image_root: str | Path | None = None) -> LoadResult:
    """Load any supported file (for ``pixlink eval check``)."""
    fmt, loader = _resolve(path, fmt, FORMATS)
    if fmt in MENTION_FORMATS:
        return load_mentions_dataset(path, fmt, image_root=image_root)
    if fmt == "riveg":
        return loader(path)
    return loader(path, image_root=image_root)


__all__ = ["LoadReport", "LoadResult", "FORMATS", "MENTION_FORMATS", "POST_FORMATS", "guess_format",
           "load_mentions_dataset", "load_any"]
