"""Instance embeddings: EfficientNet-Lite0's multi-layer features through a learned linear head.

EfficientNet-Lite0's pooled ImageNet features place *similar-looking* images near each other,
not a logo in a photo near its own clean image. A linear head, trained on composites of logos and
flags pasted into photos (:mod:`pixlink.train.instance_head`), maps the global average of five
of its layers to a 256-d space where a region and its entity's reference image are near:

* :func:`multilayer_features` — per image, the global average pool of layers ``LAYERS``
  (blocks 6, 10, 13, 16 and the head), each L2-normalised, concatenated, divided by
  ``sqrt(len(LAYERS))``: ``(N, 1984)`` float32 (the head's input; colour and shape from the
  middle blocks, parts from the late ones).
* :class:`InstanceEncoder` — role ``instance_embed``: ``encode_images(images)`` ->
  :class:`~pixlink.models.roles.ImageFeatures` with ``embeds`` ``(N, 256)`` L2-normalised.

The shipped head (``models/data/instance_head.safetensors``, 2 MB) records in its metadata the
layers, how it was trained and on what (only the composite set's CALIBRATION entities), and
its figures. ``model_id`` names the backbone and the head's content hash, so KB vectors made
with another head are never mixed with this one's.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ...errors import Errors, InputError
from ...vecmath import l2_normalise
from .. import roles as R
from ..registry import register_backend
from .efficientnet import EfficientNetLiteEncoder, check

LAYERS = (6, 10, 13, 16, 17)
"""EfficientNet-Lite0 layers pooled for the head (0 = stem, 1..16 = blocks, 17 = head)."""

HEAD_PATH = Path(__file__).resolve().parents[1] / "data" / "instance_head.safetensors"


def multilayer_features(encoder: EfficientNetLiteEncoder, images: Sequence[np.ndarray],
                        layers: Sequence[int] = LAYERS, batch_size: int | None = None) -> np.ndarray:
    """``(N, sum of the layers' channels)`` float32: each layer's global average pool,
    L2-normalised, concatenated, divided by ``sqrt(len(layers))`` (unit length overall)."""
    f = encoder.encode_images(images, layers=tuple(layers), batch_size=batch_size)
    return pool_layers(f.cls_layers, layers)


def pool_layers(cls_layers: dict[int, np.ndarray], layers: Sequence[int] = LAYERS) -> np.ndarray:
    """:func:`multilayer_features` from an encoder's ``cls_layers`` (layer -> ``(N, C)`` pools)
    already computed: the ``layers`` L2-normalised, concatenated, divided by ``sqrt(len(layers))``."""
    parts = [l2_normalise(cls_layers[l].astype(np.float32)) for l in layers]
    return (np.concatenate(parts, axis=1) / np.sqrt(len(layers))).astype(np.float32)


def load_head(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """``(weight (dim, D) float32, metadata)`` of a head file (E353 when it is not one)."""
    from safetensors.numpy import load_file
    from safetensors import safe_open

    p = Path(path)
    if not p.is_file():
        raise InputError(Errors.E353.format(backend="efficientnet_lite_instance", what=f"head {str(p)!r}",
                                            reason="no such file"))
    with safe_open(str(p), framework="numpy") as f:
        meta = dict(f.metadata() or {})
    w = load_file(str(p)).get("weight")
    if w is None or w.ndim != 2:
        raise InputError(Errors.E353.format(backend="efficientnet_lite_instance", what=f"head {str(p)!r}",
                                            reason="expected a 2-d tensor named 'weight'"))
    info = json.loads(meta.get("pixlink", "{}"))
    return w.astype(np.float32), info


class InstanceEncoder:
    """Role ``instance_embed``: images -> ``(N, 256)`` L2-normalised instance embeddings.

    Args:
        head: a head file (``safetensors``: ``weight`` ``(dim, D)``; metadata ``pixlink``
            JSON with ``layers``); default the shipped one.
        device, threads: as :class:`~pixlink.models.backends.efficientnet.EfficientNetLiteEncoder`.

    Thread-safe (the backbone is; the head is a read-only matrix).
    """

    name = "efficientnet_lite_instance"

    def __init__(self, head: str | Path | None = None, device: str | None = None, threads: int | None = None) -> None:
        path = Path(head) if head else HEAD_PATH
        self.weight, self.info = load_head(path)
        self.layers = tuple(int(l) for l in self.info.get("layers", LAYERS))
        self.backbone = EfficientNetLiteEncoder(device=device, threads=threads)
        channels = self.backbone.net.layer_channels()
        want = sum(channels[l] for l in self.layers)
        if self.weight.shape[1] != want:
            raise InputError(Errors.E353.format(backend=self.name, what=f"head {str(path)!r}",
                                                reason=f"its input is {self.weight.shape[1]}-d; layers {self.layers} "
                                                       f"give {want}"))
        self.dim = int(self.weight.shape[0])
        digest = hashlib.sha256(self.weight.tobytes()).hexdigest()[:12]
        self.model_id = f"{self.backbone.model_id}+instance-head-{digest}"
        self.device = self.backbone.device

    def encode_images(self, images: Sequence[np.ndarray], layers: Sequence[int] = (),
                      batch_size: int | None = None) -> R.ImageFeatures:
        """``N`` ``(H, W, 3)`` uint8 RGB images -> ``embeds`` ``(N, dim)`` L2-normalised
        (``layers`` is accepted for the role's signature and must be empty)."""
        if layers:
            raise InputError(Errors.E353.format(backend=self.name, what=f"layers {tuple(layers)!r}",
                                                reason="an instance embedding has no per-layer outputs"))
        x = multilayer_features(self.backbone, images, self.layers, batch_size)
        if len(x) == 0:
            return R.ImageFeatures(embeds=np.zeros((0, self.dim), np.float32))
        return R.ImageFeatures(embeds=l2_normalise(x @ self.weight.T).astype(np.float32))


@register_backend(
    R.INSTANCE_EMBED, "efficientnet_lite_instance", "packaged", check, device=True,
    default_model="efficientnet-lite0 + the shipped instance head (models/data/instance_head.safetensors)",
    license="Apache-2.0",
    description="EfficientNet-Lite0's pooled blocks 6/10/13/16/head through a linear head trained on composites: 256-d",
    notes="trained on logos and flags pasted into photos (the composite set's calibration entities); "
          "not trained on people, landmarks or artworks",
)
def build_instance_encoder(head: str | None = None, device: str | None = None,
                           threads: int | None = None) -> InstanceEncoder:
    """Build the encoder (the backbone's ~19 MB of weights and the 2 MB head)."""
    return InstanceEncoder(head=head, device=device, threads=threads)
