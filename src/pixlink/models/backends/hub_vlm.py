"""Region description with a hub vision-language model: IIER's Detective-VLM question.

Backend ``describe`` / ``hub_vlm`` — :class:`HubRegionDescriber`, any image-text-to-text model
``transformers`` loads with ``AutoModelForImageTextToText`` + ``AutoProcessor`` and whose
processor has a chat template (default ``HuggingFaceTB/SmolVLM-256M-Instruct``, an Idefics3
model small enough for a CPU; LLaVA, Qwen2-VL, Idefics3/SmolVLM checkpoints load the same way).

The visual prompt follows IIER's Detective-VLM (VP-MEL): the region's box is drawn as a red
rectangle on the image (:func:`pixlink.imaging.red_box`), and the model is asked about
"the red box" (:data:`DETECTIVE_QUESTION`, or :func:`detective_question` with the post's
sentence, as IIER asks). The image goes into the chat message, the processor's own chat
template builds the prompt, and decoding is greedy, so the answer is deterministic.

No VLM ships in a package: offline, the ``describe`` role has no backend, and every caller
must work without it and say so (``Profile.has("describe")`` is False, and
``Profile.choose("describe").reason`` says why).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from ...device import resolve_device
from ...errors import Errors, InputError
from ...imaging import red_box
from ...log import get_logger
from .. import roles as R
from ..hub import hub_cache_dir, load_config, load_pretrained, load_processor, needs, resolve_model, to_pil
from ..registry import register_backend

log = get_logger("pixlink.models.hub_vlm")

VLM_DEFAULT = "HuggingFaceTB/SmolVLM-256M-Instruct"

DETECTIVE_QUESTION = (
    "In the red box of the image, tell me briefly what is the Entity Type, and what is the Entity Name "
    "of the entity in the red box?"
)
"""IIER's Detective-VLM question without a sentence (its ``owl/detective.py`` asks about the
entity in the red box, its type and its name)."""


def detective_question(sentence: str | None = None) -> str:
    """IIER's Detective-VLM question; with ``sentence``, the question names it, as IIER's prompt
    does ("... which Entity Name in the <sentence> corresponds to the Entity Type?")."""
    if not sentence:
        return DETECTIVE_QUESTION
    return (
        "In the red box of the image, tell me briefly what is the Entity Type, and which Entity Name in the "
        f"sentence \"{sentence.strip()}\" corresponds to the Entity Type?"
    )


class HubRegionDescriber:
    """A hub VLM answering a question about an image whose region is marked by a red box.

    Args:
        model: hub id or local directory; cache_dir: download cache (default ``$PIXLINK_CACHE/hub``).
        box_thickness: red-box line width in pixels (default ~0.6% of the longer side).
        device: torch device (``auto``/None: :func:`pixlink.device.resolve_device`).

    Attributes: name, model_id, processor, model_type, device.

    Shared by threads: the processor (its tokenizer changes its settings per call) runs under a
    lock; generation only reads the weights.
    """

    def __init__(self, model: str | Path = VLM_DEFAULT, cache_dir: str | Path | None = None, *, name: str = "hub_vlm",
                 box_thickness: int | None = None, device: str | None = None) -> None:
        import torch
        from transformers import AutoModelForImageTextToText

        self.name = name
        self.device = torch.device(resolve_device(device))
        self._processor_lock = threading.Lock()
        self.box_thickness = box_thickness
        source, self.model_id, self.is_local = resolve_model(model, name)
        self.cache_dir = hub_cache_dir(cache_dir)
        cfg = load_config(source, owner=name, cache_dir=self.cache_dir)
        self.model_type = getattr(cfg, "model_type", "?")
        self._net = load_pretrained(AutoModelForImageTextToText.from_pretrained, source, owner=name,
                                    cache_dir=self.cache_dir, what="weights").eval().to(self.device)
        self.processor = load_processor(source, owner=name, cache_dir=self.cache_dir, kind="processor")
        if not getattr(self.processor, "chat_template", None):
            raise InputError(Errors.E308.format(backend=name, what="processor",
                                                reason=f"{self.model_id} has no chat template to build the prompt"))
        log.info("%s: loaded %s (%s)", name, self.model_id, self.model_type)

    def mark(self, image: np.ndarray, box: np.ndarray | None) -> np.ndarray:
        """The image the model sees: ``(H, W, 3)`` uint8 with ``box`` (XYXY) drawn in red, or the
        image unchanged when ``box`` is None."""
        if box is None:
            return image
        return red_box(image, np.asarray(box, dtype=np.float64), thickness=self.box_thickness)

    def describe(self, image: Any, box: np.ndarray | None = None, question: str | None = None,
                 max_new_tokens: int = 32) -> str:
        """Answer ``question`` (default :data:`DETECTIVE_QUESTION`) about ``image`` (``(H, W, 3)``
        uint8 or a path) with ``box`` (XYXY, original pixels) marked by a red rectangle.
        Greedy decoding; returns the answer text without the prompt (stripped)."""
        import torch

        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise InputError(Errors.E313.format(backend=self.name, option="max_new_tokens", value=max_new_tokens,
                                                expected="a positive integer"))
        if question is not None and (not isinstance(question, str) or not question.strip()):
            raise InputError(Errors.E308.format(backend=self.name, what="question", reason="empty"))
        pil, _ = to_pil(image)
        marked = self.mark(np.asarray(pil), box)
        pil, _ = to_pil(marked)
        messages = [{"role": "user", "content": [
            {"type": "image", "image": pil},
            {"type": "text", "text": question or DETECTIVE_QUESTION},
        ]}]
        with self._processor_lock:
            inputs = self.processor.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
            )
        inputs = inputs.to(self.device)
        with torch.inference_mode():
            out = self._net.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        new = out[:, inputs["input_ids"].shape[1]:]
        with self._processor_lock:
            return self.processor.batch_decode(new, skip_special_tokens=True)[0].strip()


@register_backend(
    R.DESCRIBE, "hub_vlm", "hub", needs("torch", "transformers"), device=True, default_model=VLM_DEFAULT, license="Apache-2.0",
    description="Hub VLM (SmolVLM/Idefics3, LLaVA, Qwen2-VL...) asked IIER's Detective question about a red box",
    notes="no offline VLM exists: callers must work without this role",
)
def make_hub_vlm(model: str | Path = VLM_DEFAULT, cache_dir: str | Path | None = None,
                 box_thickness: int | None = None, device: str | None = None) -> HubRegionDescriber:
    return HubRegionDescriber(model, cache_dir, box_thickness=box_thickness, device=device)
