"""The service's parts without models: upload store, admission, settings, metrics, the API key."""

from __future__ import annotations

import io
import json
import threading

import numpy as np
import pytest
from PIL import Image

from helpers import need_module
from pixlink.errors import InputError


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def images(n: int, side: int = 32) -> list[bytes]:
    rng = np.random.default_rng(0)
    return [png((rng.random((side, side, 3)) * 255).astype(np.uint8)) for _ in range(n)]


def test_store_is_keyed_by_pixels_and_bounded():
    from pixlink.serve.store import ImageStore

    store = ImageStore(max_images=2, max_bytes=10**9)
    a, b, c = images(3)
    ia, known = store.add(a, max_pixels=10**6)
    assert not known and store.add(a, max_pixels=10**6) == (ia, True)
    assert not ia.pixels.flags.writeable and ia.size == (32, 32)
    store.add(b, max_pixels=10**6)
    store.get(ia.id)  # a is now the most recent
    store.add(c, max_pixels=10**6)
    assert len(store) == 2 and store.get(ia.id) is ia and store.stats()["evictions"] == 1
    with pytest.raises(InputError, match="E721"):
        store.get("f" * 32)
    with pytest.raises(InputError, match="E724"):
        store.get("../x")


def test_store_bytes_bound_and_pixel_limit():
    from pixlink.serve.store import ImageStore

    store = ImageStore(max_images=100, max_bytes=3 * 32 * 32 * 3)
    for data in images(5):
        store.add(data, max_pixels=10**6)
    assert store.stats()["bytes"] <= 3 * 32 * 32 * 3 and len(store) == 3
    with pytest.raises(InputError, match="E016"):
        store.add(images(1, side=64)[0], max_pixels=1000)
    with pytest.raises(InputError, match="E738"):
        store.add(b"", max_pixels=1000)
    with pytest.raises(InputError, match="E001"):
        store.add(b"GIF89a not really", max_pixels=1000)


def test_admission_and_runner():
    from pixlink.serve.limits import Admission, Busy, Runner

    adm = Admission(2)
    assert adm.try_enter() and adm.try_enter() and not adm.try_enter() and adm.refused == 1
    adm.leave()
    assert adm.try_enter()
    runner = Runner(threads=1, max_pending=2, timeout=5, retry_after=1)
    gate = threading.Event()
    f1 = runner.submit(gate.wait, 5)
    f2 = runner.submit(lambda: 42)
    with pytest.raises(Busy, match="E722"):
        runner.submit(lambda: 0)
    f2.cancel() or None
    gate.set()
    f1.result(5)
    runner.pool.submit(lambda: None).result(5)
    assert runner.admission.pending == 0  # released when the work ended (or was cancelled)
    runner.close()


def test_api_key_check():
    from pixlink.serve.limits import Unauthorised, check_api_key

    check_api_key(None, None, None)
    check_api_key("k", "k", None)
    check_api_key("k", None, "Bearer k")
    check_api_key("k", None, "Token k")
    for given, auth in ((None, None), ("x", None), (None, "Bearer x"), (None, "Basic k")):
        with pytest.raises(Unauthorised, match="E725"):
            check_api_key("k", given, auth)


def test_settings_validate_and_keep_secrets_out_of_json(monkeypatch):
    from pixlink.serve.settings import ServeSettings

    s = ServeSettings(kb="/kb", api_key="secret", label_studio_api_key="tok")
    d = json.loads(s.to_json())
    assert "api_key" not in d and "label_studio_api_key" not in d and "secret" not in s.to_json()
    assert ServeSettings.from_json(s.to_json()).kb == "/kb"
    monkeypatch.setenv("PIXLINK_API_KEY", "from-env")
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://ls:8080")
    env = ServeSettings(kb="/kb").with_environment()
    assert env.api_key == "from-env" and env.label_studio_url == "http://ls:8080"
    for bad in ({"threads": 0}, {"max_pending": 1, "threads": 2}, {"timeout": 0}, {"profile": "x"},
                {"label_studio_url": "ftp://x"}, {"cors_origins": "*"}, {"click_segmenter": {"speed": 1}}):
        with pytest.raises(InputError, match="E737"):
            ServeSettings(kb="/kb", **bad)
    with pytest.raises(InputError, match="E737"):
        ServeSettings.from_json('{"kb": "/kb", "nope": 1}')


def test_metrics_text_format():
    from pixlink.serve.metrics import Metrics

    m = Metrics()
    m.observe("/v1/link", "POST", 200, 0.12)
    m.observe("/v1/link", "POST", 200, 7.0)
    m.observe("/v1/link", "POST", 503, 0.001)
    m.add_gauges(lambda: [("pixlink_ready", "gauge", {}, 1.0)])
    text = m.render()
    assert 'pixlink_requests_total{method="POST",route="/v1/link",status="200"} 2' in text
    assert 'pixlink_request_seconds_bucket{le="0.2",route="/v1/link"} 2' in text
    assert 'pixlink_request_seconds_bucket{le="+Inf",route="/v1/link"} 3' in text
    assert "# TYPE pixlink_ready gauge\npixlink_ready 1" in text


def test_cli_refuses_a_missing_kb(tmp_path):
    need_module("fastapi")
    from typer.testing import CliRunner

    from pixlink.cli.main import app

    r = CliRunner().invoke(app, ["serve", "--kb", str(tmp_path / "nope")])
    assert r.exit_code == 2 and "E705" in r.output
    (tmp_path / "empty").mkdir()
    r = CliRunner().invoke(app, ["serve", "--kb", str(tmp_path / "empty")])
    assert r.exit_code == 2 and "E100" in r.output
    (tmp_path / "bad.json").write_text('{"segmnet": false}')
    r = CliRunner().invoke(app, ["serve", "--kb", str(tmp_path / "empty"), "--config", str(tmp_path / "bad.json")])
    assert r.exit_code == 2 and "E701" in r.output
    r = CliRunner().invoke(app, ["serve", "--kb", str(tmp_path / "empty"), "--fusion", str(tmp_path / "nope.json")])
    assert r.exit_code == 2 and "E705" in r.output
