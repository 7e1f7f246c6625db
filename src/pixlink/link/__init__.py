"""Linking: a region (+ caption) -> ranked entities of a KB, or NIL. See :class:`Linker`."""

from .config import LinkerConfig
from .fusion import Fusion, SignalCalibration
from .linker import Linker
from .query import Query
from .signals import signal_names
from .spec import LinkerSpec

__all__ = ["Linker", "LinkerConfig", "LinkerSpec", "Fusion", "SignalCalibration", "Query", "signal_names"]
