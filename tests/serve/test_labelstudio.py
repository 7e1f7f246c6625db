"""The Label Studio ML backend: brush RLE against label-studio-sdk's own decoder, the labelling
config, and the routes Label Studio calls, with task images served by a stand-in Label Studio
host on loopback."""

from __future__ import annotations

import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from helpers import need_module
from pixlink.errors import InputError

CONFIG = """
<View>
  <Image name="image" value="$image" zoom="true"/>
  <KeyPointLabels name="kp" toName="image" smart="true"><Label value="entity" background="green"/></KeyPointLabels>
  <RectangleLabels name="box" toName="image" smart="true"><Label value="PER"/><Label value="entity"/></RectangleLabels>
  <BrushLabels name="mask" toName="image"><Label value="PER"/><Label value="entity"/></BrushLabels>
  <TextArea name="qid" toName="image" perRegion="true" editable="true" placeholder="entity id"/>
</View>
"""


def ls_decode(rle, h, w):
    brush = need_module("label_studio_sdk.converter.brush", "the test decodes with Label Studio's own decoder")
    return brush.decode_rle(rle).reshape(h, w, 4)[:, :, 3]


@pytest.mark.parametrize("shape,density", [((1, 1), 1.0), ((7, 5), 0.5), ((64, 48), 0.0), ((120, 97), 0.3),
                                           ((300, 400), 0.02)])
def test_brush_rle_decodes_with_label_studio_sdk(shape, density):
    from pixlink.labelstudio import brush_rle

    rng = np.random.default_rng(sum(shape))
    mask = rng.random(shape) < density
    if shape == (300, 400):  # long runs (> 65,536 values) and a blob
        mask[50:250, 30:370] = True
    got = ls_decode(brush_rle(mask), *shape)
    assert got.dtype == np.uint8 and np.array_equal(got, np.where(mask, 255, 0)), shape


def test_brush_rle_matches_the_sdk_encoder_on_a_mask():
    brush = need_module("label_studio_sdk.converter.brush")
    from pixlink.labelstudio import brush_rle

    mask = np.zeros((40, 60), bool)
    mask[10:30, 5:50] = True
    ours, theirs = brush_rle(mask), brush.mask2rle(np.where(mask, 255, 0).astype(np.uint8))
    assert np.array_equal(brush.decode_rle(ours), brush.decode_rle(theirs))


def test_parse_config():
    from pixlink.serve.labelstudio import parse_config

    t = parse_config(CONFIG)
    assert (t.image, t.data_key) == ("image", "image")
    assert t.rect == ("box", ["PER", "entity"]) and t.brush == ("mask", ["PER", "entity"])
    assert (t.entity, t.entity_kind) == ("qid", "textarea")
    for bad, word in (("<View><Text name='t' value='$t'/></View>", "Image"), ("<View", "XML"),
                      ("<View><Image name='i' value='$i'/></View>", "RectangleLabels")):
        with pytest.raises(InputError, match="E734") as e:
            parse_config(bad)
        assert word in str(e.value)


def test_task_urls_only_from_the_label_studio_host():
    from pixlink.serve.labelstudio import task_image_url

    base = "http://127.0.0.1:8080"
    assert task_image_url("/data/upload/1/a.jpg", base) == "http://127.0.0.1:8080/data/upload/1/a.jpg"
    assert task_image_url("http://127.0.0.1:8080/x.jpg", base) == "http://127.0.0.1:8080/x.jpg"
    for url in ("http://169.254.169.254/latest/meta-data", "http://127.0.0.1:9999/x.jpg", "file:///etc/passwd",
                "https://127.0.0.1:8080/x.jpg"):
        with pytest.raises(InputError, match="E732"):
            task_image_url(url, base)
    with pytest.raises(InputError, match="E735"):
        task_image_url("/data/upload/1/a.jpg", None)


@pytest.fixture(scope="module")
def ls_host(shared_data):
    """A stand-in Label Studio host on loopback serving the test photos; records the
    Authorization headers it sees."""
    seen: list[str | None] = []

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the stdlib's name)
            seen.append(self.headers.get("Authorization"))
            super().do_GET()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(shared_data("photos"))))
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()




@pytest.fixture
def ls_client(make_app, ls_host):
    url, _ = ls_host
    return make_app(label_studio_url=url, label_studio_api_key="ls-token")


@pytest.mark.slow
@pytest.mark.data
def test_health_setup_webhook(ls_client):
    assert ls_client.get("/labelstudio/health").json() == {"status": "UP", "model_class": "PixlinkEntityLinker"}
    assert ls_client.get("/labelstudio/").json()["status"] == "UP"
    r = ls_client.post("/labelstudio/setup", json={"project": "1.1700000000", "schema": CONFIG, "hostname": "x"})
    assert r.status_code == 200 and r.json()["model_version"].startswith("pixlink-")
    bad = ls_client.post("/labelstudio/setup", json={"project": "1", "schema": "<View/>"})
    assert bad.status_code == 400 and bad.json()["code"] == "E734"
    r = ls_client.post("/labelstudio/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 1}})
    assert r.status_code == 201 and r.json()["status"] == "ok"
    assert ls_client.get("/labelstudio/metrics").json() == {}


@pytest.mark.slow
@pytest.mark.data
def test_interactive_click_gives_mask_box_and_entity(ls_client, ls_host, spots):
    url, seen = ls_host
    w, h = 2000, 1428
    x, y = spots.obama_face
    context = {"result": [{"original_width": w, "original_height": h, "from_name": "kp", "to_name": "image",
                           "type": "keypointlabels", "is_positive": True,
                           "value": {"x": 100 * x / w, "y": 100 * y / h, "width": 0.3, "keypointlabels": ["entity"]}}]}
    r = ls_client.post("/labelstudio/predict", json={
        "tasks": [{"id": 1, "data": {"image": "/obama_and_biden.jpg"}}], "label_config": CONFIG, "project": "1.1",
        "params": {"context": context}})
    assert r.status_code == 200, r.text
    (pred,) = r.json()["results"]
    by_type = {res["type"]: res for res in pred["result"]}
    assert set(by_type) == {"rectanglelabels", "brushlabels", "textarea"}
    assert len({res["id"] for res in pred["result"]}) == 1  # one region
    assert by_type["textarea"]["value"]["text"] == ["Q76"] and by_type["textarea"]["from_name"] == "qid"
    box = by_type["rectanglelabels"]["value"]
    assert box["rectanglelabels"] == ["entity"] and 0 < box["x"] < 100 * x / w < box["x"] + box["width"] <= 100
    brush = by_type["brushlabels"]
    assert (brush["original_width"], brush["original_height"]) == (w, h) and brush["value"]["format"] == "rle"
    mask = ls_decode(brush["value"]["rle"], h, w)
    assert mask[y, x] == 255 and mask.sum() > 0
    assert seen and seen[-1] == "Token ls-token"


@pytest.mark.slow
@pytest.mark.data
def test_preannotation_without_context_links_the_faces(ls_client, ls_host):
    url, _ = ls_host
    r = ls_client.post("/labelstudio/predict", json={
        "tasks": [{"id": 7, "data": {"image": f"{url}/obama_and_biden.jpg"}}], "label_config": CONFIG, "project": "1.1"})
    assert r.status_code == 200, r.text
    (pred,) = r.json()["results"]
    qids = [res["value"]["text"][0] for res in pred["result"] if res["type"] == "textarea"]
    assert "Q76" in qids and "Q6279" in qids, qids
    boxes = [res for res in pred["result"] if res["type"] == "rectanglelabels"]
    assert all(b["value"]["rectanglelabels"] == ["PER"] for b in boxes)


@pytest.mark.slow
@pytest.mark.data
def test_images_only_from_label_studio(ls_client, make_app):
    r = ls_client.post("/labelstudio/predict", json={
        "tasks": [{"id": 1, "data": {"image": "http://169.254.169.254/latest/meta-data"}}], "label_config": CONFIG})
    assert r.status_code == 400 and r.json()["code"] == "E732"
    r = ls_client.post("/labelstudio/predict", json={"tasks": [{"id": 1, "data": {"image": "/missing.jpg"}}],
                                                     "label_config": CONFIG})
    assert r.status_code == 502 and r.json()["code"] == "E733"
    small = make_app(label_studio_url=ls_client.app.state.settings.label_studio_url, max_upload_bytes=10_000)
    r = small.post("/labelstudio/predict", json={"tasks": [{"id": 1, "data": {"image": "/obama_and_biden.jpg"}}],
                                                 "label_config": CONFIG})
    assert r.status_code == 413 and r.json()["code"] == "E720"
    r = ls_client.post("/labelstudio/predict", json={"tasks": [], "label_config": CONFIG})
    assert r.status_code == 422 and r.json()["code"] == "E724"
