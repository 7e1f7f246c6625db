"""The material of ``pixlink demo``: a small KB and region queries, from registry packages only.

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

import importlib.util
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

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


FACE_RECOGNITION_SDIST = Pinned(
    registry="pypi-sdist", name="face_recognition", version="1.3.0", filename="face_recognition-1.3.0.tar.gz",
    sha256="5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec",
    licence="MIT (c) 2017 Adam Geitgey", url="https://pypi.org/project/face-recognition/1.3.0/",
)
COUNTRY_FLAGS_NPM = Pinned(
    registry="npm", name="svg-country-flags", version="1.2.10", filename="svg-country-flags-1.2.10.tgz",
    sha256="2576650b4568c8ee1a2a6ddaa45c0246be16735f229bb40b1a0a6f40424e5213",
    licence="public domain (package licence 'PD'; flag designs from Wikipedia/Wikimedia Commons)",
    url="https://www.npmjs.com/package/svg-country-flags/v/1.2.10",
)

_FACE_DIR = "face_recognition-1.3.0/tests/test_images/"
_FLAG_DIR = "package/png1000px/"


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
# The KB: who and what, with licences
# --------------------------------------------------------------------------------------------

# QIDs were checked against ../shared/data (fb15k237 labels, MELBench answers, CoDEx types) or
# against public code that names the entity next to its QID ("code"); "memory" marks the rest.
_Q_FB = "checked: shared/data/kb/fb15k237_entity2wikidata.json"
_Q_MEL = "checked: shared/data/melbench answers"
_Q_CODE = "checked: public code pairing the name with this QID (brand:wikidata / wikidata_id)"
_Q_CODEX = "consistent: CoDEx types it Q5 (human); name-QID pair from memory"
_Q_MEM = "from memory (not checked)"

_US_GOV = "public domain (work of the U.S. federal government, 17 U.S.C. 105)"

_PEOPLE: list[dict[str, Any]] = [
    dict(id="Q76", label="Barack Obama", aliases=("Barack Hussein Obama II", "Obama", "President Obama"),
         description="44th President of the United States (2009-2017)", photo="obama.jpg", check=_Q_FB,
         licence=_US_GOV + " as far as known: Obama's 2012 official White House portrait; shipped in "
                 "face_recognition 1.3.0's sdist (MIT), which states no separate licence for it",
         attribution="Pete Souza / The White House (official portrait); via face_recognition 1.3.0 "
                     "tests/test_images/obama.jpg (Adam Geitgey)"),
    dict(id="Q6279", label="Joe Biden", aliases=("Joseph R. Biden Jr.", "Joseph Robinette Biden Jr.", "Biden"),
         description="46th President of the United States (2021-2025), 47th Vice President", photo="biden.jpg",
         check=_Q_FB,
         licence=_US_GOV + " as far as known (White House photograph of Vice President Biden); shipped in "
                 "face_recognition 1.3.0's sdist (MIT), which states no separate licence for it",
         attribution="The White House; via face_recognition 1.3.0 tests/test_images/biden.jpg (Adam Geitgey)"),
    dict(id="Q11641", label="Grace Hopper", aliases=("Grace Murray Hopper", "Grace Brewster Murray Hopper",
                                                     "Rear Admiral Grace Hopper", "Amazing Grace"),
         description="American computer scientist, COBOL pioneer and United States Navy rear admiral",
         photo=None, check=_Q_MEL, licence="CC0-1.0 (text written for pixlink)", attribution="pixlink"),
    dict(id="Q239911", label="Eileen Collins", aliases=("Eileen Marie Collins", "Eileen M. Collins"),
         description="American astronaut, the first woman to pilot and to command a Space Shuttle",
         photo=None, check=_Q_CODEX, licence="CC0-1.0 (text written for pixlink)", attribution="pixlink"),
]

# ISO code, QID, label, aliases, description, QID check. The KB image of a country is its flag
# (Wikidata P41, "flag image"): "countries and their flags".
_COUNTRIES: list[tuple[str, str, str, tuple[str, ...], str, str]] = [
    ("us", "Q30", "United States of America", ("United States", "USA", "U.S.", "America", "Stars and Stripes"),
     "country in North America", _Q_FB),
    ("fr", "Q142", "France", ("French Republic", "Tricolore"), "country in Western Europe", _Q_FB),
    ("nl", "Q55", "Netherlands", ("Holland", "Kingdom of the Netherlands"), "country in Northwestern Europe", _Q_MEM),
    ("ru", "Q159", "Russia", ("Russian Federation",), "country in Eastern Europe and North Asia", _Q_MEM),
    ("it", "Q38", "Italy", ("Italian Republic",), "country in Southern Europe", _Q_FB),
    ("mx", "Q96", "Mexico", ("United Mexican States",), "country in North America", _Q_MEM),
    ("ie", "Q27", "Ireland", ("Republic of Ireland", "Eire"), "country in Northwestern Europe", _Q_MEM),
    ("jp", "Q17", "Japan", ("Nippon", "Hinomaru"), "island country in East Asia", _Q_FB),
    ("bd", "Q902", "Bangladesh", ("People's Republic of Bangladesh",), "country in South Asia", _Q_CODE),
    ("de", "Q183", "Germany", ("Federal Republic of Germany", "Deutschland"), "country in Central Europe", _Q_FB),
    ("be", "Q31", "Belgium", ("Kingdom of Belgium",), "country in Western Europe", _Q_CODE),
    ("gb", "Q145", "United Kingdom", ("UK", "Great Britain", "Britain", "Union Jack"),
     "country in Northwestern Europe", _Q_FB),
    ("ca", "Q16", "Canada", ("Maple Leaf",), "country in North America", _Q_FB),
    ("br", "Q155", "Brazil", ("Federative Republic of Brazil", "Brasil"), "country in South America", _Q_FB),
    ("cn", "Q148", "China", ("People's Republic of China", "PRC"), "country in East Asia", _Q_MEM),
    ("in", "Q668", "India", ("Republic of India", "Bharat"), "country in South Asia", _Q_FB),
    ("kr", "Q884", "South Korea", ("Republic of Korea", "Korea"), "country in East Asia", _Q_FB),
    ("ch", "Q39", "Switzerland", ("Swiss Confederation",), "country in Central Europe", _Q_FB),
    ("se", "Q34", "Sweden", ("Kingdom of Sweden",), "country in Northern Europe", _Q_FB),
    ("au", "Q408", "Australia", ("Commonwealth of Australia",), "country in Oceania", _Q_CODE),
    ("ar", "Q414", "Argentina", ("Argentine Republic",), "country in South America", _Q_CODE),
    ("at", "Q40", "Austria", ("Republic of Austria",), "country in Central Europe", _Q_CODE),
    ("es", "Q29", "Spain", ("Kingdom of Spain", "Espana"), "country in Southwestern Europe", _Q_MEM),
    ("pl", "Q36", "Poland", ("Republic of Poland", "Polska"), "country in Central Europe", _Q_MEM),
]

_BUSINESS, _CARMAKER = "Q4830453", "Q786820"
# simple-icons slug, QID, label, aliases, description, P31 types, QID check.
_BRANDS: list[tuple[str, str, str, tuple[str, ...], str, tuple[str, ...], str]] = [
    ("python", "Q28865", "Python", ("Python programming language", "Python 3"),
     "general-purpose, high-level programming language", ("Q9143",), _Q_FB),
    ("linux", "Q388", "Linux", ("GNU/Linux", "Tux"), "family of Unix-like operating systems using the Linux kernel",
     ("Q9135",), _Q_FB),
    ("starbucks", "Q37158", "Starbucks", ("Starbucks Corporation", "Starbucks Coffee"),
     "American multinational chain of coffeehouses", (_BUSINESS,), _Q_FB),
    ("mcdonalds", "Q38076", "McDonald's", ("McDonald's Corporation", "McDonalds", "Golden Arches"),
     "American fast food restaurant chain", (_BUSINESS,), _Q_FB),
    ("nike", "Q483915", "Nike", ("Nike, Inc.", "Swoosh"), "American athletic equipment company", (_BUSINESS,), _Q_FB),
    ("adidas", "Q3895", "Adidas", ("adidas AG",), "German sportswear manufacturer", (_BUSINESS,), _Q_CODE),
    ("puma", "Q157064", "Puma", ("Puma SE",), "German sportswear company", (_BUSINESS,), _Q_CODE),
    ("intel", "Q248", "Intel", ("Intel Corporation",), "American semiconductor company", (_BUSINESS,), _Q_FB),
    ("lufthansa", "Q9325", "Lufthansa", ("Deutsche Lufthansa AG",), "German airline", ("Q46970",), _Q_FB),
    ("apple", "Q312", "Apple Inc.", ("Apple",), "American technology company based in Cupertino, California",
     (_BUSINESS,), _Q_FB),
    ("google", "Q95", "Google", ("Google LLC",), "American technology company", (_BUSINESS,), _Q_FB),
    ("shell", "Q154950", "Shell", ("Shell plc", "Royal Dutch Shell"), "British multinational oil and gas company",
     (_BUSINESS,), _Q_CODE),
    ("bmw", "Q26678", "BMW", ("Bayerische Motoren Werke",), "German automobile manufacturer", (_CARMAKER,), _Q_CODE),
    ("toyota", "Q53268", "Toyota", ("Toyota Motor Corporation",), "Japanese automobile manufacturer",
     (_CARMAKER,), _Q_CODE),
    ("ferrari", "Q27586", "Ferrari", ("Ferrari S.p.A.",), "Italian sports car manufacturer", (_CARMAKER,), _Q_CODE),
    ("porsche", "Q40993", "Porsche", ("Porsche AG",), "German sports car manufacturer", (_CARMAKER,), _Q_CODE),
    ("nissan", "Q20165", "Nissan", ("Nissan Motor Co.",), "Japanese automobile manufacturer", (_CARMAKER,), _Q_CODE),
    ("ikea", "Q54078", "IKEA", (), "Swedish furniture retailer", (_BUSINESS,), _Q_CODE),
    ("spotify", "Q689141", "Spotify", (), "audio streaming service", (_BUSINESS,), _Q_CODE),
    ("netflix", "Q907311", "Netflix", (), "American video streaming service", (_BUSINESS,), _Q_CODE),
    ("spacex", "Q193701", "SpaceX", ("Space Exploration Technologies Corp.",), "American spaceflight company",
     (_BUSINESS,), _Q_CODE),
    ("nasa", "Q23548", "NASA", ("National Aeronautics and Space Administration",),
     "space agency of the United States", ("Q17505024",), _Q_CODE),
    ("wikimediafoundation", "Q180", "Wikimedia Foundation", ("WMF",),
     "American non-profit organization that hosts Wikipedia", ("Q163740",), _Q_FB),
    ("github", "Q364", "GitHub", (), "software development hosting service", ("Q35127",), _Q_CODE),
    ("wikipedia", "Q52", "Wikipedia", (), "free online encyclopedia", ("Q35127",), _Q_CODE),
]

# Entities with no image: reached through a caption only.
_TEXT_ONLY: list[dict[str, Any]] = [
    dict(id="Q249091", label="Falcon 9", aliases=("Falcon 9 rocket", "SpaceX Falcon 9", "F9"),
         description="partially reusable two-stage launch vehicle built by SpaceX", types=(), check=_Q_CODE),
]


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
# Assembly
# --------------------------------------------------------------------------------------------


def face_photos(root: str | Path | None = None, *, fetch: bool = True) -> dict[str, Path]:
    """The four face_recognition test photos, extracted from the pinned sdist into the cache."""
    base = demo_root(root)
    archive = fetch_pinned(FACE_RECOGNITION_SDIST, base, fetch=fetch)
    names = ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg")
    out = {n: base / "sources" / "face_recognition-1.3.0" / n for n in names}
    _extract(archive, {_FACE_DIR + n: p for n, p in out.items()}, "face_recognition-1.3.0.tar.gz")
    return out


def flag_images(root: str | Path | None = None, *, fetch: bool = True) -> dict[str, Path]:
    """Flag PNGs (1000 px wide) of the demo countries, extracted from the pinned npm tarball."""
    base = demo_root(root)
    archive = fetch_pinned(COUNTRY_FLAGS_NPM, base, fetch=fetch)
    raw = {cc: base / "sources" / "svg-country-flags-1.2.10" / f"{cc}.png" for cc, *_ in _COUNTRIES}
    _extract(archive, {_FLAG_DIR + f"{cc}.png": p for cc, p in raw.items()}, "svg-country-flags-1.2.10.tgz")
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
    for slug, *_ in _BRANDS:
        path = base / f"{slug}.png"
        if path.exists():
            icon = _icon(slug)
        else:
            rgba, icon = render_logo_rgba(slug, 448)
            _save(path, _flatten(rgba, pad=0.07))
        out[slug] = (path, icon)
    return out


def _simple_icons_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("simple-icons-pack")
    except PackageNotFoundError:
        return "?"


def _entities(faces: dict[str, Path] | None, flags: dict[str, Path] | None,
              logos: dict[str, tuple[Path, Any]] | None) -> list[Entity]:
    ents: list[Entity] = []
    for p in _PEOPLE:
        images: tuple[str, ...] = ()
        if p["photo"] and faces is not None:
            images = (str(faces[p["photo"]]),)
        elif p["photo"]:
            continue  # its photo could not be had (strict=False): leave the person out
        ents.append(Entity(
            id=p["id"], label=p["label"], aliases=p["aliases"], description=p["description"], types=("Q5",),
            images=images, source="pixlink-demo:face_recognition-1.3.0-sdist" if images else "pixlink-demo:text",
            attrs={"licence": p["licence"], "attribution": p["attribution"], "qid_check": p["check"]},
        ))
    if flags is not None:
        for cc, qid, label, aliases, desc, check in _COUNTRIES:
            ents.append(Entity(
                id=qid, label=label, aliases=aliases, description=desc, types=("Q6256",),
                images=(str(flags[cc]),), source="pixlink-demo:svg-country-flags-1.2.10",
                attrs={"licence": COUNTRY_FLAGS_NPM.licence,
                       "attribution": f"Flag of {label}, from Wikimedia Commons via the npm package "
                                      "svg-country-flags 1.2.10 (Hampus Nilsson)",
                       "image_kind": "national flag (Wikidata P41)", "iso3166": cc.upper(), "qid_check": check},
            ))
    if logos is not None:
        siv = _simple_icons_version()
        for slug, qid, label, aliases, desc, types, check in _BRANDS:
            path, icon = logos[slug]
            lic = icon.license or "CC0-1.0"
            ents.append(Entity(
                id=qid, label=label, aliases=aliases, description=desc, types=types, images=(str(path),),
                source=f"pixlink-demo:simple-icons-pack-{siv}",
                attrs={"licence": f"icon data {lic} (simple-icons); the logo is a trademark of its owner, "
                                  "shown only to identify the brand",
                       "attribution": f"Simple Icons '{icon.title}' (#{icon.hex}), source {icon.source}, "
                                      f"via simple-icons-pack {siv}",
                       "image_kind": "logo", "qid_check": check},
            ))
    for t in _TEXT_ONLY:
        ents.append(Entity(
            id=t["id"], label=t["label"], aliases=t["aliases"], description=t["description"], types=t["types"],
            source="pixlink-demo:text",
            attrs={"licence": "CC0-1.0 (text written for pixlink)", "attribution": "pixlink", "qid_check": t["check"]},
        ))
    return ents


def _widen(face: tuple[int, int, int, int], size_hw: tuple[int, int], side: float = 0.25, top: float = 0.5,
           bottom: float = 0.45) -> tuple[float, float, float, float]:
    """A dlib face box widened to the head (and a little of the shoulders), clipped to the image."""
    x1, y1, x2, y2 = face
    w, h = x2 - x1, y2 - y1
    H, W = size_hw
    return (float(max(0, x1 - side * w)), float(max(0, y1 - top * h)),
            float(min(W, x2 + side * w)), float(min(H, y2 + bottom * h)))


_SKIMAGE = "scikit-image {v} skimage/data/{name}"
_CC0 = "CC0-1.0 (public-domain dedication by the photographer, per scikit-image's docs)"


def _skimage_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("scikit-image")
    except PackageNotFoundError:
        return "?"


def _composites(base: Path, flags: dict[str, Path] | None, logos: dict[str, tuple[Path, Any]] | None,
                skv: str) -> list[DemoQuery]:
    """The generated query photos: a KB image pasted into a real photo, labelled COMPOSITE."""
    out_dir = base / "generated" / f"v{RECIPE_VERSION}" / "queries"
    queries: list[DemoQuery] = []

    def make(name: str, bg_path: Path, fg: np.ndarray, quad: list[tuple[float, float]], seed: int,
             prepare: Callable[[np.ndarray], np.ndarray] | None = None,
             extra: Callable[[np.ndarray], None] | None = None,
             **kw: Any) -> tuple[Path, tuple[float, float, float, float]]:
        import orjson

        path = out_dir / f"{name}.jpg"
        meta = out_dir / f"{name}.box.json"
        if path.exists() and meta.exists():
            return path, tuple(orjson.loads(meta.read_bytes()))  # type: ignore[return-value]
        bg = np.array(_imread(bg_path), copy=True)
        if prepare is not None:
            bg = prepare(bg)
        if extra is not None:
            extra(bg)
        img, box = composite(bg, fg, quad, seed=seed, **kw)
        _save(path, img, quality=85)
        _write_atomic(meta, lambda tmp: tmp.write_bytes(orjson.dumps(list(box))))
        return path, box

    if flags is not None:
        from PIL import Image

        # 1. Flag of Japan laid on a lawn, seen at a slant (grass photo is greyscale: tinted green).
        jp = np.asarray(Image.open(flags["jp"]).convert("RGBA"))
        grass = skimage_photo("grass.png")

        def green(bg: np.ndarray) -> np.ndarray:
            g = bg.astype(np.float32).mean(axis=2, keepdims=True)
            return (g * np.array([0.62, 0.92, 0.48], np.float32) + np.array([8, 18, 4], np.float32)).clip(0, 255)\
                .astype(np.uint8)

        path, box = make("flag_jp_on_grass", grass, _wave(jp, 10, 700, 0.8, 0.12),
                         [(150, 236), (402, 222), (468, 402), (86, 430)], seed=11, prepare=green,
                         light=0.97, texture=0.12, blur=0.9, noise=2.5)
        queries.append(DemoQuery(
            id="composite_flag_japan", image=str(path), box=box, caption=None, expected="Q17", kind="image",
            description="COMPOSITE (not a real photo): the KB's flag of Japan warped onto scikit-image's grass "
                        "photo with perspective, waves, grass texture, blur and noise; image<->image match "
                        "(Bangladesh's similar flag is also in the KB).",
            composite=True, licence=f"{_CC0} (grass) + {COUNTRY_FLAGS_NPM.licence} (flag)",
            attribution=f"{_SKIMAGE.format(v=skv, name='grass.png')} (CC0 texture, DeviantArt linolafett); "
                        "flag via svg-country-flags 1.2.10",
        ))

        # 2. Flag of France flying in the night sky beside the launch towers (dim, bluish light).
        fr = np.asarray(Image.open(flags["fr"]).convert("RGBA"))
        rocket = skimage_photo("rocket.jpg")

        def pole(bg: np.ndarray) -> None:
            import cv2

            cv2.line(bg, (121, 38), (121, 340), (70, 72, 80), 3, cv2.LINE_AA)

        path, box = make("flag_fr_night_sky", rocket, _wave(fr, 28, 380, 0.3, 0.3),
                         [(123, 44), (238, 52), (236, 128), (123, 122)], seed=12, extra=pole,
                         light=0.62, tint=(0.86, 0.9, 1.08), texture=0.15, blur=0.7, noise=3.0)
        queries.append(DemoQuery(
            id="composite_flag_france", image=str(path), box=box, caption=None, expected="Q142", kind="image",
            description="COMPOSITE (not a real photo): the KB's flag of France, waving on a drawn pole, pasted "
                        "into the night sky of scikit-image's rocket launch photo under dim bluish light; "
                        "image<->image match (the Dutch, Russian, Italian and Irish tricolours are in the KB too).",
            composite=True, licence=f"public domain (SpaceX photo) + {COUNTRY_FLAGS_NPM.licence} (flag)",
            attribution=f"{_SKIMAGE.format(v=skv, name='rocket.jpg')} (SpaceX, released into the public "
                        "domain); flag via svg-country-flags 1.2.10",
        ))

    if logos is not None:
        # 3. Starbucks logo printed on a paper coaster on the cafe table of the coffee photo.
        rgba, _ = render_logo_rgba("starbucks", 448)
        h, w = rgba.shape[:2]
        coaster = np.zeros((h + 64, w + 64, 4), np.uint8)
        yy, xx = np.mgrid[0:h + 64, 0:w + 64]
        disc = (yy - (h + 64) / 2) ** 2 + (xx - (w + 64) / 2) ** 2 <= ((w + 64) / 2 - 1) ** 2
        coaster[disc] = (246, 244, 238, 255)
        a = rgba[..., 3:4].astype(np.float32) / 255.0
        inner = coaster[32:32 + h, 32:32 + w].astype(np.float32)
        inner[..., :3] = inner[..., :3] * (1 - a) + rgba[..., :3].astype(np.float32) * a
        coaster[32:32 + h, 32:32 + w] = inner.astype(np.uint8)
        path, box = make("logo_starbucks_coaster", skimage_photo("coffee.png"), coaster,
                         [(488, 222), (590, 212), (596, 322), (482, 334)], seed=13,
                         light=0.88, tint=(1.05, 0.97, 0.88), texture=0.35, blur=0.8, noise=2.0)
        queries.append(DemoQuery(
            id="composite_logo_starbucks", image=str(path), box=box, caption=None, expected="Q37158", kind="image",
            description="COMPOSITE (not a real photo): the KB's Starbucks logo printed on a paper coaster placed "
                        "on the wooden table of scikit-image's coffee photo, with perspective, warm light, wood "
                        "texture, blur and noise; image<->image match.",
            composite=True, licence=f"{_CC0} (coffee photo) + CC0-1.0 icon data (Starbucks trademark)",
            attribution=f"{_SKIMAGE.format(v=skv, name='coffee.png')} (Rachel Michetti, courtesy of Pikolo "
                        "Espresso Bar); logo via simple-icons-pack",
        ))

        # 4. GitHub's Octocat painted on the brick wall (greyscale photo; paint follows the bricks).
        rgba, _ = render_logo_rgba("github", 448)
        path, box = make("logo_github_brick_wall", skimage_photo("brick.png"), rgba,
                         [(150, 118), (356, 104), (366, 326), (142, 344)], seed=14,
                         light=1.0, texture=0.9, blur=0.6, noise=2.0)
        queries.append(DemoQuery(
            id="composite_logo_github", image=str(path), box=box, caption=None, expected="Q364", kind="image",
            description="COMPOSITE (not a real photo): the KB's GitHub logo painted on scikit-image's brick wall "
                        "photo, perspective-warped, with the mortar lines showing through; image<->image match.",
            composite=True, licence=f"{_CC0} (brick texture, CC0Textures) + CC0-1.0 icon data (GitHub trademark)",
            attribution=f"{_SKIMAGE.format(v=skv, name='brick.png')}; logo via simple-icons-pack",
        ))
    return queries


def _real_queries(faces: dict[str, Path] | None, flags_ok: bool, skv: str) -> list[DemoQuery]:
    """Queries on real photos (no pixel of them was generated)."""
    from matplotlib import __version__ as mplv

    q: list[DemoQuery] = []
    hopper = str(matplotlib_photo("grace_hopper.jpg"))
    astronaut = str(skimage_photo("astronaut.png"))
    hopper_lic = _US_GOV + " (U.S. Navy photograph); shipped in matplotlib's sample_data"
    hopper_att = f"Commodore Grace M. Hopper, USN, U.S. Navy photo by James S. Davis (1984); matplotlib {mplv} " \
                 "mpl-data/sample_data/grace_hopper.jpg"
    astro_lic = "public domain (NASA photograph; 'no known copyright restrictions' per scikit-image)"
    astro_att = f"Eileen Collins, NASA Great Images; {_SKIMAGE.format(v=skv, name='astronaut.png')}"
    fr_lic = FACE_RECOGNITION_SDIST.licence + " package; the photo is a White House photograph (" + _US_GOV + \
        " as far as known; the package states no separate licence)"
    if faces is not None:
        fr_att = "face_recognition 1.3.0 sdist, tests/test_images/{} (Adam Geitgey)"
        q.append(DemoQuery(
            id="face_obama_podium", image=str(faces["obama2.jpg"]),
            box=_widen((171, 290, 438, 558), (1200, 626)), caption=None, expected="Q76", kind="face",
            description="Same person, a different real photo: the KB holds Obama's official portrait, the query "
                        "is Obama speaking at a podium; faces link (Biden is in the KB as a face distractor).",
            licence=fr_lic, attribution=fr_att.format("obama2.jpg"),
        ))
        q.append(DemoQuery(
            id="face_obama_standing", image=str(faces["obama3.jpg"]),
            box=_widen((626, 292, 925, 593), (2333, 1434)), caption=None, expected="Q76", kind="face",
            description="Same person, a third real photo (standing, arms crossed, different room and light); "
                        "faces link.",
            licence=fr_lic, attribution=fr_att.format("obama3.jpg"),
        ))
        if flags_ok:
            q.append(DemoQuery(
                id="flag_us_behind_obama", image=str(faces["obama2.jpg"]), box=(0.0, 0.0, 200.0, 440.0),
                caption=None, expected="Q30", kind="image",
                description="A real, out-of-focus US flag (stars and stripes) behind a speaker, matched to the "
                            "KB's clean flag image of the United States.",
                licence=fr_lic, attribution=fr_att.format("obama2.jpg"),
            ))
    if flags_ok:
        q.append(DemoQuery(
            id="flag_us_behind_hopper", image=hopper, box=(0.0, 0.0, 150.0, 330.0), caption=None, expected="Q30",
            kind="image",
            description="A real draped US flag (stars on blue, red and white stripes) in a 1984 portrait, matched "
                        "to the KB's clean flag image of the United States.",
            licence=hopper_lic, attribution=hopper_att,
        ))
        q.append(DemoQuery(
            id="flag_us_behind_astronaut", image=astronaut, box=(0.0, 0.0, 95.0, 280.0), caption=None,
            expected="Q30", kind="image",
            description="A real, partly visible US flag at the edge of NASA's portrait of Eileen Collins, matched to "
                        "the KB's clean flag image of the United States.",
            licence=astro_lic, attribution=astro_att,
        ))
    q.append(DemoQuery(
        id="caption_grace_hopper", image=hopper, box=_widen((180, 139, 366, 325), (600, 512)),
        caption="Rear Admiral Grace Hopper, the computer scientist behind COBOL, photographed in 1984.",
        expected="Q11641", kind="caption",
        description="The caption names a person whose KB entry has no photo: the link comes from the text "
                    "(lexical / sentence similarity), the face finds no match.",
        licence=hopper_lic, attribution=hopper_att,
    ))
    q.append(DemoQuery(
        id="caption_eileen_collins", image=astronaut, box=_widen((175, 76, 265, 166), (512, 512)),
        caption="NASA astronaut Eileen Collins, the first woman to command a Space Shuttle mission.",
        expected="Q239911", kind="caption",
        description="The caption names a person with no KB photo, and also names NASA (in the KB with a logo): "
                    "the face region should pick the person, not the agency.",
        licence=astro_lic, attribution=astro_att,
    ))
    q.append(DemoQuery(
        id="caption_falcon_9", image=str(skimage_photo("rocket.jpg")), box=(295.0, 118.0, 350.0, 408.0),
        caption="A Falcon 9 rocket on the pad at Cape Canaveral before SpaceX launched DSCOVR.",
        expected="Q249091", kind="caption",
        description="The caption names the rocket (no photo in the KB) and SpaceX (in the KB with a logo): the "
                    "rocket region should link to Falcon 9.",
        licence="public domain (SpaceX photo released into the public domain, per scikit-image)",
        attribution=f"Falcon 9 / DSCOVR launch, SpaceX; {_SKIMAGE.format(v=skv, name='rocket.jpg')}",
    ))
    q.append(DemoQuery(
        id="nil_cameraman", image=str(skimage_photo("camera.png")), box=(150.0, 55.0, 330.0, 215.0), caption=None,
        expected=None, kind="nil",
        description="A person who is not in the KB (head in profile behind a camera): the answer should be NIL.",
        licence=_CC0, attribution=f"Lav Varshney (photographer); {_SKIMAGE.format(v=skv, name='camera.png')}",
    ))
    q.append(DemoQuery(
        id="nil_cat", image=str(skimage_photo("chelsea.png")), box=(100.0, 10.0, 430.0, 300.0), caption=None,
        expected=None, kind="nil",
        description="A cat, and the KB holds no cat or animal: the answer should be NIL.",
        licence=_CC0, attribution=f"Chelsea the cat, Stefan van der Walt; {_SKIMAGE.format(v=skv, name='chelsea.png')}",
    ))
    return q


def build_materials(root: str | Path | None = None, *, fetch: bool = True, strict: bool = True) -> DemoMaterials:
    """Assemble the demo KB and queries.

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
    skv = _skimage_version()
    entities = _entities(faces, flags, logos)
    queries = _real_queries(faces, flags is not None, skv) + _composites(base, flags, logos, skv)
    known = {e.id for e in entities}
    missing = [q.id for q in queries if q.expected is not None and q.expected not in known]
    if missing:
        raise DemoMaterialError(Msg.E764.format(reason=f"queries {missing} expect entities not in the KB"))
    return DemoMaterials(root=base, entities=entities, queries=queries, notes=notes)


__all__ = [
    "COUNTRY_FLAGS_NPM", "FACE_RECOGNITION_SDIST", "DemoMaterialError", "DemoMaterials", "DemoQuery", "Msg",
    "Pinned", "RECIPE_VERSION", "build_materials", "composite", "demo_root", "face_photos", "fetch_pinned",
    "flag_images", "logo_images", "matplotlib_photo", "render_logo_rgba", "skimage_photo",
]
