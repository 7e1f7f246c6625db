"""The REST API with FastAPI's test client: every route, limit and error code, on the real
offline models and the test photos."""

from __future__ import annotations

import base64
import io
import threading

import numpy as np
import pytest
from PIL import Image

from pixlink.geometry import rle_to_mask

pytestmark = [pytest.mark.slow, pytest.mark.data]


def upload(client, data: bytes) -> dict:
    r = client.post("/v1/images", files={"file": ("photo.jpg", data, "image/jpeg")})
    assert r.status_code in (200, 201), r.text
    return r.json()


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def assert_error(r, status: int, code: str) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"code", "message"}, body
    assert body["code"] == code and body["message"].startswith(f"[{code}]"), body
    assert "Traceback" not in body["message"]
    return body


# -- health, readiness, docs -----------------------------------------------------------------
def test_health_ready_docs(client):
    assert client.get("/health").json() == {"status": "ok"}
    r = client.get("/ready")
    assert r.status_code == 200
    body = r.json()
    assert body["ready"] is True and 45 <= body["kb"]["entities"] < 100  # 45 + their type entities
    assert body["backends"]["faces"] == "dlib" and body["limits"]["max_prompts"] == 16
    paths = client.get("/openapi.json").json()["paths"]
    for p in ("/v1/images", "/v1/link", "/v1/link/batch", "/v1/gmner", "/v1/kb/search", "/v1/kb/entities/{eid}",
              "/v1/kb/entities/{eid}/image", "/v1/annotate", "/health", "/ready", "/metrics", "/labelstudio/predict"):
        assert p in paths, p
    assert client.get("/docs").status_code == 200


# -- uploads ----------------------------------------------------------------------------------
def test_upload_by_content(client, obama_biden):
    first = upload(client, obama_biden)
    assert (first["width"], first["height"]) == (2000, 1428) and len(first["id"]) == 32
    again = client.post("/v1/images", content=obama_biden, headers={"Content-Type": "application/octet-stream"})
    assert again.status_code == 200 and again.json()["id"] == first["id"] and again.json()["known"] is True
    # the same pixels in another format are the same image
    arr = np.asarray(Image.open(io.BytesIO(obama_biden)).convert("RGB"))
    assert upload(client, png_bytes(arr))["id"] == first["id"]


def test_upload_errors(client):
    assert_error(client.post("/v1/images", content=b"not an image", headers={"Content-Type": "image/png"}), 400, "E001")
    assert_error(client.post("/v1/images", content=b"", headers={"Content-Type": "image/png"}), 400, "E738")
    assert_error(client.post("/v1/images", json={"image": "x"}), 400, "E738")
    r = client.post("/v1/images", files={"other": ("a.txt", b"abc", "text/plain")})
    assert_error(r, 400, "E738")


# -- linking ----------------------------------------------------------------------------------
def test_click_on_obama_links_to_obama(client, obama_biden, spots):
    iid = upload(client, obama_biden)["id"]
    r = client.post("/v1/link", json={"image_id": iid, "prompt": {"points": [list(spots.obama_face)], "labels": [1]}, "k": 3})
    assert r.status_code == 200, r.text
    ans = r.json()
    assert ans["prediction"] == "Q76" and ans["nil"] is False, ans["candidates"][:2]
    top = ans["candidates"][0]
    assert top["label"] == "Barack Obama" and "face" in top["signals"]
    assert top["thumbnail"] == "/v1/kb/entities/Q76/image"
    assert ans["kb"]["build_id"] and ans["image_id"] == iid
    mask = rle_to_mask(ans["region"]["mask"])
    assert mask.shape == (1428, 2000) and mask[spots.obama_face[1], spots.obama_face[0]]
    assert ans["region"]["area"] == int(mask.sum())
    assert ans["backends"]["segment"].startswith("grabcut")
    assert {"segment", "face", "server", "queue"} <= set(ans["timings"])
    # a further prompt on the same image: the face scan is not done again
    before = client.app.state.engine.image_cache.stats()
    r = client.post("/v1/link", json={"image_id": iid, "prompt": {"box": spots.biden_box}, "k": 3})
    assert r.json()["prediction"] == "Q6279"
    after = client.app.state.engine.image_cache.stats()
    assert after["hits"] > before["hits"]
    # the region the server made, sent back as a mask prompt
    r = client.post("/v1/link", json={"image_id": iid, "prompt": {"mask": ans["region"]["mask"]}})
    assert r.json()["prediction"] == "Q76"


def test_inline_image_and_caption(client, obama_biden, spots):
    r = client.post("/v1/link", json={"image": base64.b64encode(obama_biden).decode(), "prompt": {"box": spots.obama_box},
                                      "text": "Barack Obama and Joe Biden", "k": 2})
    assert r.status_code == 200, r.text
    ans = r.json()
    assert ans["prediction"] == "Q76" and len(ans["candidates"]) == 2
    assert_error(client.get("/v1/link"), 405, "E731")


def test_batch_keeps_good_items_and_reports_bad(client, obama_biden, spots):
    iid = upload(client, obama_biden)["id"]
    r = client.post("/v1/link/batch", json={"image_id": iid, "k": 2, "prompts": [
        {"prompt": {"box": spots.obama_box}}, {"prompt": {"box": [5000, 5000, 5100, 5100]}}, {"prompt": {"box": spots.biden_box}}]})
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert [x["ok"] for x in res] == [True, False, True]
    assert res[0]["prediction"] == "Q76" and res[2]["prediction"] == "Q6279"
    assert res[1]["error"]["code"] == "E003"


def test_link_request_errors(client, obama_biden):
    iid = upload(client, obama_biden)["id"]
    assert_error(client.post("/v1/link", json={"image_id": "0" * 32}), 404, "E721")
    assert_error(client.post("/v1/link", json={"image_id": "../../etc/passwd"}), 422, "E724")
    assert_error(client.post("/v1/link", json={"image_id": iid, "k": 500}), 422, "E724")
    assert_error(client.post("/v1/link", json={"image_id": iid, "path": "/etc/passwd"}), 422, "E724")
    assert_error(client.post("/v1/link", json={}), 422, "E724")
    assert_error(client.post("/v1/link", json={"image_id": iid, "image": "aGk="}), 422, "E724")
    assert_error(client.post("/v1/link", json={"image": "%%%"}), 400, "E738")
    assert_error(client.post("/v1/link", json={"image_id": iid, "prompt": {"box": [10, 10, 5, 5]}}), 400, "E002")
    assert_error(client.post("/v1/link", json={"image_id": iid, "prompt": {"mask": {"size": [2, 2], "counts": [0, 4]}}}),
                 400, "E005")
    assert_error(client.post("/v1/link", content=b"{not json", headers={"Content-Type": "application/json"}), 422, "E724")
    assert_error(client.get("/v1/nothing-here"), 404, "E730")


def test_prompts_per_request_bounded(make_app, obama_biden, spots):
    c = make_app(max_prompts=2)
    iid = upload(c, obama_biden)["id"]
    r = c.post("/v1/link/batch", json={"image_id": iid, "prompts": [{"prompt": {"box": spots.obama_box}}] * 3})
    assert_error(r, 422, "E726")


# -- GMNER ------------------------------------------------------------------------------------
def test_gmner_route(client, obama_biden):
    iid = upload(client, obama_biden)["id"]
    r = client.post("/v1/gmner", json={"image_id": iid, "text": "Barack Obama and Joe Biden speak in Washington"})
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["tokens"][:2] == ["Barack", "Obama"]
    texts = {e["text"]: e for e in res["entities"]}
    assert any(e["type"] == "PER" for e in res["entities"]), res["entities"]
    for e in res["entities"]:
        assert {"type", "groundable", "region", "link"} <= set(e)
        if e["region"] is not None:
            assert len(e["region"]["box"]) == 4
    assert texts, res
    assert_error(client.post("/v1/gmner", json={"text": ""}), 422, "E724")


def test_annotate_route_finds_the_entity_or_says_why_not(client, obama_biden):
    import json
    from pathlib import Path

    from pixlink.geometry import box_iou

    hand = json.loads((Path(__file__).parents[1] / "annotate" / "fixtures" / "person_boxes.json").read_text())
    iid = upload(client, obama_biden)["id"]
    r = client.post("/v1/annotate", json={"image_id": iid, "entity": "Q6279", "question": "who is on the left?"})
    assert r.status_code == 200, r.text
    ans = r.json()
    assert ans["status"] == "accepted" and ans["entity"] == {"id": "Q6279", "label": "Joe Biden"}, ans
    assert box_iou(ans["region"]["box"], hand["obama_and_biden.jpg"]["Q6279"]) > 0.5, ans["region"]["box"]
    mask = rle_to_mask(ans["region"]["mask"])
    assert mask.shape == (1428, 2000) and mask.sum() > 0
    assert ans["image_id"] == iid and "upload:" not in json.dumps(ans["notes"])
    assert_error(client.post("/v1/annotate", json={"image_id": iid, "entity": "Q0000"}), 404, "E712")
    assert_error(client.post("/v1/annotate", json={"image_id": iid, "entity": "Q76", "mode": "other"}), 422, "E724")
    assert_error(client.post("/v1/annotate", json={"entity": "Q76"}), 422, "E724")


def test_gmner_off(make_app):
    c = make_app(gmner=False)
    c.app.state.engine.gmner = None
    assert_error(c.post("/v1/gmner", json={"text": "Obama in Paris"}), 404, "E739")


# -- the KB -----------------------------------------------------------------------------------
def test_kb_routes(client):
    hits = client.get("/v1/kb/search", params={"q": "obama"}).json()["results"]
    assert hits[0]["id"] == "Q76" and hits[0]["thumbnail"]
    ent = client.get("/v1/kb/entities/Q76").json()
    assert ent["label"] == "Barack Obama" and ent["images"] == 1
    assert {"relation": "P31", "id": "Q5", "label": "human", "depth": 1} in ent["hypernyms"]
    assert "path" not in str(ent).lower() and "/" not in "".join(str(v) for v in ent["aliases"])
    img = client.get("/v1/kb/entities/Q76/image")
    assert img.status_code == 200 and img.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(img.content)).size) <= 256
    assert_error(client.get("/v1/kb/entities/Q461132/image"), 404, "E730")  # Rose Leslie has no photo
    assert_error(client.get("/v1/kb/entities/Q0"), 404, "E730")
    assert_error(client.get("/v1/kb/search", params={"q": "obama", "k": 10_000}), 422, "E724")
    assert_error(client.get("/v1/kb/search"), 422, "E724")


# -- limits -----------------------------------------------------------------------------------
def test_upload_size_and_pixel_limits(make_app, obama_biden):
    c = make_app(max_upload_bytes=50_000, max_pixels=1_000_000)
    assert_error(c.post("/v1/images", content=obama_biden, headers={"Content-Type": "image/jpeg"}), 413, "E720")
    # a decompression bomb: a small PNG of many pixels is refused from its header
    bomb = png_bytes(np.zeros((3000, 3000, 3), np.uint8))
    assert len(bomb) < 50_000
    body = assert_error(c.post("/v1/images", content=bomb, headers={"Content-Type": "image/png"}), 413, "E016")
    assert "9,000,000" in body["message"]
    assert_error(c.post("/v1/link", json={"image": base64.b64encode(bomb).decode()}), 413, "E016")
    assert_error(c.post("/v1/link", json={"image_id": "a" * 32, "text": "x" * 10}), 404, "E721")


def test_text_limit(make_app, obama_biden):
    c = make_app(max_text_chars=20)
    assert_error(c.post("/v1/link", json={"image_id": "a" * 32, "text": "x" * 21}), 422, "E724")
    assert_error(c.post("/v1/gmner", json={"text": "x " * 20}), 422, "E724")


def test_api_key(make_app, obama_biden):
    c = make_app(api_key="s3cret")
    assert_error(c.get("/v1/kb/search", params={"q": "obama"}), 401, "E725")
    assert_error(c.get("/v1/kb/search", params={"q": "obama"}, headers={"X-API-Key": "wrong"}), 401, "E725")
    assert c.get("/v1/kb/search", params={"q": "obama"}, headers={"X-API-Key": "s3cret"}).status_code == 200
    assert c.get("/v1/kb/search", params={"q": "obama"}, headers={"Authorization": "Bearer s3cret"}).status_code == 200
    basic = base64.b64encode(b"labelstudio:s3cret").decode()
    assert c.get("/labelstudio/health", headers={"Authorization": f"Basic {basic}"}).status_code == 200
    assert_error(c.get("/labelstudio/health"), 401, "E725")
    assert c.get("/health").status_code == 200 and c.get("/").status_code == 200  # the page loads; its calls need the key


def hold_engine(client, n: int) -> threading.Event:
    """Occupy ``n`` admitted slots of the app's runner until the returned event is set."""
    release = threading.Event()
    for _ in range(n):
        client.app.state.runner.submit(release.wait, 30)
    return release


def wait_idle(client, seconds: float = 10.0) -> None:
    """Wait until the held calls have left the admission (their slots are given back by the
    futures' done-callbacks, a moment after ``release`` is set)."""
    import time

    admission = client.app.state.runner.admission
    deadline = time.monotonic() + seconds
    while admission.pending and time.monotonic() < deadline:
        time.sleep(0.01)
    assert admission.pending == 0, admission.pending


def test_busy_answers_503_with_retry_after(make_app, obama_biden, spots):
    c = make_app(threads=1, max_pending=2, retry_after=3)
    iid = upload(c, obama_biden)["id"]
    release = hold_engine(c, 2)
    try:
        r = c.post("/v1/link", json={"image_id": iid, "prompt": {"box": spots.obama_box}})
        assert_error(r, 503, "E722")
        assert r.headers["Retry-After"] == "3"
        assert "pixlink_requests_refused_total 1" in c.get("/metrics").text
    finally:
        release.set()
    wait_idle(c)
    r = c.post("/v1/link", json={"image_id": iid, "prompt": {"box": spots.obama_box}})
    assert r.status_code == 200 and r.json()["prediction"] == "Q76"


def test_timeout_answers_504(make_app, obama_biden, spots):
    c = make_app(threads=1, max_pending=4, timeout=0.3)
    iid = upload(c, obama_biden)["id"]
    release = hold_engine(c, 1)
    try:
        assert_error(c.post("/v1/link", json={"image_id": iid, "prompt": {"box": spots.obama_box}}), 504, "E723")
    finally:
        release.set()


def test_not_ready_and_failed(engine, settings):
    from fastapi.testclient import TestClient

    from pixlink.serve import create_app
    from pixlink.serve.engine import Engine

    cold = Engine(settings)
    with TestClient(create_app(settings, engine=cold, load=False)) as c:
        r = c.get("/ready")
        assert r.status_code == 503 and r.json()["code"] == "E727" and r.headers["Retry-After"]
        assert_error(c.post("/v1/link", json={"image_id": "a" * 32}), 503, "E727")
        assert c.get("/health").status_code == 200
        cold.error = "[E300] No backend for role 'faces'"
        assert c.get("/ready").json()["code"] == "E728"
        assert_error(c.get("/v1/kb/search", params={"q": "x"}), 503, "E728")


def test_internal_error_is_json_without_traceback(make_app, obama_biden, monkeypatch):
    c = make_app(raise_server_exceptions=False)
    iid = upload(c, obama_biden)["id"]

    def broken(*a, **k):
        raise RuntimeError("boom at /srv/secret/path")

    monkeypatch.setattr(c.app.state.engine, "link", broken)
    r = c.post("/v1/link", json={"image_id": iid}, headers={"X-Request-ID": "req-42"})
    body = assert_error(r, 500, "E729")
    assert "req-42" in body["message"] and "/srv/secret" not in body["message"] and "boom" not in body["message"]


def test_messages_never_name_server_paths(client, settings):
    from pathlib import Path

    from pixlink.serve.app import make_scrubber

    scrub = make_scrubber(settings)
    kb = str(Path(settings.kb).resolve())
    assert scrub(f"[E114] Entity 'X' is not in the knowledge base '{kb}'.") == \
        "[E114] Entity 'X' is not in the knowledge base '<kb>'."
    for r in (client.get("/v1/kb/entities/Q0"), client.get("/ready"), client.post("/v1/link", json={"image_id": "0" * 32})):
        assert kb not in r.text


def test_cors_off_unless_configured(make_app):
    pre = {"Origin": "https://labelling.example.org", "Access-Control-Request-Method": "POST"}
    off = make_app()
    assert "access-control-allow-origin" not in off.options("/v1/link", headers=pre).headers
    on = make_app(cors_origins=["https://labelling.example.org"])
    r = on.options("/v1/link", headers=pre)
    assert r.headers["access-control-allow-origin"] == "https://labelling.example.org"


def test_metrics(client, obama_biden, spots):
    iid = upload(client, obama_biden)["id"]
    client.post("/v1/link", json={"image_id": iid, "prompt": {"box": spots.obama_box}})
    text = client.get("/metrics").text
    assert 'pixlink_requests_total{method="POST",route="/v1/link",status="200"}' in text
    assert 'pixlink_request_seconds_bucket{le="+Inf",route="/v1/link"}' in text
    assert "pixlink_process_resident_bytes" in text and "pixlink_image_cache_lookups_total" in text
    hits = [ln for ln in text.splitlines() if ln.startswith('pixlink_segmenter_embedding_lookups_total{result="hit"}')]
    assert hits and float(hits[0].split()[-1]) >= 0


def test_page_and_static(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "/static/app.js" in page.text and "http" not in page.text.replace("http-equiv", "")  # no CDN
    js = client.get("/static/app.js")
    assert js.status_code == 200 and "/v1/link" in js.text
    assert client.get("/static/style.css").status_code == 200
