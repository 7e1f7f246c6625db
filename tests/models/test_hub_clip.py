"""CLIP / SigLIP hub backends on tiny random-config models loaded from a directory, through the
same ``model=<dir>`` path users take: shapes, layer selection, processor use, text side."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from pixlink.errors import InputError, ModelUnavailableError
from pixlink.models import Profile
from pixlink.models.backends.hub_clip import IIER_LAYERS
from pixlink.models.tiny import build_tiny

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_clip")
    return {"clip": build_tiny("clip", root / "clip"), "siglip": build_tiny("siglip", root / "siglip"),
            "sam": build_tiny("sam", root / "sam"), "cache": root / "cache"}


@pytest.fixture(scope="module")
def clip(dirs):
    prof = Profile("hub", options={"image_text": {"model": str(dirs["clip"]), "cache_dir": str(dirs["cache"])}})
    return prof.get("image_text")


def _images():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (60, 120, 3), dtype=np.uint8), rng.integers(0, 256, (41, 33, 3), dtype=np.uint8)]


def _reference(enc, images):
    """Hidden states straight from transformers on the processor's own pixels."""
    from PIL import Image

    pix = enc.image_processor(images=[Image.fromarray(im) for im in images], return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        out = enc._net.vision_model(pixel_values=pix, output_hidden_states=True)
    return pix, out


def test_clip_shapes_and_iier_layers(clip):
    f = clip.encode_images(_images(), layers=IIER_LAYERS)
    assert clip.name == "clip" and clip.model_id.endswith("clip")
    assert f.embeds.shape == (2, clip.dim) == (2, 16) and f.embeds.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(f.embeds, axis=1), 1.0, atol=1e-5)
    assert sorted(f.cls_layers) == [4, 10, 11, 12]
    assert all(v.shape == (2, 32) for v in f.cls_layers.values())
    assert f.patch_tokens.shape == (2, 16, 32) and f.grid == (4, 4)


def test_cls_layers_are_hidden_states_cls_without_post_layernorm(clip):
    imgs = _images()
    f = clip.encode_images(imgs, layers=(0, 4, 12))
    _, out = _reference(clip, imgs)
    for i in (0, 4, 12):
        np.testing.assert_allclose(f.cls_layers[i], out.hidden_states[i][:, 0].numpy(), atol=1e-5)
    assert not np.allclose(f.cls_layers[4], f.cls_layers[12])
    # embeds = normalise(projection(post_layernorm(CLS of the last layer))): the pooled path
    with torch.inference_mode():
        ln = clip._net.vision_model.post_layernorm(torch.from_numpy(f.cls_layers[12]))
        proj = clip._net.visual_projection(ln).numpy()
    np.testing.assert_allclose(f.embeds, proj / np.linalg.norm(proj, axis=1, keepdims=True), atol=1e-5)
    # patch tokens: last layer, CLS dropped, row-major
    np.testing.assert_allclose(f.patch_tokens, out.hidden_states[-1][:, 1:].numpy(), atol=1e-5)


def test_projected_patch_tokens_live_in_the_joint_space(dirs):
    from pixlink.models.backends.hub_clip import make_clip

    enc = make_clip(model=str(dirs["clip"]), cache_dir=str(dirs["cache"]), patch_tokens="projected")
    f = enc.encode_images(_images()[:1])
    assert f.patch_tokens.shape == (1, 16, enc.dim)
    none = make_clip(model=str(dirs["clip"]), cache_dir=str(dirs["cache"]), patch_tokens="none").encode_images(_images())
    assert none.patch_tokens is None and none.grid is None
    with pytest.raises(InputError, match="E313"):
        make_clip(model=str(dirs["clip"]), cache_dir=str(dirs["cache"]), patch_tokens="cls")


@pytest.mark.parametrize("layer", [13, -1, True, 2.5])
def test_bad_layer_is_E307(clip, layer):
    with pytest.raises(InputError, match="E307"):
        clip.encode_images(_images(), layers=(layer,))


def test_batching_does_not_change_results(clip):
    imgs = _images() * 2
    a = clip.encode_images(imgs, layers=(3,), batch_size=1)
    b = clip.encode_images(imgs, layers=(3,), batch_size=16)
    np.testing.assert_allclose(a.embeds, b.embeds, atol=1e-5)
    np.testing.assert_allclose(a.cls_layers[3], b.cls_layers[3], atol=1e-5)
    empty = clip.encode_images([], layers=(3,))
    assert empty.embeds.shape == (0, 16) and empty.cls_layers[3].shape == (0, 32)


def test_texts(clip):
    t = clip.encode_texts(["a cat", "the red car on the street", "a cat"])
    assert t.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(t[0], t[2], atol=1e-6)
    assert not np.allclose(t[0], t[1])
    assert clip.encode_texts([]).shape == (0, 16)
    with pytest.raises(InputError, match="E308"):
        clip.encode_texts("a cat")


def test_processor_config_is_what_preprocesses(dirs, tmp_path, clip):
    """Changing the saved processor's normalisation changes the embedding; an identical copy does not."""
    from pixlink.models.backends.hub_clip import make_clip

    same, changed = tmp_path / "same", tmp_path / "changed"
    shutil.copytree(dirs["clip"], same)
    shutil.copytree(dirs["clip"], changed)
    cfg_path = changed / "processor_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["image_processor"]["image_mean"] = [0.0, 0.0, 0.0]
    cfg["image_processor"]["image_std"] = [1.0, 1.0, 1.0]
    cfg_path.write_text(json.dumps(cfg))
    img = _images()[:1]
    base = clip.encode_images(img).embeds
    np.testing.assert_allclose(make_clip(model=str(same), cache_dir=str(dirs["cache"])).encode_images(img).embeds,
                               base, atol=1e-6)
    assert not np.allclose(make_clip(model=str(changed), cache_dir=str(dirs["cache"])).encode_images(img).embeds,
                           base, atol=1e-3)


def test_view_box_is_the_centre_crop_the_processor_keeps(clip):
    h, w = 60, 120
    np.testing.assert_allclose(clip.view_box((h, w)), [30, 0, 90, 60])
    np.testing.assert_allclose(clip.view_box((90, 30)), [0, 30, 30, 60])
    # sides pure red / blue, the view box pure green: the processed pixels are green only
    img = np.zeros((h, w, 3), np.uint8)
    img[:, :30, 0] = 255
    img[:, 90:, 2] = 255
    img[:, 30:90, 1] = 255
    pix, _ = _reference(clip, [img])
    ip = clip.image_processor
    rgb = pix[0].numpy() * np.array(ip.image_std)[:, None, None] + np.array(ip.image_mean)[:, None, None]
    # (bicubic resampling bleeds < 10% across the crop edge; a misplaced crop would show full red/blue columns)
    assert rgb[1].min() > 0.9 and rgb[0].max() < 0.1 and rgb[2].max() < 0.1


def test_siglip(dirs):
    prof = Profile("hub", overrides={"image_text": "siglip"},
                   options={"image_text": {"model": str(dirs["siglip"]), "cache_dir": str(dirs["cache"])}})
    enc = prof.get("image_text")
    assert enc.name == "siglip" and enc.family == "siglip" and enc.num_layers == 3
    imgs = _images()
    f = enc.encode_images(imgs, layers=(1, 3))
    assert f.embeds.shape == (2, 32) and f.patch_tokens.shape == (2, 16, 32) and f.grid == (4, 4)
    _, out = _reference(enc, imgs)
    # no CLS token: a layer's vector is the mean of its tokens; patch tokens are all tokens
    np.testing.assert_allclose(f.cls_layers[1], out.hidden_states[1].mean(dim=1).numpy(), atol=1e-5)
    np.testing.assert_allclose(f.patch_tokens, out.hidden_states[-1].numpy(), atol=1e-5)
    np.testing.assert_allclose(enc.view_box((60, 120)), [0, 0, 120, 60])
    t = enc.encode_texts(["a cat", "a dog"])
    assert t.shape == (2, 32) and not np.allclose(t[0], t[1])


def test_clip_vision_matches_clip_and_drops_text(dirs, clip):
    prof = Profile("hub", options={"image_embed": {"model": str(dirs["clip"]), "cache_dir": str(dirs["cache"])}})
    vis = prof.get("image_embed")
    assert vis.name == "clip_vision" and vis.tokenizer is None and vis._net.text_model is None
    imgs = _images()
    np.testing.assert_allclose(vis.encode_images(imgs).embeds, clip.encode_images(imgs).embeds, atol=1e-6)
    with pytest.raises(InputError, match="E308"):
        vis.encode_texts(["a cat"])


def test_loading_errors(dirs, tmp_path, monkeypatch):
    from pixlink.models.backends.hub_clip import make_clip

    with pytest.raises(InputError, match="E304"):
        make_clip(model=str(tmp_path / "no" / "such" / "dir"), cache_dir=str(dirs["cache"]))
    with pytest.raises(ModelUnavailableError, match="E306"):
        make_clip(model=str(dirs["sam"]), cache_dir=str(dirs["cache"]))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError, match="E305") as err:
        make_clip(model="openai/clip-vit-base-patch32", cache_dir=str(tmp_path / "empty_cache"))
    assert "local directory" in str(err.value)
