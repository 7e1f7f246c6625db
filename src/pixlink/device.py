"""Which device a torch backend runs on: ``auto`` picks CUDA where present, else the CPU.

The choice comes, in order, from the caller (a backend's ``device`` option, the CLI's
``--device``, a linker spec), then ``PIXLINK_DEVICE``, then ``auto``. torch is imported only
when ``auto`` has to look.
"""

from __future__ import annotations

import os
import re
from typing import Callable

from .errors import Errors, InputError

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


cuda_available: Callable[[], bool] = _cuda_available
"""The check ``auto`` uses (tests replace it to fake a CUDA machine)."""


def requested_device(device: str | None = None) -> str:
    """The device asked for (``device``, else ``PIXLINK_DEVICE``, else ``"auto"``), validated."""
    dev = (device or os.environ.get("PIXLINK_DEVICE") or "auto").strip().lower()
    if not _DEVICE.match(dev):
        raise InputError(Errors.E010.format(what="device", value=dev, reason="use auto, cpu, cuda, cuda:N or mps"))
    return dev


def resolve_device(device: str | None = None) -> str:
    """The concrete torch device string for ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``...).

    ``auto`` -> ``"cuda"`` when :data:`cuda_available` says so, else ``"cpu"``. Asking for
    CUDA on a machine without it is an error (E013), never a silent CPU run.
    """
    dev = requested_device(device)
    if dev == "auto":
        return "cuda" if cuda_available() else "cpu"
    if dev.startswith("cuda") and not cuda_available():
        raise InputError(Errors.E013.format(device=dev, reason="torch sees no CUDA device on this machine"))
    return dev


def default_batch_size(device: str, cpu: int, gpu: int) -> int:
    """A batch size that follows the device: ``gpu`` on an accelerator, ``cpu`` on the CPU."""
    return cpu if device == "cpu" else gpu
