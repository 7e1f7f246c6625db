"""The region's image against the KB: ``v2v`` (entity images), ``instance`` (entity images in a
space learned for the same object) and ``v2t`` (entity text in a joint image-text space).

* ``v2v`` — role ``image_embed`` (CLIP's vision tower; EfficientNet-Lite offline), space
  ``entity_image``: the region view vs every local image of every entity (best image wins).
* ``v2t`` — role ``image_text`` (CLIP / SigLIP; the ConSE bridge offline), space
  ``entity_text`` made by the joint model's *text* side (``label: description``).
* ``instance`` — role ``instance_embed`` (offline: EfficientNet-Lite's blocks through a head
  trained to put an object in a photo near its own reference image,
  :mod:`pixlink.models.backends.instance_head`), space ``entity_image_instance``: like ``v2v``,
  the region view vs every entity image, in that learned space. Global, so it sees what local
  features miss (a flag without corners, a logo half hidden) and misses what they see (the
  exact design): the fusion weighs both.

The region view is the linker's ``image_view`` (crop, masked crop or VP-MEL's red box).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ...models import roles as R
from ...vecmath import l2_normalise
from ..query import Query
from . import register_signal
from .base import DenseSignal


@register_signal
class ImageToImage(DenseSignal):
    name = "v2v"
    role = R.IMAGE_EMBED
    space = "entity_image"
    needs_image = True
    description = "the region's image <-> entities' images"

    def query_vector(self, q: Query, ctx: Any, backend: Any) -> np.ndarray | None:
        return l2_normalise(backend.encode_images([ctx.view(q)]).embeds[0])

    def kb_items(self, kb: Any) -> list[tuple[str, Any]]:
        from ...index.embed import image_items

        return list(image_items(kb.entities_with_images(resolved_only=False)))

    def kb_encoder(self, backend: Any, batch_size: int) -> Callable[[list[Any]], np.ndarray]:
        from ...io import load_image

        def encode(paths: list[Any]) -> np.ndarray:
            return np.asarray(backend.encode_images([load_image(p) for p in paths]).embeds, dtype=np.float32)

        return encode


@register_signal
class ImageToInstance(ImageToImage):
    name = "instance"
    role = R.INSTANCE_EMBED
    space = "entity_image_instance"
    description = "the region's image <-> entities' images, in a space learned for the same object"


@register_signal
class ImageToText(DenseSignal):
    name = "v2t"
    role = R.IMAGE_TEXT
    space = "entity_text"
    needs_image = True
    description = "the region's image <-> entities' text, in a joint image-text space"

    def model_id(self, backend: Any) -> str:
        """The joint model's text side tags the vectors (a backend may expose ``text_model_id``)."""
        return str(getattr(backend, "text_model_id", backend.model_id))

    def query_vector(self, q: Query, ctx: Any, backend: Any) -> np.ndarray | None:
        return l2_normalise(backend.encode_images([ctx.view(q)]).embeds[0])

    def kb_items(self, kb: Any) -> list[tuple[str, Any]]:
        from ...index.embed import text_items

        return list(text_items(kb.iter_entities()))

    def kb_encoder(self, backend: Any, batch_size: int) -> Callable[[list[Any]], np.ndarray]:
        return lambda texts: backend.encode_texts(texts, batch_size=batch_size)
