"""The ``conll`` dataset format: Twitter-2015, Twitter-2017 and Twitter-GMNER CoNLL files.

The reader is a file format that the tagger's training reads too, so it lives on the ground
floor, :mod:`pixlink.conll` (format, quirks of the real files, report); the BIO and type-name
helpers are in :mod:`pixlink.spans`. Both are re-exported here, where the loaders of
:mod:`pixlink.eval.datasets` are looked up.
"""

from __future__ import annotations

from ...conll import dataset_of, load_conll, read_conll
from ...spans import DATASET_TYPES, align_type, bio_to_spans, spans_to_bio

__all__ = ["DATASET_TYPES", "align_type", "bio_to_spans", "dataset_of", "load_conll", "read_conll", "spans_to_bio"]
