"""The linking signals, one module each, and their registry.

=================  ===============  ==============  ============================================
signal             role             KB space        evidence
=================  ===============  ==============  ============================================
``face``           ``faces``        entity_face     the face in the region (:mod:`.face`)
``v2v``            ``image_embed``  entity_image    the region's image vs entity images (:mod:`.image`)
``v2t``            ``image_text``   entity_text     the region's image vs entity text (:mod:`.image`)
``instance``       ``instance_embed`` entity_image_instance  the region's image vs entity images, in a
                                                    space learned for the same object (:mod:`.image`)
``lexical``        (``ner``, ocr)   (FTS index)     names vs labels and aliases (:mod:`.lexical`)
``dense_text``     ``text_embed``   entity_text     the caption vs entity text (:mod:`.text`)
``type``           —                —               a face, and a non-person entity (:mod:`.type`)
``mention_type``   —                —               the mention's type vs the entity's classes
``local``          ``local_features`` (local store) the region vs entities' own images, by local
                                                    features + geometric verification (:mod:`.local`)
=================  ===============  ==============  ============================================

Adding a signal is adding one module here: subclass :class:`~.base.Signal` (or
:class:`~.base.DenseSignal`), decorate it with :func:`register_signal`, import it below, and
give its calibration in the fusion files (``link/data/fusion/*.json``).
"""

from __future__ import annotations

from typing import Any

from ...errors import Errors, InputError

_SIGNALS: dict[str, type] = {}


def register_signal(cls: type) -> type:
    """Class decorator: register a :class:`~.base.Signal` subclass under its ``name``."""
    if not getattr(cls, "name", ""):
        raise InputError(Errors.E010.format(what="signal class", value=cls.__name__, reason="has no name"))
    _SIGNALS[cls.name] = cls
    return cls


def signal_names() -> tuple[str, ...]:
    """Every registered signal, in registration order."""
    return tuple(_SIGNALS)


def signal_class(name: str) -> type:
    try:
        return _SIGNALS[name]
    except KeyError:
        raise InputError(Errors.E010.format(what="signal", value=name, reason=f"known signals: {signal_names()}")) from None


def make_signal(name: str, options: dict[str, Any] | None = None) -> Any:
    """An instance of signal ``name`` with ``options`` (validated by its ``Options``)."""
    return signal_class(name)(options)


def dense_signals() -> tuple[str, ...]:
    """The signals that have KB vectors (``pixlink kb embed`` builds them)."""
    return tuple(n for n, c in _SIGNALS.items() if c.space is not None)


# registration order is the order signals run in (cheap lexical before the image models)
from . import face, image, lexical, local, text, type  # noqa: E402,F401

__all__ = ["register_signal", "signal_names", "signal_class", "make_signal", "dense_signals"]
