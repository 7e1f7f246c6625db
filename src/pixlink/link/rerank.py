"""Trained heads in the linker: a re-ranking stage over the fused candidates, and what a head
reads (features) and is saved as (checkpoints).

Two kinds of head are trained by :mod:`pixlink.train` and run here:

* ``biencoder`` — VNEL's bi-encoders (Sun et al., Findings of EMNLP 2022): frozen encoders with
  residual adapters ``F = f + ReLU(f W1) W2`` on each side of each *space*, L2-normalised, a
  cosine per space, the mean over the spaces that apply. Spaces:

  ==========  ==================================  ==================================  ==============
  space       mention side                        entity side                         role
  ==========  ==================================  ==================================  ==============
  ``t2t``     IIER's mention text                 ``label: description``              ``text_embed``
  ``v2v``     the region's image view             the entity's first local image      ``image_embed``
  ``v2t``     the region's image view             ``label: description``              ``image_text``
  ``face``    the face in the region              the face of the entity's image      ``faces``
  ==========  ==================================  ==================================  ==============

  VNEL's tasks are sets of spaces (:data:`TASKS`): V2VEL = ``v2v`` (+ ``face``), V2TEL =
  ``v2t``, V2VTEL = ``v2v`` + ``v2t``; ``text`` = ``t2t`` (the MEL text-only experiment).
  ``W2`` starts at zero, so an untrained head *is* the frozen encoders' cosine.
* ``iier`` — IIER's interaction units (:mod:`pixlink.link.iier`).

**Checkpoint** (a directory): ``model.safetensors`` (the head's weights) and ``config.json``
(``kind``, ``format``, ``pixlink_version``, the head's architecture, the features it reads with
the **model ids** of the encoders that made them, the image view, the training options, the
**data hashes**, per-epoch dev figures, and ``calibration``: the logistic fit of its raw score
on dev, which the fusion uses). A head refuses to run on features of other models (E773).

**The stage** (:func:`rerank`): the linker fuses its signals as before; then the top
``top_k`` fused candidates are scored by the head, the raw score is added to each candidate's
``signals["rerank"]``, and the candidates are ordered again:

* ``mode="fuse"`` (default): the head's calibrated probability joins the fused mean as one more
  signal (weight from the checkpoint or ``weight``), so the NIL threshold keeps its meaning;
* ``mode="replace"``: the calibrated probability *is* the score (VNEL's recall-then-rerank).

Candidates below ``top_k`` keep their fused score, capped below the lowest re-ranked one, so the
list stays sorted. Configure it with ``LinkerConfig(reranker="DIR")`` or
``reranker={"path": "DIR", "top_k": 50, "mode": "fuse"}`` (``pixlink link --reranker DIR``,
``eval link --reranker DIR``; services and jobs receive it inside the :class:`LinkerSpec`).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import Errors, InputError, ModelUnavailableError
from ..log import get_logger
from ..models import roles as R
from ..types import Candidate, Entity, Region

log = get_logger("pixlink.link.rerank")

RERANK_SIGNAL = "rerank"
"""The name the head's raw score has among a candidate's signals."""
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
KINDS = ("biencoder", "iier")
MODES = ("fuse", "replace")
VIEWS = ("crop", "masked_crop", "red_box", "image")
SPACES = ("t2t", "v2v", "v2t", "face")
SPACE_ROLES = {"t2t": R.TEXT_EMBED, "v2v": R.IMAGE_EMBED, "v2t": R.IMAGE_TEXT, "face": R.FACES}
TASKS: dict[str, tuple[str, ...]] = {
    "text": ("t2t",), "v2vel": ("v2v",), "v2tel": ("v2t",), "v2vtel": ("v2v", "v2t"), "face": ("face",),
    "person": ("face", "v2v"),
}
"""VNEL's tasks (and pixlink's ``text``, ``face``, ``person``) as sets of spaces."""

DEFAULT_CALIBRATION = {"center": 0.0, "slope": 1.0, "weight": 2.0}
"""A head's score calibration when its checkpoint holds none (the ``rerank`` entry of the
shipped fusion files)."""


# ------------------------------------------------------------------------------------------------
# what a mention is, for a head
# ------------------------------------------------------------------------------------------------


@dataclass
class MentionInput:
    """One mention as the heads read it: ``image`` ``(H, W, 3)`` uint8 or None (text-only),
    ``region`` (XYXY box in original pixels, optional mask; None = the whole image), ``text``
    (the sentence / caption), ``surface`` (the mention's words), ``extra`` (the Detective-VLM's
    answer, appended to the text when the head was trained with it)."""

    image: np.ndarray | None = None
    region: Region | None = None
    text: str | None = None
    surface: str | None = None
    extra: str | None = None

    @classmethod
    def from_query(cls, q: Any) -> "MentionInput":
        return cls(image=q.image, region=q.region, text=q.text, surface=q.surface)


def view_of(inp: MentionInput, view: str, margin: float = 0.1) -> np.ndarray | None:
    """The image a head's mention side sees: ``(h, w, 3)`` uint8, or None without an image.

    ``view``: ``crop`` (the box, grown by ``margin``), ``masked_crop``, ``red_box`` (VP-MEL: the
    whole image with the box drawn in red) or ``image`` (the whole image)."""
    from ..imaging import red_box
    from ..regions import crop, masked_crop

    if inp.image is None:
        return None
    if inp.region is None or view == "image":
        return inp.image
    if view == "red_box":
        return red_box(inp.image, inp.region.bbox)
    if view == "masked_crop":
        return masked_crop(inp.image, inp.region, margin)
    return crop(inp.image, inp.region, margin)


def mention_text_of(inp: MentionInput) -> str:
    """The mention's text input (IIER's ``words [SEP] sentence``, with ``extra`` appended)."""
    from .iier import mention_text

    return mention_text(inp.surface, inp.text, inp.extra)


def entity_text_of(entity: Entity) -> str:
    """The entity's text for the ``t2t`` / ``v2t`` spaces: ``label: description``, the text the
    KB's ``entity_text`` vectors are made of (so the untrained head equals the dense signals)."""
    from ..index.embed import entity_text

    return entity_text(entity)


def first_local_image(entity: Entity) -> str | None:
    """The entity's first image that is a local file, or None."""
    for ref in entity.images:
        if ref and Path(ref).is_file():
            return ref
    return None


# ------------------------------------------------------------------------------------------------
# features of the bi-encoder's spaces (frozen encoders)
# ------------------------------------------------------------------------------------------------


def space_model_ids(space: str, backend: Any) -> dict[str, str]:
    """The model ids of a space's two sides for ``backend`` (recorded in checkpoints)."""
    mid = str(backend.model_id)
    if space == "v2t":
        return {"mention": mid, "entity": str(getattr(backend, "text_model_id", mid))}
    return {"mention": mid, "entity": mid}


def _nan_rows(n: int, d: int) -> np.ndarray:
    return np.full((n, d), np.nan, dtype=np.float32)


def mention_vectors(space: str, backend: Any, inputs: Sequence[MentionInput], view: str = "crop",
                    margin: float = 0.1, face_rule: Any = None) -> np.ndarray:
    """``(N, D)`` float32 frozen mention vectors of ``space``; a row of NaN where the mention has
    nothing for the space (no image, no face in the region)."""
    from ..vecmath import l2_normalise

    if space not in SPACES:
        raise InputError(Errors.E774.format(name=space, reason=f"known spaces: {SPACES}"))
    d = int(backend.dim)
    out = _nan_rows(len(inputs), d)
    if space == "t2t":
        texts = [mention_text_of(i) for i in inputs]
        if texts:
            out[:] = l2_normalise(np.asarray(backend.encode(texts, query=True), dtype=np.float32))
        return out
    if space == "face":
        from .signals.face import FaceRule, face_vector

        rule = face_rule or FaceRule()
        for n, inp in enumerate(inputs):
            if inp.image is None:
                continue
            vec = face_vector(backend, inp.image, None if inp.region is None else inp.region.bbox, rule)
            if vec is not None:
                out[n] = vec
        return out
    idx = [n for n, i in enumerate(inputs) if i.image is not None]
    if idx:
        views = [view_of(inputs[n], view, margin) for n in idx]
        out[idx] = l2_normalise(np.asarray(backend.encode_images(views).embeds, dtype=np.float32))
    return out


def entity_vectors(space: str, backend: Any, entities: Sequence[Entity], face_rule: Any = None) -> np.ndarray:
    """``(N, D)`` float32 frozen entity vectors of ``space``; NaN rows for entities without what
    the space needs (no local image; no face in it)."""
    from ..io import load_image
    from ..vecmath import l2_normalise

    if space not in SPACES:
        raise InputError(Errors.E774.format(name=space, reason=f"known spaces: {SPACES}"))
    d = int(backend.dim)
    out = _nan_rows(len(entities), d)
    if space in ("t2t", "v2t"):
        texts = [entity_text_of(e) for e in entities]
        if texts:
            enc = backend.encode(texts) if space == "t2t" else backend.encode_texts(texts)
            out[:] = l2_normalise(np.asarray(enc, dtype=np.float32))
        return out
    paths = [first_local_image(e) for e in entities]
    if space == "face":
        from .signals.face import FaceRule, face_vector

        rule = face_rule or FaceRule()
        for n, p in enumerate(paths):
            if p is None:
                continue
            vec = face_vector(backend, load_image(p), None, rule)
            if vec is not None:
                out[n] = vec
        return out
    idx = [n for n, p in enumerate(paths) if p is not None]
    if idx:
        out[idx] = l2_normalise(np.asarray(backend.encode_images([load_image(paths[n]) for n in idx]).embeds,
                                           dtype=np.float32))
    return out


# ------------------------------------------------------------------------------------------------
# the bi-encoder head
# ------------------------------------------------------------------------------------------------


class Adapter(nn.Module):
    """VNEL's residual adapter ``F = f + ReLU(f W1) W2`` (``W2`` starts at zero: identity)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden)
        self.w2 = nn.Linear(hidden, dim)
        nn.init.zeros_(self.w2.weight)
        nn.init.zeros_(self.w2.bias)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return f + self.w2(torch.relu(self.w1(f)))


@dataclass
class BiEncoderConfig:
    """Architecture of :class:`BiEncoderHead`: ``spaces`` -> vector width, the adapters' hidden
    width, and whether mention and entity share an adapter (VNEL: separate)."""

    dims: dict[str, int]
    hidden: int = 256
    shared: bool = False

    def __post_init__(self) -> None:
        bad = [s for s in self.dims if s not in SPACES]
        if bad or not self.dims:
            raise InputError(Errors.E770.format(option="spaces", value=list(self.dims), reason=f"choose from {SPACES}"))
        if int(self.hidden) < 1:
            raise InputError(Errors.E770.format(option="hidden", value=self.hidden, reason="must be >= 1"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class BiEncoderHead(nn.Module):
    """Adapted cosines per space. Inputs are dicts ``space -> (N, D)`` float tensors of frozen
    unit vectors (NaN rows = the side has nothing for that space)."""

    def __init__(self, cfg: BiEncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.mention = nn.ModuleDict({s: Adapter(d, cfg.hidden) for s, d in cfg.dims.items()})
        self.entity = self.mention if cfg.shared else nn.ModuleDict({s: Adapter(d, cfg.hidden) for s, d in cfg.dims.items()})

    @property
    def spaces(self) -> tuple[str, ...]:
        return tuple(self.cfg.dims)

    def embed(self, side: str, space: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(unit adapted vectors (N, D) with 0 rows where x was NaN, present (N,) bool)``."""
        present = ~torch.isnan(x).any(dim=1)
        x = torch.nan_to_num(x, nan=0.0)
        mod = (self.mention if side == "mention" else self.entity)[space]
        y = torch.nn.functional.normalize(mod(x), dim=1)
        return y * present[:, None].to(y.dtype), present

    def forward(self, mention: Mapping[str, torch.Tensor], entity: Mapping[str, torch.Tensor]
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(score (B, E), {space: cosine (B, E)})``: the score is the mean cosine over the
        spaces both sides have (0 where none applies)."""
        total = None
        count = None
        per: dict[str, torch.Tensor] = {}
        for s in self.spaces:
            if s not in mention or s not in entity:
                continue
            m, pm = self.embed("mention", s, mention[s])
            e, pe = self.embed("entity", s, entity[s])
            cos = m @ e.T
            ok = (pm[:, None] & pe[None, :]).to(cos.dtype)
            per[s] = cos
            total = cos * ok if total is None else total + cos * ok
            count = ok if count is None else count + ok
        if total is None:
            raise InputError(Errors.E778.format(reason=f"no space of {self.spaces} on both sides"))
        return total / count.clamp(min=1.0), per


# ------------------------------------------------------------------------------------------------
# checkpoints
# ------------------------------------------------------------------------------------------------


def save_checkpoint(out_dir: str | Path, head: nn.Module, config: dict[str, Any]) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``out_dir`` (each written to a
    temporary file and renamed, so a reader never sees half a checkpoint). ``config`` must hold
    ``kind`` and ``head``."""
    from safetensors.torch import save_file

    from .. import __version__

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if config.get("kind") not in KINDS:
        raise InputError(Errors.E772.format(path=str(out), reason=f"kind {config.get('kind')!r} is not one of {KINDS}"))
    cfg = {"format": FORMAT_VERSION, "pixlink_version": __version__, **config}
    state = {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
    tmp_w = out / (WEIGHTS_FILE + ".tmp")
    save_file(state, str(tmp_w), metadata={"kind": str(cfg["kind"]), "format": str(FORMAT_VERSION)})
    tmp_c = out / (CONFIG_FILE + ".tmp")
    tmp_c.write_text(json.dumps(cfg, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    tmp_w.replace(out / WEIGHTS_FILE)
    tmp_c.replace(out / CONFIG_FILE)
    return out


def load_checkpoint(path: str | Path, device: str = "cpu") -> tuple[dict[str, Any], nn.Module]:
    """``(config, head in eval mode)`` of a checkpoint directory; E772 naming what is wrong."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    p = Path(path).expanduser()
    if not p.is_dir():
        raise InputError(Errors.E772.format(path=str(p), reason="not a directory"))
    for f in (WEIGHTS_FILE, CONFIG_FILE):
        if not (p / f).is_file():
            raise InputError(Errors.E772.format(path=str(p), reason=f"{f} is missing (not a pixlink train output)"))
    try:
        cfg = json.loads((p / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(Errors.E772.format(path=str(p), reason=f"config.json cannot be read ({exc})")) from exc
    if not isinstance(cfg, dict) or cfg.get("kind") not in KINDS:
        raise InputError(Errors.E772.format(path=str(p), reason=f"config.json names no kind of {KINDS}"))
    if int(cfg.get("format", 0)) > FORMAT_VERSION:
        raise InputError(Errors.E772.format(path=str(p), reason=f"format {cfg.get('format')} is newer than this "
                                                                 f"pixlink reads ({FORMAT_VERSION})"))
    head = build_head(cfg, str(p))
    try:
        state = load_file(str(p / WEIGHTS_FILE), device="cpu")
        head.load_state_dict(state, strict=True)
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise InputError(Errors.E772.format(path=str(p), reason=f"the weights do not fit the head ({str(exc)[:300]})")) from exc
    return cfg, head.to(device).eval()


def build_head(cfg: Mapping[str, Any], where: str = "config") -> nn.Module:
    """A freshly initialised head of the architecture ``cfg["head"]`` describes."""
    try:
        if cfg["kind"] == "biencoder":
            return BiEncoderHead(BiEncoderConfig(**cfg["head"]))
        from .iier import IIER, IIERConfig

        return IIER(IIERConfig.from_dict(dict(cfg["head"])))
    except (KeyError, TypeError) as exc:
        raise InputError(Errors.E772.format(path=where, reason=f"head architecture malformed ({exc!r})")) from exc


# ------------------------------------------------------------------------------------------------
# the stage
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RerankOptions:
    """How the linker uses a trained head (``LinkerConfig.reranker``).

    Attributes:
        path: the checkpoint directory.
        top_k: how many of the best fused candidates the head scores.
        mode: ``"fuse"`` (the head's calibrated probability joins the fused mean) or
            ``"replace"`` (it is the score).
        weight: the head's weight in the fused mean (default: the checkpoint's calibration).
    """

    path: str
    top_k: int = 50
    mode: str = "fuse"
    weight: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path:
            raise InputError(Errors.E010.format(what="reranker path", value=self.path, reason="a checkpoint directory"))
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 1:
            raise InputError(Errors.E010.format(what="reranker top_k", value=self.top_k, reason="an integer >= 1"))
        if self.mode not in MODES:
            raise InputError(Errors.E010.format(what="reranker mode", value=self.mode, reason=f"one of {MODES}"))
        if self.weight is not None and (isinstance(self.weight, bool) or not isinstance(self.weight, (int, float))
                                        or self.weight <= 0):
            raise InputError(Errors.E010.format(what="reranker weight", value=self.weight, reason="a number > 0"))

    @classmethod
    def from_config(cls, value: Any) -> "RerankOptions":
        """From ``LinkerConfig.reranker``: a path, or a dict of these attributes."""
        if isinstance(value, RerankOptions):
            return value
        if isinstance(value, (str, Path)):
            return cls(path=str(value))
        if isinstance(value, Mapping):
            known = {"path", "top_k", "mode", "weight"}
            unknown = sorted(set(value) - known)
            if unknown:
                raise InputError(Errors.E010.format(what="reranker keys", value=unknown, reason=f"known: {sorted(known)}"))
            return cls(**{k: (str(v) if k == "path" else v) for k, v in value.items()})
        raise InputError(Errors.E010.format(what="reranker", value=value, reason="a checkpoint path or a dict"))


class Reranker:
    """A trained head, ready to score a linker's candidates (thread-safe; built once per linker).

    Entity features are computed on first use and kept in a bounded cache (``max_entities``
    entries, least recently used dropped), so a service pays for each entity once.
    """

    def __init__(self, options: RerankOptions, profile: Any, max_entities: int = 20000) -> None:
        self.options = options
        self.path = str(Path(options.path).expanduser())
        self.profile = profile
        self.config, self.head = load_checkpoint(self.path)
        self.kind = self.config["kind"]
        self.features = dict(self.config.get("features") or {})
        cal = {**DEFAULT_CALIBRATION, **(self.config.get("calibration") or {})}
        if options.weight is not None:
            cal["weight"] = float(options.weight)
        self.calibration = cal
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._max = int(max_entities)
        self._checked = False
        self._text_tokens: Any = None

    # -- models ----------------------------------------------------------------------------------
    def _backend(self, role: str) -> Any:
        try:
            return self.profile.get(role)
        except ModelUnavailableError as exc:
            raise ModelUnavailableError(Errors.E773.format(path=self.path, what=f"the {role} role",
                                                           reason=str(exc))) from exc

    def check(self) -> None:
        """E773 unless the profile runs the encoders the head was trained on."""
        if self._checked:
            return
        for name, spec in self.features.items():
            role = spec.get("role")
            if role is None:
                continue
            backend = self._backend(role)
            if self.kind == "biencoder":
                got = space_model_ids(name, backend)
                want = spec.get("model_ids") or {}
                if want and got != want:
                    raise InputError(Errors.E773.format(
                        path=self.path, what=f"{name} features of {want}", reason=f"the profile runs {got}"))
            elif spec.get("model_id") and str(backend.model_id) != spec["model_id"] and name == "image":
                raise InputError(Errors.E773.format(path=self.path, what=f"image features of {spec['model_id']}",
                                                    reason=f"the profile runs {backend.model_id}"))
        self._checked = True

    # -- entity side (cached) --------------------------------------------------------------------
    def _cached(self, key: tuple[str, str]) -> Any:
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        return None

    def _store(self, key: tuple[str, str], value: Any) -> None:
        with self._lock:
            self._cache[key] = value
            self._cache.move_to_end(key)
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)

    def _entity_vectors(self, space: str, entities: list[Entity]) -> np.ndarray:
        backend = self._backend(SPACE_ROLES[space])
        out: list[np.ndarray | None] = [self._cached((space, e.id)) for e in entities]
        todo = [n for n, v in enumerate(out) if v is None]
        if todo:
            vecs = entity_vectors(space, backend, [entities[n] for n in todo])
            for n, v in zip(todo, vecs):
                out[n] = v
                self._store((space, entities[n].id), v)
        return np.stack(out) if out else np.zeros((0, int(backend.dim)), np.float32)

    # -- scoring ---------------------------------------------------------------------------------
    def score(self, q: Any, linker: Any, ids: Sequence[str]) -> dict[str, float]:
        """Raw head scores of the candidates ``ids`` for the linker's query ``q``."""
        if not ids:
            return {}
        self.check()
        ents = {e.id: e for e in linker.kb.get_many(list(ids))}
        keep = [i for i in ids if i in ents]
        entities = [ents[i] for i in keep]
        inp = MentionInput.from_query(q)
        if self.kind == "biencoder":
            scores = self._score_biencoder(inp, entities)
        else:
            scores = self._score_iier(inp, entities, q, linker)
        return {eid: float(s) for eid, s in zip(keep, scores)}

    def _score_biencoder(self, inp: MentionInput, entities: list[Entity]) -> np.ndarray:
        view = self.config.get("view", "crop")
        margin = float(self.config.get("crop_margin", 0.1))
        men: dict[str, torch.Tensor] = {}
        ent: dict[str, torch.Tensor] = {}
        for space in self.head.spaces:
            backend = self._backend(SPACE_ROLES[space])
            mv = mention_vectors(space, backend, [inp], view, margin)
            if np.isnan(mv).all():
                continue
            men[space] = torch.from_numpy(mv)
            ent[space] = torch.from_numpy(self._entity_vectors(space, entities))
        if not men:
            return np.full(len(entities), np.nan)
        with torch.inference_mode():
            score, _ = self.head(men, ent)
        return score[0].numpy()

    def _iier_text(self) -> Any:
        """The token encoder of the profile's text backend (the model the head was trained on)."""
        from .iier import TextTokenEncoder

        spec = self.features["text"]
        backend = self._backend(spec["role"])
        if spec.get("model_id") and str(backend.model_id) != spec["model_id"]:
            raise InputError(Errors.E773.format(path=self.path, what=f"text features of {spec['model_id']}",
                                                reason=f"the profile runs {backend.model_id}"))
        with self._lock:
            if self._text_tokens is None:
                self._text_tokens = TextTokenEncoder.from_backend(backend, int(spec.get("max_length", 40)))
            return self._text_tokens

    def _score_iier(self, inp: MentionInput, entities: list[Entity], q: Any, linker: Any) -> np.ndarray:
        from .iier import entity_text, image_features

        enc = self._iier_text()
        cfg = self.head.cfg
        if self.config.get("detective"):
            from .iier import detective_text

            inp.extra, _src = detective_text(inp, self.profile, mode=self.config["detective"], linker=linker)
        mt = enc.encode([mention_text_of(inp)])
        men = {"text_cls": torch.from_numpy(mt.cls), "text_tokens": torch.from_numpy(mt.tokens),
               "text_mask": torch.from_numpy(mt.mask)}
        cached = [self._cached(("iier_text", e.id)) for e in entities]
        todo = [n for n, c in enumerate(cached) if c is None]
        if todo:
            et = enc.encode([entity_text(entities[n].label, entities[n].description) for n in todo])
            for j, n in enumerate(todo):
                cached[n] = (et.cls[j], et.tokens[j], et.mask[j])
                self._store(("iier_text", entities[n].id), cached[n])
        ent = {"text_cls": torch.from_numpy(np.stack([c[0] for c in cached])),
               "text_tokens": torch.from_numpy(np.stack([c[1] for c in cached])),
               "text_mask": torch.from_numpy(np.stack([c[2] for c in cached]))}
        if cfg.uses_image:
            layers = list(self.features["image"]["layers"])
            backend = self._backend(R.IMAGE_EMBED if self.features["image"].get("role") == R.IMAGE_EMBED else R.IMAGE_TEXT)
            view = view_of(inp, self.config.get("view", "red_box"), float(self.config.get("crop_margin", 0.1)))
            if view is None:
                view = np.zeros((32, 32, 3), np.uint8)  # a text-only mention: a blank image, as MIMIC gives
            c, p = image_features(backend, [view], layers)
            men["image_cls"], men["image_tokens"] = torch.from_numpy(c), torch.from_numpy(p)
            ecls, etok = [], []
            for e in entities:
                hit = self._cached(("iier_image", e.id))
                if hit is None:
                    from ..io import load_image

                    path = first_local_image(e)
                    img = load_image(path) if path else np.zeros((32, 32, 3), np.uint8)
                    c1, p1 = image_features(backend, [img], layers)
                    hit = (c1[0], p1[0])
                    self._store(("iier_image", e.id), hit)
                ecls.append(hit[0])
                etok.append(hit[1])
            ent["image_cls"], ent["image_tokens"] = torch.from_numpy(np.stack(ecls)), torch.from_numpy(np.stack(etok))
        with torch.inference_mode():
            score, _ = self.head(men, ent)
        return score[0].numpy()

    def prob(self, raw: float) -> float:
        """The calibrated probability of a raw head score."""
        c = self.calibration
        return float(1.0 / (1.0 + np.exp(-float(c["slope"]) * (float(raw) - float(c["center"])))))


_BUILD_LOCK = threading.Lock()
_ATTR = "_pixlink_reranker"


def reranker_for(linker: Any) -> Reranker | None:
    """The linker's :class:`Reranker` (built on first use and kept on the linker, so it lives
    and dies with it), or None when ``linker.config.reranker`` is not set."""
    value = getattr(linker.config, "reranker", None)
    if not value:
        return None
    r = getattr(linker, _ATTR, None)
    if r is not None:
        return r
    with _BUILD_LOCK:
        r = getattr(linker, _ATTR, None)
        if r is None:
            r = Reranker(RerankOptions.from_config(value), linker.profile)
            setattr(linker, _ATTR, r)
        return r


def rerank(linker: Any, q: Any, cands: list[Candidate]) -> list[Candidate]:
    """The re-ranking stage (see the module docstring): returns the candidates ordered again,
    each re-scored one carrying ``signals["rerank"]``; notes in ``q`` say what ran."""
    r = reranker_for(linker)
    if r is None or not cands:
        return cands
    opts = r.options
    top = cands[: opts.top_k]
    raw = r.score(q, linker, [c.entity_id for c in top])
    if not raw or all(np.isnan(v) for v in raw.values()):
        q.note(f"rerank: the head of {r.path} could not score this mention (nothing of what it reads); "
               "the fused order is kept")
        return cands
    q.signals[RERANK_SIGNAL] = f"{r.kind}:{Path(r.path).name}"
    from .fusion import SignalCalibration

    cal = SignalCalibration(center=float(r.calibration["center"]), slope=float(r.calibration["slope"]),
                            weight=float(r.calibration["weight"]))
    out = []
    for c in top:
        x = raw.get(c.entity_id)
        if x is None or np.isnan(x):
            out.append(c)
            continue
        p = float(cal.prob(x))
        sigs = {**c.signals, RERANK_SIGNAL: round(float(x), 6)}
        if opts.mode == "replace":
            score = p
        else:
            # the fused mean with the head's probability as one more signal of weight w:
            # (fused * W + w * p) / (W + w), W = the weight the fused mean already had
            base_w = _fused_weight(linker, c)
            score = (c.score * base_w + cal.weight * p) / (base_w + cal.weight) if base_w > 0 else p
        out.append(Candidate(entity_id=c.entity_id, score=round(score, 6), signals=sigs, label=c.label,
                             description=c.description))
    out.sort(key=lambda c: (-c.score, c.entity_id))
    floor = min((c.score for c in out), default=0.0)
    tail = [Candidate(entity_id=c.entity_id, score=round(min(c.score, floor - 1e-6), 6), signals=c.signals,
                      label=c.label, description=c.description) for c in cands[opts.top_k:]]
    return out + tail


def _fused_weight(linker: Any, c: Candidate) -> float:
    """The total weight of the mean signals that scored ``c`` (gates and the priors of
    unverified signals left out: an approximation of the denominator of its fused mean)."""
    total = 0.0
    for name in c.signals:
        cal = linker.fusion.cal(name)
        if cal is not None and not cal.gate:
            total += float(cal.weight)
    return total


def rerank_entities(head: nn.Module, mention: Mapping[str, torch.Tensor], entity: Mapping[str, torch.Tensor],
                    chunk: int = 4096) -> np.ndarray:
    """``(B, E)`` head scores, entities in chunks (for evaluation over a whole KB)."""
    n = next(iter(entity.values())).shape[0]
    parts = []
    with torch.inference_mode():
        for s in range(0, n, chunk):
            part = {k: v[s:s + chunk] for k, v in entity.items()}
            parts.append(head(dict(mention), part)[0].numpy())
    return np.concatenate(parts, axis=1) if parts else np.zeros((next(iter(mention.values())).shape[0], 0), np.float32)


def describe_checkpoint(path: str | Path) -> dict[str, Any]:
    """A short description of a checkpoint (kind, features, best epoch and dev figures)."""
    cfg, _ = load_checkpoint(path)
    return {k: cfg.get(k) for k in ("kind", "task", "features", "view", "best", "calibration", "pixlink_version",
                                    "data", "frozen_encoders")}


__all__ = ["Adapter", "BiEncoderConfig", "BiEncoderHead", "MentionInput", "RerankOptions", "Reranker", "TASKS", "SPACES",
           "SPACE_ROLES", "RERANK_SIGNAL", "save_checkpoint", "load_checkpoint", "build_head", "mention_vectors",
           "entity_vectors", "view_of", "mention_text_of", "entity_text_of", "first_local_image", "rerank",
           "reranker_for", "space_model_ids", "rerank_entities", "describe_checkpoint"]
