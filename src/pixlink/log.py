"""Logging. Fallbacks are logged at WARNING and also recorded in the output they affect."""

from __future__ import annotations

import logging

_configured = False


def get_logger(name: str) -> logging.Logger:
    global _configured
    if not _configured:
        root = logging.getLogger("pixlink")
        if not root.handlers:
            h = logging.StreamHandler()
            h.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
            root.addHandler(h)
            root.setLevel(logging.INFO)
        _configured = True
    return logging.getLogger(name if name.startswith("pixlink") else f"pixlink.{name}")
