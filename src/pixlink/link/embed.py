"""``pixlink kb embed``: compute the KB vectors every dense linking signal needs, with the
profile's models, cached on disk and resumable.

Each signal declares its KB side (:meth:`Signal.kb_items`, :meth:`Signal.kb_encoder`), so this
module only iterates over the signals asked for (default: every signal with KB vectors,
:func:`pixlink.link.signals.dense_signals`):

==============  ====================================================================
signal          vectors written
==============  ====================================================================
``face``        the face of every local entity image (the face signal's rule)
``v2v``         every local image of every entity with the ``image_embed`` model
``v2t``         entity text with the text side of the ``image_text`` model
``dense_text``  entity text (``label: description``) with the ``text_embed`` model
``local``       keypoints + descriptors of every local entity image, one FAISS index
                over all of them (its own store: :meth:`LocalSignal.build_kb_side`)
==============  ====================================================================

A signal whose KB side is not one vector per item defines ``build_kb_side(kb, backend, *,
kb_dir, progress)``, which builds (resumably) and returns its report entry; it is called instead
of the embedding cache.

Items that cannot be embedded (an image that does not exist or does not decode, an image
with no face) are reported per signal; the rest are indexed. Vectors are cached by (model,
item) under ``$PIXLINK_CACHE/embeddings``, so a stopped run resumes and a re-run after adding
entities encodes only the new ones. Each index records the KB build it was made from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ..errors import Errors, InputError, ModelUnavailableError
from ..log import get_logger
from ..models import Profile
from .kbhead import use_kb_head
from .signals import dense_signals, make_signal

log = get_logger("pixlink.link.embed")


def embed_kb(
    kb_dir: str | Path, profile: Profile | str = "auto", signals: Sequence[str] | None = None, *,
    batch_size: int = 32, index_backend: str = "auto", cache_dir: str | Path | None = None, progress: bool = True,
    signal_options: dict[str, dict[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Embed the KB for ``signals`` (default: every dense signal) with ``profile``'s models
    and write the indexes.

    Returns ``signal -> {"space", "model_id", "items", "vectors", "entities", "errors": [...]}``
    (and ``left_out``: ``{reason: entities}`` when the signal leaves some out, as ``face`` does
    entities that are not people); a signal whose model cannot run here is reported as
    ``skipped`` with the reason.
    """
    from ..index.dense import index_dir
    from ..index.embed import build_index_from_store, embed_items
    from ..kb import KB

    prof = profile if isinstance(profile, Profile) else Profile(profile)
    kb = KB.open(kb_dir)
    names = tuple(signals) if signals is not None else dense_signals()
    for name in names:
        if name not in dense_signals():
            raise InputError(Errors.E010.format(what="signal", value=name, reason=f"embeddable: {dense_signals()}"))
    report: dict[str, dict[str, Any]] = {}
    head = use_kb_head(kb_dir, prof) if "instance" in names else None
    for name in names:
        sig = make_signal(name, (signal_options or {}).get(name))
        try:
            backend = prof.get(sig.role)
        except ModelUnavailableError as exc:
            log.warning("kb embed: %s skipped: %s", name, exc)
            report[name] = {"space": sig.space, "skipped": str(exc)}
            continue
        build_kb_side = getattr(sig, "build_kb_side", None)
        if build_kb_side is not None:
            report[name] = build_kb_side(kb, backend, kb_dir=kb_dir, progress=progress)
            continue
        model_id = sig.model_id(backend)
        items, left_out = sig.kb_selection(kb)  # a signal that leaves some entities out says how many
        if not items:
            report[name] = {"space": sig.space, "model_id": model_id, "skipped": "no entity has what this signal embeds",
                            **({"left_out": left_out} if left_out else {})}
            continue
        store = embed_items(items, sig.kb_encoder(backend, batch_size), cache_dir=cache_dir, model_id=model_id,
                            batch_size=batch_size, progress=progress)
        entry: dict[str, Any] = {"space": sig.space, "model_id": model_id, "items": len(items), "vectors": len(store),
                                 "errors": [e.to_dict() for e in store.errors]}
        if left_out:
            entry["left_out"] = left_out
        if name == "instance" and head is not None:
            entry["head"] = str(head)  # the KB's own (pixlink train instance-head)
        if len(store):
            out = index_dir(kb_dir, sig.space, model_id)
            idx = build_index_from_store(store, out, sig.space, backend=index_backend, overwrite=True,
                                         kb_build_id=kb.build_id)
            entry["entities"] = idx.n_entities
            entry["index"] = str(out)
        report[name] = entry
    return report
