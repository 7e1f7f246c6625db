"""Open-vocabulary detection from the hub: phrases -> boxes in original-pixel XYXY.

Backends (both :class:`~pixlink.models.roles.PhraseDetector`):

* ``detect`` / ``owlv2`` — :class:`HubOwlv2Detector` (default
  ``google/owlv2-base-patch16-ensemble``). OWLv2's processor pads the image to a square
  (bottom and right) before resizing it to 960 x 960, so its normalised boxes are fractions of
  the padded square of side ``max(H, W)``; the processor's own
  ``post_process_object_detection`` scales them by ``max(H, W)`` when given the original
  ``(H, W)``, and pixlink then clips them to the image and drops boxes that lie in the padding.
  Boxes overlapping a better box of the same phrase by more than ``nms_iou`` are dropped
  (OWLv2 predicts one box per image patch, so duplicates are the rule).
* ``detect`` / ``grounding_dino`` — :class:`HubGroundingDino` (default
  ``IDEA-Research/grounding-dino-tiny``). The phrases are joined into one prompt
  (``"a cat. a dog."``, lower case, as the model was trained); each of the 900 queries is
  given to the phrase whose tokens it scores highest (max over the phrase's tokens of the
  sigmoid logits, tokens found from the tokenizer's offsets), and kept when that score
  passes ``threshold``. Boxes come from the processor's
  ``post_process_grounded_object_detection`` with the original ``(H, W)`` (no padding for a
  single image).

Every detection has ``box`` ``(4,)`` float64 XYXY in original pixels, ``score`` in [0, 1],
``phrase`` the query phrase as given, ``label`` the same phrase, ``source`` the backend name.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ... import geometry as geo
from ...device import resolve_device
from ...errors import Errors, InputError
from ...log import get_logger
from .. import roles as R
from ..hub import expect_model_type, hub_cache_dir, load_config, load_pretrained, load_processor, needs, \
    resolve_model, to_pil
from ..registry import register_backend

log = get_logger("pixlink.models.hub_detect")

OWLV2_DEFAULT = "google/owlv2-base-patch16-ensemble"
GDINO_DEFAULT = "IDEA-Research/grounding-dino-tiny"


def check_phrases(phrases: Any, backend: str) -> list[str]:
    """A non-empty list of non-empty strings (stripped), else E312."""
    if isinstance(phrases, str) or not isinstance(phrases, Sequence) or not phrases:
        raise InputError(Errors.E312.format(backend=backend, value=phrases))
    out = []
    for p in phrases:
        if not isinstance(p, str) or not p.strip():
            raise InputError(Errors.E312.format(backend=backend, value=phrases))
        out.append(p.strip())
    return out


def _clip_to_image(box: np.ndarray, size: tuple[int, int]) -> np.ndarray | None:
    """Clip an XYXY box to the image; None when nothing of it is inside (e.g. in OWLv2's padding)."""
    h, w = size
    b = np.array([max(box[0], 0.0), max(box[1], 0.0), min(box[2], w), min(box[3], h)], dtype=np.float64)
    return b if b[2] > b[0] and b[3] > b[1] else None


def nms_per_phrase(dets: list[R.Detection], iou: float | None) -> list[R.Detection]:
    """Greedy NMS (:func:`pixlink.geometry.nms`) within each phrase (box IoU > ``iou`` with a
    better box of the same phrase is dropped); ``None`` keeps everything. Result sorted by
    score, best first (ties in input order)."""
    dets = sorted(dets, key=lambda d: -d.score)
    if iou is None or not dets:
        return dets
    kept: set[int] = set()
    for phrase in dict.fromkeys(d.phrase for d in dets):
        idx = [i for i, d in enumerate(dets) if d.phrase == phrase]
        boxes = np.stack([dets[i].box for i in idx])
        kept.update(idx[int(k)] for k in geo.nms(boxes, -np.arange(len(idx), dtype=np.float64), iou))
    return [d for i, d in enumerate(dets) if i in kept]


class _HubDetector:
    """Loading shared by both detectors. ``device``: torch device (``auto``/None:
    :func:`pixlink.device.resolve_device`). Shared by threads: the processor (whose Rust
    tokenizer changes its padding settings on every call) runs under a lock; the model only
    reads its weights."""

    name = ""
    model_types: tuple[str, ...] = ()

    def __init__(self, model: str | Path, cache_dir: str | Path | None, *, nms_iou: float | None,
                 device: str | None) -> None:
        import torch
        from transformers import AutoModelForZeroShotObjectDetection

        self.device = torch.device(resolve_device(device))
        self._processor_lock = threading.Lock()
        self.nms_iou = nms_iou
        source, self.model_id, self.is_local = resolve_model(model, self.name)
        self.cache_dir = hub_cache_dir(cache_dir)
        cfg = load_config(source, owner=self.name, cache_dir=self.cache_dir)
        expect_model_type(cfg, self.model_types, owner=self.name, model=self.model_id,
                          expected=" or ".join(repr(t) for t in self.model_types))
        self._net = load_pretrained(AutoModelForZeroShotObjectDetection.from_pretrained, source, owner=self.name,
                                    cache_dir=self.cache_dir, what="weights").eval().to(self.device)
        self.processor = load_processor(source, owner=self.name, cache_dir=self.cache_dir, kind="processor")
        log.info("%s: loaded %s", self.name, self.model_id)


class HubOwlv2Detector(_HubDetector):
    """OWLv2 (``Owlv2ForObjectDetection`` + ``Owlv2Processor``) phrase detector.

    Args:
        model: hub id or local directory; cache_dir: download cache.
        nms_iou: per-phrase box NMS threshold (None: keep every box above the threshold).
    """

    name = "owlv2"
    model_types = ("owlv2",)

    def __init__(self, model: str | Path = OWLV2_DEFAULT, cache_dir: str | Path | None = None, *,
                 nms_iou: float | None = 0.5, device: str | None = None) -> None:
        super().__init__(model, cache_dir, nms_iou=nms_iou, device=device)

    def detect(self, image: Any, phrases: Sequence[str], threshold: float = 0.1) -> list[R.Detection]:
        """Boxes for each phrase, XYXY in original pixels, score = sigmoid of the class logit."""
        import torch

        phrases = check_phrases(phrases, self.name)
        pil, size = to_pil(image)
        with self._processor_lock:
            inputs = self.processor(text=[phrases], images=pil, return_tensors="pt")
        inputs = inputs.to(self.device)
        with torch.inference_mode():
            outputs = self._net(**inputs)
        res = self.processor.post_process_grounded_object_detection(
            outputs=outputs, threshold=threshold, target_sizes=[size], text_labels=[phrases]
        )[0]
        dets = []
        for box, score, label in zip(res["boxes"].float().cpu().numpy(), res["scores"].float().cpu().numpy(),
                                     res["labels"].cpu().numpy()):
            b = _clip_to_image(box.astype(np.float64), size)
            if b is None:
                continue
            dets.append(R.Detection(box=b, score=float(score), phrase=phrases[int(label)], label=phrases[int(label)],
                                    source=self.name))
        return nms_per_phrase(dets, self.nms_iou)


class HubGroundingDino(_HubDetector):
    """Grounding DINO (``GroundingDinoForObjectDetection`` + ``GroundingDinoProcessor``).

    Args:
        model: hub id or local directory; cache_dir: download cache.
        nms_iou: per-phrase box NMS threshold (None: keep all).
    """

    name = "grounding_dino"
    model_types = ("grounding-dino", "mm-grounding-dino")

    def __init__(self, model: str | Path = GDINO_DEFAULT, cache_dir: str | Path | None = None, *,
                 nms_iou: float | None = 0.5, device: str | None = None) -> None:
        super().__init__(model, cache_dir, nms_iou=nms_iou, device=device)

    def _phrase_tokens(self, phrases: list[str]) -> tuple[str, list[list[int]], Any]:
        """The joined prompt, the token indices of each phrase, and the tokenised prompt."""
        parts, spans, pos = [], [], 0
        for p in phrases:
            p = p.lower().replace(".", " ").strip()
            spans.append((pos, pos + len(p)))
            parts.append(p)
            pos += len(p) + 2  # ". "
        text = ". ".join(parts) + "."
        with self._processor_lock:
            enc = self.processor.tokenizer(text, return_offsets_mapping=True)
        tokens: list[list[int]] = [[] for _ in phrases]
        for t, (a, b) in enumerate(enc["offset_mapping"]):
            if b <= a:
                continue  # special tokens
            for k, (s, e) in enumerate(spans):
                if a >= s and b <= e:
                    tokens[k].append(t)
        return text, tokens, enc

    def detect(self, image: Any, phrases: Sequence[str], threshold: float = 0.25) -> list[R.Detection]:
        """Boxes for the phrases, XYXY in original pixels; each box goes to its best phrase."""
        import torch

        phrases = check_phrases(phrases, self.name)
        text, tokens, _ = self._phrase_tokens(phrases)
        missing = [phrases[k] for k, t in enumerate(tokens) if not t]
        if missing:
            raise InputError(Errors.E308.format(backend=self.name, what="phrases",
                                                reason=f"{missing} produce no tokens"))
        pil, size = to_pil(image)
        with self._processor_lock:
            inputs = self.processor(images=pil, text=text, return_tensors="pt")
        inputs = inputs.to(self.device)
        with torch.inference_mode():
            outputs = self._net(**inputs)
        # boxes of every query, scaled to the original (H, W) by the processor (threshold 0 keeps all)
        res = self.processor.post_process_grounded_object_detection(
            outputs, inputs["input_ids"], threshold=0.0, text_threshold=0.0, target_sizes=[size]
        )[0]
        boxes = res["boxes"].float().cpu().numpy()
        probs = torch.sigmoid(outputs.logits[0]).float().cpu().numpy()  # (queries, max_text_len)
        if boxes.shape[0] != probs.shape[0]:
            raise InputError(Errors.E308.format(backend=self.name, what="model output",
                                                reason=f"{boxes.shape[0]} boxes for {probs.shape[0]} queries"))
        per_phrase = np.stack([probs[:, t].max(axis=1) for t in tokens], axis=1)  # (queries, phrases)
        best = per_phrase.argmax(axis=1)
        dets = []
        for q in range(len(boxes)):
            score = float(per_phrase[q, best[q]])
            if score <= threshold:
                continue
            b = _clip_to_image(boxes[q].astype(np.float64), size)
            if b is None:
                continue
            ph = phrases[int(best[q])]
            dets.append(R.Detection(box=b, score=score, phrase=ph, label=ph, source=self.name))
        return nms_per_phrase(dets, self.nms_iou)


_CHECK_OWL = needs("torch", "transformers", "scipy")
_CHECK_GD = needs("torch", "transformers")


@register_backend(
    R.DETECT, "owlv2", "hub", _CHECK_OWL, device=True, default_model=OWLV2_DEFAULT, license="Apache-2.0",
    description="OWLv2 open-vocabulary detection (phrases -> boxes), square padding undone",
    notes="960x960 input: ~1-2 s per image on CPU (ViT-B/16)",
)
def make_owlv2(model: str | Path = OWLV2_DEFAULT, cache_dir: str | Path | None = None, nms_iou: float | None = 0.5,
               device: str | None = None) -> HubOwlv2Detector:
    return HubOwlv2Detector(model, cache_dir, nms_iou=nms_iou, device=device)


@register_backend(
    R.DETECT, "grounding_dino", "hub", _CHECK_GD, device=True, default_model=GDINO_DEFAULT, license="Apache-2.0",
    description="Grounding DINO open-set detection (phrases joined 'a. b.'; each box to its best phrase)",
    notes="phrases are lower-cased; text longer than 256 tokens is cut by the model",
)
def make_grounding_dino(model: str | Path = GDINO_DEFAULT, cache_dir: str | Path | None = None,
                        nms_iou: float | None = 0.5, device: str | None = None) -> HubGroundingDino:
    return HubGroundingDino(model, cache_dir, nms_iou=nms_iou, device=device)
