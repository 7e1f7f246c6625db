"""Grounded multimodal NER (GMNER) and segmented MNER (SMNER): RiVEG's cascade + linking."""

from .pipeline import (GMNER_TRAIN_GROUNDABLE_RATE, GMNERConfig, GMNERPipeline, GMNERResult, GroundabilityClassifier,
                       calibrate_threshold, expansion, groundable_rates, template_expression)

__all__ = ["GMNER_TRAIN_GROUNDABLE_RATE", "GMNERConfig", "GMNERPipeline", "GMNERResult", "GroundabilityClassifier",
           "calibrate_threshold", "expansion", "groundable_rates", "template_expression"]
