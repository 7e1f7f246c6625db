"""The KB's vectors as the linker sees them: which index serves which signal.

A KB directory holds dense indexes under ``vectors/<space>/<model-slug>/`` (see
:mod:`pixlink.index.dense`), each tagged with the model that made it. A signal needs the
index of its space made by *the model the linker runs*:

==============  ================  ================================================
signal          space             made by
==============  ================  ================================================
``face``        ``entity_face``   the ``faces`` backend (faces found in entity images)
``v2v``         ``entity_image``  the ``image_embed`` backend (entity images)
``v2t``         ``entity_text``   the text side of the ``image_text`` backend
``dense_text``  ``entity_text``   the ``text_embed`` backend
==============  ================  ================================================

An index of the right space made by another model is an error (E402), never re-used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import Errors, KBError
from ..models import roles as R

SPACE_FOR_SIGNAL = {"face": "entity_face", "v2v": "entity_image", "v2t": "entity_text", "dense_text": "entity_text"}
ROLE_FOR_SIGNAL = {"face": R.FACES, "v2v": R.IMAGE_EMBED, "v2t": R.IMAGE_TEXT, "dense_text": R.TEXT_EMBED}


class KBVectors:
    """Opens (and caches) the dense indexes of one KB directory by (space, model id)."""

    def __init__(self, kb_dir: Path):
        self.kb_dir = Path(kb_dir)
        self._open: dict[tuple[str, str], Any] = {}

    def available(self) -> list[Any]:
        """Every index of the KB (:class:`pixlink.index.dense.IndexInfo`)."""
        from ..index.dense import list_indexes

        return list_indexes(self.kb_dir)

    def get(self, space: str, model_id: str) -> Any | None:
        """The index of ``space`` made by ``model_id``; ``None`` when the space has no index at
        all; E402 when it has indexes only of other models."""
        key = (space, model_id)
        if key in self._open:
            return self._open[key]
        from ..index.dense import DenseIndex, index_dir

        path = index_dir(self.kb_dir, space, model_id)
        if (path / "meta.json").exists():
            idx = DenseIndex.open(path, expect_model_id=model_id)
            self._open[key] = idx
            return idx
        others = [m.model_id for m in self.available() if m.space == space]
        if others:
            raise KBError(Errors.E402.format(space=space, found=", ".join(sorted(set(others))), expected=model_id))
        self._open[key] = None
        return None
