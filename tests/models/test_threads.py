"""Issue #11: one backend instance shared by threads. Four threads calling the same instance
over the shared photos, each starting at another photo so that different images are in flight
at once, must give exactly the outputs of serial calls (and no crash: before the fix, dlib's
detector / ResNet shared by threads corrupted the heap, ``free(): invalid size``)."""

from __future__ import annotations

import threading
from typing import Any, Callable

import numpy as np
import pytest
from helpers import need_backend, shared

from pixlink.io import load_image

PHOTOS = ("obama.jpg", "biden.jpg", "two_people.jpg")
THREADS = 4


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    return [load_image(shared("photos", p)) for p in PHOTOS]


def _centre_box(img: np.ndarray) -> list[float]:
    h, w = img.shape[:2]
    return [0.25 * w, 0.1 * h, 0.75 * w, 0.7 * h]


def _same_as_serial(run: Callable[[np.ndarray], Any], photos: list[np.ndarray], rounds: int) -> None:
    serial = [run(img) for img in photos]
    results: list[tuple[int, Any]] = []
    errors: list[Exception] = []
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def worker(k: int) -> None:
        start.wait()
        for r in range(rounds):
            for i in range(len(photos)):
                j = (i + k + r) % len(photos)
                try:
                    out = run(photos[j])
                except Exception as exc:  # noqa: BLE001 - collected, and re-raised in the test's thread
                    with lock:
                        errors.append(exc)
                    return
                with lock:
                    results.append((j, out))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    assert len(results) == THREADS * rounds * len(photos)
    for j, out in results:
        assert out == serial[j], f"item {j}: a threaded call differs from the serial one"


@pytest.mark.slow
@pytest.mark.data
def test_dlib_faces_shared_by_threads(photos):
    model = need_backend("faces", "dlib")

    def run(img):
        faces = model.detect(img)
        return [f.box.tolist() for f in faces], model.embed(img, faces).tobytes()

    _same_as_serial(run, photos, rounds=1)


@pytest.mark.slow
@pytest.mark.data
def test_efficientnet_lite_shared_by_threads(photos):
    enc = need_backend("image_embed", "efficientnet_lite")

    def run(img):
        f = enc.encode_images([img, img[:, ::-1].copy()], layers=(5,))
        return f.embeds.tobytes(), f.logits.tobytes(), f.cls_layers[5].tobytes()

    _same_as_serial(run, photos, rounds=2)


@pytest.mark.slow
@pytest.mark.data
def test_conse_shared_by_threads(photos, tmp_path):
    conse = need_backend("image_text", "conse_efficientnet", cache_dir=str(tmp_path))
    texts = ["a man in a suit", "a red rose", "two people at a podium"]

    def run(img):
        f = conse.encode_images([img])
        return f.embeds.tobytes(), f.patch_tokens.tobytes(), conse.encode_texts(texts).tobytes()

    _same_as_serial(run, photos, rounds=1)


@pytest.mark.slow
@pytest.mark.data
def test_litemedsam_shared_by_threads(photos):
    seg = need_backend("segment", "litemedsam")

    def run(img):
        (p,) = seg.predict(seg.embed_image(img), box=_centre_box(img))
        return p.mask.tobytes(), p.score

    before = seg.encoder_calls
    _same_as_serial(run, photos, rounds=1)
    assert seg.encoder_calls - before == (THREADS + 1) * len(photos)  # counted under a lock: none lost


@pytest.mark.slow
@pytest.mark.data
def test_grabcut_shared_by_threads(photos):
    seg = need_backend("segment", "grabcut")

    def run(img):
        h = seg.embed_image(img)
        (p,) = seg.predict(h, box=_centre_box(img))
        return p.mask.tobytes(), p.score

    _same_as_serial(run, photos, rounds=1)


@pytest.mark.slow
def test_minilm_shared_by_threads():
    enc = need_backend("text_embed", "minilm")
    batches = [["Barack Obama at the White House", "a red rose"], ["Joe Biden smiling"] * 3,
               ["Kit Harington and Rose Leslie", "Lin-Manuel Miranda on stage", "a tie"]]

    def run(texts):
        return enc.encode(texts, batch_size=2).tobytes()

    _same_as_serial(run, batches, rounds=3)
