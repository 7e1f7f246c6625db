"""The material of ``pixlink demo``: a small KB and region queries, from registry packages only.

The records — pinned downloads, entities with their licences and QID checks, queries with
their boxes, composite recipes — are data: ``data/materials.json`` (:data:`DATA_PATH`), read
and checked by :func:`load_records`. This module holds only the code that reads, checks,
fetches and renders them.

Everything here is assembled at run time on a machine with no model hub:

* **installed Python packages** — scikit-image's bundled sample photos (``skimage/data``:
  astronaut = Eileen Collins, camera, chelsea, coffee, rocket, grass, brick), matplotlib's
  ``sample_data/grace_hopper.jpg``, and brand icons from ``simple-icons-pack`` (CC0 SVG)
  rendered with ``resvg-py``;
* **a PyPI sdist** — ``face_recognition==1.3.0``'s source distribution carries
  ``tests/test_images/`` (Barack Obama in three different photos, Joe Biden); the wheel does not,
  so the sdist is fetched once with ``pip download`` (sha256 pinned) into the cache;
* **an npm tarball** — ``svg-country-flags@1.2.10`` (public domain; PNG renders of Wikipedia's
  flag SVGs), fetched once with ``npm pack`` (sha256 pinned) into the cache;
* **generated files** — logo PNGs and the composite query photos, written under
  ``pixlink.config.cache_dir() / "demo"``.

Nothing is committed to the repository. Every entity and query records its licence and
attribution (``Entity.attrs["licence"]``, ``["attribution"]``; :class:`DemoQuery`).

Rules the material keeps (``tests/demo/test_materials.py`` checks them): a query photo is never
a KB reference image of any entity (not byte-identical, not a near duplicate); composites say so
in their description; every box lies inside its image.

Boxes are XYXY in original-image pixels. Face boxes were measured once with dlib's HOG frontal
face detector (``get_frontal_face_detector()``, upsample 1) and widened to the head; the other
boxes were read off the images by eye.

Errors use codes E760–E764 of the catalogue (:mod:`pixlink.errors`).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import string
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from .. import fetch as _fetch
from ..config import cache_dir
from ..fetch import Pinned
from ..errors import Errors, PixlinkError
from ..log import get_logger
from ..types import Entity, Mention, Region

log = get_logger(__name__)

RECIPE_VERSION = "1"
"""Version of the generated files (logos, composites); bump it when a recipe changes."""


class DemoMaterialError(PixlinkError, RuntimeError):
    """The demo material cannot be assembled (a package is missing, a fetch failed)."""


Msg = Errors  # the demo's messages live in the catalogue (E760-E764)


# --------------------------------------------------------------------------------------------
# Pinned downloads (registry packages that are not installed as Python modules)
# --------------------------------------------------------------------------------------------


def demo_root(root: str | Path | None = None) -> Path:
    """Folder of the generated and fetched demo files: ``root`` or ``cache_dir()/"demo"``."""
    p = Path(root) if root is not None else cache_dir() / "demo"
    p.mkdir(parents=True, exist_ok=True)
    return p.resolve()


def fetch_pinned(pin: Pinned, root: str | Path | None = None, *, fetch: bool = True) -> Path:
    """Path of ``pin``'s archive in ``demo_root()/downloads``, fetching it once if needed
    (:func:`pixlink.fetch.fetch_pinned`; its errors come as :class:`DemoMaterialError`)."""
    try:
        return _fetch.fetch_pinned(pin, demo_root(root) / "downloads", fetch=fetch)
    except _fetch.FetchError as exc:
        raise DemoMaterialError(str(exc)) from exc


def _extract(archive: Path, members: dict[str, Path], what: str) -> None:
    try:
        _fetch.extract_members(archive, members, what)
    except _fetch.FetchError as exc:
        raise DemoMaterialError(str(exc)) from exc


# --------------------------------------------------------------------------------------------
# Installed packages
# --------------------------------------------------------------------------------------------


def _package_dir(module: str, why: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise DemoMaterialError(Msg.E760.format(package=module, why=why))
    return Path(list(spec.submodule_search_locations)[0]).resolve()


def skimage_photo(name: str) -> Path:
    """A photo bundled in the scikit-image wheel (``skimage/data/<name>``), not fetched by pooch."""
    p = _package_dir("skimage", "its bundled sample photos") / "data" / name
    if not p.exists():
        raise DemoMaterialError(Msg.E763.format(what="scikit-image's skimage/data", member=name))
    return p


def matplotlib_photo(name: str) -> Path:
    """A file of matplotlib's ``mpl-data/sample_data``."""
    p = _package_dir("matplotlib", "its sample data") / "mpl-data" / "sample_data" / name
    if not p.exists():
        raise DemoMaterialError(Msg.E763.format(what="matplotlib's sample_data", member=name))
    return p


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoQuery:
    """One demo query: a region of a real photo (or a labelled composite), an optional caption,
    and the expected answer.

    Attributes:
        id: short stable name.
        image: absolute path of the query photo.
        box: ``(x1, y1, x2, y2)`` XYXY in original-image pixels.
        caption: text given with the image, or ``None``.
        expected: the expected entity QID, ``None`` for NIL (not in the KB).
        kind: ``"face"``, ``"image"`` (image<->image match), ``"caption"`` (text names an entity
            with no photo in the KB) or ``"nil"``.
        description: what the case shows, one sentence (composites say "COMPOSITE").
        composite: True when the photo was generated by pasting a KB image onto a real photo.
        licence, attribution: of the query photo (and of the pasted material for composites).
    """

    id: str
    image: str
    box: tuple[float, float, float, float]
    caption: str | None
    expected: str | None
    kind: str
    description: str
    composite: bool = False
    licence: str = ""
    attribution: str = ""

    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` of the query photo."""
        from PIL import Image

        with Image.open(self.image) as im:
            return (im.height, im.width)

    def region(self) -> Region:
        return Region.from_box(self.box, image_size=self.image_size())

    def to_mention(self) -> Mention:
        """The query as a :class:`~pixlink.types.Mention` (gold = ``expected``; NIL is ``None``)."""
        return Mention(
            id=self.id, image=self.image, region=self.region(), text=self.caption, gold=self.expected,
            labelled=True, split="demo",
            meta={"kind": self.kind, "description": self.description, "composite": self.composite,
                  "licence": self.licence, "attribution": self.attribution},
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["box"] = list(self.box)
        return d


@dataclass
class DemoMaterials:
    """The assembled demo: KB entities (with reference images) and queries.

    ``notes`` lists what was left out and why (only when ``strict=False``).
    """

    root: Path
    entities: list[Entity]
    queries: list[DemoQuery]
    notes: list[str] = field(default_factory=list)

    def entity(self, qid: str) -> Entity:
        for e in self.entities:
            if e.id == qid:
                return e
        raise KeyError(qid)

    def reference_images(self) -> list[Path]:
        return [Path(p) for e in self.entities for p in e.images]

    def mentions(self) -> list[Mention]:
        return [q.to_mention() for q in self.queries]

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": str(self.root), "recipe_version": RECIPE_VERSION,
            "entities": [e.to_dict() for e in self.entities],
            "queries": [q.to_dict() for q in self.queries], "notes": list(self.notes),
        }


# --------------------------------------------------------------------------------------------
# Image helpers
# --------------------------------------------------------------------------------------------


def _imread(path: Path) -> np.ndarray:
    from ..io import load_image

    return load_image(path)


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.part{path.suffix}")
    write(tmp)
    os.replace(tmp, path)


def _save(path: Path, rgb: np.ndarray, quality: int = 92) -> None:
    from PIL import Image

    def w(tmp: Path) -> None:
        im = Image.fromarray(np.ascontiguousarray(rgb.astype(np.uint8)))
        if path.suffix.lower() in (".jpg", ".jpeg"):
            im.save(tmp, format="JPEG", quality=quality, optimize=True)
        else:
            im.save(tmp, format="PNG", optimize=True)

    _write_atomic(path, w)


def _icon(slug: str) -> Any:
    try:
        from simple_icons_pack import get_icon
    except ImportError as exc:
        raise DemoMaterialError(Msg.E760.format(package="simple_icons_pack", why="brand icons")) from exc
    icon = get_icon(slug)
    if icon is None:
        raise DemoMaterialError(Msg.E763.format(what="simple-icons-pack", member=slug))
    return icon


def render_logo_rgba(slug: str, size: int = 512) -> tuple[np.ndarray, Any]:
    """``(size, size, 4)`` uint8 RGBA of simple-icons' ``slug`` icon in its brand colour, and the
    icon record (title, hex, licence...)."""
    try:
        import resvg_py
    except ImportError as exc:
        raise DemoMaterialError(Msg.E760.format(package="resvg_py", why="it rasterises the SVG icons")) from exc
    import io as _io

    from PIL import Image

    icon = _icon(slug)
    svg = icon.svg.replace("<svg ", f'<svg fill="#{icon.hex}" ', 1)
    png = bytes(resvg_py.svg_to_bytes(svg_string=svg, width=size, height=size))
    rgba = np.asarray(Image.open(_io.BytesIO(png)).convert("RGBA"))
    return rgba, icon


def _flatten(rgba: np.ndarray, background: tuple[int, int, int] = (255, 255, 255), pad: float = 0.1) -> np.ndarray:
    """RGBA -> RGB on ``background`` with ``pad`` of the side as margin."""
    h, w = rgba.shape[:2]
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    rgb = rgba[..., :3].astype(np.float32) * a + np.array(background, np.float32) * (1 - a)
    p = int(round(pad * max(h, w)))
    out = np.empty((h + 2 * p, w + 2 * p, 3), np.float32)
    out[:] = background
    out[p:p + h, p:p + w] = rgb
    return out.clip(0, 255).astype(np.uint8)


def _wave(rgba: np.ndarray, amplitude: float, wavelength: float, phase: float = 0.0,
          shade: float = 0.25) -> np.ndarray:
    """A flag waving in the wind: vertical sinusoidal displacement plus matching shading."""
    import cv2

    h, w = rgba.shape[:2]
    pad = int(np.ceil(amplitude)) + 2
    src = cv2.copyMakeBorder(rgba, pad, pad, 0, 0, cv2.BORDER_CONSTANT, value=(0, 0, 0, 0))
    xs = np.arange(w, dtype=np.float32)
    theta = 2 * np.pi * xs / wavelength + phase
    dy = (amplitude * np.sin(theta) * (0.3 + 0.7 * xs / w)).astype(np.float32)  # fixed at the hoist
    map_x = np.tile(xs, (h + 2 * pad, 1))
    map_y = (np.arange(h + 2 * pad, dtype=np.float32)[:, None] - dy[None, :]).astype(np.float32)
    out = cv2.remap(src, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
    light = (1.0 + shade * np.cos(theta) * (0.3 + 0.7 * xs / w)).astype(np.float32)
    out = out.astype(np.float32)
    out[..., :3] *= light[None, :, None]
    return out.clip(0, 255).astype(np.uint8)


def composite(background: np.ndarray, fg_rgba: np.ndarray, quad: Iterable[Iterable[float]], *, seed: int,
              light: float = 1.0, tint: tuple[float, float, float] = (1.0, 1.0, 1.0), texture: float = 0.5,
              blur: float = 0.8, noise: float = 2.0) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Paste ``fg_rgba`` onto ``background`` as if it were in the scene.

    The foreground is warped by a perspective transform onto ``quad`` (4 ``(x, y)`` corners in
    background pixels: top-left, top-right, bottom-right, bottom-left), lit by the background's
    own luminance texture (``texture`` = strength), scaled by ``light`` and ``tint``, feathered,
    then the whole picture gets a slight blur and sensor noise.

    Returns the ``(H, W, 3)`` uint8 image and the XYXY box of the pasted quad.
    """
    import cv2

    bg = background.astype(np.float32)
    H, W = bg.shape[:2]
    h, w = fg_rgba.shape[:2]
    dst = np.asarray(list(quad), np.float32).reshape(4, 2)
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    M = cv2.getPerspectiveTransform(src, dst)
    warped = cv2.warpPerspective(fg_rgba.astype(np.float32), M, (W, H), flags=cv2.INTER_AREA,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
    alpha = cv2.GaussianBlur(warped[..., 3] / 255.0, (0, 0), 0.7)[..., None]
    lum = cv2.cvtColor(background, cv2.COLOR_RGB2GRAY).astype(np.float32)
    inside = alpha[..., 0] > 0.5
    mean = float(lum[inside].mean()) if inside.any() else float(lum.mean())
    tex = np.power(np.clip(lum / max(mean, 1.0), 0.05, 3.0), texture)[..., None]
    fg = warped[..., :3] * tex * light * np.asarray(tint, np.float32)
    out = bg * (1 - alpha) + fg * alpha
    if blur > 0:
        out = cv2.GaussianBlur(out, (0, 0), blur)
    rng = np.random.default_rng(seed)
    out = out + rng.normal(0.0, noise, out.shape)
    x1, y1 = np.floor(dst.min(axis=0))
    x2, y2 = np.ceil(dst.max(axis=0))
    box = (float(max(x1, 0)), float(max(y1, 0)), float(min(x2, W)), float(min(y2, H)))
    return out.clip(0, 255).astype(np.uint8), box


# --------------------------------------------------------------------------------------------
# Composite recipe steps (named by the records' "prepare" / "draw" / "foreground")
# --------------------------------------------------------------------------------------------


def _tint(bg: np.ndarray, scale: list[float], offset: list[float]) -> np.ndarray:
    """Grey level of ``bg`` times ``scale`` plus ``offset`` per channel (e.g. a grey lawn made green)."""
    g = bg.astype(np.float32).mean(axis=2, keepdims=True)
    return (g * np.array(scale, np.float32) + np.array(offset, np.float32)).clip(0, 255).astype(np.uint8)


def _line(bg: np.ndarray, start: list[int], end: list[int], colour: list[int], width: int) -> None:
    """Draw an anti-aliased line onto ``bg`` in place (e.g. a flag pole)."""
    import cv2

    cv2.line(bg, tuple(start), tuple(end), tuple(colour), width, cv2.LINE_AA)


def _coaster(rgba: np.ndarray, margin: int, colour: list[int]) -> np.ndarray:
    """``rgba`` printed on a round paper coaster of ``colour`` (RGBA), ``margin`` pixels wider
    on each side: ``(h + 2 margin, w + 2 margin, 4)`` uint8."""
    h, w = rgba.shape[:2]
    side_h, side_w = h + 2 * margin, w + 2 * margin
    coaster = np.zeros((side_h, side_w, 4), np.uint8)
    yy, xx = np.mgrid[0:side_h, 0:side_w]
    disc = (yy - side_h / 2) ** 2 + (xx - side_w / 2) ** 2 <= (side_w / 2 - 1) ** 2
    coaster[disc] = tuple(colour)
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    inner = coaster[margin:margin + h, margin:margin + w].astype(np.float32)
    inner[..., :3] = inner[..., :3] * (1 - a) + rgba[..., :3].astype(np.float32) * a
    coaster[margin:margin + h, margin:margin + w] = inner.astype(np.uint8)
    return coaster


_PREPARE: dict[str, Callable[..., np.ndarray]] = {"tint": lambda bg, s: _tint(bg, s["scale"], s["offset"])}
"""Steps that return a new background."""
_DRAW: dict[str, Callable[..., None]] = {"line": lambda bg, s: _line(bg, s["from"], s["to"], s["colour"], s["width"])}
"""Steps that draw onto the background in place."""


# --------------------------------------------------------------------------------------------
# The records (data/materials.json): read and checked once
# --------------------------------------------------------------------------------------------

DATA_PATH = Path(__file__).resolve().parent / "data" / "materials.json"
"""The demo's records: downloads, KB entities, queries and composite recipes."""

DATA_FORMAT, DATA_VERSION = "pixlink-demo-materials", 1
_GROUPS = ("people", "countries", "brands", "text_only")
_KINDS = {"face", "image", "caption", "nil"}
_PACKAGES = {"face_recognition": "faces", "skimage": None, "matplotlib": None}
_NEEDS = {"faces", "flags", "logos"}
_QID = re.compile(r"Q[1-9][0-9]*")
_FIELDS = {"us_gov", "cc0", "text_licence", "skimage_version", "matplotlib_version", "face_recognition_licence",
           "country_flags_licence", "label", "icon_licence", "icon_title", "icon_hex", "icon_source",
           "simple_icons_version"}
"""The ``{placeholders}`` texts of the records may use (filled by :func:`_fill`)."""


def _bad(reason: str, path: Path = DATA_PATH) -> DemoMaterialError:
    return DemoMaterialError(Msg.E764.format(reason=f"{path}: {reason}"))


def _numbers(v: Any, n: int) -> bool:
    return isinstance(v, list) and len(v) == n and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)


def check_records(data: Any, path: Path = DATA_PATH) -> dict[str, Any]:
    """Check the demo's records and return them; :class:`DemoMaterialError` E764 says what is
    wrong (the first problem found). Checked: the format and version, unique QIDs with a label,
    a description and a known QID check; unique query ids, known kinds and image packages,
    boxes ``[x1, y1, x2, y2]`` with ``x1 < x2`` and ``y1 < y2`` (or a face box and the image's
    ``(H, W)``), expected entities that the KB holds, composite recipes that name a known
    flag / logo and step, "COMPOSITE" in every composite's description, a licence and an
    attribution everywhere, and only known ``{placeholders}`` in the texts."""
    if not isinstance(data, dict) or data.get("format") != DATA_FORMAT or data.get("version") != DATA_VERSION:
        raise _bad(f"not {DATA_FORMAT} version {DATA_VERSION}", path)
    for key in ("texts", "qid_checks", "downloads", *_GROUPS, "queries", "composites"):
        if key not in data:
            raise _bad(f"no {key!r}", path)
    ids: set[str] = set()
    for group in _GROUPS:
        for r in data[group].get("records", []):
            eid = r.get("id")
            if not isinstance(eid, str) or not _QID.fullmatch(eid) or eid in ids:
                raise _bad(f"{group}: id {eid!r} is not a QID or is repeated", path)
            ids.add(eid)
            if not r.get("label") or not r.get("description") or r.get("check") not in data["qid_checks"]:
                raise _bad(f"{group} {eid}: needs a label, a description and a check of {sorted(data['qid_checks'])}", path)
    codes = {r["code"] for r in data["countries"]["records"]}
    slugs = {r["slug"] for r in data["brands"]["records"]}
    seen: set[str] = set()
    for q, recipe in [(q, False) for q in data["queries"]] + [(q, True) for q in data["composites"]]:
        qid = q.get("id")
        what = f"query {qid!r}"
        if not isinstance(qid, str) or qid in seen:
            raise _bad(f"{what}: the id is missing or repeated", path)
        seen.add(qid)
        if q.get("kind") not in _KINDS or not set(q.get("requires", [])) <= _NEEDS:
            raise _bad(f"{what}: kind must be one of {sorted(_KINDS)}, requires a subset of {sorted(_NEEDS)}", path)
        if q.get("expected") is not None and q["expected"] not in ids:
            raise _bad(f"{what} expects {q['expected']!r}, which is not in the KB", path)
        if not q.get("description") or not q.get("licence") or not q.get("attribution"):
            raise _bad(f"{what}: needs a description, a licence and an attribution", path)
        img = q.get("image") or q.get("background") or {}
        if img.get("package") not in _PACKAGES or not img.get("file"):
            raise _bad(f"{what}: its image must name a package of {sorted(_PACKAGES)} and a file", path)
        box = q.get("box")
        if recipe:
            fg = q.get("foreground") or {}
            quad = q.get("quad")
            if not (isinstance(quad, list) and len(quad) == 4 and all(_numbers(p, 2) for p in quad)):
                raise _bad(f"{what}: quad must be 4 [x, y] corners", path)
            if not q.get("file") or not isinstance(q.get("seed"), int) or not (fg.get("flag") in codes or fg.get("logo") in slugs):
                raise _bad(f"{what}: needs a file name, an integer seed and a foreground flag of {sorted(codes)} or logo of {sorted(slugs)}", path)
            for step, table in (("prepare", _PREPARE), ("draw", _DRAW)):
                if step in q and q[step].get("step") not in table:
                    raise _bad(f"{what}: {step} step must be one of {sorted(table)}", path)
            if "COMPOSITE" not in q["description"]:
                raise _bad(f"{what}: a composite says COMPOSITE in its description", path)
        elif box is not None:
            if not (_numbers(box, 4) and box[0] < box[2] and box[1] < box[3]):
                raise _bad(f"{what}: box {box!r} is not [x1, y1, x2, y2] with x1 < x2 and y1 < y2", path)
        elif not (_numbers(q.get("face_box"), 4) and _numbers(q.get("size_hw"), 2)):
            raise _bad(f"{what}: needs a box, or a face_box and the image's size_hw", path)
    for text in _texts(data):
        for _lit, name, _spec, _conv in string.Formatter().parse(text):
            if name is not None and name not in _FIELDS:
                raise _bad(f"unknown placeholder {{{name}}} in {text!r}", path)
    return data


def _texts(data: dict[str, Any]) -> Iterator[str]:
    """Every text of the records that may hold placeholders."""
    for group in _GROUPS:
        g = data[group]
        yield from (g[k] for k in ("licence", "attribution", "source") if isinstance(g.get(k), str))
        for r in g.get("records", []):
            yield from (r[k] for k in ("licence", "attribution") if isinstance(r.get(k), str))
    for q in data["queries"] + data["composites"]:
        yield from (q[k] for k in ("licence", "attribution"))


@functools.lru_cache(maxsize=None)
def load_records(path: Path = DATA_PATH) -> dict[str, Any]:
    """The demo's records from ``path`` (the package's ``data/materials.json``), checked
    (:func:`check_records`). Cached: the same dict for every call; do not modify it."""
    import orjson

    try:
        data = orjson.loads(Path(path).read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise _bad(f"cannot be read ({exc})", Path(path)) from exc
    return check_records(data, Path(path))


def _fill(template: str, values: dict[str, str]) -> str:
    return template.format_map(values)


def _pin(key: str) -> Pinned:
    d = load_records()["downloads"][key]
    return Pinned(registry=d["registry"], name=d["name"], version=d["version"], filename=d["filename"],
                  sha256=d["sha256"], licence=d["licence"], url=d["url"])


FACE_RECOGNITION_SDIST = _pin("face_recognition")
COUNTRY_FLAGS_NPM = _pin("country_flags")


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def _values(data: dict[str, Any]) -> dict[str, str]:
    """The placeholders shared by every text (versions of the installed packages, licences)."""
    from matplotlib import __version__ as mplv

    return {**data["texts"], "skimage_version": _version("scikit-image"), "matplotlib_version": mplv,
            "face_recognition_licence": FACE_RECOGNITION_SDIST.licence,
            "country_flags_licence": COUNTRY_FLAGS_NPM.licence,
            "simple_icons_version": _version("simple-icons-pack")}


# --------------------------------------------------------------------------------------------
# Assembly
# --------------------------------------------------------------------------------------------


def face_photos(root: str | Path | None = None, *, fetch: bool = True) -> dict[str, Path]:
    """The face_recognition test photos the records use, extracted from the pinned sdist into the cache."""
    base = demo_root(root)
    d = load_records()["downloads"]["face_recognition"]
    archive = fetch_pinned(FACE_RECOGNITION_SDIST, base, fetch=fetch)
    out = {n: base / "sources" / f"{d['name']}-{d['version']}" / n for n in d["files"]}
    _extract(archive, {d["members"] + n: p for n, p in out.items()}, d["filename"])
    return out


def flag_images(root: str | Path | None = None, *, fetch: bool = True) -> dict[str, Path]:
    """Flag PNGs (1000 px wide) of the demo countries, extracted from the pinned npm tarball."""
    base = demo_root(root)
    data = load_records()
    d = data["downloads"]["country_flags"]
    archive = fetch_pinned(COUNTRY_FLAGS_NPM, base, fetch=fetch)
    codes = [r["code"] for r in data["countries"]["records"]]
    raw = {cc: base / "sources" / f"{d['name']}-{d['version']}" / f"{cc}.png" for cc in codes}
    _extract(archive, {d["members"] + f"{cc}.png": p for cc, p in raw.items()}, d["filename"])
    # The package's PNGs are palette images with transparency: store plain RGB copies once.
    out = {cc: base / "generated" / f"v{RECIPE_VERSION}" / "flags" / f"{cc}.png" for cc in raw}
    for cc, p in out.items():
        if not p.exists():
            from PIL import Image

            with Image.open(raw[cc]) as im:
                _save(p, _flatten(np.asarray(im.convert("RGBA")), pad=0.0))
    return out


def logo_images(root: str | Path | None = None) -> dict[str, tuple[Path, Any]]:
    """Logo reference images (brand colour on white, PNG) rendered from simple-icons-pack."""
    base = demo_root(root) / "generated" / f"v{RECIPE_VERSION}" / "logos"
    out: dict[str, tuple[Path, Any]] = {}
    for r in load_records()["brands"]["records"]:
        slug = r["slug"]
        path = base / f"{slug}.png"
        if path.exists():
            icon = _icon(slug)
        else:
            rgba, icon = render_logo_rgba(slug, 448)
            _save(path, _flatten(rgba, pad=0.07))
        out[slug] = (path, icon)
    return out


def _entity(r: dict[str, Any], data: dict[str, Any], types: Any, images: tuple[str, ...], source: str,
            attrs: dict[str, Any]) -> Entity:
    return Entity(id=r["id"], label=r["label"], aliases=tuple(r["aliases"]), description=r["description"],
                  types=tuple(types), images=images, source=source,
                  attrs={**attrs, "qid_check": data["qid_checks"][r["check"]]})


def _entities(data: dict[str, Any], values: dict[str, str], faces: dict[str, Path] | None,
              flags: dict[str, Path] | None, logos: dict[str, tuple[Path, Any]] | None) -> list[Entity]:
    ents: list[Entity] = []
    people = data["people"]
    for r in people["records"]:
        images: tuple[str, ...] = ()
        if r["photo"] and faces is not None:
            images = (str(faces[r["photo"]]),)
        elif r["photo"]:
            continue  # its photo could not be had (strict=False): leave the person out
        ents.append(_entity(r, data, people["types"], images, people["source_photo" if images else "source_text"],
                            {"licence": _fill(r["licence"], values), "attribution": _fill(r["attribution"], values)}))
    countries = data["countries"]
    if flags is not None:
        for r in countries["records"]:
            v = {**values, "label": r["label"]}
            ents.append(_entity(r, data, countries["types"], (str(flags[r["code"]]),), countries["source"], {
                "licence": _fill(countries["licence"], v), "attribution": _fill(countries["attribution"], v),
                "image_kind": countries["image_kind"], "iso3166": r["code"].upper()}))
    brands = data["brands"]
    if logos is not None:
        for r in brands["records"]:
            path, icon = logos[r["slug"]]
            v = {**values, "icon_licence": icon.license or "CC0-1.0", "icon_title": icon.title, "icon_hex": icon.hex,
                 "icon_source": icon.source}
            ents.append(_entity(r, data, r["types"], (str(path),), _fill(brands["source"], v), {
                "licence": _fill(brands["licence"], v), "attribution": _fill(brands["attribution"], v),
                "image_kind": brands["image_kind"]}))
    text = data["text_only"]
    for r in text["records"]:
        ents.append(_entity(r, data, r["types"], (), text["source"], {
            "licence": _fill(text["licence"], values), "attribution": _fill(text["attribution"], values)}))
    return ents


def _widen(face: tuple[int, int, int, int], size_hw: tuple[int, int], side: float = 0.25, top: float = 0.5,
           bottom: float = 0.45) -> tuple[float, float, float, float]:
    """A dlib face box widened to the head (and a little of the shoulders), clipped to the image."""
    x1, y1, x2, y2 = face
    w, h = x2 - x1, y2 - y1
    H, W = size_hw
    return (float(max(0, x1 - side * w)), float(max(0, y1 - top * h)),
            float(min(W, x2 + side * w)), float(min(H, y2 + bottom * h)))


def _photo(ref: dict[str, str], faces: dict[str, Path] | None) -> Path:
    """The photo a record names: ``{"package": "skimage" | "matplotlib" | "face_recognition", "file"}``."""
    if ref["package"] == "skimage":
        return skimage_photo(ref["file"])
    if ref["package"] == "matplotlib":
        return matplotlib_photo(ref["file"])
    assert faces is not None  # the query requires "faces"
    return faces[ref["file"]]


def _query(q: dict[str, Any], image: Path, box: Any, values: dict[str, str], composite: bool) -> DemoQuery:
    return DemoQuery(id=q["id"], image=str(image), box=tuple(box), caption=q.get("caption"), expected=q["expected"],
                     kind=q["kind"], description=q["description"], composite=composite,
                     licence=_fill(q["licence"], values), attribution=_fill(q["attribution"], values))


def _real_queries(data: dict[str, Any], values: dict[str, str], have: set[str],
                  faces: dict[str, Path] | None) -> list[DemoQuery]:
    """Queries on real photos (no pixel of them was generated), those whose sources are ``have``."""
    out = []
    for q in data["queries"]:
        if not set(q.get("requires", ())) <= have:
            continue
        box = q["box"] if q.get("box") is not None else _widen(tuple(q["face_box"]), tuple(q["size_hw"]))
        out.append(_query(q, _photo(q["image"], faces), [float(v) for v in box], values, composite=False))
    return out


def _foreground(spec: dict[str, Any], flags: dict[str, Path] | None) -> np.ndarray:
    """The RGBA image a recipe pastes: a waving flag or a logo (optionally on a coaster)."""
    if "flag" in spec:
        from PIL import Image

        assert flags is not None  # the composite requires "flags"
        rgba = np.asarray(Image.open(flags[spec["flag"]]).convert("RGBA"))
        w = spec["wave"]
        return _wave(rgba, w["amplitude"], w["wavelength"], w["phase"], w["shade"])
    rgba, _ = render_logo_rgba(spec["logo"], spec["size"])
    if "coaster" in spec:
        rgba = _coaster(rgba, spec["coaster"]["margin"], spec["coaster"]["colour"])
    return rgba


def _composites(data: dict[str, Any], values: dict[str, str], have: set[str], base: Path,
                flags: dict[str, Path] | None) -> list[DemoQuery]:
    """The generated query photos: a KB image pasted into a real photo, labelled COMPOSITE.
    Each is made once (fixed seed) and kept with its box under ``generated/v<RECIPE_VERSION>/queries``."""
    import orjson

    out_dir = base / "generated" / f"v{RECIPE_VERSION}" / "queries"
    queries: list[DemoQuery] = []
    for q in data["composites"]:
        if not set(q.get("requires", ())) <= have:
            continue
        path, meta = out_dir / f"{q['file']}.jpg", out_dir / f"{q['file']}.box.json"
        if path.exists() and meta.exists():
            box = orjson.loads(meta.read_bytes())
        else:
            bg = np.array(_imread(_photo(q["background"], None)), copy=True)
            if "prepare" in q:
                bg = _PREPARE[q["prepare"]["step"]](bg, q["prepare"])
            if "draw" in q:
                _DRAW[q["draw"]["step"]](bg, q["draw"])
            look = {k: tuple(v) if isinstance(v, list) else v for k, v in q.get("look", {}).items()}
            img, box = composite(bg, _foreground(q["foreground"], flags), [tuple(p) for p in q["quad"]],
                                 seed=q["seed"], **look)
            _save(path, img, quality=85)
            _write_atomic(meta, lambda tmp: tmp.write_bytes(orjson.dumps(list(box))))
        queries.append(_query(q, path, box, values, composite=True))
    return queries


def build_materials(root: str | Path | None = None, *, fetch: bool = True, strict: bool = True) -> DemoMaterials:
    """Assemble the demo KB and queries from the records (:data:`DATA_PATH`).

    Args:
        root: folder for fetched and generated files (default ``cache_dir()/"demo"``).
        fetch: allow fetching the two pinned registry artefacts (PyPI sdist, npm tarball) when
            they are not in ``root/downloads`` yet.
        strict: raise :class:`DemoMaterialError` when a source cannot be had. With
            ``strict=False`` the entities and queries of that source are left out, a warning is
            logged and the reason is in ``DemoMaterials.notes``.

    The installed packages (scikit-image, matplotlib, simple-icons-pack, resvg-py) are always
    required: they come with ``pip install 'pixlink[demo]'``.
    """
    data = load_records()
    base = demo_root(root)
    notes: list[str] = []

    def attempt(what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except DemoMaterialError as exc:
            if strict:
                raise
            msg = f"{what} left out of the demo: {exc}"
            log.warning(msg)
            notes.append(msg)
            return None

    skimage_photo("astronaut.png")  # fail early and clearly when scikit-image is absent
    faces = attempt("the face photos (face_recognition 1.3.0 sdist from PyPI)", lambda: face_photos(base, fetch=fetch))
    flags = attempt("the flags (svg-country-flags 1.2.10 from npm)", lambda: flag_images(base, fetch=fetch))
    logos = logo_images(base)
    have = {name for name, got in (("faces", faces), ("flags", flags), ("logos", logos)) if got is not None}
    values = _values(data)
    entities = _entities(data, values, faces, flags, logos)
    queries = _real_queries(data, values, have, faces) + _composites(data, values, have, base, flags)
    known = {e.id for e in entities}
    missing = [q.id for q in queries if q.expected is not None and q.expected not in known]
    if missing:
        raise DemoMaterialError(Msg.E764.format(reason=f"queries {missing} expect entities not in the KB"))
    return DemoMaterials(root=base, entities=entities, queries=queries, notes=notes)


__all__ = [
    "COUNTRY_FLAGS_NPM", "DATA_PATH", "FACE_RECOGNITION_SDIST", "DemoMaterialError", "DemoMaterials", "DemoQuery",
    "Msg", "Pinned", "RECIPE_VERSION", "build_materials", "check_records", "composite", "demo_root", "face_photos",
    "fetch_pinned", "flag_images", "load_records", "logo_images", "matplotlib_photo", "render_logo_rgba",
    "skimage_photo",
]
