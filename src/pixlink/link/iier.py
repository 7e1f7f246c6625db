"""IIER's interaction units as a trainable re-ranker (VP-MEL, Mi et al.).

IIER scores a (mention, entity) pair from three interaction units over global and local
features, in the line of MIMIC (Luo et al., KDD 2023) which it extends with multi-layer
visual features and the red-box visual prompt:

* **VFI** (visual feature interaction): a dual, gated interaction between one side's global
  visual feature and the other side's patch tokens, in both directions, averaged.
* **TFI** (textual feature interaction): global-to-local attention from the entity's text
  tokens to the mention's text tokens, plus the global-global dot product.
* **CMFI** (cross-modal feature interaction): each side's text CLS attends over its own image
  patches; the gated fusions of mention and entity are compared.

The global visual feature is IIER's concatenation of shallow and deep CLS tokens (layers 3,
10, 11 and 12 of CLIP ViT-B/32 by default), projected to ``d_model``. The overall score is the
mean of the three unit scores; training (in :mod:`pixlink.train`) uses an in-batch contrastive
(InfoNCE) loss on the overall score and on each unit (:func:`contrastive_loss`).

All inputs are float tensors; ``B`` mentions, ``E`` entities:

==================  ===================================================================
``text_cls``        ``(N, Dt)`` text global feature (CLIP text embeds)
``text_tokens``     ``(N, Lt, Dt)`` text token features
``text_mask``       ``(N, Lt)`` 1 for real tokens, 0 for padding
``image_cls``       ``(N, nL, Dv)`` CLS tokens of the chosen layers (nL = len(layers))
``image_tokens``    ``(N, P, Dv)`` last-layer patch tokens
==================  ===================================================================

For the mention, the image is the red-box view (or the region crop); the text is the caption,
optionally extended with the Detective-VLM's answer about the entity in the red box.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class IIERConfig:
    d_text: int = 512
    d_vision: int = 768
    n_layers: int = 4  # how many CLS layers are concatenated (IIER: 3, 10, 11, 12)
    d_model: int = 256
    temperature: float = 0.07

    def to_dict(self) -> dict:
        return asdict(self)


class _Features(nn.Module):
    """Projects raw encoder features into the units' common width."""

    def __init__(self, cfg: IIERConfig):
        super().__init__()
        self.vis_global = nn.Sequential(nn.LayerNorm(cfg.n_layers * cfg.d_vision),
                                        nn.Linear(cfg.n_layers * cfg.d_vision, cfg.d_model))
        self.vis_local = nn.Sequential(nn.LayerNorm(cfg.d_vision), nn.Linear(cfg.d_vision, cfg.d_model))
        self.txt_global = nn.Sequential(nn.LayerNorm(cfg.d_text), nn.Linear(cfg.d_text, cfg.d_model))
        self.txt_local = nn.Sequential(nn.LayerNorm(cfg.d_text), nn.Linear(cfg.d_text, cfg.d_model))

    def forward(self, side: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        n = side["image_cls"].shape[0]
        return {
            "vg": self.vis_global(side["image_cls"].reshape(n, -1)),
            "vl": self.vis_local(side["image_tokens"]),
            "tg": self.txt_global(side["text_cls"]),
            "tl": self.txt_local(side["text_tokens"]),
            "tm": side.get("text_mask", torch.ones(side["text_tokens"].shape[:2])).to(side["text_tokens"].dtype),
        }


class _DualGate(nn.Module):
    """One direction of VFI: query global feature x pooled value patches, gated, vs key global."""

    def __init__(self, d: int):
        super().__init__()
        self.fc = nn.Linear(d, d)
        self.gate = nn.Linear(d, 1)
        self.norm_ctx = nn.LayerNorm(d)
        self.norm_out = nn.LayerNorm(d)

    def forward(self, query_g: torch.Tensor, key_g: torch.Tensor, value_l: torch.Tensor) -> torch.Tensor:
        # query_g (A, d), key_g (Bk, d), value_l (Bk, P, d) -> scores (A, Bk)
        pooled = value_l.mean(dim=1)  # (Bk, d)
        ctx = self.fc(self.norm_ctx(pooled.unsqueeze(0) + query_g.unsqueeze(1)))  # (A, Bk, d)
        agg = self.norm_out(ctx * torch.tanh(self.gate(ctx)) + key_g.unsqueeze(0))
        return (agg * self.norm_out(query_g).unsqueeze(1)).sum(-1)


class VFI(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.ent2men = _DualGate(d)
        self.men2ent = _DualGate(d)

    def forward(self, m: dict[str, torch.Tensor], e: dict[str, torch.Tensor]) -> torch.Tensor:
        a = self.ent2men(e["vg"], m["vg"], m["vl"]).transpose(0, 1)  # (B, E)
        b = self.men2ent(m["vg"], e["vg"], e["vl"])  # (B, E)
        return (a + b) / 2


class TFI(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d)
        self.v = nn.Linear(d, d)
        self.cls = nn.Linear(d, d)
        self.norm = nn.LayerNorm(d)
        self.d = d

    def forward(self, m: dict[str, torch.Tensor], e: dict[str, torch.Tensor]) -> torch.Tensor:
        q = self.q(e["tl"]).unsqueeze(1)  # (E, 1, Le, d)
        k = self.k(m["tl"]).unsqueeze(0)  # (1, B, Lm, d)
        v = self.v(m["tl"]).unsqueeze(0)
        att = q @ k.transpose(-1, -2) / math.sqrt(self.d)  # (E, B, Le, Lm)
        att = att.masked_fill(m["tm"][None, :, None, :] <= 0, float("-inf"))
        ctx = torch.softmax(att, dim=-1) @ v  # (E, B, Le, d)
        em = e["tm"][:, None, :, None]  # (E, 1, Le, 1)
        ctx = (ctx * em).sum(2) / em.sum(2).clamp(min=1.0)  # (E, B, d)
        g2l = (self.cls(e["tg"]).unsqueeze(1) * self.norm(ctx)).sum(-1).transpose(0, 1)  # (B, E)
        g2g = m["tg"] @ e["tg"].transpose(0, 1)
        return (g2l + g2g) / 2


class CMFI(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.gate = nn.Linear(d, 1)
        self.norm = nn.LayerNorm(d)

    def _fuse(self, side: dict[str, torch.Tensor]) -> torch.Tensor:
        t = side["tg"].unsqueeze(1)  # (N, 1, d)
        att = torch.softmax(t @ side["vl"].transpose(-1, -2), dim=-1)  # (N, 1, P)
        ctx = (att @ side["vl"]).squeeze(1)  # (N, d)
        return self.norm(side["tg"] * torch.tanh(self.gate(side["tg"])) + ctx)

    def forward(self, m: dict[str, torch.Tensor], e: dict[str, torch.Tensor]) -> torch.Tensor:
        return self._fuse(m) @ self._fuse(e).transpose(0, 1)


class IIERReranker(nn.Module):
    """Scores ``B`` mentions against ``E`` entities: ``forward(m, e) -> (scores (B, E), units)``
    with ``units = {"vfi": (B, E), "tfi": (B, E), "cmfi": (B, E)}``."""

    def __init__(self, cfg: IIERConfig | None = None):
        super().__init__()
        self.cfg = cfg or IIERConfig()
        self.features = _Features(self.cfg)
        self.vfi = VFI(self.cfg.d_model)
        self.tfi = TFI(self.cfg.d_model)
        self.cmfi = CMFI(self.cfg.d_model)

    def forward(self, mention: dict[str, torch.Tensor], entity: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        m = self.features(mention)
        e = self.features(entity)
        units = {"vfi": self.vfi(m, e), "tfi": self.tfi(m, e), "cmfi": self.cmfi(m, e)}
        score = (units["vfi"] + units["tfi"] + units["cmfi"]) / 3
        return score, units


def contrastive_loss(score: torch.Tensor, units: dict[str, torch.Tensor], targets: torch.Tensor,
                     temperature: float = 0.07) -> torch.Tensor:
    """In-batch InfoNCE on the overall score and on each unit (as MIMIC/IIER train).

    ``score`` and each unit are ``(B, E)``; ``targets`` ``(B,)`` the column of each mention's
    gold entity.
    """
    loss = F.cross_entropy(score / temperature, targets)
    for u in units.values():
        loss = loss + F.cross_entropy(u / temperature, targets)
    return loss
