"""Multimodal NER for tweets: the trained tagger (:class:`Tagger`), its training
(:mod:`pixlink.ner.train`) and RiVEG's auxiliary-knowledge step (:class:`AuxKnowledge`).

Heavy libraries (torch, transformers) are imported only when a model is built.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Tagger", "AuxKnowledge", "default_weights_dir"]


def __getattr__(name: str) -> Any:
    if name in ("Tagger", "default_weights_dir"):
        from . import tagger

        return getattr(tagger, name)
    if name == "AuxKnowledge":
        from .aux import AuxKnowledge

        return AuxKnowledge
    raise AttributeError(name)
