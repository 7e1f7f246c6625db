"""IIER's units and loss against the paper's equations (module docstring of pixlink.link.iier),
recomputed here in NumPy from the module's own weights, and a loss computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pixlink.errors import InputError
from pixlink.link.iier import IIER, IIERConfig, iier_loss, mention_text, entity_text

CFG = IIERConfig(d_text=6, d_cls_layers=(5, 3), d_patch=4, d_image_global=7, d_v=5, d_c=4)


def _side(n, cfg=CFG, lt=3, p=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "text_cls": torch.randn(n, cfg.d_text, generator=g),
        "text_tokens": torch.randn(n, lt, cfg.d_text, generator=g),
        "text_mask": torch.ones(n, lt),
        "image_cls": torch.randn(n, sum(cfg.d_cls_layers), generator=g),
        "image_tokens": torch.randn(n, p, cfg.d_patch, generator=g),
    }


# -- the equations in NumPy ------------------------------------------------------------------------

def _np(t):
    return t.detach().double().numpy()


def ln(x, mod):
    mu = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + mod.eps) * _np(mod.weight) + _np(mod.bias)


def lin(x, mod):
    return x @ _np(mod.weight).T + _np(mod.bias)


def softmax(x):
    z = np.exp(x - x.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def reference(model, m, e):
    """s_O and the units for every (mention, entity) pair, one pair at a time, from the equations."""
    c = model.cfg

    def prep(side):
        t = ln(_np(side["text_cls"]), model.text_cls_norm)
        T = ln(_np(side["text_tokens"]), model.text_tokens_norm)
        vh = model.visual
        v = lin(lin(ln(_np(side["image_cls"]), vh.norm), vh.feature_fc), vh.cls_fc)
        P = lin(_np(side["image_tokens"]), vh.tokens_fc)
        return t, T, ln(v, model.image_cls_norm), ln(P, model.image_tokens_norm)

    mt, mT, mv, mP = prep(m)
    et, eT, ev, eP = prep(e)
    B, E = len(mt), len(et)
    out = {k: np.zeros((B, E)) for k in ("tfi", "vfi", "cmfi")}
    tf = model.tfi

    def dual(d, q, k, V):
        q2, k2 = lin(q, d.cls_fc), lin(k, d.cls_fc)
        x = lin(ln(lin(V, d.tokens_fc).mean(0) + q2, d.add_norm), d.fc)
        g = np.tanh(lin(x, d.gate_fc))
        return float(ln(g * x + k2, d.norm) @ ln(q2, d.norm))

    cm = model.cmfi

    def fuse(t, P):
        u = lin(t, cm.text_fc)
        Q = lin(P, cm.image_fc)
        a = softmax(u @ Q.T)
        return ln(u * np.tanh(lin(u, cm.gate_fc)) + a @ Q, cm.norm)

    for i in range(B):
        for j in range(E):
            A = softmax(lin(eT[j], tf.fc_query) @ lin(mT[i], tf.fc_key).T / math.sqrt(c.d_c))
            ctx = ln((A @ lin(mT[i], tf.fc_value)).mean(0), tf.norm)
            out["tfi"][i, j] = (lin(et[j], tf.fc_cls) @ ctx + mt[i] @ et[j]) / 2
            out["vfi"][i, j] = (dual(model.vfi.ent2men, ev[j], mv[i], mP[i]) + dual(model.vfi.men2ent, mv[i], ev[j], eP[j])) / 2
            out["cmfi"][i, j] = fuse(mt[i], mP[i]) @ fuse(et[j], eP[j])
    score = (out["tfi"] + out["vfi"] + out["cmfi"]) / 3
    return score, out


def test_units_match_the_equations():
    torch.manual_seed(3)
    model = IIER(CFG).double().eval()
    m = {k: v.double() for k, v in _side(2, seed=1).items()}
    e = {k: v.double() for k, v in _side(3, seed=2).items()}
    with torch.no_grad():
        score, units = model(m, e)
    ref_score, ref = reference(model, m, e)
    assert score.shape == (2, 3) and set(units) == {"tfi", "vfi", "cmfi"}
    for k in ref:
        np.testing.assert_allclose(_np(units[k]), ref[k], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(_np(score), ref_score, rtol=1e-9, atol=1e-9)


def test_loss_by_hand():
    # two mentions, two entities; s_O = [[2, 0], [0, 1]], one unit s_T = [[1, 1], [0, 0]]
    score = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    tfi = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    t = torch.tensor([0, 1])
    l_o = (-math.log(math.exp(2) / (math.exp(2) + 1)) - math.log(math.exp(1) / (1 + math.exp(1)))) / 2
    l_t = (math.log(2) + math.log(2)) / 2
    loss, parts = iier_loss(score, {"tfi": tfi}, t)  # the paper: lambda 1, no temperature
    assert loss.item() == pytest.approx(l_o + l_t) and parts == pytest.approx({"overall": l_o, "tfi": l_t})
    loss, _ = iier_loss(score, {"tfi": tfi}, t, lam=0.5, temperature=0.5)
    l_o2 = (-math.log(math.exp(4) / (math.exp(4) + 1)) - math.log(math.exp(2) / (1 + math.exp(2)))) / 2
    assert loss.item() == pytest.approx(l_o2 + 0.5 * l_t)
    with pytest.raises(InputError, match="E778"):
        iier_loss(score, {}, t, temperature=0)


def test_padding_is_masked_or_released_behaviour():
    model = IIER(CFG).eval()
    m, e = _side(2, seed=4), _side(3, seed=5)
    base = model(m, e)[1]["tfi"]
    m2 = dict(m)
    m2["text_tokens"] = torch.cat([m["text_tokens"], 100 * torch.ones(2, 4, CFG.d_text)], dim=1)
    m2["text_mask"] = torch.cat([m["text_mask"], torch.zeros(2, 4)], dim=1)
    assert torch.allclose(model(m2, e)[1]["tfi"], base, atol=1e-5)
    released = IIER(IIERConfig(**{**CFG.to_dict(), "mask_padding": False}))
    released.load_state_dict(model.state_dict())
    released.eval()
    assert not torch.allclose(released(m2, e)[1]["tfi"], base, atol=1e-3)  # the released code sees padding


def test_text_only_path_and_config_checks():
    cfg = IIERConfig(d_text=6, units=("tfi",))
    model = IIER(cfg)
    side = {k: v for k, v in _side(3).items() if k.startswith("text")}
    score, units = model(side, side)
    assert set(units) == {"tfi"} and torch.equal(score, units["tfi"])
    assert not any(n.startswith("visual") for n, _ in model.named_parameters())
    with pytest.raises(InputError, match="E778"):
        IIERConfig(units=("ocr",))
    with pytest.raises(InputError, match="E778"):
        IIER(CFG)(side, side)  # the visual units need image features
    assert IIERConfig.from_dict(CFG.to_dict()) == CFG


def test_contrastive_training_learns_to_match_pairs():
    torch.manual_seed(0)
    cfg = IIERConfig(d_text=16, d_cls_layers=(12, 12), d_patch=8, d_image_global=16, d_v=16, d_c=16)
    model = IIER(cfg)
    ents = _side(6, cfg, lt=5, p=4, seed=7)
    men = {k: v + 0.3 * torch.randn_like(v) if k != "text_mask" else v for k, v in ents.items()}
    targets = torch.arange(6)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(60):
        score, units = model(men, ents)
        loss, _ = iier_loss(score, units, targets)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        score, _ = model(men, ents)
    assert loss.item() < first * 0.5
    assert (score.argmax(1) == targets).float().mean() >= 5 / 6


def test_input_texts():
    assert mention_text("Bolt", "Bolt wins", "Usain Bolt person") == "Bolt [SEP] Bolt wins Usain Bolt person"
    assert entity_text("Usain Bolt", "Jamaican sprinter") == "Usain Bolt [SEP] Jamaican sprinter"
