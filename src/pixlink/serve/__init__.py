"""The pixlink service: a REST API, a click-to-link web page and Label Studio / CVAT backends.

``pixlink serve --kb KB`` starts it (see docs/serve.md); :func:`create_app` builds the FastAPI
app of one worker from :class:`ServeSettings`. FastAPI and uvicorn come with ``pixlink[serve]``.
"""

from __future__ import annotations

from typing import Any

from .settings import ServeSettings

__all__ = ["ServeSettings", "create_app"]


def create_app(settings: ServeSettings, **kwargs: Any) -> Any:
    """See :func:`pixlink.serve.app.create_app` (imported on use: FastAPI is an optional extra)."""
    from .app import create_app as _create

    return _create(settings, **kwargs)
