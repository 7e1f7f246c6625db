"""A small labelled set of *real* images for training tests: photos of people (../shared/data
photos) and of things (scikit-image's and matplotlib's bundled photos), each an entity whose
KB image is the clean photo, and mentions that are composites: a jittered view of the photo
(crop, rotation, flip, colour, blur) pasted into another photo, with the box recorded.

Views are split by a seed, never by entity: the test views are other composites of the same
entities, so training can only help by learning what stays the same under the changes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

PEOPLE = {  # shared photos -> (QID, label)
    "obama.jpg": ("Q76", "Barack Obama"),
    "biden.jpg": ("Q6279", "Joe Biden"),
    "johnsnow_test1.jpg": ("Q357607", "Kit Harington"),
    "lin-manuel-miranda.png": ("Q1646482", "Lin-Manuel Miranda"),
    "alex-lacamoire.png": ("Q4717244", "Alex Lacamoire"),
}
THINGS = {  # scikit-image data file -> (id, label)
    "astronaut.png": ("Q272883", "Eileen Collins"),
    "camera.png": ("X_camera", "cameraman photo"),
    "chelsea.png": ("X_chelsea", "Chelsea the cat"),
    "coffee.png": ("X_coffee", "cup of coffee"),
    "rocket.jpg": ("X_rocket", "rocket on the launch pad"),
    "motorcycle_left.png": ("X_motorcycle", "motorcycle"),
    "retina.jpg": ("X_retina", "retina photograph"),
    "hubble_deep_field.jpg": ("X_hubble", "Hubble Deep Field"),
    "coins.png": ("X_coins", "Greek coins"),
    "moon.png": ("X_moon", "surface of the Moon"),
    "page.png": ("X_page", "page of text"),
}
BACKGROUNDS = ("grass.png", "brick.png", "gravel.png")


def _skimage_dir() -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data"


def _rgb(img: np.ndarray) -> np.ndarray:
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.ascontiguousarray(img[..., :3]).astype(np.uint8)


def _jitter(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    import cv2

    h, w = img.shape[:2]
    s = rng.uniform(0.55, 0.9)
    ch, cw = int(h * s), int(w * s)
    y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    out = img[y:y + ch, x:x + cw]
    if rng.random() < 0.5:
        out = out[:, ::-1]
    ang = rng.uniform(-25, 25)
    m = cv2.getRotationMatrix2D((cw / 2, ch / 2), ang, 1.0)
    out = cv2.warpAffine(np.ascontiguousarray(out), m, (cw, ch), borderMode=cv2.BORDER_REFLECT)
    hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-40, 40)) % 180
    hsv[..., 1] *= rng.uniform(0.4, 1.4)
    hsv[..., 2] *= rng.uniform(0.6, 1.3)
    out = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB)
    if rng.random() < 0.5:
        g = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)
        out = np.stack([g] * 3, axis=-1)
    if rng.random() < 0.5:
        out = cv2.GaussianBlur(out, (5, 5), rng.uniform(0.8, 2.0))
    return out


def build(out: Path, photos: Path, views: dict[str, int], seed: int = 0) -> dict[str, object]:
    """Write KB images, composite mention images and ``<part>.mentions.jsonl`` into ``out``.

    ``views``: part name -> composites per entity. Returns ``{"entities": [...], "parts":
    {part: path}}``; entities are dicts for :func:`pixlink.kb.build_kb_from_entities`."""
    import cv2
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    sk = _skimage_dir()
    sources = {}
    for f, (qid, label) in PEOPLE.items():
        sources[qid] = (label, _rgb(np.asarray(Image.open(photos / f).convert("RGB"))))
    for f, (qid, label) in THINGS.items():
        sources[qid] = (label, _rgb(np.asarray(Image.open(sk / f))))
    backs = [_rgb(np.asarray(Image.open(sk / f))) for f in BACKGROUNDS]
    entities = []
    for qid, (label, img) in sources.items():
        p = out / "kb" / f"{qid}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(p)
        entities.append({"id": qid, "label": label, "images": [str(p)]})
    rng = np.random.default_rng(seed)
    parts = {}
    for part, n in views.items():
        recs = []
        for qid, (label, img) in sources.items():
            for v in range(n):
                obj = _jitter(img, rng)
                bg = backs[int(rng.integers(len(backs)))]
                canvas = cv2.resize(bg, (320, 240), interpolation=cv2.INTER_AREA).copy()
                side = int(rng.integers(60, 130))
                scale = side / max(obj.shape[:2])
                obj = cv2.resize(obj, (max(8, int(obj.shape[1] * scale)), max(8, int(obj.shape[0] * scale))),
                                 interpolation=cv2.INTER_AREA)
                oh, ow = obj.shape[:2]
                y, x = int(rng.integers(0, 240 - oh + 1)), int(rng.integers(0, 320 - ow + 1))
                canvas[y:y + oh, x:x + ow] = obj
                path = out / part / f"{qid}-{v}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(canvas).save(path, quality=80)
                recs.append({"id": f"{part}-{qid}-{v}", "image": str(path), "box": [x, y, x + ow, y + oh],
                             "text": f"a photo with {label}", "gold": qid})
        f = out / f"{part}.mentions.jsonl"
        f.write_text("".join(json.dumps(r) + "\n" for r in recs))
        parts[part] = f
    return {"entities": entities, "parts": parts}
