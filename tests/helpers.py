"""The one set of skip helpers of the test suite (``from helpers import shared, need_backend``;
``tests/`` is on pytest's ``pythonpath``).

Data in ../shared/data is read in place, never copied; tests that need it skip with the reason
when it is absent. Optional packages and models skip with the reason when they cannot run —
except in CI, where ``.ci/run`` sets ``PIXLINK_REQUIRE_PACKAGED=1``: every packaged backend is
installed there, so one that cannot load is a failure, not a skip.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PIXLINK_DATA", REPO.parent / "shared" / "data"))

# The people of ../shared/data/photos that the linking, job, service and CLI tests put in their KBs:
# id -> (label, description, reference photo or None). Rose Leslie has no reference photo.
PHOTO_PEOPLE = {
    "Q76": ("Barack Obama", "44th president of the United States", "obama.jpg"),
    "Q6279": ("Joe Biden", "46th president of the United States", "biden.jpg"),
    "Q357607": ("Kit Harington", "English actor", "johnsnow_test1.jpg"),
    "Q1646482": ("Lin-Manuel Miranda", "American composer, lyricist and actor", "lin-manuel-miranda.png"),
    "Q461132": ("Rose Leslie", "Scottish actress", None),
}


def strict() -> bool:
    """True in CI (``PIXLINK_REQUIRE_PACKAGED=1``): what the offline install provides must run."""
    return os.environ.get("PIXLINK_REQUIRE_PACKAGED", "").strip().lower() in ("1", "true", "yes", "on")


def unavailable(reason: str) -> None:
    """Skip with ``reason`` — or fail with it in CI, where it must be available."""
    if strict():
        pytest.fail(f"{reason} (PIXLINK_REQUIRE_PACKAGED is set: the offline install must provide it)")
    pytest.skip(reason)


def shared(*parts: str) -> Path:
    """Path inside ../shared/data; skips the calling test with a clear reason if absent.

    Shared data is not installed by CI, so its absence always skips (never fails)."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data {p} is absent (set PIXLINK_DATA to the folder holding it)")
    return p


def need_module(name: str, why: str = "") -> Any:
    """Import and return module ``name``, or skip (fail in CI) naming the package and ``why``."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        unavailable(f"module {name} cannot be imported ({exc}){': ' + why if why else ''}")


def need_backend(role: str, name: str, **options: Any) -> Any:
    """Build backend ``name`` of ``role`` with ``options``, or skip (fail in CI) with the reason
    it cannot run. Hub backends cannot run here at all; use tiny models for those."""
    from pixlink.models.registry import get_spec

    spec = get_spec(role, name)
    why = spec.availability()
    if why is not None:
        if spec.kind == "hub":
            pytest.skip(f"{role}/{name} cannot run here: {why}")
        unavailable(f"{role}/{name} cannot run here: {why}")
    return spec.factory(**options)


def need_composite() -> None:
    """What the generated logo composites (``pixlink.demo.composite``) and local features need."""
    need_module("cv2", "SIFT comes from opencv")
    need_module("simple_icons_pack", "the icons are the KB images")
    need_module("resvg_py", "it renders the icons")
    need_module("skimage", "its photos are the backgrounds")


def composite_kb(root: Path, **small_set: Any) -> tuple[Any, Path]:
    """A small generated logo composite set (``pixlink.demo.composite.small_set(root, **small_set)``)
    and its KB with the local-feature store: ``(set, kb_dir)``; skips without the packages."""
    need_composite()
    from pixlink.demo.composite import build_kb, small_set as make_set
    from pixlink.link.embed import embed_kb
    from pixlink.models import Profile

    cs = make_set(root, **small_set)
    kb_dir = build_kb(cs, root / "kb")
    embed_kb(kb_dir, Profile("offline"), ["local"], progress=False)
    return cs, kb_dir


def codex_types_of(qids: Any, out_dir: Path) -> list[str]:
    """The CoDEx type files cut to the types of ``qids`` (the whole file adds 3,443 type
    entities to embed), written in ``out_dir``: the two paths to give ``build_kb``."""
    import json

    types = json.loads(shared("kb", "codex_entity2types.json").read_text())
    ours = {q: types[q] for q in qids if q in types}
    labels = json.loads(shared("kb", "codex_types_en.json").read_text())
    (out_dir / "codex_entity2types.json").write_text(json.dumps(ours))
    (out_dir / "codex_types_en.json").write_text(json.dumps({t: labels[t] for ts in ours.values() for t in ts if t in labels}))
    return [str(out_dir / "codex_entity2types.json"), str(out_dir / "codex_types_en.json")]


def race(lookup: Any, threads: int = 8, calls: int = 16) -> tuple[int, list[Any]]:
    """Call ``lookup(compute)`` from ``threads`` threads ``calls`` times at once, ``compute`` a slow
    function returning a fresh array: ``(how many times compute ran, what each call returned)``
    (a single-flight cache computes once and hands every caller the same object)."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    ran, lock = [], threading.Lock()

    def compute() -> Any:
        with lock:
            ran.append(1)
        time.sleep(0.05)
        return np.ones(3)

    with ThreadPoolExecutor(threads) as pool:
        got = list(pool.map(lambda _: lookup(compute), range(calls)))
    return len(ran), got
