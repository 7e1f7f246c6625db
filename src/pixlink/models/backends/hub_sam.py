"""SAM from the hub or a local directory: promptable masks, and "segment everything".

Backends:

* ``segment`` / ``sam`` — :class:`HubSamSegmenter` (default ``facebook/sam-vit-base``):
  :meth:`~HubSamSegmenter.embed_image` runs the image encoder **once** and returns a
  :class:`SamHandle`; :meth:`~HubSamSegmenter.predict` then decodes any number of prompts
  (box, points with labels, a mask, or a combination) from that handle with the light prompt
  encoder + mask decoder.
* ``segment_all`` / ``sam_auto`` — :class:`HubSamMaskGenerator`: SAM's automatic mask
  generation — a regular grid of single-point prompts decoded from one image embedding, masks
  kept when the predicted IoU and the stability score pass their thresholds, duplicates
  removed by mask-IoU non-maximum suppression. (``transformers``' ``mask-generation`` pipeline
  needs torchvision for its NMS, which pixlink does not install, so this is written here.)

Preprocessing and mask post-processing are the model's own ``SamProcessor`` (PIL backend):
the image is resized so its longer side is 1024 and padded; the low-resolution mask logits
(256 x 256) are upscaled, un-padded and resized back to the original ``(H, W)`` by
``post_process_masks``. Prompts are given in original pixels (boxes XYXY, points ``(x, y)``)
and scaled to the resized frame by the same factors the processor applied
(``reshaped_input_sizes / original_sizes``).

Masks come back as ``(H, W)`` bool arrays in original pixels with SAM's predicted IoU as
``score``, best first; masks with no pixel are dropped.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ... import geometry as geo
from ...device import resolve_device
from ...errors import Errors, InputError
from ...log import get_logger
from .. import roles as R
from ..cvops import mask_nms
from ..hub import expect_model_type, hub_cache_dir, load_config, load_pretrained, load_processor, needs, \
    resolve_model, to_pil
from ..registry import register_backend

log = get_logger("pixlink.models.hub_sam")

SAM_DEFAULT = "facebook/sam-vit-base"


@dataclass
class SamHandle:
    """One image's SAM embedding, reused by every prompt on that image.

    Attributes:
        embeddings: ``(1, C, h, w)`` torch tensor (C = 256, h = w = 64 for SAM ViT).
        original_size: ``(H, W)`` of the image.
        reshaped_size: ``(h', w')`` of the resized image before padding (longer side 1024).
        backend: the name of the backend that made it; model_id: its weights.
    """

    embeddings: Any
    original_size: tuple[int, int]
    reshaped_size: tuple[int, int]
    backend: str
    model_id: str


class HubSamSegmenter:
    """SAM (``SamModel`` + ``SamProcessor``) as a :class:`~pixlink.models.roles.PromptSegmenter`.

    Args:
        model: hub id or local directory; cache_dir: download cache (default ``$PIXLINK_CACHE/hub``).
        mask_threshold: logit threshold for binarising masks (SAM's default 0.0).
        device: torch device (``auto``/None: :func:`pixlink.device.resolve_device`).

    Attributes:
        name, model_id, prompt_kinds (``{"box", "points", "mask"}``), encoder_calls (how many
        times the image encoder ran; one per :meth:`embed_image`).

    Shared by threads: a handle is read-only, the model only reads its weights, and the image
    processor keeps no state between calls.
    """

    prompt_kinds = frozenset({"box", "points", "mask"})

    def __init__(self, model: str | Path = SAM_DEFAULT, cache_dir: str | Path | None = None, *, name: str = "sam",
                 mask_threshold: float = 0.0, device: str | None = None) -> None:
        import torch
        from transformers import SamModel

        self.name = name
        self.device = torch.device(resolve_device(device))
        self._count_lock = threading.Lock()
        self.mask_threshold = float(mask_threshold)
        source, self.model_id, self.is_local = resolve_model(model, name)
        self.cache_dir = hub_cache_dir(cache_dir)
        cfg = load_config(source, owner=name, cache_dir=self.cache_dir)
        expect_model_type(cfg, ("sam",), owner=name, model=self.model_id, expected="a SAM checkpoint ('sam')")
        self._net = load_pretrained(SamModel.from_pretrained, source, owner=name, cache_dir=self.cache_dir,
                                    what="weights").eval().to(self.device)
        self.processor = load_processor(source, owner=name, cache_dir=self.cache_dir, kind="processor")
        pe = cfg.prompt_encoder_config
        self.mask_input_size = 4 * int(pe.image_size // pe.patch_size)  # 256 for SAM ViT
        self.input_size = int(pe.image_size)  # 1024
        self.encoder_calls = 0
        log.info("%s: loaded %s", name, self.model_id)

    # -- image ---------------------------------------------------------------------------------
    def embed_image(self, image: Any) -> SamHandle:
        """Run the image encoder once; ``image`` is an ``(H, W, 3)`` uint8 array (or a path / PIL
        image). Returns the :class:`SamHandle` that :meth:`predict` takes."""
        import torch

        pil, size = to_pil(image)
        enc = self.processor(images=pil, return_tensors="pt")
        with torch.inference_mode():
            emb = self._net.get_image_embeddings(enc["pixel_values"].to(self.device))
        with self._count_lock:
            self.encoder_calls += 1
        rh, rw = (int(v) for v in enc["reshaped_input_sizes"][0])
        return SamHandle(embeddings=emb, original_size=size, reshaped_size=(rh, rw), backend=self.name,
                         model_id=self.model_id)

    # -- prompts -------------------------------------------------------------------------------
    def _scale(self, handle: SamHandle) -> tuple[float, float]:
        (h, w), (rh, rw) = handle.original_size, handle.reshaped_size
        return rw / w, rh / h

    def _mask_logits(self, handle: SamHandle, mask: np.ndarray) -> Any:
        """An ``(H, W)`` bool mask in original pixels -> SAM's mask-prompt input, ``(1, 1, 256, 256)``
        logits (+/-10) in the padded, resized frame (the frame SAM's own low-res masks use)."""
        import torch
        import torch.nn.functional as F

        m = geo.as_mask(mask, handle.original_size)
        rh, rw = handle.reshaped_size
        t = torch.from_numpy(m.astype(np.float32))[None, None]
        t = F.interpolate(t, size=(rh, rw), mode="bilinear", align_corners=False)
        padded = torch.zeros((1, 1, self.input_size, self.input_size))
        padded[..., :rh, :rw] = t
        low = F.interpolate(padded, size=(self.mask_input_size, self.mask_input_size), mode="bilinear",
                            align_corners=False)
        return torch.where(low > 0.5, 10.0, -10.0).to(self.device)

    def _decode(self, handle: SamHandle, *, boxes: np.ndarray | None = None, points: np.ndarray | None = None,
                labels: np.ndarray | None = None, mask_logits: Any = None, multimask: bool) -> tuple[Any, Any]:
        """Run the prompt encoder + mask decoder on ``handle``. ``boxes`` ``(K, 4)`` or points
        ``(K, n, 2)`` with labels ``(K, n)`` (K prompts, each decoded separately), in original
        pixels. Returns (low-res logits ``(K, M, h, w)``, iou scores ``(K, M)``)."""
        import torch

        sx, sy = self._scale(handle)
        kw: dict[str, Any] = {}
        if boxes is not None:
            b = np.asarray(boxes, dtype=np.float32) * np.array([sx, sy, sx, sy], dtype=np.float32)
            kw["input_boxes"] = torch.from_numpy(b)[None].to(self.device)  # (1, K, 4)
        if points is not None:
            pts = np.asarray(points, dtype=np.float32) * np.array([sx, sy], dtype=np.float32)
            kw["input_points"] = torch.from_numpy(pts)[None].to(self.device)  # (1, K, n, 2)
            kw["input_labels"] = torch.from_numpy(np.asarray(labels, dtype=np.int64))[None].to(self.device)
        if mask_logits is not None:
            kw["input_masks"] = mask_logits
        with torch.inference_mode():
            out = self._net(image_embeddings=handle.embeddings, multimask_output=multimask, **kw)
        return out.pred_masks[0], out.iou_scores[0]

    def _upscale(self, handle: SamHandle, low: Any) -> np.ndarray:
        """``(K, M, h, w)`` low-res logits -> ``(K, M, H, W)`` bool masks in original pixels,
        with the processor's own post-processing."""
        masks = self.processor.image_processor.post_process_masks(
            [low.float().cpu()], [list(handle.original_size)], [list(handle.reshaped_size)],
            mask_threshold=self.mask_threshold, binarize=True,
        )[0]
        return masks.numpy().astype(bool)

    def _check_handle(self, handle: Any) -> SamHandle:
        if not isinstance(handle, SamHandle) or handle.backend != self.name or handle.model_id != self.model_id:
            other = getattr(handle, "backend", type(handle).__name__)
            raise InputError(Errors.E310.format(backend=self.name, other=other))
        return handle

    def predict(
        self, handle: SamHandle, box: np.ndarray | None = None, points: np.ndarray | None = None,
        point_labels: np.ndarray | None = None, multimask: bool = False, mask_input: np.ndarray | None = None,
    ) -> list[R.MaskPrediction]:
        """Masks for one prompt on the image of ``handle`` (no image encoder run).

        Args:
            box: ``(4,)`` XYXY in original pixels (clipped to the image; E003 if outside it).
            points: ``(N, 2)`` ``(x, y)`` in original pixels; point_labels: ``(N,)`` 1 = foreground,
                0 = background (default all 1).
            mask_input: ``(H, W)`` bool mask in original pixels, a coarse region to refine
                (SAM's mask prompt); may be combined with a box and/or points.
            multimask: return SAM's 3 candidate masks (ambiguous prompts) instead of 1.

        Returns:
            :class:`~pixlink.models.roles.MaskPrediction` list, best predicted IoU first;
            each ``mask`` is ``(H, W)`` bool in original pixels. Raises E309 without a prompt.
        """
        handle = self._check_handle(handle)
        if box is None and points is None and mask_input is None:
            raise InputError(Errors.E309.format(backend=self.name))
        h, w = handle.original_size
        boxes = None
        if box is not None:
            boxes = geo.clip_box(geo.as_box(box), (h, w))[None]
        pts = labels = None
        if points is not None:
            pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
            if pts.shape[0] == 0 or not np.all(np.isfinite(pts)):
                raise InputError(Errors.E006.format(points=points, reason="expected (N, 2) finite (x, y) pairs"))
            if np.any(pts < 0) or np.any(pts[:, 0] > w) or np.any(pts[:, 1] > h):
                raise InputError(Errors.E006.format(points=pts.tolist(), reason=f"outside the image (H={h}, W={w})"))
            labels = np.ones(len(pts), np.int64) if point_labels is None else np.asarray(point_labels).reshape(-1)
            if labels.shape != (len(pts),) or not np.all(np.isin(labels, (0, 1))):
                raise InputError(Errors.E006.format(points=pts.tolist(), reason="point_labels must be N values in {0, 1}"))
            pts, labels = pts[None], labels[None]
        mask_logits = self._mask_logits(handle, mask_input) if mask_input is not None else None
        low, iou = self._decode(handle, boxes=boxes, points=pts, labels=labels, mask_logits=mask_logits,
                                multimask=multimask)
        masks = self._upscale(handle, low)[0]
        scores = iou[0].float().cpu().numpy()
        preds = [R.MaskPrediction(mask=m, score=float(s)) for m, s in zip(masks, scores) if m.any()]
        return sorted(preds, key=lambda p: -p.score)

    def predict_boxes(self, handle: SamHandle, boxes: np.ndarray) -> list[R.MaskPrediction | None]:
        """One mask per box for ``(K, 4)`` XYXY boxes, decoded together in one decoder call;
        ``None`` where SAM's mask is empty."""
        handle = self._check_handle(handle)
        arr = np.stack([geo.clip_box(geo.as_box(b), handle.original_size) for b in np.asarray(boxes).reshape(-1, 4)])
        low, iou = self._decode(handle, boxes=arr, multimask=False)
        masks = self._upscale(handle, low)
        out: list[R.MaskPrediction | None] = []
        for k in range(len(arr)):
            m = masks[k, 0]
            out.append(R.MaskPrediction(mask=m, score=float(iou[k, 0])) if m.any() else None)
        return out


def _stability(logits: Any, threshold: float, offset: float) -> Any:
    """SAM's stability score: IoU of the masks thresholded at ``threshold +/- offset``."""
    hi = (logits > threshold + offset).sum(dim=(-1, -2)).float()
    lo = (logits > threshold - offset).sum(dim=(-1, -2)).float()
    return hi / lo.clamp(min=1.0)


class HubSamMaskGenerator:
    """SAM "segment everything" as a :class:`~pixlink.models.roles.MaskGenerator`.

    Args:
        model, cache_dir: as :class:`HubSamSegmenter` (or pass ``segmenter=`` to share one).
        points_per_side: the prompt grid is ``points_per_side**2`` points (SAM's default 32;
            16 here for CPU).
        points_per_batch: prompts decoded per decoder call.
        pred_iou_thresh: keep masks whose predicted IoU is at least this (SAM: 0.88).
        stability_thresh: keep masks whose stability score is at least this (SAM: 0.95).
        nms_iou: drop a mask overlapping a better one by more than this mask IoU (SAM: 0.7).
    """

    def __init__(self, model: str | Path = SAM_DEFAULT, cache_dir: str | Path | None = None, *,
                 segmenter: HubSamSegmenter | None = None, points_per_side: int = 16, points_per_batch: int = 64,
                 pred_iou_thresh: float = 0.88, stability_thresh: float = 0.95, stability_offset: float = 1.0,
                 nms_iou: float = 0.7, device: str | None = None) -> None:
        for opt, val in (("points_per_side", points_per_side), ("points_per_batch", points_per_batch)):
            if not isinstance(val, int) or val < 1:
                raise InputError(Errors.E313.format(backend="sam_auto", option=opt, value=val,
                                                    expected="a positive integer"))
        self.seg = segmenter or HubSamSegmenter(model, cache_dir, device=device)
        self.name = "sam_auto"
        self.model_id = self.seg.model_id
        self.points_per_side = points_per_side
        self.points_per_batch = points_per_batch
        self.pred_iou_thresh = float(pred_iou_thresh)
        self.stability_thresh = float(stability_thresh)
        self.stability_offset = float(stability_offset)
        self.nms_iou = float(nms_iou)

    def point_grid(self, image_size: tuple[int, int]) -> np.ndarray:
        """``(n*n, 2)`` ``(x, y)`` prompt points at the centres of an n x n grid over the image."""
        h, w = image_size
        n = self.points_per_side
        c = (np.arange(n) + 0.5) / n
        xs, ys = np.meshgrid(c * w, c * h)
        return np.stack([xs.ravel(), ys.ravel()], axis=1)

    def generate(self, image: Any, max_masks: int = 64) -> list[R.MaskPrediction]:
        """Up to ``max_masks`` masks of the image, ``(H, W)`` bool each, best score first
        (score = predicted IoU). One image-encoder run; the grid is decoded in batches."""
        import torch

        handle = self.seg.embed_image(image)
        grid = self.point_grid(handle.original_size)
        lows, scores = [], []
        for start in range(0, len(grid), self.points_per_batch):
            pts = grid[start:start + self.points_per_batch][:, None, :]  # (B, 1, 2)
            low, iou = self.seg._decode(handle, points=pts, labels=np.ones(pts.shape[:2], np.int64), multimask=True)
            low, iou = low.flatten(0, 1), iou.flatten(0, 1)  # (B*3, h, w), (B*3,)
            stab = _stability(low, self.seg.mask_threshold, self.stability_offset)
            keep = (iou >= self.pred_iou_thresh) & (stab >= self.stability_thresh)
            lows.append(low[keep])
            scores.append(iou[keep])
        if not lows or sum(len(s) for s in scores) == 0:
            return []
        low = torch.cat(lows)
        score = torch.cat(scores).float().cpu().numpy()
        # dedupe on the low-res masks (cheap), then upscale only the survivors
        keep = mask_nms((low > self.seg.mask_threshold).cpu().numpy(), score, self.nms_iou, limit=max_masks)
        masks = self.seg._upscale(handle, low[keep][:, None])[:, 0]
        preds = [R.MaskPrediction(mask=m, score=float(score[i])) for m, i in zip(masks, keep) if m.any()]
        return sorted(preds, key=lambda p: -p.score)


_CHECK = needs("torch", "transformers")

# One SAM per (weights, cache, device, threshold) in a process: ``segment`` and ``segment_all``
# share it instead of holding the ~0.4 GB model twice. Weak: freed when no backend holds it.
_SHARED: "weakref.WeakValueDictionary[tuple[str, str, str, float], HubSamSegmenter]" = weakref.WeakValueDictionary()
_SHARED_LOCK = threading.Lock()


def shared_segmenter(model: str | Path = SAM_DEFAULT, cache_dir: str | Path | None = None, *,
                     mask_threshold: float = 0.0, device: str | None = None) -> HubSamSegmenter:
    """The process's :class:`HubSamSegmenter` for these weights, built on first use (once, also
    when threads ask at once)."""
    source, _, _ = resolve_model(model, "sam")
    dev = resolve_device(device)
    key = (source, str(hub_cache_dir(cache_dir)), dev, float(mask_threshold))
    with _SHARED_LOCK:
        seg = _SHARED.get(key)
        if seg is None:
            seg = HubSamSegmenter(model, cache_dir, mask_threshold=mask_threshold, device=dev)
            _SHARED[key] = seg
        return seg


@register_backend(
    R.SEGMENT, "sam", "hub", _CHECK, device=True, default_model=SAM_DEFAULT, license="Apache-2.0",
    description="SAM (transformers): box / points / mask prompts -> masks, image embedding computed once",
    notes="~0.4 GB (ViT-B); image encoder is the slow part on CPU",
)
def make_sam(model: str | Path = SAM_DEFAULT, cache_dir: str | Path | None = None, mask_threshold: float = 0.0,
             device: str | None = None) -> HubSamSegmenter:
    return shared_segmenter(model, cache_dir, mask_threshold=mask_threshold, device=device)


@register_backend(
    R.SEGMENT_ALL, "sam_auto", "hub", _CHECK, device=True, default_model=SAM_DEFAULT, license="Apache-2.0",
    description="SAM automatic masks: point-grid prompts + predicted-IoU/stability filters + mask NMS",
    notes="16x16 grid by default (SAM uses 32x32); no torchvision needed",
)
def make_sam_auto(model: str | Path = SAM_DEFAULT, cache_dir: str | Path | None = None, points_per_side: int = 16,
                  points_per_batch: int = 64, pred_iou_thresh: float = 0.88, stability_thresh: float = 0.95,
                  nms_iou: float = 0.7, device: str | None = None) -> HubSamMaskGenerator:
    return HubSamMaskGenerator(segmenter=shared_segmenter(model, cache_dir, device=device),
                               points_per_side=points_per_side, points_per_batch=points_per_batch,
                               pred_iou_thresh=pred_iou_thresh, stability_thresh=stability_thresh, nms_iou=nms_iou)
