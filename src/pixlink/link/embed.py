"""``pixlink kb embed``: compute the KB vectors every linking signal needs, with the
profile's models, cached on disk and resumable.

==============  ====================================================================
signal          vectors written (see :mod:`pixlink.link.vectors`)
==============  ====================================================================
``dense_text``  entity text (``label: description``) with the ``text_embed`` model
``v2t``         entity text with the text side of the ``image_text`` model
``v2v``         every local image of every entity with the ``image_embed`` model
``face``        the largest face in every local entity image with the ``faces`` model
==============  ====================================================================

Items that cannot be embedded (an image that does not exist or does not decode, an image
with no face) are reported per signal; the rest are indexed. Vectors are cached by (model,
item) under ``$PIXLINK_CACHE/embeddings``, so a stopped run resumes and a re-run after adding
entities encodes only the new ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import Errors, InputError, ModelUnavailableError
from ..log import get_logger
from ..models import Profile
from .linker import _text_side_model_id
from .vectors import ROLE_FOR_SIGNAL, SPACE_FOR_SIGNAL

log = get_logger("pixlink.link.embed")

EMBED_SIGNALS = ("dense_text", "v2t", "v2v", "face")


def _image_encoder(backend: Any):
    from ..io import load_image

    def encode(paths: list[str]) -> np.ndarray:
        return np.asarray(backend.encode_images([load_image(p) for p in paths]).embeds, dtype=np.float32)

    return encode


def _face_encoder(backend: Any):
    from ..io import load_image

    def encode(paths: list[str]) -> np.ndarray:
        out = []
        for p in paths:
            img = load_image(p)
            faces = backend.detect(img, upsample=1)
            if not faces:
                faces = backend.detect(img, upsample=2)
            if not faces:
                raise InputError(Errors.E404.format(path=str(p), space="entity_face", reason="no face found in the image"))
            f = max(faces, key=lambda f: float((f.box[2] - f.box[0]) * (f.box[3] - f.box[1])))
            out.append(backend.embed(img, [f])[0])
        return np.asarray(out, dtype=np.float32)

    return encode


def embed_kb(
    kb_dir: str | Path, profile: Profile | str = "auto", signals: Sequence[str] = EMBED_SIGNALS, *,
    batch_size: int = 32, index_backend: str = "auto", cache_dir: str | Path | None = None, progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """Embed the KB for ``signals`` with ``profile``'s models and write the indexes.

    Returns ``signal -> {"space", "model_id", "vectors", "entities", "errors": [...], "skipped"}``;
    a signal whose model cannot run here is reported as skipped with the reason.
    """
    from ..index.dense import index_dir
    from ..index.embed import build_index_from_store, embed_items, image_items, text_items
    from ..kb import KB

    prof = profile if isinstance(profile, Profile) else Profile(profile)
    kb = KB.open(kb_dir)
    report: dict[str, dict[str, Any]] = {}
    for sig in signals:
        if sig not in EMBED_SIGNALS:
            raise InputError(Errors.E010.format(what="signal", value=sig, reason=f"embeddable: {EMBED_SIGNALS}"))
        space = SPACE_FOR_SIGNAL[sig]
        try:
            backend = prof.get(ROLE_FOR_SIGNAL[sig])
        except ModelUnavailableError as exc:
            log.warning("kb embed: %s skipped: %s", sig, exc)
            report[sig] = {"space": space, "skipped": str(exc)}
            continue
        model_id = _text_side_model_id(backend, sig)
        if sig == "dense_text":
            items = list(text_items(kb.iter_entities()))
            encode = lambda texts, b=backend: b.encode(texts, batch_size=batch_size)  # noqa: E731
        elif sig == "v2t":
            items = list(text_items(kb.iter_entities()))
            encode = lambda texts, b=backend: b.encode_texts(texts, batch_size=batch_size)  # noqa: E731
        elif sig == "v2v":
            items = list(image_items(kb.entities_with_images(resolved_only=False)))
            encode = _image_encoder(backend)
        else:
            items = list(image_items(kb.entities_with_images(resolved_only=False)))
            encode = _face_encoder(backend)
        if not items:
            report[sig] = {"space": space, "model_id": model_id, "skipped": "no entity has what this signal embeds"}
            continue
        store = embed_items(items, encode, cache_dir=cache_dir, model_id=model_id, batch_size=batch_size,
                            progress=progress)
        entry: dict[str, Any] = {"space": space, "model_id": model_id, "items": len(items), "vectors": len(store),
                                 "errors": [e.to_dict() for e in store.errors]}
        if len(store):
            idx = build_index_from_store(store, index_dir(kb_dir, space, model_id), space, backend=index_backend,
                                         overwrite=True)
            entry["entities"] = idx.n_entities
            entry["index"] = str(index_dir(kb_dir, space, model_id))
        report[sig] = entry
    return report
