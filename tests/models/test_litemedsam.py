"""LiteMedSAM (segment "litemedsam"): strict load, a box on a real photo becomes a mask inside
the box that follows the object, one encoder run serves several boxes, points are refused."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import need_backend, shared

from pixlink import geometry as geo
from pixlink.errors import InputError, ModelUnavailableError
from pixlink.io import load_image

OBAMA_FACE = [230, 10, 400, 230]  # two_people.jpg, hand-drawn, loose
BIDEN_FACE = [760, 0, 930, 230]


@pytest.fixture(scope="session")
def seg():
    return need_backend("segment", "litemedsam")


@pytest.fixture(scope="session")
def two_people(seg):
    img = load_image(shared("photos", "two_people.jpg"))
    return img, seg.embed_image(img)


def _corners(mask: np.ndarray, box: list[int], inset: int = 6) -> list[bool]:
    x1, y1, x2, y2 = box
    return [bool(mask[y, x]) for x, y in ((x1 + inset, y1 + inset), (x2 - inset, y1 + inset),
                                          (x1 + inset, y2 - inset), (x2 - inset, y2 - inset))]


@pytest.mark.slow
def test_checkpoint_loads_strictly_and_a_damaged_one_is_refused(seg, tmp_path, monkeypatch):
    import torch

    from pixlink.models.arch.sam_decoder import LiteMedSAM
    from pixlink.models.backends import litemedsam as lm

    state = torch.load(seg.weights_file, map_location="cpu", weights_only=True)
    res = LiteMedSAM().load_state_dict(state, strict=True)
    assert not res.missing_keys and not res.unexpected_keys
    state["mask_decoder.extra.weight"] = torch.zeros(1)
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    monkeypatch.setattr(lm, "weights_path", lambda: bad)
    with pytest.raises(ModelUnavailableError) as ei:
        lm.LiteMedSAMSegmenter()
    assert ei.value.code == "E351"


@pytest.mark.slow
def test_the_folded_encoder_gives_the_unfolded_embedding(seg, two_people):
    """The backend runs the encoder with its Conv-BN pairs folded: same embedding to rounding."""
    import torch

    from pixlink.models.arch.sam_decoder import LiteMedSAM
    from pixlink.models.arch.tiny_vit_sam import Conv2d_BN

    plain = LiteMedSAM()
    plain.load_state_dict(torch.load(seg.weights_file, map_location="cpu", weights_only=True), strict=True)
    folded = [m for m in seg.net.modules() if isinstance(m, Conv2d_BN)]
    assert folded and all(isinstance(m.bn, torch.nn.Identity) for m in folded)
    img, h = two_people
    again = seg.embed_image(img)
    assert torch.equal(again.embedding, h.embedding)  # deterministic
    seg_net, seg.net = seg.net, plain.eval()
    try:
        ref = seg.embed_image(img).embedding
    finally:
        seg.net = seg_net
    assert float((ref - h.embedding).abs().max()) < 1e-4 * float(ref.abs().max())


@pytest.mark.slow
def test_box_on_a_real_photo_gives_a_mask_of_the_object_inside_the_box(seg, two_people):
    """Issue #6: LiteMedSAM turns a box on a real photo into a mask inside the box."""
    img, handle = two_people
    (pred,) = seg.predict(handle, box=np.array(OBAMA_FACE, float))
    m = pred.mask
    assert m.shape == img.shape[:2] and m.dtype == bool
    inside = geo.box_to_mask(np.array(OBAMA_FACE, float), img.shape[:2])
    assert m.any() and not (m & ~inside).any()
    fill = m.sum() / inside.sum()
    assert 0.3 < fill < 0.95, fill  # the face, not the whole box
    # the object is at the centre of the box, the box corners are background
    assert m[120, 315] and not any(_corners(m, OBAMA_FACE))
    assert 0.0 <= pred.score <= 1.2


@pytest.mark.slow
def test_encoder_runs_once_for_two_boxes(seg, two_people):
    img, _ = two_people
    calls = []
    hook = seg.net.image_encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        before = seg.encoder_calls
        h = seg.embed_image(img)
        a = seg.predict(h, box=OBAMA_FACE)[0].mask
        b = seg.predict(h, box=BIDEN_FACE)[0].mask
    finally:
        hook.remove()
    assert len(calls) == 1 and seg.encoder_calls == before + 1
    assert a.any() and b.any() and geo.mask_iou(a, b) == 0.0
    assert b[110, 845] and not any(_corners(b, BIDEN_FACE))


@pytest.mark.slow
def test_agrees_with_grabcut_on_faces(seg, two_people):
    """Two independent methods (a network, a colour model) find nearly the same face pixels."""
    from pixlink.models.backends.grabcut import GrabCutSegmenter

    img, handle = two_people
    g = GrabCutSegmenter()
    gh = g.embed_image(img)
    for box in (OBAMA_FACE, BIDEN_FACE):
        assert geo.mask_iou(seg.predict(handle, box=box)[0].mask, g.predict(gh, box=box)[0].mask) > 0.6


@pytest.mark.slow
def test_multimask_is_sorted_and_prompts_are_checked(seg, two_people):
    img, handle = two_people
    preds = seg.predict(handle, box=OBAMA_FACE, multimask=True)
    assert len(preds) == 4 and [p.score for p in preds] == sorted((p.score for p in preds), reverse=True)
    with pytest.raises(ModelUnavailableError) as ei:
        seg.predict(handle, points=np.array([[315.0, 120.0]]), point_labels=np.array([1]))
    assert ei.value.code == "E360" and "grabcut" in str(ei.value)
    with pytest.raises(InputError) as ei:
        seg.predict(handle)
    assert ei.value.code == "E361"
    with pytest.raises(InputError) as ei:
        seg.predict(handle, box=[5000, 5000, 5100, 5100])
    assert ei.value.code == "E003"
    with pytest.raises(InputError) as ei:
        seg.predict(object(), box=OBAMA_FACE)
    assert ei.value.code == "E362"
    # a box partly outside is clipped, and the mask still has the image's size
    (p,) = seg.predict(handle, box=[900, -50, 1300, 300])
    assert p.mask.shape == img.shape[:2]
