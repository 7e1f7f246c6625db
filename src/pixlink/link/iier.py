"""IIER (VP-MEL, Mi et al., ACL Findings 2025): its three interaction units, its loss, and the
features it reads — as a trainable re-ranker (:mod:`pixlink.train` trains it,
:mod:`pixlink.link.rerank` runs it in the linker).

IIER extends MIMIC (Luo et al., KDD 2023). What follows is the released code of both
(``MiHongze-tju/VP-MEL`` ``IIER/model/modeling.py``, ``pengfei-luo/MIMIC``), written as equations;
``LN`` is a LayerNorm, ``W·`` a linear layer, ``d_c`` the units' width (96), ``d_v`` the visual
width (96).

**Inputs** (one side = the mentions or the entities): the text encoder's global feature ``t``
``(N, d_t)`` and token features ``T`` ``(N, L, d_t)`` of the input ``[CLS] words [SEP] sentence
[SEP]`` (mention) / ``[CLS] name [SEP] attributes [SEP]`` (entity), L = 40; the image encoder's
CLS tokens of the chosen layers (IIER: hidden states 4, 10, 11, 12 of CLIP ViT-B/32, "shallow and
deep") and its last-layer patch tokens.

**Visual features** (IIER's encoder head): ``v = W_v2(W_v1(LN([c_4; c_10; c_11; c_12])))``
``(N, d_v)`` (``W_v1``: 3072 -> 512, ``W_v2``: 512 -> d_v); ``P = W_p(patches)`` ``(N, n_p, d_v)``.
Then ``t, T, v, P`` each pass their own LN (the matcher's input norms).

**TFI** (MIMIC's TGLU), mention ``m``, entity ``e``::

    A = softmax((T_e W_q)(T_m W_k)^T / sqrt(d_c))          (L_e, L_m) per pair
    c = LN(mean_over_L_e(A (T_m W_v)))                      (d_c,)
    s_TFI(m, e) = ( (t_e W_cls) . c  +  t_m . t_e ) / 2

**VFI** (MIMIC's VDLU), a dual gate: ``DUAL(q, k, V)`` with ``q' = q W_c``, ``k' = k W_c``,
``V' = V W_t``, ``x = W_f(LN_a(mean(V') + q'))``, ``g = tanh(W_g x)``,
``DUAL = (LN_b(g * x + k')) . LN_b(q')``; ``s_VFI(m, e) = (DUAL_e2m(v_e, v_m, P_m) + DUAL_m2e(v_m, v_e, P_e)) / 2``.

**CMFI** (MIMIC's CMFU): per side ``u = t W_t``, ``Q = P W_i``, ``a = softmax(u Q^T)``,
``f = LN(u * tanh(W_g u) + a Q)``; ``s_CMFI(m, e) = f_m . f_e``.

**Overall** ``s_O = (s_TFI + s_VFI + s_CMFI) / 3`` (the mean of the units in use: the text-only
path uses TFI alone).

**Loss** (in-batch; the ``B`` mentions of a batch against their ``B`` gold entities): ``L_X =
CE(s_X, diag)`` and ``L = L_O + lambda (L_V + L_T + L_C)``; the released code adds the four terms
with ``lambda = 1`` and **no temperature** (scores enter the softmax as they are).

Where pixlink departs, and why:

* the encoders are **frozen** and their features cached (MIMIC/IIER fine-tune CLIP end to end
  at lr 1e-5): on CPU a fine-tuned ViT-B/32 costs hours per epoch; the units and projections
  are what is trained. Said in every checkpoint (``config["frozen_encoders"]``).
* **padding is masked** (``mask_padding=True``): the released TGLU attends over and averages
  the padded positions of its max-length inputs, so a score depends on how much padding there
  is; ``mask_padding=False`` gives the released behaviour exactly.
* the widths follow the encoders pixlink runs (``d_t`` 384 for MiniLM, the EfficientNet
  block widths offline); ``d_v = d_c = 96`` and the 512-wide visual bottleneck are IIER's.
* ``temperature`` and ``lam`` are options (defaults 1.0: the paper's).
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import Errors, InputError

UNITS = ("tfi", "vfi", "cmfi")
"""The interaction units: text (TFI), visual (VFI), cross-modal (CMFI)."""

MENTION_TEMPLATE = "{words} [SEP] {sentence}"
"""IIER's mention input (the tokenizer adds ``[CLS]`` and the last ``[SEP]``)."""
ENTITY_TEMPLATE = "{name} [SEP] {attributes}"
"""IIER's entity input."""

CLIP_IIER_LAYERS = (4, 10, 11, 12)
"""The hidden states whose CLS tokens IIER concatenates (CLIP ViT-B/32; index 0 = embeddings)."""


@dataclass
class IIERConfig:
    """Widths and switches of :class:`IIER` (saved in a checkpoint's ``config.json``).

    Attributes:
        d_text: width of the text encoder's global feature (CLIP ``text_embeds`` 512; MiniLM 384).
        d_tokens: width of its token features when it differs from ``d_text`` (None: the same).
        d_cls_layers: width of each chosen image layer's CLS token (CLIP: 4 x 768).
        d_patch: width of the patch tokens (CLIP ViT-B/32: 768; EfficientNet-Lite head: 1280).
        d_image_global: IIER's bottleneck of the concatenated CLS tokens (512).
        d_v: visual width after projection (IIER/MIMIC: 96).
        d_c: width of the interaction units (IIER/MIMIC: 96).
        units: the units in use; ``("tfi",)`` is the text-only path (no image features at all).
        mask_padding: mask padded text positions (see the module docstring).
    """

    d_text: int = 512
    d_tokens: int | None = None
    d_cls_layers: tuple[int, ...] = (768, 768, 768, 768)
    d_patch: int = 768
    d_image_global: int = 512
    d_v: int = 96
    d_c: int = 96
    units: tuple[str, ...] = UNITS
    mask_padding: bool = True

    def __post_init__(self) -> None:
        self.d_cls_layers = tuple(int(x) for x in self.d_cls_layers)
        self.units = tuple(self.units)
        bad = [u for u in self.units if u not in UNITS]
        if bad or not self.units:
            raise InputError(Errors.E778.format(reason=f"units {list(self.units)}: choose from {UNITS}"))
        for name in ("d_text", "d_patch", "d_image_global", "d_v", "d_c"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(Errors.E778.format(reason=f"{name} = {v!r} must be a positive integer"))
        if self.uses_image and (not self.d_cls_layers or min(self.d_cls_layers) < 1):
            raise InputError(Errors.E778.format(reason="the visual units need at least one CLS layer width"))

    @property
    def uses_image(self) -> bool:
        return any(u in self.units for u in ("vfi", "cmfi"))

    @property
    def tokens_width(self) -> int:
        return int(self.d_tokens or self.d_text)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["d_cls_layers"] = list(self.d_cls_layers)
        d["units"] = list(self.units)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "IIERConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(Errors.E778.format(reason=f"unknown IIER config keys {unknown}"))
        return cls(**d)


# ------------------------------------------------------------------------------------------------
# the units
# ------------------------------------------------------------------------------------------------


class VisualHead(nn.Module):
    """IIER's visual projections: concatenated CLS tokens -> ``v`` ``(N, d_v)``; patches -> ``P``."""

    def __init__(self, cfg: IIERConfig):
        super().__init__()
        d_cat = sum(cfg.d_cls_layers)
        self.norm = nn.LayerNorm(d_cat)
        self.feature_fc = nn.Linear(d_cat, cfg.d_image_global)
        self.cls_fc = nn.Linear(cfg.d_image_global, cfg.d_v)
        self.tokens_fc = nn.Linear(cfg.d_patch, cfg.d_v)

    def forward(self, image_cls: torch.Tensor, image_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cls_fc(self.feature_fc(self.norm(image_cls))), self.tokens_fc(image_tokens)


class TFI(nn.Module):
    """Textual feature interaction (MIMIC's TGLU); see the module docstring."""

    def __init__(self, d_text: int, d_c: int, mask_padding: bool = True, d_tokens: int | None = None):
        super().__init__()
        d_tok = d_tokens or d_text
        self.fc_query = nn.Linear(d_tok, d_c)
        self.fc_key = nn.Linear(d_tok, d_c)
        self.fc_value = nn.Linear(d_tok, d_c)
        self.fc_cls = nn.Linear(d_text, d_c)
        self.norm = nn.LayerNorm(d_c)
        self.d_c = d_c
        self.mask_padding = mask_padding

    def forward(self, e_cls: torch.Tensor, e_tok: torch.Tensor, e_mask: torch.Tensor,
                m_cls: torch.Tensor, m_tok: torch.Tensor, m_mask: torch.Tensor) -> torch.Tensor:
        q = self.fc_query(e_tok).unsqueeze(1)  # (E, 1, Le, c)
        k = self.fc_key(m_tok).unsqueeze(0)  # (1, B, Lm, c)
        v = self.fc_value(m_tok).unsqueeze(0)
        att = q @ k.transpose(-1, -2) / math.sqrt(self.d_c)  # (E, B, Le, Lm)
        if self.mask_padding:
            att = att.masked_fill(m_mask[None, :, None, :] <= 0, float("-inf"))
        probs = torch.softmax(att, dim=-1)
        # mean over the entity's positions of (A V) = (mean of A) V: the same numbers, without
        # the (E, B, Le, c) tensor (the released code's memory cost on a CPU)
        if self.mask_padding:
            em = e_mask[:, None, :, None].to(probs.dtype)
            probs = (probs * em).sum(2) / em.sum(2).clamp(min=1.0)  # (E, B, Lm)
        else:
            probs = probs.mean(dim=2)
        ctx = (probs.unsqueeze(2) @ v).squeeze(2)  # (E, B, c)
        ctx = self.norm(ctx)
        g2l = (self.fc_cls(e_cls).unsqueeze(1) * ctx).sum(-1).transpose(0, 1)  # (B, E)
        g2g = m_cls @ e_cls.transpose(0, 1)
        return (g2l + g2g) / 2


class Dual(nn.Module):
    """One direction of VFI (MIMIC's DUAL): ``(A, d_v)`` queries against ``(Bk, d_v)`` keys with
    their ``(Bk, P, d_v)`` patches -> ``(A, Bk)``."""

    def __init__(self, d_v: int, d_c: int):
        super().__init__()
        self.cls_fc = nn.Linear(d_v, d_c)
        self.tokens_fc = nn.Linear(d_v, d_c)
        self.fc = nn.Linear(d_c, d_c)
        self.gate_fc = nn.Linear(d_c, 1)
        self.add_norm = nn.LayerNorm(d_c)
        self.norm = nn.LayerNorm(d_c)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value_tokens: torch.Tensor) -> torch.Tensor:
        q = self.cls_fc(query).unsqueeze(1)  # (A, 1, c)
        k = self.cls_fc(key).unsqueeze(0)  # (1, Bk, c)
        pooled = self.tokens_fc(value_tokens).mean(dim=-2).unsqueeze(0)  # (1, Bk, c)
        x = self.fc(self.add_norm(pooled + q))  # (A, Bk, c)
        agg = self.norm(x * torch.tanh(self.gate_fc(x)) + k)
        return (agg * self.norm(q)).sum(-1)


class VFI(nn.Module):
    """Visual feature interaction (MIMIC's VDLU): the mean of the two directions."""

    def __init__(self, d_v: int, d_c: int):
        super().__init__()
        self.ent2men = Dual(d_v, d_c)
        self.men2ent = Dual(d_v, d_c)

    def forward(self, e_v: torch.Tensor, e_p: torch.Tensor, m_v: torch.Tensor, m_p: torch.Tensor) -> torch.Tensor:
        return (self.ent2men(e_v, m_v, m_p).transpose(0, 1) + self.men2ent(m_v, e_v, e_p)) / 2


class CMFI(nn.Module):
    """Cross-modal feature interaction (MIMIC's CMFU)."""

    def __init__(self, d_text: int, d_v: int, d_c: int):
        super().__init__()
        self.text_fc = nn.Linear(d_text, d_c)
        self.image_fc = nn.Linear(d_v, d_c)
        self.gate_fc = nn.Linear(d_c, 1)
        self.norm = nn.LayerNorm(d_c)

    def fuse(self, t: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        u = self.text_fc(t)  # (N, c)
        q = self.image_fc(p)  # (N, P, c)
        a = torch.softmax(u.unsqueeze(1) @ q.transpose(-1, -2), dim=-1)  # (N, 1, P)
        ctx = (a @ q).squeeze(1)
        return self.norm(u * torch.tanh(self.gate_fc(u)) + ctx)

    def forward(self, e_t: torch.Tensor, e_p: torch.Tensor, m_t: torch.Tensor, m_p: torch.Tensor) -> torch.Tensor:
        return self.fuse(m_t, m_p) @ self.fuse(e_t, e_p).transpose(0, 1)


class IIER(nn.Module):
    """IIER's matcher: ``forward(mention, entity) -> (s_O (B, E), {unit: (B, E)})``.

    Each side is a dict of float tensors: ``text_cls`` ``(N, d_t)``, ``text_tokens``
    ``(N, L, d_t)``, ``text_mask`` ``(N, L)`` (1 = token), and for the visual units
    ``image_cls`` ``(N, sum(d_cls_layers))`` (the chosen layers' CLS tokens, concatenated) and
    ``image_tokens`` ``(N, P, d_patch)``.
    """

    def __init__(self, cfg: IIERConfig | None = None):
        super().__init__()
        self.cfg = cfg or IIERConfig()
        c = self.cfg
        self.text_cls_norm = nn.LayerNorm(c.d_text)
        self.text_tokens_norm = nn.LayerNorm(c.tokens_width)
        self.tfi = TFI(c.d_text, c.d_c, c.mask_padding, c.tokens_width) if "tfi" in c.units else None
        if c.uses_image:
            self.visual = VisualHead(c)
            self.image_cls_norm = nn.LayerNorm(c.d_v)
            self.image_tokens_norm = nn.LayerNorm(c.d_v)
        self.vfi = VFI(c.d_v, c.d_c) if "vfi" in c.units else None
        self.cmfi = CMFI(c.d_text, c.d_v, c.d_c) if "cmfi" in c.units else None

    def _check(self, side: dict[str, torch.Tensor], what: str) -> None:
        need = ["text_cls", "text_tokens"] + (["image_cls", "image_tokens"] if self.cfg.uses_image else [])
        missing = [k for k in need if k not in side]
        if missing:
            raise InputError(Errors.E778.format(reason=f"the {what} side lacks {missing}"))
        if side["text_cls"].shape[-1] != self.cfg.d_text:
            raise InputError(Errors.E778.format(reason=f"{what} text_cls has width {side['text_cls'].shape[-1]}, "
                                                       f"the model was built for {self.cfg.d_text}"))

    def _prep(self, side: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        tok = side["text_tokens"]
        out = {"t": self.text_cls_norm(side["text_cls"]), "T": self.text_tokens_norm(tok),
               "mask": side.get("text_mask", torch.ones(tok.shape[:2], dtype=tok.dtype)).to(tok.dtype)}
        if self.cfg.uses_image:
            v, p = self.visual(side["image_cls"], side["image_tokens"])
            out["v"], out["P"] = self.image_cls_norm(v), self.image_tokens_norm(p)
        return out

    def forward(self, mention: dict[str, torch.Tensor], entity: dict[str, torch.Tensor]
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        self._check(mention, "mention")
        self._check(entity, "entity")
        m, e = self._prep(mention), self._prep(entity)
        units: dict[str, torch.Tensor] = {}
        if self.tfi is not None:
            units["tfi"] = self.tfi(e["t"], e["T"], e["mask"], m["t"], m["T"], m["mask"])
        if self.vfi is not None:
            units["vfi"] = self.vfi(e["v"], e["P"], m["v"], m["P"])
        if self.cmfi is not None:
            units["cmfi"] = self.cmfi(e["t"], e["P"], m["t"], m["P"])
        score = torch.stack(list(units.values())).mean(0)
        return score, units


def iier_loss(score: torch.Tensor, units: dict[str, torch.Tensor], targets: torch.Tensor, lam: float = 1.0,
              temperature: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """``L = L_O + lam * sum_units L_unit`` with ``L_X = CE(s_X / temperature, targets)``.

    ``score`` and every unit ``(B, E)``; ``targets`` ``(B,)`` the column of each mention's gold
    entity. IIER's released code: ``lam = 1``, no temperature (1.0). With a single unit
    (the text-only path) ``L_O`` and ``L_T`` are the same term, as in the paper's formula.
    Returns the loss and its parts as floats (``overall``, ``tfi``...).
    """
    if temperature <= 0:
        raise InputError(Errors.E778.format(reason=f"temperature {temperature} must be > 0"))
    lo = F.cross_entropy(score / temperature, targets)
    parts = {"overall": float(lo.detach())}
    loss = lo
    for name, u in units.items():
        lu = F.cross_entropy(u / temperature, targets)
        parts[name] = float(lu.detach())
        loss = loss + lam * lu
    return loss, parts


# ------------------------------------------------------------------------------------------------
# the features IIER reads (frozen encoders)
# ------------------------------------------------------------------------------------------------


def mention_text(words: str | None, sentence: str | None, extra: str | None = None) -> str:
    """IIER's mention input text (``words [SEP] sentence``; ``extra``, the Detective-VLM's
    answer, appended to the sentence as the paper appends it)."""
    s = " ".join(x for x in ((sentence or "").strip(), (extra or "").strip()) if x)
    return MENTION_TEMPLATE.format(words=(words or "").strip(), sentence=s)


def entity_text(name: str, attributes: str | None) -> str:
    """IIER's entity input text (``name [SEP] attributes``)."""
    return ENTITY_TEMPLATE.format(name=name.strip(), attributes=(attributes or "").strip())


@dataclass
class TextFeatures:
    """Frozen text features: ``cls`` ``(N, D)``, ``tokens`` ``(N, L, D)``, ``mask`` ``(N, L)``
    (1.0 for a token, 0.0 for padding); every text padded to the same ``L``."""

    cls: np.ndarray
    tokens: np.ndarray
    mask: np.ndarray


@dataclass
class TextTokenEncoder:
    """Token-level features of a text encoder, for IIER's text side.

    Kinds:

    * ``"sentence_transformers"`` — a sentence-transformers model directory (the packaged
      MiniLM / mpnet of the ``text_embed`` role: their backends expose ``model_dir``):
      ``cls`` = the model's pooled sentence embedding (not normalised), ``tokens`` = its token
      embeddings.
    * ``"clip"`` — a CLIP text tower (hub id or local directory, e.g. the ``image_text``
      backend's model or a tiny model): ``cls`` = the projected ``text_embeds``, ``tokens`` =
      the last hidden state, as MIMIC/IIER take them.

    Texts are cut and padded to ``max_length`` tokens (IIER: 40). One :meth:`encode` runs at a
    time (tokenizers are not safe to share between threads).
    """

    source: str
    kind: str = "sentence_transformers"
    max_length: int = 40
    device: str | None = None
    cache_dir: str | None = None
    name: str | None = None
    _model: Any = field(default=None, repr=False)
    _tokenizer: Any = field(default=None, repr=False)
    _lock: Any = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in ("sentence_transformers", "clip"):
            raise InputError(Errors.E774.format(name="text tokens", reason=f"unknown encoder kind {self.kind!r}"))
        if int(self.max_length) < 4:
            raise InputError(Errors.E774.format(name="text tokens", reason=f"max_length {self.max_length} < 4"))

    @classmethod
    def from_backend(cls, backend: Any, max_length: int = 40) -> "TextTokenEncoder":
        """The token encoder of a ``text_embed`` backend (a directory of a sentence-transformers
        model) or of an ``image_text`` CLIP backend (its model id)."""
        if getattr(backend, "model_dir", None) is not None:
            return cls(str(backend.model_dir), "sentence_transformers", max_length,
                       device=str(getattr(backend, "device", "cpu")), name=str(backend.model_id))
        if getattr(backend, "family", None) == "clip":
            return cls(str(backend.model_id), "clip", max_length, device=str(getattr(backend, "device", "cpu")),
                       cache_dir=str(getattr(backend, "cache_dir", "")) or None, name=str(backend.model_id))
        raise InputError(Errors.E774.format(
            name="text tokens", reason=f"backend {getattr(backend, 'name', backend)!r} gives no token features "
                                       "(IIER's text side needs a sentence-transformers text_embed backend or CLIP)"))

    @property
    def model_id(self) -> str:
        """The encoder's model id (not the directory it was read from) with the token layout."""
        return f"{self.name or self.source}|tokens|L{self.max_length}"

    def _load(self) -> None:
        if self._model is not None:
            return
        from ..device import resolve_device

        dev = resolve_device(self.device)
        if self.kind == "sentence_transformers":
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(self.source, device=dev)
            model.max_seq_length = int(self.max_length)
            self._model = model.eval()
        else:
            from pathlib import Path

            from transformers import CLIPTextModelWithProjection

            from ..models.hub import hub_cache_dir, load_pretrained, load_processor

            cache = hub_cache_dir(self.cache_dir)
            self._tokenizer = load_processor(self.source, owner="iier_text", cache_dir=cache, kind="tokenizer")
            self._model = load_pretrained(CLIPTextModelWithProjection.from_pretrained, self.source, owner="iier_text",
                                          cache_dir=Path(cache), what="CLIP text tower").eval().to(dev)

    @property
    def dim(self) -> int:
        self._load()
        if self.kind == "sentence_transformers":
            m = self._model
            return int(m.get_embedding_dimension() if hasattr(m, "get_embedding_dimension")
                       else m.get_sentence_embedding_dimension())
        return int(self._model.config.hidden_size)

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> TextFeatures:
        """Features of ``texts``: see :class:`TextFeatures` (``L = max_length``)."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise InputError(Errors.E774.format(name="text tokens", reason="expected a list of strings"))
        texts = list(texts)
        L = int(self.max_length)
        with self._lock:
            self._load()
            d = self.dim
            if not texts:
                return TextFeatures(np.zeros((0, d), np.float32), np.zeros((0, L, d), np.float32), np.zeros((0, L), np.float32))
            cls_out, tok_out, mask_out = [], [], []
            with torch.inference_mode():
                for s in range(0, len(texts), batch_size):
                    chunk = texts[s:s + batch_size]
                    if self.kind == "sentence_transformers":
                        m = self._model
                        prep = getattr(m, "preprocess", None) or m.tokenize  # tokenize: sentence-transformers < 6
                        feats = prep(chunk)
                        feats = {k: (v.to(m.device) if torch.is_tensor(v) else v) for k, v in feats.items()}
                        out = m(feats)
                        cls_v, tok, mask = out["sentence_embedding"], out["token_embeddings"], out["attention_mask"]
                    else:
                        enc = self._tokenizer(chunk, padding="max_length", truncation=True, max_length=L,
                                              return_tensors="pt").to(self._model.device)
                        out = self._model(**enc)
                        cls_v, tok, mask = out.text_embeds, out.last_hidden_state, enc["attention_mask"]
                    tok = tok[:, :L]
                    mask = mask[:, :L]
                    pad = L - tok.shape[1]
                    if pad > 0:
                        tok = F.pad(tok, (0, 0, 0, pad))
                        mask = F.pad(mask, (0, pad))
                    cls_out.append(cls_v.float().cpu().numpy())
                    tok_out.append(tok.float().cpu().numpy())
                    mask_out.append(mask.float().cpu().numpy())
        return TextFeatures(np.concatenate(cls_out), np.concatenate(tok_out), np.concatenate(mask_out))


def image_features(backend: Any, images: Sequence[np.ndarray], layers: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """IIER's visual inputs from an image encoder: the chosen ``layers``' CLS tokens concatenated
    ``(N, sum C_l)`` and the last-layer patch tokens ``(N, P, C)`` (CLIP: ViT layers; offline:
    EfficientNet-Lite's pooled block maps and its 7 x 7 head cells)."""
    feats = backend.encode_images(list(images), layers=list(layers))
    if feats.patch_tokens is None:
        raise InputError(Errors.E774.format(name="image patch tokens",
                                            reason=f"{getattr(backend, 'name', backend)} gives no patch tokens"))
    cls = np.concatenate([feats.cls_layers[int(layer)] for layer in layers], axis=1).astype(np.float32)
    return cls, np.asarray(feats.patch_tokens, dtype=np.float32)


# ------------------------------------------------------------------------------------------------
# Detective-VLM text (IIER's implicit information)
# ------------------------------------------------------------------------------------------------

DETECTIVE_MODES = ("describe", "offline", "auto")
"""``describe``: the describe role's VLM answers IIER's question; ``offline``: the OCR role's
text in the box and the face-match name stand in (labelled so); ``auto``: describe when the
profile has a VLM, else offline."""

FACE_NAME_MIN = 0.92
"""The face-match name stands in only when the region's face matches a KB face this well
(dlib cosine; same person 0.94-1.00, different 0.78-0.89 on the shared photos)."""

_ANSWER_NAME = re.compile(r"entity name\W+(?:is\W+)?[\"']?([^\"'.,;\n]+)", re.I)
_ANSWER_TYPE = re.compile(r"entity type\W+(?:is\W+)?(?:an?\W+)?[\"']?([^\"'.,;\n]+)", re.I)

_DETECTIVE_CACHE: "OrderedDict[tuple, tuple[str, str]]" = OrderedDict()
_DETECTIVE_LOCK = threading.Lock()
DETECTIVE_CACHE_SIZE = 4096
"""Answers kept per process (keyed by image content, box and sentence)."""


def parse_detective(answer: str) -> str:
    """IIER's ``"{Entity Name} {Entity Type}"`` from a VLM answer ("The entity type is a
    person, and the entity name is Lin Dan." -> ``"Lin Dan person"``); an answer in no such
    form is kept as it is (first line, at most 24 words)."""
    a = (answer or "").strip()
    name = _ANSWER_NAME.search(a)
    typ = _ANSWER_TYPE.search(a)
    if name or typ:
        parts = [m.group(1).strip() for m in (name, typ) if m]
        return " ".join(p for p in parts if p)
    first = a.splitlines()[0] if a else ""
    return " ".join(first.split()[:24])


def detective_text(inp: Any, profile: Any, mode: str = "auto", linker: Any = None) -> tuple[str, str]:
    """IIER's Detective-VLM text for a mention (``MentionInput``: image, region, text):
    ``(text, source)``, cached per image content, box and sentence.

    * ``describe``: the profile's ``describe`` backend answers :func:`detective_question`
      about the region in a red box; :func:`parse_detective` keeps ``"{name} {type}"``.
      ``source = "describe:<backend>"``.
    * ``offline`` (no VLM ships in a package): the ``ocr`` role's text lines inside the box and,
      when ``linker`` has a KB with face vectors and the region's face matches one at
      :data:`FACE_NAME_MIN`, ``"{label} person"``; ``source = "offline stand-in: ocr+face"``
      (or the part that ran). A text-only mention gives ``("", "none")``.
    """
    if mode not in DETECTIVE_MODES:
        raise InputError(Errors.E770.format(option="detective", value=mode, reason=f"one of {DETECTIVE_MODES}"))
    if getattr(inp, "image", None) is None:
        return "", "none"
    from ..errors import ModelUnavailableError
    from ..models import roles as R
    from ..regions import image_key

    box = None if inp.region is None else tuple(round(float(v), 2) for v in inp.region.bbox)
    key = (image_key(inp.image), box, inp.text or "", mode)
    with _DETECTIVE_LOCK:
        if key in _DETECTIVE_CACHE:
            _DETECTIVE_CACHE.move_to_end(key)
            return _DETECTIVE_CACHE[key]
    out: tuple[str, str] | None = None
    if mode in ("describe", "auto"):
        try:
            vlm = profile.get(R.DESCRIBE)
        except ModelUnavailableError:
            if mode == "describe":
                raise
            vlm = None
        if vlm is not None:
            from ..models.backends.hub_vlm import detective_question

            ans = vlm.describe(inp.image, None if box is None else np.asarray(box), detective_question(inp.text))
            out = (parse_detective(ans), f"describe:{getattr(vlm, 'name', 'vlm')}")
    if out is None:
        parts, used = [], []
        try:
            ocr = profile.get(R.OCR)
        except ModelUnavailableError:
            ocr = None
        if ocr is not None:
            from ..regions import crop

            view = crop(inp.image, inp.region, 0.0) if inp.region is not None else inp.image
            words = " ".join(line.text for line in ocr.read(view) if line.text.strip())
            used.append("ocr")
            if words:
                parts.append(words)
        name = _face_name(inp, linker)
        if name is not None:
            used.append("face")
            parts.append(f"{name} person")
        out = (" ".join(parts), "offline stand-in: " + ("+".join(used) or "nothing ran"))
    with _DETECTIVE_LOCK:
        _DETECTIVE_CACHE[key] = out
        while len(_DETECTIVE_CACHE) > DETECTIVE_CACHE_SIZE:
            _DETECTIVE_CACHE.popitem(last=False)
    return out


def _face_name(inp: Any, linker: Any) -> str | None:
    """The label of the KB entity whose face best matches the region's, at :data:`FACE_NAME_MIN`."""
    if linker is None or inp.region is None:
        return None
    from ..errors import ModelUnavailableError
    from ..models import roles as R
    from .query import Query
    from .signals.face import FaceSignal, face_vector

    try:
        backend = linker.profile.get(R.FACES)
    except ModelUnavailableError:
        return None
    sig = next((s for s in linker.signals if isinstance(s, FaceSignal)), None) or FaceSignal()
    index = linker.index(sig, Query(image=inp.image, region=inp.region))
    if index is None:
        return None
    vec = face_vector(backend, inp.image, inp.region.bbox, sig.options)
    if vec is None:
        return None
    scores, ids = index.search(vec[None, :], k=1)
    if not ids[0] or float(scores[0][0]) < FACE_NAME_MIN:
        return None
    ent = linker.kb.get(ids[0][0])
    return ent.label if ent is not None else None


__all__ = ["IIER", "IIERConfig", "TFI", "VFI", "CMFI", "Dual", "VisualHead", "iier_loss", "mention_text",
           "entity_text", "TextTokenEncoder", "TextFeatures", "image_features", "UNITS", "CLIP_IIER_LAYERS",
           "detective_text", "parse_detective", "DETECTIVE_MODES"]
