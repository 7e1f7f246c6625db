"""A labelled composite set for instance matching: every logo of the icon package and every flag
of the flag package as KB entities (one plain image each), and query photos made by pasting some
of them into photos that scikit-image ships, with the placement recorded.

Nothing of it is committed: this module *is* the set (a generator with fixed seeds); the files
go to ``$PIXLINK_CACHE/composite/v<RECIPE_VERSION>/``.

* **KB** — ``simple-icons-pack`` (CC0 icon data; ~3,500 brand logos, rendered in the brand colour
  on white, or on dark grey when the colour is too light to see on white) and
  ``svg-country-flags`` (public domain; 256 flags, the npm tarball the demo fetches). Logos or
  flags that look the same (a territory flying its country's flag) are kept once — the one with
  the shortest name (Norway, not Bouvet Island) — the others are left out of the set and listed
  in ``duplicates``.
* **Splits by entity** — a hash of the entity id (with the seed) puts ``nil_fraction`` of the
  entities *out of the KB* (their queries must be answered NIL), and the rest into
  ``calibration`` (``calibration_share``) or ``test``. No entity has queries in both splits.
* **Queries** — for each split, entities drawn at random (flags with ``flag_share``, NIL
  entities with ``nil_share``), each pasted into a random crop of a scikit-image photo with:
  scale (longer side 70-260 px), rotation (+-15 degrees), perspective, a waving cloth (most
  flags), a plate behind half of them, the background's texture and a change of light, partial
  occlusion (a patch of another photo over 10-35 % of the object, in a third of them), the object
  partly out of the frame (one in eight), blur, noise and JPEG quality 35-95.
* **Records** — ``mentions_<split>.jsonl`` in pixlink's mention format (``pixlink link
  calibrate``, ``pixlink eval link``): image, ``box`` (the visible object's XYXY box), ``gold``
  (entity id or null for NIL), ``split``, and ``meta`` with the exact placement: ``quad`` (the
  reference's corners in the photo), ``gt_mask`` (COCO RLE of the visible object), the
  reference image and every parameter drawn.

The photos that carry the demo's real flag queries (astronaut, Grace Hopper) are never used
as backgrounds; neither is any photo of the shared data.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..config import cache_dir
from ..errors import Errors, InputError
from ..log import get_logger
from ..types import Entity, Mention

log = get_logger(__name__)

RECIPE_VERSION = "1"
"""Version of the generated files; bump it when a recipe changes (files are cached by version)."""

BACKGROUNDS = ("brick.png", "camera.png", "chelsea.png", "coffee.png", "coins.png", "grass.png", "gravel.png",
               "hubble_deep_field.jpg", "moon.png", "page.png", "rocket.jpg", "text.png", "retina.jpg", "ihc.png",
               "cell.png", "clock_motion.png")
"""scikit-image's bundled photos used as backgrounds (not astronaut.png: it holds a real US flag
that is a demo query)."""


@dataclass(frozen=True)
class CompositeConfig:
    """How big the set is and how it is split.

    Attributes:
        n_test, n_calibration: queries per split.
        nil_fraction: share of the entities kept out of the KB (NIL entities).
        nil_share: share of each split's queries whose entity is kept out of the KB.
        flag_share: share of the (non-NIL) queries that show a flag.
        calibration_share: share of the entities whose queries go to ``calibration``.
        images_per_logo: KB images per logo: 1 (brand colour on white), or 3 (also black on
            white and white on the brand colour: a 10k-image KB for the benchmarks).
        logo_side, flag_width: size of the KB reference images.
        seed: the seed of everything drawn.
    """

    n_test: int = 600
    n_calibration: int = 300
    nil_fraction: float = 0.06
    nil_share: float = 0.12
    flag_share: float = 0.3
    calibration_share: float = 0.3
    images_per_logo: int = 1
    logo_side: int = 256
    flag_width: int = 480
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_test", "n_calibration"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise InputError(Errors.E010.format(what=f"composite {name}", value=v, reason="an integer >= 0"))
        for name in ("nil_fraction", "nil_share", "flag_share", "calibration_share"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v < 1.0:
                raise InputError(Errors.E010.format(what=f"composite {name}", value=v, reason="a fraction in [0, 1)"))
        if self.images_per_logo not in (1, 3):
            raise InputError(Errors.E010.format(what="composite images_per_logo", value=self.images_per_logo,
                                                reason="1 or 3"))

    def key(self) -> str:
        """A short digest of the settings (folders of different settings do not mix)."""
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]

    def refs_key(self) -> str:
        """A short digest of the settings the rendered references depend on."""
        d = {k: getattr(self, k) for k in ("images_per_logo", "logo_side", "flag_width")}
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]


@dataclass
class Reference:
    """One entity of the set: ``kind`` ``"logo"`` / ``"flag"`` (or ``"image"``: any KB image,
    :func:`kb_image_rgba`), its KB image(s), its split (``"calibration"`` / ``"test"``) and
    whether it is in the KB (``nil`` = kept out)."""

    entity_id: str
    label: str
    kind: str
    images: list[str]
    split: str
    nil: bool
    source: str
    attrs: dict[str, Any] = field(default_factory=dict)

    def entity(self) -> Entity:
        desc = "country or territory (its flag is the image)" if self.kind == "flag" else "brand, product or organisation"
        return Entity(id=self.entity_id, label=self.label, description=desc, images=tuple(self.images),
                      source=self.source, attrs=dict(self.attrs))


@dataclass
class CompositeSet:
    """The generated set: its folder, entities and the mention files per split."""

    root: Path
    config: CompositeConfig
    references: list[Reference]
    duplicates: dict[str, str]
    mention_files: dict[str, Path]

    def kb_entities(self) -> list[Entity]:
        """The KB's entities: every reference that is not held out (NIL)."""
        return [r.entity() for r in self.references if not r.nil]

    def mentions(self, split: str) -> list[Mention]:
        """The labelled mentions of ``split`` (``"calibration"`` or ``"test"``)."""
        from ..eval.datasets.mentions import load_mentions

        return load_mentions(self.mention_files[split]).items

    def to_dict(self) -> dict[str, Any]:
        n_kb = sum(1 for r in self.references if not r.nil)
        return {"root": str(self.root), "recipe_version": RECIPE_VERSION, "config": asdict(self.config),
                "entities": len(self.references), "kb_entities": n_kb, "nil_entities": len(self.references) - n_kb,
                "duplicates": len(self.duplicates), "mention_files": {k: str(v) for k, v in self.mention_files.items()}}


# --------------------------------------------------------------------------------------------
# The KB side: every logo and flag
# --------------------------------------------------------------------------------------------


def _unit(*parts: Any) -> float:
    """A stable number in [0, 1) from ``parts`` (the entity splits)."""
    h = hashlib.sha1("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def _luma(hex_colour: str) -> float:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (0, 2, 4))
    return (0.299 * r + 0.587 * g + 0.114 * b) / 255.0


def _save_png(path: Path, rgb: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    Image.fromarray(np.ascontiguousarray(rgb)).save(tmp, format="PNG", optimize=False)
    os.replace(tmp, path)


def _on(rgba: np.ndarray, colour: tuple[int, int, int], pad: float) -> np.ndarray:
    from .materials import _flatten

    return _flatten(rgba, background=colour, pad=pad)


def _logo_images(icon: Any, base: Path, side: int, n: int) -> list[str]:
    """The KB image(s) of a logo: brand colour on white (on dark grey when the colour is too
    light to see on white); with ``n == 3`` also black on white and white on the brand colour."""
    from .materials import render_logo_rgba

    paths = [base / f"{icon.slug}.png"] + ([base / f"{icon.slug}.black.png", base / f"{icon.slug}.inverse.png"]
                                          if n == 3 else [])
    if all(p.exists() for p in paths):
        return [str(p) for p in paths]
    rgba, _ = render_logo_rgba(icon.slug, side)
    light = _luma(icon.hex) > 0.8
    _save_png(paths[0], _on(rgba, (34, 34, 34) if light else (255, 255, 255), 0.08))
    if n == 3:
        black = rgba.copy()
        black[..., :3] = 0
        _save_png(paths[1], _on(black, (255, 255, 255), 0.08))
        white = rgba.copy()
        white[..., :3] = 255
        brand = tuple(int(icon.hex[i:i + 2], 16) for i in (0, 2, 4))
        _save_png(paths[2], _on(white, brand if not light else (34, 34, 34), 0.08))
    return [str(p) for p in paths]


def _flag_sources(root: Path, fetch: bool) -> tuple[dict[str, str], dict[str, Path]]:
    """``({code: country name}, {code: 1000-px PNG})`` of every flag of the pinned npm tarball."""
    import tarfile

    from .. import fetch as _fetch
    from .materials import COUNTRY_FLAGS_NPM, fetch_pinned, load_records

    d = load_records()["downloads"]["country_flags"]
    archive = fetch_pinned(COUNTRY_FLAGS_NPM, None, fetch=fetch)
    with tarfile.open(archive, "r:*") as tar:
        f = tar.extractfile(tar.getmember("package/countries.json"))
        assert f is not None
        names = {k.lower(): v for k, v in json.loads(f.read()).items()}
    src = root / "sources" / f"{d['name']}-{d['version']}"
    paths = {cc: src / f"{cc}.png" for cc in names}
    _fetch.extract_members(archive, {d["members"] + f"{cc}.png": p for cc, p in paths.items()}, d["filename"])
    return names, paths


def _fingerprint(path: str) -> np.ndarray:
    """A 64 x 64 colour thumbnail of a reference (look-alikes are found by comparing them)."""
    import cv2

    from ..io import load_image

    return cv2.resize(load_image(path), (64, 64), interpolation=cv2.INTER_AREA).astype(np.int16)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Two references look the same: 99 % of their thumbnails' pixels within 30 grey levels."""
    return float(np.percentile(np.abs(a - b).max(axis=2), 99)) < 30.0


def references(config: CompositeConfig = CompositeConfig(), root: str | Path | None = None, *, fetch: bool = True,
               progress: bool = False) -> tuple[list[Reference], dict[str, str]]:
    """Every logo and flag as a :class:`Reference` (rendered once into the cache), and the
    look-alikes left out (``{left out: kept}``)."""
    top = Path(root) if root is not None else cache_dir() / "composite"
    base = top / f"refs-v{RECIPE_VERSION}-{config.refs_key()}"
    base.mkdir(parents=True, exist_ok=True)
    listing = base / "references.json"
    refs: list[Reference] | None = None
    if listing.is_file():  # rendered and de-duplicated before, with these settings
        data = json.loads(listing.read_text("utf-8"))
        if all(Path(p).is_file() for r in data["references"] for p in r["images"]):
            refs, duplicates = [Reference(**r) for r in data["references"]], dict(data["duplicates"])
    if refs is None:
        refs, duplicates = _render_references(config, base, fetch, progress)
        tmp = listing.with_name(f".{listing.name}.part")
        tmp.write_text(json.dumps({"references": [asdict(r) for r in refs], "duplicates": duplicates}) + "\n", "utf-8")
        os.replace(tmp, listing)
    for r in refs:
        r.nil = _unit("nil", config.seed, r.entity_id) < config.nil_fraction
        r.split = "calibration" if _unit("split", config.seed, r.entity_id) < config.calibration_share else "test"
    return refs, duplicates


def _render_references(config: CompositeConfig, base: Path, fetch: bool, progress: bool
                       ) -> tuple[list[Reference], dict[str, str]]:
    import simple_icons_pack as si

    from ..progress import progress as make_progress

    out: list[Reference] = []
    names, flag_png = _flag_sources(base, fetch)
    icons = sorted((getattr(si, n) for n in dir(si) if n.startswith("SI_")), key=lambda i: i.slug)
    with make_progress(disable=not progress) as bar:
        task = bar.add_task("composite: rendering references", total=len(icons) + len(names), rate="")
        for cc in sorted(names):
            eid = f"flag_{cc}"
            path = base / "flags" / f"{cc}.png"
            if not path.exists():
                from PIL import Image

                with Image.open(flag_png[cc]) as im:
                    rgba = np.asarray(im.convert("RGBA"))
                import cv2

                h, w = rgba.shape[:2]
                s = config.flag_width / w
                rgba = cv2.resize(rgba, (config.flag_width, max(1, round(h * s))), interpolation=cv2.INTER_AREA)
                _save_png(path, _on(rgba, (255, 255, 255), 0.0))
            out.append(Reference(eid, names[cc], "flag", [str(path)], "", False, "svg-country-flags-1.2.10",
                                 {"iso3166": cc.upper(), "licence": "public domain (svg-country-flags)"}))
            bar.advance(task)
        for icon in icons:
            eid = f"logo_{icon.slug}"
            imgs = _logo_images(icon, base / "logos", config.logo_side, config.images_per_logo)
            out.append(Reference(eid, icon.title, "logo", imgs, "", False, "simple-icons-pack",
                                 {"hex": icon.hex, "licence": "CC0-1.0 icon data (simple-icons); a trademark of its owner"}))
            bar.advance(task)
    # look-alikes: keep one of each group, the one with the shortest name (a country before
    # its territories: Norway, not Bouvet Island), then the first by id
    duplicates: dict[str, str] = {}
    kept: list[tuple[Reference, np.ndarray]] = []
    coarse: dict[str, list[np.ndarray]] = {"logo": [], "flag": []}
    owners: dict[str, list[int]] = {"logo": [], "flag": []}
    for r in sorted(out, key=lambda r: (r.kind, len(r.label), r.entity_id)):
        fp = _fingerprint(r.images[0])
        small = fp.reshape(16, 4, 16, 4, 3).mean(axis=(1, 3)).ravel()
        twin = None
        if coarse[r.kind]:
            near = np.flatnonzero(np.abs(np.asarray(coarse[r.kind]) - small).mean(axis=1) < 8.0)
            twin = next((kept[owners[r.kind][j]][0] for j in near if _same(kept[owners[r.kind][j]][1], fp)), None)
        if twin is not None:
            duplicates[r.entity_id] = twin.entity_id
            continue
        coarse[r.kind].append(small)
        owners[r.kind].append(len(kept))
        kept.append((r, fp))
    kept.sort(key=lambda kf: kf[0].entity_id)
    return [r for r, _ in kept], duplicates


def _root(root: str | Path | None, config: CompositeConfig) -> Path:
    p = Path(root) if root is not None else cache_dir() / "composite"
    p = p / f"v{RECIPE_VERSION}-{config.key()}"
    p.mkdir(parents=True, exist_ok=True)
    return p.resolve()


# --------------------------------------------------------------------------------------------
# The query side: pasting
# --------------------------------------------------------------------------------------------


def _background(rng: np.random.Generator, name: str) -> np.ndarray:
    """A random crop of a scikit-image photo, resized to a longer side of 480-640 px, maybe
    mirrored, with a slight change of colour."""
    import cv2

    from ..io import load_image
    from .materials import skimage_photo

    img = load_image(skimage_photo(name))
    h, w = img.shape[:2]
    side = int(min(h, w) * rng.uniform(0.55, 1.0))
    aspect = rng.uniform(0.75, 1.33)
    cw, ch = min(w, int(side * aspect)), min(h, int(side / aspect))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    crop = img[y:y + ch, x:x + cw]
    s = rng.uniform(480, 640) / max(ch, cw)
    crop = cv2.resize(crop, (max(8, round(cw * s)), max(8, round(ch * s))),
                      interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    gain = rng.uniform(0.85, 1.15, 3)
    return np.clip(crop.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def _plate(rgba: np.ndarray, rng: np.random.Generator, kind: str) -> tuple[np.ndarray, dict[str, Any]]:
    """``rgba`` on a plate (a rounded board of a contrasting colour) with a margin."""
    import cv2

    h, w = rgba.shape[:2]
    m = int(round(max(h, w) * rng.uniform(0.08, 0.25)))
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    luma = float((rgba[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114]) * a[..., 0]).sum()
                 / max(a.sum(), 1.0) / 255.0)
    if kind == "flag":
        colour = (245, 245, 245) if rng.random() < 0.5 else (40, 40, 44)
    elif luma < 0.55:
        colour = tuple(int(v) for v in rng.integers(205, 256, 3))
    else:
        colour = tuple(int(v) for v in rng.integers(15, 70, 3))
    H, W = h + 2 * m, w + 2 * m
    board = np.zeros((H, W, 4), np.uint8)
    r = int(round(min(H, W) * rng.uniform(0.0, 0.15)))
    cv2.rectangle(board, (r, 0), (W - 1 - r, H - 1), (*colour, 255), -1)
    cv2.rectangle(board, (0, r), (W - 1, H - 1 - r), (*colour, 255), -1)
    for cx, cy in ((r, r), (W - 1 - r, r), (r, H - 1 - r), (W - 1 - r, H - 1 - r)):
        cv2.circle(board, (cx, cy), r, (*colour, 255), -1, cv2.LINE_AA)
    inner = board[m:m + h, m:m + w].astype(np.float32)
    inner[..., :3] = inner[..., :3] * (1 - a) + rgba[..., :3].astype(np.float32) * a
    board[m:m + h, m:m + w] = inner.astype(np.uint8)
    return board, {"margin": m, "colour": list(colour), "radius": r}


def _foreground(ref: Reference, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """The RGBA object to paste and what was drawn for it."""
    from PIL import Image

    from .materials import render_logo_rgba

    info: dict[str, Any] = {}
    if ref.kind == "logo":
        rgba, _ = render_logo_rgba(ref.entity_id[len("logo_"):], 320)
    elif ref.kind == "image":
        rgba, info["cutout"] = kb_image_rgba(ref.images[0])
        if not info["cutout"] and rng.random() < 0.5:
            rgba, info["wave"] = _waved(rgba, rng)
    else:
        with Image.open(ref.images[0]) as im:
            rgba = np.asarray(im.convert("RGBA")).copy()
        if rng.random() < 0.7:
            rgba, info["wave"] = _waved(rgba, rng)
    if rng.random() < 0.5:
        rgba, info["plate"] = _plate(rgba, rng, ref.kind)
    return rgba, info


def kb_image_rgba(path: str | Path, max_side: int = 480) -> tuple[np.ndarray, bool]:
    """Any KB image as the object to paste: ``((H, W, 4) uint8 RGBA, cut out)``. A graphic drawn
    on a plain background (a logo on white) or with transparency is *cut out* (alpha: its own,
    else the pixels not reachable from the border through the border's colour,
    :func:`~pixlink.link.signals.local.border_support`); anything else (a flag, a painting, a
    photo) is pasted whole. The longer side is brought down to ``max_side``."""
    import cv2
    from PIL import Image

    from ..link.signals.local import border_support

    with Image.open(path) as im:
        rgba = np.asarray(im.convert("RGBA")).copy()
    h, w = rgba.shape[:2]
    if max(h, w) > max_side:
        s = max_side / max(h, w)
        rgba = cv2.resize(rgba, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    if (rgba[..., 3] < 250).mean() > 0.01:
        return rgba, True
    support = border_support(np.ascontiguousarray(rgba[..., :3]))
    if support.all():
        return rgba, False
    rgba[..., 3] = np.where(support, 255, 0).astype(np.uint8)
    return rgba, True


def _waved(rgba: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, float]]:
    """``rgba`` waving like cloth (the flags' draw), and the wave drawn."""
    from .materials import _wave

    h, w = rgba.shape[:2]
    wave = {"amplitude": float(h * rng.uniform(0.015, 0.06)), "wavelength": float(w * rng.uniform(0.5, 1.4)),
            "phase": float(rng.uniform(0, 2 * np.pi)), "shade": float(rng.uniform(0.05, 0.3))}
    return _wave(rgba, wave["amplitude"], wave["wavelength"], wave["phase"], wave["shade"]), wave


def _quad(rng: np.random.Generator, fg_hw: tuple[int, int], bg_hw: tuple[int, int]) -> tuple[np.ndarray, dict[str, Any]]:
    """Where the object's corners go: scale, rotation (+-15 degrees), perspective jitter and
    position (partly out of the frame one time in eight)."""
    h, w = fg_hw
    H, W = bg_hw
    side = float(rng.uniform(70, 260))
    side = min(side, 0.8 * min(H, W))
    s = side / max(h, w)
    hw, hh = w * s / 2, h * s / 2
    base = np.array([[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]], np.float64)
    angle = float(rng.uniform(-15, 15))
    t = np.deg2rad(angle)
    R = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    persp = float(rng.uniform(0.0, 0.1))
    jitter = rng.normal(0.0, persp * side, (4, 2))
    q = base @ R.T + jitter
    ext = q.max(axis=0) - q.min(axis=0)
    partial = rng.random() < 0.125
    if partial:
        # push the object across one edge so that 15-40 % of it is out of the frame
        out = float(rng.uniform(0.15, 0.4))
        edge = int(rng.integers(0, 4))
        cx = rng.uniform(ext[0] / 2, W - ext[0] / 2) if W > ext[0] else W / 2
        cy = rng.uniform(ext[1] / 2, H - ext[1] / 2) if H > ext[1] else H / 2
        if edge == 0:
            cx = ext[0] / 2 - out * ext[0]
        elif edge == 1:
            cx = W - ext[0] / 2 + out * ext[0]
        elif edge == 2:
            cy = ext[1] / 2 - out * ext[1]
        else:
            cy = H - ext[1] / 2 + out * ext[1]
    else:
        cx = rng.uniform(ext[0] / 2 + 2, max(W - ext[0] / 2 - 2, ext[0] / 2 + 3))
        cy = rng.uniform(ext[1] / 2 + 2, max(H - ext[1] / 2 - 2, ext[1] / 2 + 3))
    quad = q - (q.max(axis=0) + q.min(axis=0)) / 2 + np.array([cx, cy])
    return quad.astype(np.float32), {"side": round(side, 1), "rotation": round(angle, 2),
                                     "perspective": round(persp, 3), "partial": bool(partial)}


def _occluder(rng: np.random.Generator, bg_hw: tuple[int, int], obj_box: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """A patch of another photo (an ellipse or a rectangle) over 10-35 % of the object's box:
    ``(rgba patch, its quad, info)``."""
    name = BACKGROUNDS[int(rng.integers(0, len(BACKGROUNDS)))]
    tex = _background(rng, name)
    x1, y1, x2, y2 = obj_box
    bw, bh = max(x2 - x1, 4.0), max(y2 - y1, 4.0)
    frac = float(rng.uniform(0.1, 0.35))
    ow, oh = bw * np.sqrt(frac) * rng.uniform(0.7, 1.4), bh * np.sqrt(frac) * rng.uniform(0.7, 1.4)
    ow, oh = max(ow, 4.0), max(oh, 4.0)
    cx, cy = rng.uniform(x1, x2), rng.uniform(y1, y2)
    pw, ph = max(4, int(round(ow))), max(4, int(round(oh)))
    th, tw = tex.shape[:2]
    px, py = int(rng.integers(0, max(1, tw - pw))), int(rng.integers(0, max(1, th - ph)))
    patch = tex[py:py + ph, px:px + pw]
    if patch.shape[0] < ph or patch.shape[1] < pw:
        import cv2

        patch = cv2.resize(tex, (pw, ph), interpolation=cv2.INTER_AREA)
    alpha = np.full((ph, pw), 255, np.uint8)
    shape = "rectangle"
    if rng.random() < 0.5:
        yy, xx = np.mgrid[0:ph, 0:pw]
        alpha = ((((xx + 0.5 - pw / 2) / (pw / 2)) ** 2 + ((yy + 0.5 - ph / 2) / (ph / 2)) ** 2) <= 1.0).astype(np.uint8) * 255
        shape = "ellipse"
    quad = np.array([[cx - pw / 2, cy - ph / 2], [cx + pw / 2, cy - ph / 2], [cx + pw / 2, cy + ph / 2],
                     [cx - pw / 2, cy + ph / 2]], np.float32)
    return np.dstack([patch, alpha]), quad, {"shape": shape, "fraction": round(frac, 3), "photo": name}


def _warp_alpha(rgba: np.ndarray, quad: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` bool: where ``rgba``'s opaque pixels land when its corners go to ``quad``."""
    import cv2

    h, w = rgba.shape[:2]
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    M = cv2.getPerspectiveTransform(src, quad.astype(np.float32))
    a = cv2.warpPerspective(rgba[..., 3].astype(np.float32), M, (hw[1], hw[0]), flags=cv2.INTER_LINEAR)
    return a >= 127.5


def render_query(ref: Reference, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]] | None:
    """One composite photo of ``ref``: ``(jpeg bytes as uint8 array, visible mask (H, W) bool,
    quad (4, 2) of the reference's corners, parameters)``, or None when too little of the object
    stays visible (the caller draws again)."""
    from PIL import Image

    from .materials import composite

    rng = np.random.default_rng(seed)
    bg_name = BACKGROUNDS[int(rng.integers(0, len(BACKGROUNDS)))]
    bg = _background(rng, bg_name)
    fg, fg_info = _foreground(ref, rng)
    quad, geo = _quad(rng, fg.shape[:2], bg.shape[:2])
    look = {"light": float(rng.uniform(0.65, 1.15)), "tint": tuple(float(v) for v in rng.uniform(0.92, 1.08, 3)),
            "texture": float(rng.uniform(0.0, 0.3)), "blur": float(rng.uniform(0.0, 1.4)),
            "noise": float(rng.uniform(0.0, 4.0))}
    img, _ = composite(bg, fg, quad, seed=int(rng.integers(0, 2**31)), **look)
    mask = _warp_alpha(fg, quad, img.shape[:2])
    info: dict[str, Any] = {"background": bg_name, **fg_info, **geo, "look": {k: (list(v) if isinstance(v, tuple) else v)
                                                                              for k, v in look.items()}}
    if rng.random() < 1 / 3 and mask.any():
        ys, xs = np.nonzero(mask)
        patch, oquad, occ = _occluder(rng, img.shape[:2], np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]))
        img, _ = composite(img, patch, oquad, seed=int(rng.integers(0, 2**31)), light=1.0, texture=0.0, blur=0.5,
                           noise=0.0)
        covered = _warp_alpha(patch, oquad, img.shape[:2])
        occ["covered"] = round(float((mask & covered).sum() / max(mask.sum(), 1)), 3)
        mask &= ~covered
        info["occlusion"] = occ
    if mask.sum() < 400:
        return None
    quality = int(rng.integers(35, 96))
    info["jpeg_quality"] = quality
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return np.frombuffer(buf.getvalue(), np.uint8), mask, quad, info


def _queries(refs: list[Reference], split: str, n: int, config: CompositeConfig) -> Iterator[tuple[int, Reference]]:
    """``n`` (index, entity) draws of ``split``: NIL entities with ``nil_share``, flags with
    ``flag_share`` of the rest, each entity at most once while any is left."""
    rng = np.random.default_rng([config.seed, 1 if split == "test" else 2])
    pools = {(kind, nil): [r for r in refs if r.split == split and r.kind == kind and r.nil == nil]
             for kind in ("logo", "flag") for nil in (False, True)}
    for k in pools:
        rng.shuffle(pools[k])
    used = {k: 0 for k in pools}
    for i in range(n):
        nil = bool(rng.random() < config.nil_share)
        kind = "flag" if rng.random() < config.flag_share else "logo"
        order = [(kind, nil), ("logo" if kind == "flag" else "flag", nil), (kind, not nil)]
        key = next((k for k in order if pools[k]), None)
        if key is None:
            return
        pool = pools[key]
        r = pool[used[key] % len(pool)]
        used[key] += 1
        yield i, r


def _write_queries(base: Path, split: str, draws: Iterator[tuple[int, Reference]], seed: int, bar: Any,
                   total: int) -> Path:
    """Render ``draws`` (index, entity) of ``split`` into ``base/queries/<split>/`` and write
    ``base/mentions_<split>.jsonl`` (kept when it exists: files already made are reused)."""
    import orjson

    from ..geometry import mask_to_rle

    path = base / f"mentions_{split}.jsonl"
    if path.exists():
        return path
    qdir = base / "queries" / split
    qdir.mkdir(parents=True, exist_ok=True)
    task = bar.add_task(f"composite: {split} queries", total=total, rate="")
    lines = []
    for i, ref in draws:
        for attempt in range(20):
            got = render_query(ref, int(_unit("query", seed, split, i, attempt) * 2**31))
            if got is not None:
                break
        else:
            log.warning("composite: %s %d (%s) left out: too little of it stays visible", split, i, ref.entity_id)
            continue
        jpg, mask, quad, info = got
        qid = f"{split}_{i:05d}"
        img_path = qdir / f"{qid}.jpg"
        tmp = img_path.with_name(f".{img_path.name}.part")
        tmp.write_bytes(jpg.tobytes())
        os.replace(tmp, img_path)
        ys, xs = np.nonzero(mask)
        box = [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]
        lines.append({
            "id": qid, "image": os.path.relpath(img_path, base), "box": box,
            "gold": None if ref.nil else ref.entity_id, "split": split,
            "meta": {"entity": ref.entity_id, "kind": ref.kind, "nil": ref.nil, "reference": ref.images[0],
                     "quad": np.round(quad, 2).tolist(), "gt_mask": mask_to_rle(mask), "params": info,
                     "composite": True},
        })
        bar.advance(task)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_bytes(b"".join(orjson.dumps(rec) + b"\n" for rec in lines))
    os.replace(tmp, path)
    return path


def generate(config: CompositeConfig = CompositeConfig(), root: str | Path | None = None, *, fetch: bool = True,
             progress: bool = False) -> CompositeSet:
    """Render the references and the queries of both splits (once: files already made are kept)
    and write ``mentions_<split>.jsonl``. See the module docstring."""
    from ..progress import progress as make_progress

    base = _root(root, config)
    refs, dups = references(config, root, fetch=fetch, progress=progress)
    files: dict[str, Path] = {}
    with make_progress(disable=not progress) as bar:
        for split, n in (("calibration", config.n_calibration), ("test", config.n_test)):
            files[split] = _write_queries(base, split, _queries(refs, split, n, config), config.seed, bar, n)
    cs = CompositeSet(root=base, config=config, references=refs, duplicates=dups, mention_files=files)
    (base / "set.json").write_text(json.dumps(cs.to_dict(), indent=1) + "\n")
    return cs


def small_set(root: str | Path, n_logos: int = 40, n_queries: int = 12, n_nil: int = 3, seed: int = 0) -> CompositeSet:
    """A small set of logos only (no download: the icon package is installed), for tests and
    quick checks: ``n_logos`` icons drawn with ``seed`` (the last ``n_nil`` of them kept out of
    the KB), one ``test`` query for each of the first ``n_queries - n_nil`` KB logos and one for
    each NIL logo. Files go under ``root`` (reused when there)."""
    import simple_icons_pack as si

    from ..progress import progress as make_progress

    for name, v, lo in (("n_logos", n_logos, 2), ("n_queries", n_queries, 1), ("n_nil", n_nil, 0)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise InputError(Errors.E010.format(what=f"composite {name}", value=v, reason=f"an integer >= {lo}"))
    if n_nil >= n_logos or n_queries > n_logos:
        raise InputError(Errors.E010.format(what="composite small_set", value=(n_logos, n_queries, n_nil),
                                            reason="n_nil < n_logos and n_queries <= n_logos"))
    config = CompositeConfig(n_test=n_queries, n_calibration=0, nil_fraction=0.0, seed=seed)
    base = Path(root) / f"small-v{RECIPE_VERSION}-{seed}-{n_logos}-{n_queries}-{n_nil}"
    base.mkdir(parents=True, exist_ok=True)
    base = base.resolve()
    slugs = sorted(n for n in dir(si) if n.startswith("SI_"))
    rng = np.random.default_rng(seed)
    icons = [getattr(si, slugs[j]) for j in rng.choice(len(slugs), size=n_logos, replace=False)]
    refs = []
    for j, icon in enumerate(icons):
        imgs = _logo_images(icon, base / "logos", config.logo_side, 1)
        refs.append(Reference(f"logo_{icon.slug}", icon.title, "logo", imgs, "test", j >= n_logos - n_nil,
                              "simple-icons-pack", {"hex": icon.hex}))
    chosen = refs[: n_queries - n_nil] + refs[n_logos - n_nil:]
    with make_progress(disable=True) as bar:
        files = {"test": _write_queries(base, "test", enumerate(chosen), seed, bar, len(chosen))}
    return CompositeSet(root=base, config=config, references=refs, duplicates={}, mention_files=files)


def build_kb(cs: CompositeSet, kb_dir: str | Path, *, overwrite: bool = True) -> Path:
    """Build the set's KB (every non-NIL reference, one entity each) into ``kb_dir``."""
    from ..kb import build_kb_from_entities

    build_kb_from_entities(cs.kb_entities(), kb_dir, overwrite=overwrite, name=f"pixlink-composite-v{RECIPE_VERSION}")
    return Path(kb_dir)


__all__ = ["BACKGROUNDS", "CompositeConfig", "CompositeSet", "RECIPE_VERSION", "Reference", "build_kb", "generate",
           "references", "render_query", "small_set"]

