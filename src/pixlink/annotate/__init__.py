"""Reverse annotation: build region-entity datasets from (image, entity[, question]) items.

PL-VEL's MaskOVEN-Wiki pipeline (``mode="maskoven"``) and VP-MEL's VPWiki pipeline
(``mode="vpwiki"``). See :class:`ReverseAnnotator` and :func:`run_annotation`;
``pixlink annotate ITEMS --kb KB --out DIR`` on the command line.
"""

from .items import AnnotationItem, items_from_mentions, read_items
from .pipeline import AnnotationResult, ReverseAnnotator
from .rules import AnnotateConfig
from .run import run_annotation

__all__ = ["AnnotationItem", "AnnotationResult", "AnnotateConfig", "ReverseAnnotator", "read_items",
           "items_from_mentions", "run_annotation"]
