"""Grounded multimodal NER (GMNER) and segmented MNER (SMNER): RiVEG's cascade + linking."""

from .pipeline import (GMNERConfig, GMNERPipeline, GMNERResult, GroundabilityClassifier, calibrate_threshold,
                       expansion, template_expression)

__all__ = ["GMNERConfig", "GMNERPipeline", "GMNERResult", "GroundabilityClassifier", "calibrate_threshold",
           "expansion", "template_expression"]
