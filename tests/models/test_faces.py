"""dlib faces on real photos: Obama matches Obama and differs from Biden."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import need_backend

from pixlink.errors import InputError
from pixlink.io import load_image
from pixlink.models import roles as R
from pixlink.models.backends.faces import SAME_PERSON_THRESHOLD, face_distance, face_similarity


@pytest.fixture(scope="module")
def faces_model():
    return need_backend(R.FACES, "dlib")


def _faces(model, path):
    img = load_image(path)
    found = model.detect(img)
    return img, found, model.embed(img, found)


@pytest.mark.slow
@pytest.mark.data
def test_obama_matches_obama_and_differs_from_biden(faces_model, shared_data):
    assert isinstance(faces_model, R.FaceModel)
    img, obama, e_obama = _faces(faces_model, shared_data("photos", "obama.jpg"))
    assert len(obama) == 1
    h, w = img.shape[:2]
    f = obama[0]
    assert 0 <= f.box[0] < f.box[2] <= w and 0 <= f.box[1] < f.box[3] <= h
    assert f.landmarks.shape == (5, 2)
    inside = (f.landmarks[:, 0] >= f.box[0] - 5) & (f.landmarks[:, 0] <= f.box[2] + 5)
    assert inside.all()

    _, biden, e_biden = _faces(faces_model, shared_data("photos", "biden.jpg"))
    _, pair, e_pair = _faces(faces_model, shared_data("photos", "obama_and_biden.jpg"))
    assert len(biden) == 1 and len(pair) >= 2
    assert e_obama.shape == (1, 128) and e_obama.dtype == np.float32

    d_obama = face_distance(e_obama[0], e_pair)  # (len(pair),)
    d_biden = face_distance(e_biden[0], e_pair)
    i_obama, i_biden = int(np.argmin(d_obama)), int(np.argmin(d_biden))
    assert i_obama != i_biden  # two different faces of the pair photo
    assert d_obama[i_obama] < SAME_PERSON_THRESHOLD  # measured 0.375
    assert d_biden[i_biden] < SAME_PERSON_THRESHOLD  # measured 0.409
    assert d_obama[i_biden] > SAME_PERSON_THRESHOLD  # Obama vs Biden's face: 0.834
    assert face_distance(e_obama[0], e_biden[0]) > SAME_PERSON_THRESHOLD  # 0.840
    assert not np.allclose(pair[i_obama].box, pair[i_biden].box)


@pytest.mark.slow
@pytest.mark.data
def test_embed_from_a_box_alone_matches_detected(faces_model, shared_data):
    img, found, emb = _faces(faces_model, shared_data("photos", "obama.jpg"))
    box_only = [R.Face(box=found[0].box.copy())]  # e.g. from another detector, no landmarks
    again = faces_model.embed(img, box_only)
    assert float(face_distance(emb[0], again[0])) < 1e-4


@pytest.mark.slow
def test_no_face_and_bad_input(faces_model):
    rng = np.random.default_rng(0)
    blank = np.full((240, 320, 3), 200, np.uint8)
    noise = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    assert faces_model.detect(blank) == []
    assert faces_model.detect(noise) == []
    empty = faces_model.embed(blank, [])
    assert empty.shape == (0, 128)
    with pytest.raises(InputError, match=r"\[E324\]"):
        faces_model.embed(blank, [R.Face(box=np.array([400.0, 10, 450, 60]))])
    with pytest.raises(InputError, match=r"\[E002\]"):
        faces_model.embed(blank, [R.Face(box=np.array([50.0, 50, 40, 60]))])
    with pytest.raises(InputError, match=r"\[E001\]"):
        faces_model.detect(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(InputError, match=r"\[E320\]"):
        faces_model.detect(blank, upsample=-1)


def test_distance_helpers_and_options():
    a = np.eye(3, 128, dtype=np.float32)
    assert face_distance(a, a).shape == (3, 3)
    assert face_distance(a[0], a).shape == (3,)
    assert float(face_distance(a[0], a[1])) == pytest.approx(np.sqrt(2), rel=1e-6)
    s = face_similarity(np.array([0.3, SAME_PERSON_THRESHOLD, 0.9]))
    assert s[1] == pytest.approx(0.5) and s[0] > 0.95 and s[2] < 0.05
    with pytest.raises(InputError, match=r"\[E320\]"):
        face_distance(np.zeros(128), np.zeros(64))
    with pytest.raises(InputError, match=r"\[E323\]"):
        need_backend(R.FACES, "dlib", detector="yolo")
