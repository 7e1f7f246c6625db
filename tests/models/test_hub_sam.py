"""SAM hub backends on a tiny random SAM loaded from a directory: one image-encoder run per
image whatever the number of prompts, prompts mapped exactly as SamProcessor maps them, masks
in original pixels, automatic masks de-duplicated."""

from __future__ import annotations

import numpy as np
import pytest

from pixlink.errors import InputError
from pixlink.models import Profile
from pixlink.models.backends.hub_sam import SamHandle
from pixlink.models.tiny import build_tiny

torch = pytest.importorskip("torch")

H, W = 50, 70


@pytest.fixture(scope="module")
def sam_dir(tmp_path_factory):
    return build_tiny("sam", tmp_path_factory.mktemp("tiny_sam") / "sam")


@pytest.fixture(scope="module")
def sam(sam_dir):
    return Profile("hub", options={"segment": {"model": str(sam_dir)}}).get("segment")


@pytest.fixture
def image():
    return np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8)


def _count_encoder(seg):
    calls = []
    hook = seg._net.vision_encoder.register_forward_hook(lambda *a: calls.append(1))
    return calls, hook


def test_one_encoder_run_for_many_prompts(sam, image):
    calls, hook = _count_encoder(sam)
    try:
        h = sam.embed_image(image)
        assert isinstance(h, SamHandle) and h.original_size == (H, W)
        outs = [
            sam.predict(h, box=[10, 5, 40, 30]),
            sam.predict(h, points=[[20, 20], [30, 30]], point_labels=[1, 0]),
            sam.predict(h, mask_input=np.pad(np.ones((10, 10), bool), ((5, 35), (5, 55)))),
            sam.predict(h, box=[10, 5, 40, 30], points=[[20, 20]], multimask=True),
            sam.predict_boxes(h, [[0, 0, 10, 10], [20, 20, 60, 45]]),
        ]
    finally:
        hook.remove()
    assert len(calls) == 1
    for preds in outs[:4]:
        assert 1 <= len(preds) <= 3
        assert all(p.mask.shape == (H, W) and p.mask.dtype == bool and p.mask.any() for p in preds)
        assert [p.score for p in preds] == sorted((p.score for p in preds), reverse=True)
    assert len(outs[3]) == 3  # multimask gives SAM's three candidates
    assert len(outs[4]) == 2


def _captured_prompts(sam, fn):
    seen = {}

    def pre(_mod, args, kwargs):
        seen.update({k: v.clone() for k, v in kwargs.items() if v is not None and hasattr(v, "clone")})

    hook = sam._net.prompt_encoder.register_forward_pre_hook(pre, with_kwargs=True)
    try:
        fn()
    finally:
        hook.remove()
    return seen


def test_prompts_are_scaled_like_the_processor_does(sam, image):
    h = sam.embed_image(image)
    box = [10.0, 5.0, 40.0, 30.0]
    pts = [[20.0, 21.0], [33.0, 40.0]]
    got = _captured_prompts(sam, lambda: sam.predict(h, box=box, points=pts, point_labels=[1, 0]))
    ref = sam.processor(images=image, input_boxes=[[box]], input_points=[[pts]], input_labels=[[[1, 0]]],
                        return_tensors="pt")
    np.testing.assert_allclose(got["input_boxes"].numpy(), ref["input_boxes"].numpy(), atol=1e-4)
    np.testing.assert_allclose(got["input_points"].numpy(), ref["input_points"].numpy(), atol=1e-4)
    np.testing.assert_array_equal(got["input_labels"].numpy(), ref["input_labels"].numpy())


def test_mask_prompt_lands_in_the_low_res_frame(sam, image):
    h = sam.embed_image(image)  # (50, 70) -> resized (46, 64), padded to 64 x 64, low-res 32 x 32
    left = np.zeros((H, W), bool)
    left[:, : W // 2] = True
    logits = sam._mask_logits(h, left)[0, 0].numpy()
    assert logits.shape == (32, 32)
    rh = h.reshaped_size[0] * 32 // 64
    assert (logits[: rh - 1, :15] > 0).all()  # the left half of the image part
    assert (logits[:, 17:] < 0).all() and (logits[rh + 1:] < 0).all()  # right half and padding


def test_prompt_errors(sam, image, sam_dir):
    h = sam.embed_image(image)
    with pytest.raises(InputError, match="E309"):
        sam.predict(h)
    with pytest.raises(InputError, match="E003"):
        sam.predict(h, box=[100, 100, 120, 120])
    with pytest.raises(InputError, match="E006"):
        sam.predict(h, points=[[20, 80]])
    with pytest.raises(InputError, match="E006"):
        sam.predict(h, points=[[20, 20]], point_labels=[2])
    with pytest.raises(InputError, match="E005"):
        sam.predict(h, mask_input=np.ones((10, 10), bool))
    other = SamHandle(h.embeddings, h.original_size, h.reshaped_size, backend="litemedsam", model_id="x")
    with pytest.raises(InputError, match="E310"):
        sam.predict(other, box=[1, 1, 5, 5])


def test_segment_everything(sam_dir, image):
    prof = Profile("hub", options={"segment_all": {"model": str(sam_dir), "points_per_side": 6,
                                                   "pred_iou_thresh": -1e9, "stability_thresh": 0.0,
                                                   "nms_iou": 0.5}})
    gen = prof.get("segment_all")
    assert gen.name == "sam_auto"
    # segment and segment_all on the same weights share one SAM
    assert Profile("hub", options={"segment": {"model": str(sam_dir)}}).get("segment") is gen.seg
    grid = gen.point_grid((H, W))
    assert grid.shape == (36, 2) and grid[:, 0].max() < W and grid[:, 1].max() < H
    calls, hook = _count_encoder(gen.seg)
    try:
        masks = gen.generate(image, max_masks=5)
    finally:
        hook.remove()
    assert len(calls) == 1
    assert 1 <= len(masks) <= 5
    assert all(m.mask.shape == (H, W) and m.mask.any() for m in masks)
    assert [m.score for m in masks] == sorted((m.score for m in masks), reverse=True)
    # SAM's real thresholds on a random model: whatever survives still has the right form
    strict = Profile("hub", options={"segment_all": {"model": str(sam_dir), "points_per_side": 4}}).get("segment_all")
    assert all(m.mask.shape == (H, W) for m in strict.generate(image))
    with pytest.raises(InputError, match="E313"):
        Profile("hub", options={"segment_all": {"model": str(sam_dir), "points_per_side": 0}}).get("segment_all")
