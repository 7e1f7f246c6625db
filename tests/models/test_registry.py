"""Registry and profiles: hub backends registered, ``auto`` picks offline when no weights are
cached (and says why), hub when they are (local dir or hub cache, loaded offline by hub id),
overrides, the catalogue errors, and ``pixlink models list / tiny``."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
from typer.testing import CliRunner

from pixlink.cli.main import app
from pixlink.errors import InputError, ModelUnavailableError
from pixlink.models import registry as reg
from pixlink.models import roles as R
from pixlink.models.registry import Profile, get_spec, hub_weights_status, list_backends
from pixlink.models.tiny import build_tiny

HUB_BACKENDS = {
    ("image_text", "clip"), ("image_text", "siglip"), ("image_embed", "clip_vision"), ("segment", "sam"),
    ("segment_all", "sam_auto"), ("detect", "owlv2"), ("detect", "grounding_dino"), ("describe", "hub_vlm"),
    ("generate", "hub_lm"), ("text_embed", "hub_sentence_transformer"),
}


@pytest.fixture
def offline_env(tmp_path, monkeypatch):
    """No hub, and an empty pixlink cache."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("PIXLINK_CACHE", str(tmp_path / "pixlink_cache"))
    return tmp_path / "pixlink_cache" / "hub"


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return build_tiny("clip", tmp_path_factory.mktemp("reg_clip") / "clip")


def test_hub_backends_are_registered_with_defaults_and_licences():
    got = {(s.role, s.name): s for s in list_backends() if s.kind == "hub"}
    assert HUB_BACKENDS <= set(got)
    for key in HUB_BACKENDS:
        spec = got[key]
        assert spec.default_model and spec.license and spec.description
        assert spec.availability() is None  # torch + transformers are installed here


def test_catalogue_errors():
    with pytest.raises(InputError, match="E301"):
        Profile("hub").choose("colour")
    with pytest.raises(InputError, match="E302"):
        get_spec("detect", "yolo-world")
    with pytest.raises(InputError, match="E302"):
        Profile("auto", overrides={"detect": "yolo-world"}).choose("detect")
    with pytest.raises(InputError, match="E303"):
        Profile("fast")
    with pytest.raises(InputError, match="E301"):
        list_backends("colour")


def test_auto_without_cached_weights_falls_back_and_says_why(offline_env, caplog):
    prof = Profile("auto")
    with caplog.at_level(logging.WARNING, logger="pixlink"):
        c = prof.choose("image_text")
    assert c.backend != "clip"
    assert "clip: openai/clip-vit-base-patch32 not cached; HF_HUB_OFFLINE is set" in c.reason
    if c.backend is not None:  # an offline backend is installed: it is a recorded fallback
        assert c.fallback and c.kind != "hub"
        assert any("openai/clip-vit-base-patch32" in r.getMessage() for r in caplog.records)
    for role in R.ROLES:  # whenever an earlier preference was skipped, the pick is a flagged fallback
        ch = prof.choose(role)
        if ch.backend is not None:
            assert ch.fallback == ("skipped" in ch.reason), ch
    vlm = prof.choose("describe")  # no offline VLM exists: nothing, and why
    assert vlm.backend is None and "hub_vlm: HuggingFaceTB/SmolVLM-256M-Instruct not cached" in vlm.reason
    assert not prof.has("describe")
    with pytest.raises(ModelUnavailableError, match="E300"):
        prof.get("describe")
    assert prof.describe()["describe"]["backend"] is None


def test_auto_picks_hub_for_a_local_directory(offline_env, clip_dir):
    prof = Profile("auto", options={"image_text": {"model": str(clip_dir)}})
    c = prof.choose("image_text")
    assert (c.backend, c.kind, c.fallback, c.model) == ("clip", "hub", False, str(clip_dir))
    enc = prof.get("image_text")
    assert enc.model_id == str(clip_dir.resolve())
    assert prof.describe()["image_text"]["backend"] == "clip"


def test_auto_picks_hub_when_the_hub_id_is_cached_and_loads_it_offline(offline_env, clip_dir):
    """Lay the tiny model out as the hub cache would hold openai/clip-vit-base-patch32: auto
    picks clip, and the factory loads it by hub id with no network."""
    snap = offline_env / "models--openai--clip-vit-base-patch32" / "snapshots" / ("0" * 40)
    shutil.copytree(clip_dir, snap)
    (offline_env / "models--openai--clip-vit-base-patch32" / "refs").mkdir()
    (offline_env / "models--openai--clip-vit-base-patch32" / "refs" / "main").write_text("0" * 40)
    assert hub_weights_status(get_spec("image_text", "clip")) == (True, "cached")
    prof = Profile("auto")
    c = prof.choose("image_text")
    assert c.backend == "clip" and not c.fallback and c.reason == "first available"
    enc = prof.get("image_text")
    assert enc.model_id == "openai/clip-vit-base-patch32" and not enc.is_local
    assert enc.encode_texts(["a cat"]).shape == (1, 16)


def test_hub_profile_without_weights_fails_with_E305(offline_env):
    prof = Profile("hub")
    assert prof.choose("segment").backend == "sam"  # hub means hub: chosen, then loading says why not
    with pytest.raises(ModelUnavailableError, match="E305"):
        prof.get("segment")


def test_offline_profile_never_picks_hub(offline_env):
    prof = Profile("offline")
    for role in R.ROLES:
        c = prof.choose(role)
        assert c.kind != "hub"


def test_override_picks_the_backend_asked_for(offline_env, clip_dir):
    prof = Profile("offline", overrides={"image_embed": "clip_vision"},
                   options={"image_embed": {"model": str(clip_dir)}})
    c = prof.choose("image_embed")
    assert (c.backend, c.reason) == ("clip_vision", "asked for")
    assert prof.get("image_embed").name == "clip_vision"


def test_reachability_catches_network_errors_only(monkeypatch, tmp_path):
    import httpx
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("PIXLINK_CACHE", str(tmp_path))
    spec = get_spec("detect", "owlv2")

    def unreachable(*a, **k):
        raise httpx.ConnectError("no route")

    monkeypatch.setattr(reg, "_reach_cache", {})
    monkeypatch.setattr(huggingface_hub, "model_info", unreachable)
    ok, where = hub_weights_status(spec)
    assert not ok and where == "not cached; hub not reachable (ConnectError)"

    def reachable(*a, **k):
        return object()

    monkeypatch.setattr(reg, "_reach_cache", {})
    monkeypatch.setattr(huggingface_hub, "model_info", reachable)
    assert hub_weights_status(spec) == (True, "hub reachable (will download)")

    def bug(*a, **k):
        raise RuntimeError("a bug, not a network failure")

    monkeypatch.setattr(reg, "_reach_cache", {})
    monkeypatch.setattr(huggingface_hub, "model_info", bug)
    with pytest.raises(RuntimeError):
        hub_weights_status(spec)
    assert hub_weights_status(spec, {"model": str(tmp_path / "missing" / "dir" / "x")}) == (False, "no such directory")


def test_cli_models_list_json(offline_env, clip_dir):
    runner = CliRunner()
    res = runner.invoke(app, ["models", "list", "--profile", "auto", "--json", "--model", f"image_text={clip_dir}"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["profile"] == "auto" and [r["role"] for r in rep["roles"]] == list(R.ROLES)
    roles = {r["role"]: r for r in rep["roles"]}
    assert roles["image_text"]["choice"]["backend"] == "clip"
    clip = next(b for b in roles["image_text"]["backends"] if b["name"] == "clip")
    assert clip["chosen"] and clip["available"] and clip["weights"] == {"ok": True, "where": "local directory",
                                                                         "model": str(clip_dir)}
    vlm = next(b for b in roles["describe"]["backends"] if b["name"] == "hub_vlm")
    assert vlm["weights"]["ok"] is False and "HF_HUB_OFFLINE" in vlm["weights"]["where"]
    assert roles["describe"]["choice"]["backend"] is None and roles["describe"]["choice"]["reason"]
    table = runner.invoke(app, ["models", "list", "--profile", "hub"])
    assert table.exit_code == 0 and "hub_vlm" in table.output
    bad = runner.invoke(app, ["models", "list", "--model", "colour=x"])
    assert bad.exit_code == 2 and "E301" in bad.output


def test_cli_models_tiny(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["models", "tiny", str(tmp_path / "sam"), "--arch", "sam"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "sam" / "config.json").read_text())["model_type"] == "sam"
    bad = runner.invoke(app, ["models", "tiny", str(tmp_path / "x"), "--arch", "yolo"])
    assert bad.exit_code == 2 and "E311" in bad.output
