"""CLIP and SigLIP from the hub or a local directory: image-text embedding with per-layer states.

Backends:

* ``image_text`` / ``clip`` — :class:`HubImageTextEncoder` on a CLIP checkpoint
  (default ``openai/clip-vit-base-patch32``, the model IIER uses).
* ``image_text`` / ``siglip`` — the same class on a SigLIP checkpoint
  (default ``google/siglip-base-patch16-224``).
* ``image_embed`` / ``clip_vision`` — the CLIP (or SigLIP) vision tower alone, for
  image <-> image search; the text tower is dropped after loading.

Every factory takes ``model=`` (hub id or local directory written by ``save_pretrained``),
``cache_dir=`` (default ``$PIXLINK_CACHE/hub``) and ``patch_tokens=``; the instance exposes
``model_id`` (hub id, or the local directory's absolute path). Preprocessing is the model's
own processor (PIL backend), never hand-written normalisation.

Layers (``encode_images(images, layers=...)``), as in ``transformers``' ``hidden_states``:
``hidden_states[0]`` is the embedding output (patch + position embeddings, after CLIP's
``pre_layrnorm``), ``hidden_states[i]`` the output of transformer layer ``i`` (1-based), so
ViT-B has ``0..12``. ``ImageFeatures.cls_layers[i]`` is

* CLIP: the CLS token of ``hidden_states[i]``, ``(N, C)``, **without** the final
  ``post_layernorm`` and without the projection — exactly what IIER's code concatenates
  (``vision_model_output.hidden_states[k][:, 0, :]`` for k in 4, 10, 11, 12; the paper says
  "layers 3, 10, 11, 12": its 3 is the 0-based index of the 4th layer, whose output is
  ``hidden_states[4]``). :data:`IIER_LAYERS` holds those indices.
* SigLIP (no CLS token): the mean of all tokens of ``hidden_states[i]``, ``(N, C)``.

``embeds`` ``(N, D)`` is the model's own pooled, projected image embedding (CLIP:
``visual_projection(post_layernorm(CLS))``; SigLIP: the attention-pooling head), L2-normalised,
in the same space as :meth:`HubImageTextEncoder.encode_texts`.

``patch_tokens`` ``(N, P, C)`` with ``grid = (gh, gw)``, ``P = gh * gw``, row-major:

* ``"hidden"`` (default): the last layer's output for the patch tokens (CLS dropped), no final
  layernorm — IIER's ``image_patch_tokens`` without the CLS row.
* ``"projected"``: CLIP: ``visual_projection(post_layernorm(token))`` for each patch, ``(N, P, D)``
  in the joint image-text space (an approximation, as in MaskCLIP-style dense CLIP);
  SigLIP: ``post_layernorm(token)`` (SigLIP has no per-token projection).
* ``"none"``: not returned.

The grid covers the part of the original image the processor kept (CLIP resizes the short
side and centre-crops, so a non-square image loses its sides): :meth:`view_box` gives that
part as an XYXY box in original pixels, to map a mask onto the grid before mask pooling
(:func:`pixlink.regions.views.mask_pool`).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ...device import default_batch_size, resolve_device
from ...errors import Errors, InputError
from ...log import get_logger
from ...vecmath import l2_normalise
from .. import roles as R
from ..hub import (expect_model_type, hub_cache_dir, load_config, load_pretrained, load_processor, needs,
                   resolve_model, to_pil)
from ..registry import register_backend

log = get_logger("pixlink.models.hub_clip")

CLIP_DEFAULT = "openai/clip-vit-base-patch32"
SIGLIP_DEFAULT = "google/siglip-base-patch16-224"
IIER_LAYERS = (4, 10, 11, 12)
"""``hidden_states`` indices IIER's code concatenates (CLS of each) for CLIP ViT-B/32."""
PATCH_MODES = ("hidden", "projected", "none")

_FAMILY_TYPES = {
    "clip": ("clip", "clip_vision_model"),
    "siglip": ("siglip", "siglip_vision_model"),
}


class HubImageTextEncoder:
    """CLIP / SigLIP image (and text) encoder loaded with ``transformers``.

    Args:
        model: hub id or local directory.
        cache_dir: download cache (default ``$PIXLINK_CACHE/hub``).
        name: registry name used in messages and outputs.
        family: ``"clip"``, ``"siglip"`` or ``None`` (any of both, from the config).
        text: load the text tower (``False`` for the ``image_embed`` role: it is dropped).
        patch_tokens: ``"hidden"``, ``"projected"`` or ``"none"`` (see the module doc).
        device: torch device (``auto``/None: :func:`pixlink.device.resolve_device`).

    Attributes:
        name, model_id, dim (``D`` of ``embeds``), hidden_size (``C``), num_layers (``L``:
        valid layers are ``0..L``), family, image_processor, tokenizer (None without text),
        device, batch_size / text_batch_size (defaults that follow the device).

    Shared by threads: the model only reads its weights; the (Rust) tokenizer, which changes its
    padding settings on every call, is called under a lock.
    """

    def __init__(
        self, model: str | Path, cache_dir: str | Path | None = None, *, name: str = "clip", family: str | None = None,
        text: bool = True, patch_tokens: str = "hidden", device: str | None = None,
    ) -> None:
        import torch

        if patch_tokens not in PATCH_MODES:
            raise InputError(Errors.E313.format(backend=name, option="patch_tokens", value=patch_tokens,
                                                expected=" | ".join(PATCH_MODES)))
        self.name = name
        self.patch_mode = patch_tokens
        dev = resolve_device(device)
        self.device = torch.device(dev)
        self.batch_size = default_batch_size(dev, *R.IMAGE_BATCH)
        self.text_batch_size = default_batch_size(dev, *R.TEXT_BATCH)
        self._tokenizer_lock = threading.Lock()
        source, self.model_id, self.is_local = resolve_model(model, name)
        self.cache_dir = hub_cache_dir(cache_dir)
        cfg = load_config(source, owner=name, cache_dir=self.cache_dir)
        allowed = _FAMILY_TYPES[family] if family else _FAMILY_TYPES["clip"] + _FAMILY_TYPES["siglip"]
        mt = expect_model_type(cfg, allowed, owner=name, model=self.model_id,
                               expected=" or ".join(f"'{t}'" for t in allowed))
        self.family = "clip" if mt.startswith("clip") else "siglip"
        vision_only_ckpt = mt.endswith("_vision_model")
        if text and vision_only_ckpt:
            raise InputError(Errors.E306.format(backend=name, model=self.model_id, model_type=mt,
                                                expected="a full CLIP/SigLIP checkpoint with a text tower"))
        self._net = self._load_model(source, mt)
        self._net.eval().to(self.device)
        if not text and hasattr(self._net, "text_model"):
            # image <-> image only: free the text tower (a quarter to half of the weights)
            self._net.text_model = None
        if text:
            proc = load_processor(source, owner=name, cache_dir=self.cache_dir, kind="processor")
            self.image_processor = proc.image_processor
            self.tokenizer = proc.tokenizer
        else:
            self.image_processor = load_processor(source, owner=name, cache_dir=self.cache_dir, kind="image_processor")
            self.tokenizer = None
        vcfg = cfg.vision_config if hasattr(cfg, "vision_config") else cfg
        self.hidden_size = int(vcfg.hidden_size)
        self.num_layers = int(vcfg.num_hidden_layers)
        self.patch_size = int(vcfg.patch_size)
        proj = self._projection()
        self.dim = int(proj.out_features) if proj is not None else self.hidden_size
        if text:
            tcfg = cfg.text_config
            self.text_max_length = int(getattr(tcfg, "max_position_embeddings", 77))
        log.info("%s: loaded %s (%s, %d layers, D=%d) from %s", name, self.model_id, mt, self.num_layers, self.dim,
                 "a local directory" if self.is_local else "the hub cache")

    # -- loading -------------------------------------------------------------------------------
    def _load_model(self, source: str, model_type: str) -> Any:
        from transformers import AutoModel, CLIPVisionModelWithProjection, SiglipVisionModel

        loader = {"clip_vision_model": CLIPVisionModelWithProjection.from_pretrained,
                  "siglip_vision_model": SiglipVisionModel.from_pretrained}.get(model_type, AutoModel.from_pretrained)
        return load_pretrained(loader, source, owner=self.name, cache_dir=self.cache_dir, what="weights")

    def _projection(self) -> Any:
        return getattr(self._net, "visual_projection", None)

    def _post_layernorm(self) -> Any:
        for mod_name, mod in self._net.vision_model.named_modules():
            if mod_name.split(".")[-1] == "post_layernorm":
                return mod
        raise InputError(Errors.E308.format(backend=self.name, what="vision tower",
                                            reason="has no post_layernorm for projected patch tokens"))

    # -- geometry ------------------------------------------------------------------------------
    def view_box(self, image_size: tuple[int, int]) -> np.ndarray:
        """XYXY box, in original pixels, of the part of an ``(H, W)`` image that the processor
        keeps (and that the patch grid covers): the centre crop for CLIP-style processors
        (resize short side, crop), the whole image for SigLIP-style ones (resize to H x W)."""
        h, w = (int(v) for v in image_size)
        ip = self.image_processor
        size = dict(ip.size) if ip.size is not None else {}
        rh, rw = float(h), float(w)
        if getattr(ip, "do_resize", True):
            if size.get("shortest_edge"):
                s = int(size["shortest_edge"])
                if w <= h:
                    rw, rh = float(s), float(int(s * h / w))
                else:
                    rh, rw = float(s), float(int(s * w / h))
            elif size.get("height") and size.get("width"):
                rh, rw = float(size["height"]), float(size["width"])
        sy, sx = rh / h, rw / w
        box = np.array([0.0, 0.0, float(w), float(h)])
        crop = dict(ip.crop_size) if getattr(ip, "crop_size", None) is not None else None
        if getattr(ip, "do_center_crop", False) and crop:
            ch, cw = int(crop["height"]), int(crop["width"])
            top, left = (int(rh) - ch) // 2, (int(rw) - cw) // 2
            box = np.array([left / sx, top / sy, (left + cw) / sx, (top + ch) / sy])
            box = np.clip(box, 0.0, [w, h, w, h])
        return box

    # -- encoding ------------------------------------------------------------------------------
    def _pixels(self, images: Sequence[Any]) -> Any:
        pils = [to_pil(im)[0] for im in images]
        return self.image_processor(images=pils, return_tensors="pt")["pixel_values"].to(self.device)

    def _check_layers(self, layers: Sequence[int]) -> list[int]:
        out = []
        for layer in layers:
            if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 0 <= int(layer) <= self.num_layers:
                raise InputError(Errors.E307.format(backend=self.name, layer=layer, model=self.model_id,
                                                    last=self.num_layers))
            out.append(int(layer))
        return out

    def _vision_forward(self, pixel_values: Any) -> tuple[Any, tuple[Any, ...]]:
        """``(pooled projected embeds (N, D), hidden_states)`` of one batch."""
        net = self._net
        if hasattr(net, "get_image_features"):
            out = net.get_image_features(pixel_values=pixel_values, output_hidden_states=True)
            return out.pooler_output, out.hidden_states
        out = net(pixel_values=pixel_values, output_hidden_states=True)
        pooled = out.image_embeds if hasattr(out, "image_embeds") else out.pooler_output
        return pooled, out.hidden_states

    def encode_images(
        self, images: Sequence[Any], layers: Sequence[int] = (), batch_size: int | None = None
    ) -> R.ImageFeatures:
        """Encode images (``(H, W, 3)`` uint8 arrays, paths, PIL images).

        Returns :class:`~pixlink.models.roles.ImageFeatures`: ``embeds`` ``(N, D)`` float32
        L2-normalised; ``cls_layers`` ``{i: (N, C)}`` for each asked layer (see the module
        doc; not normalised); ``patch_tokens`` ``(N, P, C)`` (or ``(N, P, D)`` when projected)
        and ``grid`` ``(gh, gw)`` unless ``patch_tokens="none"``. Raises E307 for a layer
        outside ``0..num_layers``, E001 for an unreadable image. ``batch_size`` defaults to
        :attr:`batch_size` (larger on an accelerator).
        """
        import torch

        layers = self._check_layers(layers)
        images = list(images)
        batch_size = self.batch_size if batch_size is None else batch_size
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise InputError(Errors.E313.format(backend=self.name, option="batch_size", value=batch_size,
                                                expected="a positive integer"))
        embeds: list[np.ndarray] = []
        per_layer: dict[int, list[np.ndarray]] = {i: [] for i in layers}
        patches: list[np.ndarray] = []
        grid: tuple[int, int] | None = None
        skip = 1 if self.family == "clip" else 0  # CLIP's token 0 is CLS; SigLIP has none
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                pix = self._pixels(images[start:start + batch_size])
                pooled, hs = self._vision_forward(pix)
                embeds.append(pooled.float().cpu().numpy())
                for i in layers:
                    tok = hs[i][:, 0, :] if skip else hs[i].mean(dim=1)
                    per_layer[i].append(tok.float().cpu().numpy())
                if self.patch_mode != "none":
                    tok = hs[-1][:, skip:, :]
                    if self.patch_mode == "projected":
                        tok = self._post_layernorm()(tok)
                        proj = self._projection()
                        if proj is not None:
                            tok = proj(tok)
                    patches.append(tok.float().cpu().numpy())
                    gh, gw = pix.shape[-2] // self.patch_size, pix.shape[-1] // self.patch_size
                    if gh * gw != tok.shape[1]:
                        raise InputError(Errors.E308.format(backend=self.name, what="patch grid",
                                                            reason=f"{gh}x{gw} != {tok.shape[1]} tokens"))
                    grid = (int(gh), int(gw))
        if not images:
            c_patch = self.dim if (self.patch_mode == "projected" and self._projection() is not None) else self.hidden_size
            return R.ImageFeatures(
                embeds=np.zeros((0, self.dim), np.float32),
                cls_layers={i: np.zeros((0, self.hidden_size), np.float32) for i in layers},
                patch_tokens=None if self.patch_mode == "none" else np.zeros((0, 0, c_patch), np.float32),
                grid=None,
            )
        return R.ImageFeatures(
            embeds=l2_normalise(np.concatenate(embeds)),
            cls_layers={i: np.concatenate(v).astype(np.float32) for i, v in per_layer.items()},
            patch_tokens=np.concatenate(patches).astype(np.float32) if patches else None,
            grid=grid,
        )

    def encode_texts(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """``(N, D)`` float32 L2-normalised text embeddings in the image space.

        CLIP pads to the longest text of the batch; SigLIP pads to ``max_length`` (64), as it
        was trained. Texts longer than the model's context are truncated.
        """
        import torch

        if self.tokenizer is None:
            raise InputError(Errors.E308.format(backend=self.name, what="encode_texts",
                                                reason="this instance was loaded without the text tower"))
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise InputError(Errors.E308.format(backend=self.name, what="texts",
                                                reason="expected a list of strings"))
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        batch_size = self.text_batch_size if batch_size is None else int(batch_size)
        padding = "max_length" if self.family == "siglip" else True
        out: list[np.ndarray] = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                with self._tokenizer_lock:
                    enc = self.tokenizer(texts[start:start + batch_size], padding=padding, truncation=True,
                                         max_length=self.text_max_length, return_tensors="pt")
                enc = enc.to(self.device)
                feats = self._net.get_text_features(**enc)
                out.append(feats.pooler_output.float().cpu().numpy())
        return l2_normalise(np.concatenate(out))


_CHECK = needs("torch", "transformers")
_CHECK_SIGLIP = needs("torch", "transformers", "sentencepiece")


@register_backend(
    R.IMAGE_TEXT, "clip", "hub", _CHECK, device=True, default_model=CLIP_DEFAULT, license="MIT (OpenAI CLIP weights)",
    description="CLIP image-text embedding with per-layer CLS tokens and patch tokens (transformers)",
    notes="IIER layers: hidden_states 4, 10, 11, 12 (IIER_LAYERS); cls_layers are pre-post_layernorm",
)
def make_clip(model: str | Path = CLIP_DEFAULT, cache_dir: str | Path | None = None, patch_tokens: str = "hidden",
              device: str | None = None) -> HubImageTextEncoder:
    return HubImageTextEncoder(model, cache_dir, name="clip", family="clip", patch_tokens=patch_tokens, device=device)


@register_backend(
    R.IMAGE_TEXT, "siglip", "hub", _CHECK_SIGLIP, device=True, default_model=SIGLIP_DEFAULT, license="Apache-2.0",
    description="SigLIP image-text embedding (sigmoid-trained; per-layer mean tokens, patch tokens)",
    notes="no CLS token: cls_layers are token means; texts padded to 64 tokens",
)
def make_siglip(model: str | Path = SIGLIP_DEFAULT, cache_dir: str | Path | None = None,
                patch_tokens: str = "hidden", device: str | None = None) -> HubImageTextEncoder:
    return HubImageTextEncoder(model, cache_dir, name="siglip", family="siglip", patch_tokens=patch_tokens,
                               device=device)


@register_backend(
    R.IMAGE_EMBED, "clip_vision", "hub", _CHECK, device=True, default_model=CLIP_DEFAULT, license="MIT (OpenAI CLIP weights)",
    description="CLIP vision tower for image <-> image similarity (text tower dropped after loading)",
    notes="accepts CLIP or SigLIP checkpoints",
)
def make_clip_vision(model: str | Path = CLIP_DEFAULT, cache_dir: str | Path | None = None,
                     patch_tokens: str = "hidden", device: str | None = None) -> HubImageTextEncoder:
    return HubImageTextEncoder(model, cache_dir, name="clip_vision", family=None, text=False,
                               patch_tokens=patch_tokens, device=device)
