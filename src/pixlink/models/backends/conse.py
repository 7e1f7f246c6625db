"""ConSE: an offline image->text bridge from an ImageNet classifier and a sentence encoder.

Backend ``conse_efficientnet`` of role ``image_text`` (kind ``packaged``). With no CLIP weights
on the machine, an image is put into a text embedding space by *convex combination of semantic
embeddings* (Norouzi et al., ICLR 2014):

    image_embedding = normalise( sum over the top-T ImageNet classes c of p(c | image) * text(c) )
    text_embedding  = text(text)

where ``p`` is EfficientNet-Lite0's softmax (:mod:`.efficientnet`) and ``text`` is the
``text_embed`` role (MiniLM in the offline profile; 384-d), applied to the classes' clean names
(``data/imagenet_classes.json``). ``image @ text.T`` is then a cosine similarity.

It is a weak bridge, and the docs say how weak (docs/models-offline-vision.md): it can only
say what ImageNet's 1000 classes can say. A photo of a person lands near "suit", "bow tie",
"academic gown"; a logo near "hockey puck". No person, place or organisation names, no
colours, no counting, no relations.

``patch_tokens``: the classifier is applied to each cell of the 7 x 7 head map (a class
activation map), each cell's top-T classes are mixed the same way, so mask pooling over
patch tokens stays in the joint space; ``(N, 49, D)``, ``grid = (7, 7)``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ... import config
from ...errors import Errors, InputError, ModelUnavailableError
from ...log import get_logger
from ...vecmath import l2_normalise
from .. import roles as R
from ..registry import Profile, register_backend
from .efficientnet import EfficientNetLiteEncoder, check as check_effnet, imagenet_class_names, softmax

log = get_logger("pixlink.models.conse")

DEFAULT_TOP_T = 10
NAME_TEMPLATES = {"plain": "{}", "photo": "a photo of a {}"}


def conse_mix(probs: np.ndarray, class_emb: np.ndarray, top_t: int) -> np.ndarray:
    """ConSE combination.

    Args:
        probs: ``(..., C)`` class probabilities.
        class_emb: ``(C, D)`` unit-norm class-name embeddings.
        top_t: classes kept per row (the rest get weight 0).

    Returns:
        ``(..., D)`` float32, L2-normalised ``sum_top-T p_c * class_emb[c]``.
    """
    flat = probs.reshape(-1, probs.shape[-1])
    idx = np.argpartition(-flat, top_t - 1, axis=1)[:, :top_t]
    w = np.take_along_axis(flat, idx, axis=1)
    mixed = np.einsum("nt,ntd->nd", w, class_emb[idx])
    return l2_normalise(mixed).reshape(*probs.shape[:-1], class_emb.shape[1])


def check() -> str | None:
    """None when EfficientNet-Lite and an offline text encoder can run here, else why not."""
    why = check_effnet()
    if why is not None:
        return f"efficientnet_lite: {why}"
    choice = Profile("offline").choose(R.TEXT_EMBED)
    if choice.backend is None:
        return f"no offline text_embed backend: {choice.reason}"
    return None


class ConSEEncoder:
    """ConSE as an :class:`~pixlink.models.roles.ImageTextEncoder` (``dim`` = the text
    encoder's dimension).

    Args:
        image_encoder: an :class:`~.efficientnet.EfficientNetLiteEncoder` (its logits are used).
        text_encoder: any :class:`~pixlink.models.roles.TextEncoder`.
        top_t: ImageNet classes mixed per image (1..1000).
        names: ``"clean"`` (one short name per class) or ``"wordnet"`` (the synonym lists).
        template: ``"plain"`` (the name alone) or ``"photo"`` ("a photo of a {name}").
        cache: keep the 1000 class-name embeddings in ``<cache_dir>/conse/`` as ``.npy``
            (keyed by text model, names and template), so later builds skip encoding them.
        cache_dir: default ``PIXLINK_CACHE`` (:func:`pixlink.config.cache_dir`).

    Shared by threads: the class embeddings and classifier weights are fixed at construction,
    and the two encoders it calls are themselves safe to share.
    """

    name = "conse_efficientnet"

    def __init__(self, image_encoder: EfficientNetLiteEncoder, text_encoder: Any, top_t: int = DEFAULT_TOP_T,
                 names: str = "clean", template: str = "plain", cache: bool = True,
                 cache_dir: str | Path | None = None) -> None:
        if isinstance(top_t, bool) or not isinstance(top_t, (int, np.integer)) or not 1 <= int(top_t) <= 1000:
            raise InputError(Errors.E353.format(backend=self.name, what=f"top_t {top_t!r}",
                                                reason="must be an integer in 1..1000"))
        if template not in NAME_TEMPLATES:
            raise InputError(Errors.E353.format(backend=self.name, what=f"template {template!r}",
                                                reason=f"expected one of {sorted(NAME_TEMPLATES)}"))
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.top_t = int(top_t)
        self.names_kind = names
        self.template = template
        self.class_names = imagenet_class_names(names)
        self.class_texts = [NAME_TEMPLATES[template].format(n) for n in self.class_names]
        self.dim = int(text_encoder.dim)
        self.model_id = (f"conse(top_t={self.top_t}, names={names}, template={template}) of "
                         f"[{image_encoder.model_id}] in [{text_encoder.model_id}]")
        # the text side is the text encoder's own (encode_texts): KB text vectors made with it
        # are the text encoder's, shared with the dense_text signal (one index, one cache)
        self.text_model_id = str(text_encoder.model_id)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.class_emb = self._class_embeddings(cache)
        fc = self.image_encoder.net._fc
        # the classifier applied to each cell of the head map (patch tokens), read once
        self._fc_w = fc.weight.detach().float().cpu().numpy()
        self._fc_b = fc.bias.detach().float().cpu().numpy()

    def _class_embeddings(self, cache: bool) -> np.ndarray:
        key = hashlib.sha256(("\n".join([self.text_encoder.model_id, *self.class_texts])).encode()).hexdigest()[:16]
        path = (self.cache_dir or config.cache_dir()) / "conse" / f"classes-{key}.npy"
        if cache and path.is_file():
            emb = np.load(path, allow_pickle=False)
            if emb.shape == (1000, self.dim):
                return l2_normalise(emb)
            log.warning("conse: cached class embeddings %s have shape %s, expected (1000, %d); recomputing",
                        path, emb.shape, self.dim)
        emb = l2_normalise(self.text_encoder.encode(self.class_texts, batch_size=128))
        if cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            # a temporary file of its own, renamed into place: builds in other threads or
            # processes never read or write a half-written file
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem + ".", suffix=".tmp.npy")
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, emb, allow_pickle=False)
            os.replace(tmp, path)
        return emb

    def encode_images(self, images: Sequence[np.ndarray], layers: Sequence[int] = (),
                      batch_size: int | None = None) -> R.ImageFeatures:
        """``N`` ``(H, W, 3)`` uint8 RGB images -> :class:`~pixlink.models.roles.ImageFeatures`:
        ``embeds`` ``(N, D)`` ConSE embeddings (unit norm), ``patch_tokens`` ``(N, 49, D)``
        per-cell ConSE embeddings (``grid = (7, 7)``), ``cls_layers`` the EfficientNet layers asked
        (``(N, C_l)``, EfficientNet's own space, not the joint one)."""
        f = self.image_encoder.encode_images(images, layers=layers, batch_size=batch_size)
        n = len(f.embeds)
        if n == 0:
            return R.ImageFeatures(embeds=np.zeros((0, self.dim), np.float32), cls_layers=f.cls_layers,
                                   patch_tokens=np.zeros((0, 49, self.dim), np.float32), grid=(7, 7))
        assert f.logits is not None and f.patch_tokens is not None
        emb = self.mix_logits(f.logits)
        cell_logits = f.patch_tokens @ self._fc_w.T + self._fc_b  # (N, 49, 1000)
        cell_probs = softmax(cell_logits.reshape(-1, 1000)).reshape(n, -1, 1000)
        tokens = conse_mix(cell_probs, self.class_emb, self.top_t)
        return R.ImageFeatures(embeds=emb, cls_layers=f.cls_layers, patch_tokens=tokens, grid=f.grid)

    def mix_logits(self, logits: np.ndarray) -> np.ndarray:
        """ImageNet logits ``(N, 1000)`` -> ConSE embeddings ``(N, D)`` (unit norm)."""
        return conse_mix(softmax(logits), self.class_emb, self.top_t)

    def encode_texts(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """``(N, D)`` float32 unit-norm text embeddings (the text encoder's own)."""
        if isinstance(texts, str):
            raise InputError(Errors.E353.format(backend=self.name, what="texts",
                                                reason="expected a list of strings, got a single string; wrap it in a list"))
        if not len(texts):
            return np.zeros((0, self.dim), np.float32)
        kw = {} if batch_size is None else {"batch_size": batch_size}
        return l2_normalise(self.text_encoder.encode(list(texts), **kw))

    def explain(self, images: Sequence[np.ndarray], k: int | None = None) -> list[list[tuple[str, float]]]:
        """The classes (clean names) and weights that make up each image's embedding, top ``k``
        (default ``top_t``): what the bridge "sees"."""
        k = self.top_t if k is None else int(k)
        f = self.image_encoder.encode_images(images)
        assert f.logits is not None
        probs = softmax(f.logits)
        out = []
        for row in probs:
            idx = np.argsort(-row)[:k]
            out.append([(self.class_names[i], float(row[i])) for i in idx])
        return out


@register_backend(
    R.IMAGE_TEXT, "conse_efficientnet", "packaged", check, device=True,
    default_model="EfficientNet-Lite0 ImageNet classes mixed in the offline text_embed space (MiniLM)",
    license="Apache-2.0",
    description="ConSE bridge: image -> p(ImageNet class) -> weighted class-name text embeddings",
    notes="weak: only ImageNet's 1000 classes; no names, colours or relations. See docs/models-offline-vision.md",
)
def build_conse(text_encoder: Any = None, image_encoder: EfficientNetLiteEncoder | None = None,
                top_t: int = DEFAULT_TOP_T, names: str = "clean", template: str = "plain",
                resize: str = "pad", cache: bool = True, cache_dir: str | None = None,
                device: str | None = None) -> ConSEEncoder:
    """Build the bridge. ``text_encoder`` defaults to the offline profile's ``text_embed``
    backend; ``image_encoder`` to a new EfficientNet-Lite0 with ``resize``; both built here
    run on ``device`` (``auto``/None: :func:`pixlink.device.resolve_device`)."""
    if text_encoder is None:
        try:
            text_encoder = Profile("offline", device=device).get(R.TEXT_EMBED)
        except ModelUnavailableError as exc:
            raise ModelUnavailableError(Errors.E354.format(backend="conse_efficientnet", reason=str(exc))) from exc
    if image_encoder is None:
        image_encoder = EfficientNetLiteEncoder(resize=resize, device=device)
    return ConSEEncoder(image_encoder, text_encoder, top_t=top_t, names=names, template=template, cache=cache,
                        cache_dir=cache_dir)
