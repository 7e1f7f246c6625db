"""Grounding: phrases -> boxes -> (people told apart by face) -> masks.

The visual grounding stage of RiVEG's cascade, shared by GMNER/SMNER
(:mod:`pixlink.ner.gmner`) and the reverse-annotation pipeline: given an image and targets
(a phrase, its type, optionally the KB entity it is), find each target's box with the
``detect`` role, decide whether it is in the image at all (groundability), choose among
several person boxes by face when the entity is known, and cut a mask with the ``segment``
role. See :class:`Grounder`.
"""

from .grounder import (GMNER_TRAIN_GROUNDABLE_RATE, TYPE_WORDS, Grounded, Grounder, GroundingConfig, Target, expansion,
                       template_expression, typed_phrase)

__all__ = ["Grounder", "GroundingConfig", "Grounded", "Target", "GMNER_TRAIN_GROUNDABLE_RATE", "TYPE_WORDS", "expansion",
           "template_expression", "typed_phrase"]
