"""A KB's own instance head (``pixlink train instance-head``): trained on composites of the KB's
references, written into the KB, used by every linker over it with its own calibration."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from helpers import need_composite

runner = CliRunner()


def _png(path, rgb):
    from PIL import Image

    Image.fromarray(rgb).save(path)
    return path


def test_a_graphic_on_a_plain_background_is_cut_out_and_a_full_bleed_image_is_pasted_whole(tmp_path):
    from pixlink.demo.composite import kb_image_rgba

    logo = np.full((120, 160, 3), 255, np.uint8)
    yy, xx = np.mgrid[:120, :160]
    logo[(yy - 60) ** 2 + (xx - 80) ** 2 < 40 ** 2] = (200, 30, 30)
    rgba, cut = kb_image_rgba(_png(tmp_path / "logo.png", logo))
    assert cut and rgba[0, 0, 3] == 0 and rgba[60, 80, 3] == 255
    assert abs((rgba[..., 3] > 0).mean() - np.pi * 40 ** 2 / (120 * 160)) < 0.02
    flag = np.zeros((100, 190, 3), np.uint8)
    stripe = (np.mgrid[:100, :190][0] // 8) % 2
    flag[stripe == 0] = (180, 20, 40)  # stripes to the edges: no plain border
    flag[stripe == 1] = (250, 250, 250)
    rgba, cut = kb_image_rgba(_png(tmp_path / "flag.png", flag))
    assert not cut and (rgba[..., 3] == 255).all()
    big = np.zeros((1000, 1500, 3), np.uint8)
    big[:, :750] = (10, 200, 10)
    rgba, _ = kb_image_rgba(_png(tmp_path / "big.png", big), max_side=300)
    assert rgba.shape == (200, 300, 4)


@pytest.fixture(scope="module")
def logo_kb(tmp_path_factory):
    need_composite()
    from pixlink.demo.composite import build_kb, small_set

    root = tmp_path_factory.mktemp("adapt")
    cs = small_set(root, n_logos=10, n_queries=4, n_nil=0, seed=11)
    return cs, build_kb(cs, root / "kb")


def test_the_head_is_trained_on_the_kb_written_into_it_and_the_linker_runs_it_with_its_calibration(logo_kb, tmp_path):
    import shutil

    from pixlink.link import Linker, LinkerConfig
    from pixlink.link.embed import embed_kb
    from pixlink.link.fusion import Fusion
    from pixlink.link.kbhead import KB_HEAD, head_calibration
    from pixlink.models import Profile
    from pixlink.models.backends.instance_head import HEAD_PATH, load_head
    from pixlink.train.instance_adapt import AdaptOptions, adapt_instance_head

    cs, kb0 = logo_kb
    kb = tmp_path / "kb"
    shutil.copytree(kb0, kb)
    rep = adapt_instance_head(kb, AdaptOptions(photos=1, held_out=8, epochs=20), progress=False)
    assert rep["references"] == 10 and rep["entities"] == 10 and rep["views"] >= 10 and rep["installed"]
    assert rep["fit"]["loss_last"] < rep["fit"]["loss_first"]
    assert rep["held_out"]["views"] >= 5 and set(rep["held_out"]) == {"views", "adapted", "shipped"}
    assert not (kb / "models" / "instance_head.work").exists()  # the cached parts go once the head is written
    w, info = load_head(kb / KB_HEAD)
    assert info["trained_on"] == "kb" and info["references"] == 10 and info["calibration"]["slope"] > 0
    assert not np.array_equal(w, load_head(HEAD_PATH)[0])
    cal = head_calibration(kb / KB_HEAD)
    assert cal == {"center": info["calibration"]["center"], "slope": info["calibration"]["slope"]}

    emb = embed_kb(kb, Profile("offline"), ["instance"], progress=False)["instance"]
    digest = emb["model_id"].rsplit("-", 1)[-1]
    assert emb["head"].endswith(str(KB_HEAD)) and emb["vectors"] == 10
    cautious = Linker.from_kb(kb, Profile("offline"), LinkerConfig(signals=("instance",), segment=False))
    linker = Linker.from_kb(kb, Profile("offline"), LinkerConfig(signals=("instance",), segment=False,
                                                                  kb_head_calibration="head"))
    assert linker.profile.get("instance_embed").model_id.endswith(digest)
    assert cautious.profile.get("instance_embed").model_id.endswith(digest)
    shipped = Fusion.for_backends({"instance": "efficientnet_lite_instance"})
    inst = linker.fusion.cal("instance", "efficientnet_lite_instance")
    assert (inst.center, inst.slope) == (cal["center"], cal["slope"]) and linker.fusion.name.endswith("+kb-head")
    assert cautious.fusion.cal("instance", "efficientnet_lite_instance") == shipped.cal("instance", "efficientnet_lite_instance")
    m = cs.mentions("test")[0]
    link = linker.link(m.image, m.region, k=3)
    assert any("the KB's own head" in n and "its calibration" in n for n in link.notes)
    assert link.candidates and "instance" in link.candidates[0].signals
    again = cautious.link(m.image, m.region, k=3)
    assert any("scored with the shipped calibration" in n for n in again.notes)
    # the same raw cosine, two calibrations
    assert again.candidates[0].signals["instance"] == pytest.approx(link.candidates[0].signals["instance"])

    # the KB's vectors are the head's: a linker forced to the shipped head is refused, not mixed
    from pixlink.errors import InputError

    with pytest.raises(InputError, match="E391"):
        Linker.from_kb(kb, Profile("offline", options={"instance_embed": {"head": str(HEAD_PATH)}}),
                       LinkerConfig(signals=("instance",), segment=False))


def test_a_head_that_finds_held_out_photos_worse_than_the_shipped_one_is_not_installed(logo_kb, tmp_path):
    import shutil

    from pixlink.link.kbhead import kb_head
    from pixlink.train.instance_adapt import AdaptOptions, adapt_instance_head

    _, kb0 = logo_kb
    kb = tmp_path / "kb"
    shutil.copytree(kb0, kb)
    # a step far too large wrecks the fine-tuned head
    rep = adapt_instance_head(kb, AdaptOptions(photos=1, held_out=10, epochs=30, lr=3.0), progress=False)
    assert rep["held_out"]["adapted"]["hits@1"] < rep["held_out"]["shipped"]["hits@1"]
    assert rep["installed"] is False and "below the shipped head" in rep["reason"]
    assert kb_head(kb) is None and (kb / "models" / "instance_head.rejected.safetensors").is_file()


def test_a_kb_too_large_for_a_full_batch_trains_in_mini_batches_and_one_too_large_for_either_is_refused(logo_kb, tmp_path):
    import shutil

    from pixlink.errors import InputError
    from pixlink.train.instance_adapt import AdaptOptions, adapt_instance_head, training_memory_gb, training_mode

    o = AdaptOptions()
    # the composite set's KB with the defaults: 13,938 views, 3,493 references, a full batch
    assert 0.7 < training_memory_gb(3493, o) < 0.9 and training_mode(3493, o) == "full"
    # a 20k-image KB: its full batch is more than the default limit, mini-batches are not
    assert training_memory_gb(20_000, o) > 8.0
    assert training_memory_gb(20_000, o, mode="mini-batch") < 3.0 and training_mode(20_000, o) == "mini-batch"
    assert training_mode(20_000, AdaptOptions(training="full")) == "full"
    with pytest.raises(InputError, match="E010.*training"):
        AdaptOptions(training="online")

    _, kb0 = logo_kb
    kb = tmp_path / "kb"
    shutil.copytree(kb0, kb)
    need = training_memory_gb(10, AdaptOptions(photos=3))
    with pytest.raises(InputError, match="E421.*full training.*10 reference images x 3 photos") as err:
        adapt_instance_head(kb, AdaptOptions(photos=3, training="full", max_memory_gb=need / 2), progress=False)
    assert f"{need:.3g} GB" in str(err.value)
    assert not (kb / "models").exists()  # nothing rendered, nothing cached

    rep = adapt_instance_head(kb, AdaptOptions(photos=1, held_out=8, training="mini-batch", views_per_step=4,
                                               references_per_step=3, passes=5), progress=False)
    assert rep["fit"]["training"] == {"mode": "mini-batch", "views_per_step": 4, "references_per_step": 3,
                                      "steps": -(-5 * rep["views"] // 4)}
    assert rep["views"] >= 10 and rep["held_out"]["views"] >= 5 and Path(rep["head"]).is_file()


def test_a_kb_with_fewer_than_two_images_is_E421(tmp_path):
    from pixlink.errors import InputError
    from pixlink.kb import build_kb
    from pixlink.train.instance_adapt import adapt_instance_head

    img = _png(tmp_path / "a.png", np.full((40, 40, 3), 90, np.uint8))
    src = tmp_path / "ents.jsonl"
    src.write_text(json.dumps({"id": "Q1", "label": "one", "images": [str(img)]}) + "\n"
                   + json.dumps({"id": "Q2", "label": "two"}) + "\n")
    build_kb([str(src)], tmp_path / "kb", progress=False)
    with pytest.raises(InputError, match="E421"):
        adapt_instance_head(tmp_path / "kb", progress=False)


def test_cli_trains_embeds_and_refuses_to_overwrite_a_head(logo_kb, tmp_path):
    import shutil

    from pixlink.cli.main import app

    _, kb0 = logo_kb
    kb = tmp_path / "kb"
    shutil.copytree(kb0, kb)
    args = ["train", "instance-head", str(kb), "--photos", "1", "--held-out", "6", "--epochs", "5"]
    res = runner.invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["embed"]["vectors"] == 10 and rep["embed"]["head"] == rep["head"]
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "E776" in again.output
    info = json.loads(runner.invoke(app, ["kb", "info", str(kb), "--json"]).stdout)["instance_head"]
    assert info["path"] == rep["head"] and info["references"] == 10 and info["views"] == rep["views"]
    assert info["training"] == rep["fit"]["training"] and info["training"]["mode"] == "full batch"
    assert json.loads(runner.invoke(app, ["kb", "info", str(kb0), "--json"]).stdout)["instance_head"] is None
    shown = runner.invoke(app, ["kb", "info", str(kb)], terminal_width=200)
    assert shown.exit_code == 0 and "instance head" in shown.output and "trained on 10 images" in shown.output
    assert "full batch" in shown.output


def test_an_embed_job_over_a_kb_with_its_own_head_embeds_with_that_head(logo_kb, tmp_path):
    """The ``embed`` job's workers get the KB's head in their profile options, as ``kb embed``."""
    import shutil

    from pixlink.errors import InputError
    from pixlink.jobs.tasks import get_task
    from pixlink.link.kbhead import KB_HEAD
    from pixlink.models.backends.instance_head import HEAD_PATH

    _, kb0 = logo_kb
    kb = tmp_path / "kb"
    shutil.copytree(kb0, kb)
    task = get_task("embed")
    plain = task.check({"kb": str(kb), "signal": "instance", "profile": "offline"})
    assert "instance_embed" not in plain["options"]
    (kb / KB_HEAD).parent.mkdir(parents=True)
    shutil.copy(HEAD_PATH, kb / KB_HEAD)  # any head file there is the KB's own
    got = task.check({"kb": str(kb), "signal": "instance", "profile": "offline"})
    assert got["options"]["instance_embed"]["head"] == str((kb / KB_HEAD).resolve())
    assert "instance_embed" not in task.check({"kb": str(kb), "signal": "dense_text", "profile": "offline"})["options"]
    with pytest.raises(InputError, match="E391"):
        task.check({"kb": str(kb), "signal": "instance", "profile": "offline",
                    "options": {"instance_embed": {"head": str(HEAD_PATH)}}})
