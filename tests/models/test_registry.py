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
    with pytest.raises(InputError, match="E010.*profile options"):
        Profile("offline", options={"instance_embed": "head.safetensors"})


def test_no_options_is_the_defaults():
    """``options=None`` (what a caller passes for "none") chooses as the default profile does."""
    assert Profile("offline", options=None).choose(R.IMAGE_EMBED).backend == Profile("offline").choose(R.IMAGE_EMBED).backend


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


# --- devices ----------------------------------------------------------------------------------

TORCH_BACKENDS = {
    "clip", "siglip", "clip_vision", "sam", "sam_auto", "owlv2", "grounding_dino", "hub_vlm", "hub_lm",
    "hub_sentence_transformer", "efficientnet_lite", "efficientnet_lite_instance", "conse_efficientnet", "litemedsam",
    "minilm", "mpnet",
    "gemma3_270m", "coco_fallback", "proposals_fallback",
}
"""Backends that run torch models (``pixlink_ner`` too, but its tagger takes no device yet)."""


@pytest.fixture
def scratch_registry(monkeypatch):
    """Register test backends into a copy of the registry that is thrown away after the test."""
    reg._load_backend_modules()  # first, so that the copy holds every backend
    monkeypatch.setattr(reg, "_REGISTRY", {r: dict(v) for r, v in reg._REGISTRY.items()})
    monkeypatch.setattr(reg, "_plugin_problems", [])
    return reg._REGISTRY


@pytest.fixture
def device_probe(scratch_registry, monkeypatch):
    """A backend that takes ``device=`` like a torch backend and records what it receives."""
    monkeypatch.delenv("PIXLINK_DEVICE", raising=False)
    seen: list[str] = []

    @reg.register_backend("image_embed", "test_device_probe", "classical", lambda: None, device=True)
    def factory(device=None, **kw):
        seen.append(device)
        return object()

    return seen


def test_every_torch_backend_takes_a_device_and_says_so():
    import inspect

    for spec in list_backends():
        takes = "device" in inspect.signature(spec.factory).parameters
        assert spec.device == takes, (spec.name, spec.device, takes)
    assert {s.name for s in list_backends() if s.device} == TORCH_BACKENDS


def test_auto_is_the_cpu_here_and_the_factory_receives_it(device_probe):
    prof = Profile("offline", overrides={"image_embed": "test_device_probe"})
    assert prof.describe() == {}
    prof.get("image_embed")
    assert device_probe == ["cpu"]  # no CUDA on this machine
    assert prof.describe()["image_embed"]["device"] == "cpu"
    assert prof.choose("segment").backend is not None and prof.describe()["segment"]["device"] is None  # not built


def test_auto_resolves_to_cuda_when_torch_sees_it_and_pixlink_device_is_read(device_probe, monkeypatch):
    import pixlink.device as D

    monkeypatch.setattr(D, "cuda_available", lambda: True)  # fake a CUDA machine; nothing moves to it
    over = {"image_embed": "test_device_probe"}
    prof = Profile("offline", overrides=over, device="auto")
    prof.get("image_embed")
    assert device_probe == ["cuda"] and prof.describe()["image_embed"]["device"] == "cuda"
    monkeypatch.setenv("PIXLINK_DEVICE", "cuda:1")
    Profile("offline", overrides=over).get("image_embed")  # nothing given: PIXLINK_DEVICE
    Profile("offline", overrides=over, device="cpu").get("image_embed")  # the profile's device wins
    Profile("offline", overrides=over, options={"image_embed": {"device": "CPU"}}).get("image_embed")  # the role's
    assert device_probe == ["cuda", "cuda:1", "cpu", "cpu"]


def test_cuda_without_cuda_is_E013_and_a_bad_device_E010(device_probe, monkeypatch):
    import pixlink.device as D

    monkeypatch.setattr(D, "cuda_available", lambda: False)
    prof = Profile("offline", overrides={"image_embed": "test_device_probe"}, device="cuda")
    with pytest.raises(InputError, match="E013"):
        prof.get("image_embed")
    assert device_probe == [] and prof.describe()["image_embed"]["device"] is None  # chosen, not built
    with pytest.raises(InputError, match="E010"):
        Profile("offline", device="tpu")


def test_a_real_torch_backend_runs_where_the_profile_says(monkeypatch):
    monkeypatch.delenv("PIXLINK_DEVICE", raising=False)
    prof = Profile("offline", device="auto")
    if prof.choose("image_embed").backend != "efficientnet_lite":
        from helpers import unavailable

        unavailable(f"image_embed/efficientnet_lite cannot run here: {prof.choose('image_embed').reason}")
    enc = prof.get("image_embed")
    assert str(enc.device) == "cpu" and enc.batch_size == R.IMAGE_BATCH[0] != R.IMAGE_BATCH[1]  # the CPU's
    assert prof.describe()["image_embed"]["device"] == "cpu"


# --- a long-running service: the hub comes back, threads share one profile ---------------------


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    """No cached weights, the hub allowed, a hand-driven clock and a hub whose answer the test sets."""
    import huggingface_hub
    import httpx

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("PIXLINK_HUB_RETRY_SECONDS", raising=False)
    monkeypatch.setenv("PIXLINK_CACHE", str(tmp_path))
    monkeypatch.setattr(reg, "_reach_cache", {})
    state = {"now": 1000.0, "up": False, "asked": 0}
    monkeypatch.setattr(reg, "_clock", lambda: state["now"])

    def model_info(*a, **k):
        state["asked"] += 1
        if not state["up"]:
            raise httpx.ConnectError("no route")
        return object()

    monkeypatch.setattr(huggingface_hub, "model_info", model_info)
    return state


def test_the_hub_is_asked_again_after_the_retry_time(fake_hub, monkeypatch):
    spec = get_spec("describe", "hub_vlm")
    assert hub_weights_status(spec) == (False, "not cached; hub not reachable (ConnectError)")
    fake_hub["up"] = True
    fake_hub["now"] += 299
    assert hub_weights_status(spec)[0] is False and fake_hub["asked"] == 1  # remembered for 300 s
    fake_hub["now"] += 2
    assert hub_weights_status(spec) == (True, "hub reachable (will download)") and fake_hub["asked"] == 2
    monkeypatch.setenv("PIXLINK_HUB_RETRY_SECONDS", "10")
    fake_hub["up"] = False
    fake_hub["now"] += 11
    assert hub_weights_status(spec)[0] is False and fake_hub["asked"] == 3
    assert hub_weights_status(spec, retry_seconds=0)[0] is False and fake_hub["asked"] == 4  # 0: always ask
    monkeypatch.setenv("PIXLINK_HUB_RETRY_SECONDS", "soon")
    with pytest.raises(InputError, match="E010"):
        hub_weights_status(spec)
    with pytest.raises(InputError, match="E010"):
        Profile("auto", hub_retry_seconds=-1)


def test_a_profile_sees_the_hub_come_back(fake_hub):
    prof = Profile("auto", hub_retry_seconds=60)
    assert prof.choose("describe").backend is None and "hub not reachable" in prof.choose("describe").reason
    fake_hub["up"] = True
    fake_hub["now"] += 30
    assert prof.choose("describe").backend is None  # remembered
    fake_hub["now"] += 31
    c = prof.choose("describe")
    assert (c.backend, c.reason) == ("hub_vlm", "first available")
    # a choice that did not rest on the hub's answer is never made again
    before = fake_hub["asked"]
    fake_hub["now"] += 1000
    assert prof.choose("ocr").backend == Profile("offline").choose("ocr").backend and fake_hub["asked"] == before


def test_threads_asking_at_once_build_each_backend_once(scratch_registry):
    import threading
    import time

    built: list[int] = []
    lock = threading.Lock()

    @reg.register_backend("image_embed", "test_slow", "classical", lambda: None)
    def slow(**kw):
        time.sleep(0.3)  # long enough for every thread to arrive while the first builds
        with lock:
            built.append(1)
        return object()

    prof = Profile("offline", overrides={"image_embed": "test_slow", "faces": "test_slow_faces"})
    reg.register_backend("faces", "test_slow_faces", "classical", lambda: None)(slow)
    start = threading.Barrier(8)
    got: list[object] = []

    def ask(role):
        start.wait()
        obj = prof.get(role)
        with lock:
            got.append((role, obj))

    threads = [threading.Thread(target=ask, args=("image_embed" if i % 2 else "faces",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 2  # one per role, not one per thread
    assert len({id(o) for r, o in got if r == "image_embed"}) == 1 and len({id(o) for r, o in got if r == "faces"}) == 1
    assert len(got) == 8


# --- backends of other packages: the pixlink.backends entry points ---------------------------

PLUGIN_MODULES = {
    "pixlink_test_plugin_ok": (
        "from pixlink.models.registry import register_backend\n"
        "@register_backend('ner', 'test_plugin_ner', 'classical', lambda: None, description='a test plugin')\n"
        "def build(**kw):\n    return 'plugin-ner'\n"),
    "pixlink_test_plugin_broken": "import a_module_that_is_not_installed_anywhere\n",
    "pixlink_test_plugin_silent": "X = 1\n",
}
ENTRY_POINTS = """[pixlink.backends]
ner.test_plugin_ner = pixlink_test_plugin_ok
ner.test_plugin_broken = pixlink_test_plugin_broken
detect.test_plugin_silent = pixlink_test_plugin_silent
no_role_here = pixlink_test_plugin_ok
"""


@pytest.fixture
def installed_plugins(tmp_path, monkeypatch, scratch_registry):
    """A distribution on sys.path (a .dist-info with entry_points.txt) that declares plugins."""
    import sys

    for name, code in PLUGIN_MODULES.items():
        (tmp_path / f"{name}.py").write_text(code)
    info = tmp_path / "pixlink_test_plugins-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pixlink-test-plugins\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield [ep for ep in reg._plugin_entry_points() if ep.dist is not None and ep.dist.name == "pixlink-test-plugins"]
    for name in PLUGIN_MODULES:
        sys.modules.pop(name, None)


def test_plugins_register_backends_and_a_broken_one_is_a_reason_not_a_crash(installed_plugins, caplog):
    assert len(installed_plugins) == 4
    with caplog.at_level(logging.WARNING, logger="pixlink"):
        reg._load_plugins(installed_plugins)
    ok = get_spec("ner", "test_plugin_ner")
    assert ok.kind == "classical" and ok.plugin == "ner.test_plugin_ner = pixlink_test_plugin_ok"
    assert Profile("offline", overrides={"ner": "test_plugin_ner"}).get("ner") == "plugin-ner"
    broken = get_spec("ner", "test_plugin_broken")
    why = broken.availability()
    assert broken.kind == "plugin" and "ModuleNotFoundError" in why and "a_module_that_is_not_installed" in why
    choice = Profile("offline", overrides={"ner": "test_plugin_broken"}).choose("ner")
    assert choice.backend is None and "pixlink_test_plugin_broken" in choice.reason
    with pytest.raises(ModelUnavailableError, match="E390"):
        broken.factory()
    assert "registered no backend detect/test_plugin_silent" in get_spec("detect", "test_plugin_silent").availability()
    assert any("no_role_here" in p for p in reg.plugin_problems())
    assert any("pixlink_test_plugin_broken" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert {s.name for s in list_backends("ner")} >= {"test_plugin_ner", "test_plugin_broken"}


def _declared_plugins() -> dict[str, str]:
    import tomllib
    from pathlib import Path

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    return tomllib.loads(pyproject.read_text())["project"]["entry-points"][reg.PLUGIN_GROUP]


def test_pixlinks_own_plugins_are_declared_and_register_what_they_say(scratch_registry):
    """Read from pyproject.toml, so it holds in a source tree whatever is installed."""
    import importlib

    declared = _declared_plugins()
    assert declared == {"ner.pixlink_ner": "pixlink.ner.backend"}
    for entry, module in declared.items():
        role, name = entry.split(".", 1)
        importlib.import_module(module)
        spec = get_spec(role, name)
        assert spec.factory.__module__ == module and spec.kind != "plugin"


def test_the_installed_metadata_declares_the_same_plugins():
    from importlib.metadata import distribution

    installed = {ep.name: ep.value for ep in distribution("pixlink").entry_points if ep.group == reg.PLUGIN_GROUP}
    assert installed == _declared_plugins(), (
        "the installed pixlink metadata is older than pyproject.toml: run `pip install --no-deps -e .` "
        "so that the registry finds the backends of other packages")
    for entry in installed:
        assert get_spec(*entry.split(".", 1)).plugin == f"{entry} = {installed[entry]}"
