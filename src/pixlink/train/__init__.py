"""Learn linkers from data: VNEL's bi-encoders and IIER's interaction units.

* :func:`train_biencoder` (:mod:`.biencoder`) — residual adapters on frozen encoders, InfoNCE
  with hard negatives; VNEL's V2VEL / V2TEL / V2VTEL and the text-only ``t2t`` space.
* :func:`train_iier` (:mod:`.iier`) — IIER's TFI / VFI / CMFI units with its loss.
* :mod:`.data` — any dataset the eval loaders read, seeded splits (MIMIC's 7:1:2), filtering
  against the KB, data hashes; :mod:`.features` — frozen features cached on disk (resumable);
  :mod:`.loop` — optimiser, figures, calibration, resumable state, mean +- sd over seeds.

A trained model is a checkpoint directory (``model.safetensors`` + ``config.json``) that the
linker loads as a re-ranking stage: ``LinkerConfig(reranker=DIR)`` (:mod:`pixlink.link.rerank`).
The command line: ``pixlink train biencoder|iier|split|show``; the guide: ``docs/train.md``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["train_biencoder", "train_iier", "BiEncoderOptions", "IIEROptions", "split_mentions", "read_dataset"]


def __getattr__(name: str) -> Any:  # torch is imported only when a trainer is used
    if name in ("train_biencoder", "BiEncoderOptions"):
        from . import biencoder

        return getattr(biencoder, name)
    if name in ("train_iier", "IIEROptions"):
        from . import iier

        return getattr(iier, name)
    if name in ("split_mentions", "read_dataset"):
        from . import data

        return getattr(data, name)
    raise AttributeError(name)
