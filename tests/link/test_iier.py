import torch

from pixlink.link.iier import IIERConfig, IIERReranker, contrastive_loss


def _side(n, cfg, lt=7, p=9):
    g = torch.Generator().manual_seed(n)
    return {
        "text_cls": torch.randn(n, cfg.d_text, generator=g),
        "text_tokens": torch.randn(n, lt, cfg.d_text, generator=g),
        "text_mask": torch.ones(n, lt),
        "image_cls": torch.randn(n, cfg.n_layers, cfg.d_vision, generator=g),
        "image_tokens": torch.randn(n, p, cfg.d_vision, generator=g),
    }


def test_shapes_of_scores_and_units():
    cfg = IIERConfig(d_text=16, d_vision=24, n_layers=4, d_model=8)
    model = IIERReranker(cfg)
    score, units = model(_side(3, cfg), _side(5, cfg))
    assert score.shape == (3, 5) and set(units) == {"vfi", "tfi", "cmfi"}
    assert all(u.shape == (3, 5) for u in units.values())


def test_padding_tokens_do_not_change_the_text_unit():
    cfg = IIERConfig(d_text=16, d_vision=24, n_layers=4, d_model=8)
    model = IIERReranker(cfg).eval()
    m, e = _side(2, cfg), _side(3, cfg)
    base = model(m, e)[1]["tfi"]
    m2 = {k: v.clone() for k, v in m.items()}
    m2["text_tokens"] = torch.cat([m["text_tokens"], 100 * torch.ones(2, 4, cfg.d_text)], dim=1)
    m2["text_mask"] = torch.cat([m["text_mask"], torch.zeros(2, 4)], dim=1)
    assert torch.allclose(model(m2, e)[1]["tfi"], base, atol=1e-5)


def test_contrastive_training_learns_to_match_pairs():
    torch.manual_seed(0)
    cfg = IIERConfig(d_text=16, d_vision=24, n_layers=4, d_model=16)
    model = IIERReranker(cfg)
    ents = _side(6, cfg)
    # mentions are noisy copies of their entities
    men = {k: v + 0.3 * torch.randn_like(v) if k != "text_mask" else v for k, v in ents.items()}
    targets = torch.arange(6)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(60):
        score, units = model(men, ents)
        loss = contrastive_loss(score, units, targets)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        score, _ = model(men, ents)
    assert loss.item() < first * 0.5
    assert (score.argmax(1) == targets).float().mean() >= 5 / 6
