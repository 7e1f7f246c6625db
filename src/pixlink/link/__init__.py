"""Linking: a region (+ caption) -> ranked entities of a KB, or NIL. See :class:`Linker`."""

from .config import SIGNALS, LinkerConfig
from .fusion import Fusion, SignalCalibration
from .linker import Linker

__all__ = ["Linker", "LinkerConfig", "Fusion", "SignalCalibration", "SIGNALS"]
