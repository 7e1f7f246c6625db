"""Instance embeddings: EfficientNet-Lite0's multi-layer features through a learned linear head.

EfficientNet-Lite0's pooled ImageNet features place *similar-looking* images near each other,
not a logo in a photo near its own clean image. A linear head, trained on composites of logos and
flags pasted into photos (:mod:`pixlink.train.instance_head`), maps the global average of five
of its layers to a 256-d space where a region and its entity's reference image are near:

* :func:`multilayer_features` — per image, the global average pool of layers ``LAYERS``
  (blocks 6, 10, 13, 16 and the head), each L2-normalised, concatenated, divided by
  ``sqrt(len(LAYERS))`` (colour and shape from the middle blocks, parts from the late ones);
  and beside it the *layout*: a 2 x 2 grid of average pools of ``GRID_LAYERS`` (blocks 6, 10,
  13, 16; each layer's four cells L2-normalised together), so that where a flag's stripes or a
  logo's parts lie reaches the head. Global and grid halves are each of unit length and joined
  divided by ``sqrt(2)``: ``(N, 1984 + 4 * 704 = 4800)`` float32 (the head's input).
* :class:`InstanceEncoder` — role ``instance_embed``: ``encode_images(images)`` ->
  :class:`~pixlink.models.roles.ImageFeatures` with ``embeds`` ``(N, 256)`` L2-normalised.

The shipped head (``models/data/instance_head.safetensors``, 5 MB) records in its metadata the
layers and grid layers (a head without ``grid_layers`` — the earlier, global-only heads — is
fed the global pools alone), how it was trained and on what (only the composite set's CALIBRATION entities), and
its figures. ``model_id`` names the backbone and the head's content hash, so KB vectors made
with another head are never mixed with this one's.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ...errors import Errors, InputError
from ...vecmath import l2_normalise
from .. import roles as R
from ..registry import register_backend
from .efficientnet import EfficientNetLiteEncoder, check

LAYERS = (6, 10, 13, 16, 17)
"""EfficientNet-Lite0 layers pooled for the head (0 = stem, 1..16 = blocks, 17 = head)."""

HEAD_PATH = Path(__file__).resolve().parents[1] / "data" / "instance_head.safetensors"


GRID_LAYERS = (6, 10, 13, 16)
"""Layers pooled over a 2 x 2 grid beside the global pools (the head's layers, minus the last:
its 7 x 7 map at 224 px is too coarse to split)."""

GRID = 2
"""Cells per side of the layout pools."""


def multilayer_features(encoder: EfficientNetLiteEncoder, images: Sequence[np.ndarray],
                        layers: Sequence[int] = LAYERS, grid_layers: Sequence[int] = GRID_LAYERS,
                        batch_size: int | None = None) -> np.ndarray:
    """``(N, D)`` float32 unit rows, the head's input (:func:`pool_maps` of the encoder's maps,
    pooled batch by batch: the full maps of one batch only are held)."""
    out = [np.zeros((0, feature_dim(encoder.net.layer_channels(), layers, grid_layers)), np.float32)]
    for maps in map_batches(encoder, images, sorted(set(layers) | set(grid_layers)), batch_size):
        out.append(pool_maps(maps, layers, grid_layers))
    return np.concatenate(out)


def map_batches(encoder: EfficientNetLiteEncoder, images: Sequence[np.ndarray], layers: Sequence[int],
                batch_size: int | None = None) -> Iterator[dict[int, np.ndarray]]:
    """The encoder's full feature maps (layer -> ``(n, C, h, w)``) one batch of ``batch_size``
    images (default the encoder's) at a time, so that a caller pools them before the next."""
    step = int(batch_size or encoder.batch_size)
    for i in range(0, len(images), step):
        yield encoder.feature_maps(images[i:i + step], layers, batch_size=step)


def feature_dim(channels: Sequence[int], layers: Sequence[int] = LAYERS,
                grid_layers: Sequence[int] = GRID_LAYERS) -> int:
    """Width of :func:`pool_maps`'s rows, given the backbone's channels per layer."""
    return sum(channels[l] for l in layers) + GRID * GRID * sum(channels[l] for l in grid_layers)


def pool_maps(maps: dict[int, np.ndarray], layers: Sequence[int] = LAYERS,
              grid_layers: Sequence[int] = GRID_LAYERS) -> np.ndarray:
    """The head's input from feature maps (layer -> ``(N, C, h, w)``): :func:`global_pools` of
    ``layers`` and, when ``grid_layers`` are given, :func:`grid_pools` of those, joined by
    :func:`join_pools`. Unit rows, float32."""
    g = global_pools(maps, layers)
    return join_pools(g, grid_pools(maps, grid_layers)) if grid_layers else g


def global_pools(maps: dict[int, np.ndarray], layers: Sequence[int]) -> np.ndarray:
    """Each layer's global average pool, L2-normalised, concatenated, over ``sqrt(len(layers))``:
    ``(N, sum C)`` unit rows."""
    parts = [l2_normalise(maps[l].mean(axis=(2, 3)).astype(np.float32)) for l in layers]
    return (np.concatenate(parts, axis=1) / np.sqrt(len(layers))).astype(np.float32)


def grid_pools(maps: dict[int, np.ndarray], layers: Sequence[int]) -> np.ndarray:
    """Each layer's ``GRID x GRID`` cell average pools (row-major cells, each ``C`` wide), the
    layer's cells L2-normalised together, concatenated over layers, over ``sqrt(len(layers))``:
    ``(N, GRID * GRID * sum C)`` unit rows."""
    cells = []
    for l in layers:
        m = maps[l]
        h, w = m.shape[2:]
        cells.append(l2_normalise(np.concatenate(
            [m[:, :, a * h // GRID:(a + 1) * h // GRID, b * w // GRID:(b + 1) * w // GRID].mean(axis=(2, 3))
             for a in range(GRID) for b in range(GRID)], axis=1).astype(np.float32)))
    return (np.concatenate(cells, axis=1) / np.sqrt(len(layers))).astype(np.float32)


def join_pools(global_part: np.ndarray, grid_part: np.ndarray) -> np.ndarray:
    """The two unit halves side by side over ``sqrt(2)``: unit rows again."""
    return (np.concatenate([global_part, grid_part], axis=1) / np.sqrt(2)).astype(np.float32)


def head_metadata(path: str | Path) -> dict[str, Any]:
    """The ``pixlink`` metadata of a head file (what it was trained on, its recipe and figures),
    without reading its weights (E353 when there is no such file)."""
    from safetensors import safe_open

    p = Path(path)
    if not p.is_file():
        raise InputError(Errors.E353.format(backend="efficientnet_lite_instance", what=f"head {str(p)!r}",
                                            reason="no such file"))
    with safe_open(str(p), framework="numpy") as f:
        meta = dict(f.metadata() or {})
    return json.loads(meta.get("pixlink", "{}"))


def load_head(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """``(weight (dim, D) float32, metadata)`` of a head file (E353 when it is not one)."""
    from safetensors.numpy import load_file

    info = head_metadata(path)
    w = load_file(str(path)).get("weight")
    if w is None or w.ndim != 2:
        raise InputError(Errors.E353.format(backend="efficientnet_lite_instance", what=f"head {str(path)!r}",
                                            reason="expected a 2-d tensor named 'weight'"))
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
        self.grid_layers = tuple(int(l) for l in self.info.get("grid_layers", ()))  # none: a global-only head
        self.backbone = EfficientNetLiteEncoder(device=device, threads=threads)
        want = feature_dim(self.backbone.net.layer_channels(), self.layers, self.grid_layers)
        if self.weight.shape[1] != want:
            raise InputError(Errors.E353.format(backend=self.name, what=f"head {str(path)!r}",
                                                reason=f"its input is {self.weight.shape[1]}-d; layers {self.layers} "
                                                       f"and grid layers {self.grid_layers} give {want}"))
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
        x = multilayer_features(self.backbone, images, self.layers, self.grid_layers, batch_size)
        if len(x) == 0:
            return R.ImageFeatures(embeds=np.zeros((0, self.dim), np.float32))
        return R.ImageFeatures(embeds=l2_normalise(x @ self.weight.T).astype(np.float32))


@register_backend(
    R.INSTANCE_EMBED, "efficientnet_lite_instance", "packaged", check, device=True,
    default_model="efficientnet-lite0 + the shipped instance head (models/data/instance_head.safetensors)",
    license="Apache-2.0",
    description="EfficientNet-Lite0's pooled blocks 6/10/13/16/head (global and 2x2) through a linear head trained "
                "on composites: 256-d",
    notes="trained on logos and flags pasted into photos (the composite set's calibration entities); "
          "not trained on people, landmarks or artworks",
)
def build_instance_encoder(head: str | None = None, device: str | None = None,
                           threads: int | None = None) -> InstanceEncoder:
    """Build the encoder (the backbone's ~19 MB of weights and the 2 MB head)."""
    return InstanceEncoder(head=head, device=device, threads=threads)
