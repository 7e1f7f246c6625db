"""A CVAT auto-annotation function: faces in each frame linked to KB entities.

Run it against any CVAT server with the SDK's command line::

    cvat-cli --server-host HOST --auth USER task auto-annotate TASK_ID \\
        --function-module pixlink.serve.cvat -p kb=str:/path/to/kb [-p profile=str:offline] \\
        [-p shape=str:mask|rectangle|both] [-p keep_nil=bool:false]

or from Python: ``cvataa.annotate_task(client, task_id, create(kb="/path/to/kb"))``.

The function declares one generic label, ``entity``, with a text attribute ``qid`` that holds
the linked entity's id (CVAT matches labels by name, so the task needs a label ``entity``
with a text attribute ``qid``; a task's own label names stay free). For each face that pixlink
finds, the head region is linked (:func:`pixlink.serve.engine.head_boxes`) and returned as a mask
(a polygon when CVAT asks for ``conv_mask_to_poly``), a rectangle, or both; ``context.conf_threshold``
filters by the fused score; a NIL answer is left out unless ``keep_nil`` (then ``qid`` = ``NIL``).
"""

from __future__ import annotations

import os

import numpy as np
import PIL.Image

import cvat_sdk.auto_annotation as cvataa
import cvat_sdk.models as models
from cvat_sdk.masks import encode_mask

from ..errors import Errors, InputError
from ..regions import image_key
from .engine import head_boxes

SHAPES = {"mask": "mask", "rectangle": "rectangle", "both": "any"}


class PixlinkCVATFunction:
    """``spec`` + ``detect(context, image)``, the SDK's detection-function interface.

    Args:
        kb: the KB directory (default ``PIXLINK_KB``; E736 without one).
        profile: model profile (``offline``, ``hub``, ``auto``).
        shape: ``"mask"`` (default), ``"rectangle"`` or ``"both"`` (then the task's label must be
            of type *any*).
        keep_nil: also return regions whose answer is NIL (``qid`` = ``NIL``).
    """

    def __init__(self, kb: str | None = None, profile: str = "offline", shape: str = "mask",
                 keep_nil: bool = False) -> None:
        from ..link import Linker

        kb = kb or os.environ.get("PIXLINK_KB")
        if not kb:
            raise InputError(Errors.E736)
        if shape not in SHAPES:
            raise InputError(Errors.E010.format(what="shape", value=shape, reason=f"use one of {sorted(SHAPES)}"))
        self.shape = shape
        self.keep_nil = bool(keep_nil)
        self.linker = Linker.from_kb(kb, profile=profile)
        self.linker.use_image_cache(max_images=4)
        self.spec = cvataa.DetectionFunctionSpec(labels=[
            cvataa.label_spec("entity", 0, type=SHAPES[shape], attributes=[cvataa.text_attribute_spec("qid", 0)]),
        ])

    def detect(self, context: cvataa.DetectionFunctionContext, image: PIL.Image.Image) -> list[models.LabeledShapeRequest]:
        """Shapes of label 0 (``entity``) with the ``qid`` attribute, for one frame."""
        arr = np.ascontiguousarray(np.asarray(image.convert("RGB")))
        key = image_key(arr)
        threshold = context.conf_threshold or 0.0
        out: list[models.LabeledShapeRequest] = []
        for box in head_boxes(self.linker, arr, key):
            link = self.linker.link(arr, {"box": box}, k=1, image_key=key)
            score = link.candidates[0].score if link.candidates else 0.0
            if (link.nil and not self.keep_nil) or score < threshold:
                continue
            qid = "NIL" if link.nil else link.candidates[0].entity_id
            attrs = [models.AttributeValRequest(spec_id=0, value=qid)]
            region = link.region
            if self.shape in ("rectangle", "both"):
                out.append(cvataa.rectangle(0, [float(v) for v in region.bbox], attributes=attrs))
            if self.shape in ("mask", "both") and region.mask is not None and region.mask.any():
                if context.conv_mask_to_poly:
                    poly = _polygon(region.mask)
                    if poly:
                        out.append(cvataa.polygon(0, poly, attributes=attrs))
                else:
                    out.append(cvataa.mask(0, encode_mask(region.mask, bbox=_mask_box(region.mask)), attributes=attrs))
        return out


def _mask_box(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def _polygon(mask: np.ndarray) -> list[float]:
    """The largest outer contour of a mask as flat ``[x1, y1, x2, y2, ...]`` (>= 3 points)."""
    import cv2

    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return []
    c = max(contours, key=cv2.contourArea).reshape(-1, 2)
    return [float(v) for v in c.ravel()] if len(c) >= 3 else []


create = PixlinkCVATFunction
"""What ``cvat-cli ... --function-module pixlink.serve.cvat -p NAME=TYPE:VALUE`` calls."""
