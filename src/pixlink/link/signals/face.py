"""``face`` — the face in the region against the entities' reference faces (VNEL's person
signal).

One rule chooses the face on both sides (:func:`find_face`): the query's face in the region,
and each entity image's face when ``pixlink kb embed`` builds the ``entity_face`` vectors, so the
two sides are always comparable.

* Role ``faces`` (dlib offline: HOG detector + 128-d ResNet descriptor); space ``entity_face``.
* Raw score: cosine of unit face descriptors (same person ~0.94-1.0 with dlib, different ~0.8).
* An entity without a face photo is *unverified* when a face was found: fusion gives it the
  signal's ``missing_prior`` (see :mod:`pixlink.link.fusion`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ...errors import Errors, InputError
from ...models import roles as R
from ...vecmath import l2_normalise
from ..query import Query
from . import register_signal
from .base import DenseSignal, check_range


@dataclass(frozen=True)
class FaceRule:
    """How a face is chosen, on the query side and the KB side alike.

    Attributes:
        margin: the search window is the region's box grown by this fraction of its size on
            each side (a tight box can cut the face's chin or hair, which the detector needs).
        min_overlap: a face counts for the region when this fraction of its box lies inside
            the region's box (a neighbour's face in the margin does not).
        second_pass_below: when no face is found at upsample 1 and the window's longer side
            is below this many pixels, detect again at upsample 2 (dlib's HOG detector finds
            faces down to ~40 px at upsample 1 and ~20 px at 2; a face that small in a larger
            window is too small to identify anyway, and the second pass costs 4x).
        max_side: a window whose longer side exceeds this is downscaled before detection and
            embedding (a 99-MP photo took 51 s in face detection at full size).
        scan_max_side: with a linker's image cache (:mod:`pixlink.link.imagecache`), the whole
            image is scanned for faces once at this longer side (None = ``max_side``); a region
            whose window holds no scanned face is searched at full resolution by the window
            rule. A service lowers it (1024: 0.3 s instead of 1.3 s for a 2000 x 1428 photo).
        kb_people_only: on the KB side, leave out the images of entities typed (P31) as
            something other than a person (the PER classes of ``link/data/type_classes.json``;
            :func:`~pixlink.link.signals.type.not_a_person`, the ``type`` signal's own rule,
            which scores such an entity 0 beside a face anyway): a flag, a logo or a building
            has no face to find. Entities with no type are kept. The embedding report counts
            what was left out (``left_out``).
    """

    margin: float = 0.3
    min_overlap: float = 0.5
    second_pass_below: int = 400
    max_side: int = 2000
    scan_max_side: int | None = None
    kb_people_only: bool = True

    def __post_init__(self) -> None:
        check_range("face margin", self.margin, 0.0, 5.0)
        check_range("face min_overlap", self.min_overlap, 0.0, 1.0)
        for what, v in (("max_side", self.max_side), ("scan_max_side", self.scan_max_side)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 64):
                raise InputError(Errors.E010.format(what=f"face {what}", value=v, reason="must be an integer >= 64"))


def _window(image: np.ndarray, box: Any, margin: float) -> tuple[int, int, int, int]:
    h, w = image.shape[:2]
    if box is None:
        return 0, 0, w, h
    x1, y1, x2, y2 = (float(v) for v in box)
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    return int(max(x1 - mx, 0)), int(max(y1 - my, 0)), int(min(x2 + mx, w)), int(min(y2 + my, h))


def find_face(backend: Any, image: np.ndarray, box: Any = None, rule: FaceRule = FaceRule()
              ) -> tuple[np.ndarray, Any] | None:
    """The face of a region (or of the whole image when ``box`` is None) by ``rule``.

    Args:
        backend: a :class:`~pixlink.models.roles.FaceModel`.
        image: ``(H, W, 3)`` uint8 RGB.
        box: the region's XYXY box in original pixels, or None for the whole image.

    Returns:
        ``(window, face)`` — the (possibly downscaled) window image the face was found in and
        the face in that window's pixels, ready for ``backend.embed(window, [face])`` — or None
        when no face of the region is found. The largest qualifying face wins.
    """
    x1, y1, x2, y2 = _window(image, box, rule.margin)
    sub = np.ascontiguousarray(image[y1:y2, x1:x2])
    if sub.size == 0:
        return None
    scale = 1.0
    longer = max(sub.shape[:2])
    if longer > rule.max_side:
        import cv2

        scale = rule.max_side / longer
        sub = cv2.resize(sub, (max(1, round(sub.shape[1] * scale)), max(1, round(sub.shape[0] * scale))),
                         interpolation=cv2.INTER_AREA)
    faces = backend.detect(sub, upsample=1)
    if not faces and max(sub.shape[:2]) < rule.second_pass_below:
        faces = backend.detect(sub, upsample=2)
    rb = None if box is None else np.asarray([float(v) for v in box], dtype=np.float64)
    best, best_area = None, 0.0
    for f in faces:
        fb = np.asarray(f.box, dtype=np.float64) / scale + np.array([x1, y1, x1, y1])
        area = float((fb[2] - fb[0]) * (fb[3] - fb[1]))
        if area <= 0:
            continue
        if rb is not None:
            inter_w = max(min(fb[2], rb[2]) - max(fb[0], rb[0]), 0.0)
            inter_h = max(min(fb[3], rb[3]) - max(fb[1], rb[1]), 0.0)
            if inter_w * inter_h / area < rule.min_overlap:
                continue
        if area > best_area:
            best, best_area = f, area
    return None if best is None else (sub, best)


def face_vector(backend: Any, image: np.ndarray, box: Any = None, rule: FaceRule = FaceRule()) -> np.ndarray | None:
    """The unit ``(D,)`` descriptor of the region's face by ``rule``, or None (no face)."""
    found = find_face(backend, image, box, rule)
    if found is None:
        return None
    window, face = found
    return l2_normalise(backend.embed(window, [face])[0])


@dataclass
class FaceScan:
    """The faces of a whole image, found once by the rule (kept by an
    :class:`~pixlink.link.imagecache.ImageCache` for every prompt on the image).

    Attributes:
        faces: the faces found, boxes XYXY in *original* pixels.
        scale: scan pixels per original pixel (< 1 when the image was downscaled to the
            rule's ``max_side`` for the scan).
        upsample: the detector's upsampling of the pass that found them.
    """

    faces: list[Any]
    scale: float
    upsample: int


def scan_faces(backend: Any, image: np.ndarray, rule: FaceRule = FaceRule()) -> FaceScan:
    """Every face of an ``(H, W, 3)`` uint8 image by the same rule as :func:`find_face` (the
    whole image as the window: downscaled to ``rule.scan_max_side``, a second pass at upsample 2
    for a small image with no face at upsample 1)."""
    from ...models.roles import Face

    h, w = image.shape[:2]
    scale, sub = 1.0, image
    side = rule.scan_max_side or rule.max_side
    if max(h, w) > side:
        import cv2

        scale = side / max(h, w)
        sub = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    up = 1
    faces = backend.detect(sub, upsample=1)
    if not faces and max(sub.shape[:2]) < rule.second_pass_below:
        up = 2
        faces = backend.detect(sub, upsample=2)
    out = [Face(box=np.asarray(f.box, dtype=np.float64) / scale, score=f.score) for f in faces]
    return FaceScan(out, scale, up)


def _overlap(face_box: np.ndarray, box: np.ndarray) -> float:
    """Fraction of ``face_box``'s area inside ``box`` (both XYXY)."""
    area = float((face_box[2] - face_box[0]) * (face_box[3] - face_box[1]))
    if area <= 0:
        return 0.0
    iw = max(min(face_box[2], box[2]) - max(face_box[0], box[0]), 0.0)
    ih = max(min(face_box[3], box[3]) - max(face_box[1], box[1]), 0.0)
    return iw * ih / area


def _tag(backend: Any, rule: FaceRule) -> str:
    return f"{backend.model_id}|{rule}"


def image_faces(cache: Any, key: str, backend: Any, image: np.ndarray, rule: FaceRule = FaceRule()) -> FaceScan:
    """The whole-image face scan of image ``key`` (:func:`scan_faces`), done once per image and
    kept in ``cache`` (an :class:`~pixlink.link.imagecache.ImageCache`)."""
    return cache.get(key, "faces|" + _tag(backend, rule), lambda: scan_faces(backend, image, rule))


def cached_face_vector(cache: Any, key: str, backend: Any, image: np.ndarray, box: Any,
                       rule: FaceRule = FaceRule()) -> np.ndarray | None:
    """:func:`face_vector` with the per-image work done once per image.

    The whole image is scanned once (:func:`scan_faces`); a prompt takes the largest scanned face
    of which ``rule.min_overlap`` lies inside its box, and each face's descriptor is computed once
    (on the original pixels). Where the scan cannot speak for the region's window — no scanned
    face lies in the window, and the window is small enough for the upsample-2 pass or the scan
    ran on a downscaled image — the window rule of :func:`find_face` runs as without a cache
    (its answer kept for that window).

    Args:
        cache: an :class:`~pixlink.link.imagecache.ImageCache`; ``key``: the image's key
            (:func:`pixlink.regions.image_key`).
        image: ``(H, W, 3)`` uint8 RGB; ``box``: the region's XYXY box (original pixels) or None.
    """
    tag = _tag(backend, rule)
    scan = image_faces(cache, key, backend, image, rule)
    h, w = image.shape[:2]
    rb = np.array([0.0, 0.0, w, h]) if box is None else np.asarray([float(v) for v in box], dtype=np.float64)
    best, best_area = None, 0.0
    for i, f in enumerate(scan.faces):
        fb = f.box
        area = float((fb[2] - fb[0]) * (fb[3] - fb[1]))
        if area > best_area and _overlap(fb, rb) >= rule.min_overlap:
            best, best_area = i, area
    if best is not None:
        return _descriptor(cache, key, tag, backend, image, scan, best)
    x1, y1, x2, y2 = _window(image, box, rule.margin)
    win = np.array([x1, y1, x2, y2], dtype=np.float64)
    in_window = any(_overlap(f.box, win) > 0 for f in scan.faces)
    small = max(x2 - x1, y2 - y1) < rule.second_pass_below
    if in_window or (not small and scan.scale >= 1.0):
        return None  # the window pass would see what the scan saw
    return cache.get(key, f"window{(x1, y1, x2, y2)}|" + tag, lambda: face_vector(backend, image, box, rule))


def _descriptor(cache: Any, key: str, tag: str, backend: Any, image: np.ndarray, scan: FaceScan, i: int) -> np.ndarray:
    face = scan.faces[i]
    return cache.get(key, f"face{i}|" + tag, lambda: l2_normalise(backend.embed(image, [face])[0]))


WARM_FACES = 8
""":meth:`FaceSignal.warm_image` computes the descriptors of at most this many faces of an image
ahead of its prompts (the largest first); the others are computed when a prompt points at them."""


@register_signal
class FaceSignal(DenseSignal):
    name = "face"
    role = R.FACES
    space = "entity_face"
    needs_image = True
    description = "the face in the region <-> entities' reference faces"
    Options = FaceRule

    def query_vector(self, q: Query, ctx: Any, backend: Any) -> np.ndarray | None:
        assert q.image is not None and q.region is not None
        cache = getattr(ctx, "image_cache", None)
        if cache is not None and q.image_key is not None:
            vec = cached_face_vector(cache, q.image_key, backend, q.image, q.region.bbox, self.options)
        else:
            vec = face_vector(backend, q.image, q.region.bbox, self.options)
        if vec is None:
            q.note("face: no face found in the region; the face signal did not run")
            return None
        q.face_found = True
        return vec

    def warm_image(self, q: Query, ctx: Any) -> None:
        """Scan the image's faces into the linker's image cache now (``Linker.prepare_image``)."""
        cache = getattr(ctx, "image_cache", None)
        if cache is None or q.image is None or q.image_key is None:
            return
        backend = ctx.backend(self.role, q)
        if backend is None:
            return
        rule = self.options
        tag = _tag(backend, rule)
        scan = image_faces(cache, q.image_key, backend, q.image, rule)
        areas = [float((f.box[2] - f.box[0]) * (f.box[3] - f.box[1])) for f in scan.faces]
        for i in sorted(range(len(areas)), key=lambda j: -areas[j])[:WARM_FACES]:
            _descriptor(cache, q.image_key, tag, backend, q.image, scan, i)

    def kb_items(self, kb: Any) -> list[tuple[str, Any]]:
        return self.kb_selection(kb)[0]

    def kb_selection(self, kb: Any) -> tuple[list[tuple[str, Any]], dict[str, int]]:
        """The KB images to embed, and ``{reason: entities left out}`` (``kb_people_only``)."""
        from ...index.embed import image_items
        from .type import not_a_person, person_classes

        ents = list(kb.entities_with_images(resolved_only=False))
        if not self.options.kb_people_only:
            return list(image_items(ents)), {}
        people = person_classes()
        kept = [e for e in ents if not not_a_person(e.types, people)]
        gone = len(ents) - len(kept)
        return list(image_items(kept)), ({"typed as something other than a person": gone} if gone else {})

    def kb_encoder(self, backend: Any, batch_size: int) -> Callable[[list[Any]], np.ndarray]:
        from ...io import load_image

        rule = self.options

        def encode(paths: list[Any]) -> np.ndarray:
            out = []
            for p in paths:
                vec = face_vector(backend, load_image(p), None, rule)
                if vec is None:
                    raise InputError(Errors.E326.format(backend=backend.name, path=str(p), space=self.space))
                out.append(vec)
            return np.asarray(out, dtype=np.float32)

        return encode
