"""Settings of ``pixlink serve``: what one worker process builds and the limits it enforces.

Every number here is a documented policy, set from the command line (``pixlink serve --help``)
or the Python API; secrets (the API key, Label Studio's token) come from the environment only,
never from a file or the command line, and never appear in the JSON form that a worker process
receives.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..errors import Errors, InputError

SETTINGS_ENV = "PIXLINK_SERVE_SETTINGS"
"""Environment variable through which ``pixlink serve --workers N`` hands the settings (JSON) to
each uvicorn worker process."""

API_KEY_ENV = "PIXLINK_API_KEY"
LABEL_STUDIO_URL_ENV = "LABEL_STUDIO_URL"
LABEL_STUDIO_KEY_ENV = "LABEL_STUDIO_API_KEY"


@dataclass
class ServeSettings:
    """What a worker builds at start-up and the limits it keeps.

    Attributes:
        kb: the KB directory (a server path: never named by a request).
        profile: model profile, ``offline``, ``hub`` or ``auto``.
        device: torch device (``auto``, ``cpu``, ``cuda[:N]``) or None (``PIXLINK_DEVICE``).
        config: :class:`~pixlink.link.LinkerConfig` as a dict (``--config FILE``), or None.
        fusion: path of fusion parameters (``pixlink link calibrate``), or None.
        gmner: build the GMNER pipeline at start-up (``POST /v1/gmner``); False leaves the
            route answering E739.
        annotate: build the reverse annotators (``POST /v1/annotate``, sharing the linker);
            False leaves the route answering E739.
        threads: engine threads of a worker: how many linker calls run at once. The linker is
            shared by them.
        max_pending: requests admitted at once (running + waiting for a thread); one more is
            answered 503 with ``Retry-After`` instead of queueing without bound.
        retry_after: seconds a client is told to wait (``Retry-After``) when refused for load or
            while the models load.
        timeout: seconds a request may take (waiting included) before it is answered 504; the
            work it started still holds its slot until it ends, so timeouts cannot pile up work.
        torch_threads: torch's intra-op threads per process (None leaves torch's default). One
            thread per call is best when several calls run at once: on a 2-core machine shared
            with other work, EfficientNet took 0.27-1.2 s with torch's default and 33 ms with 1.
        max_upload_bytes: largest upload (and largest Label Studio task image).
        max_pixels: largest decoded image (width x height); above it the image is refused
            before decoding (E016), so a decompression bomb costs nothing.
        max_prompts: prompts in one batch request.
        max_k: largest ``k`` (candidates per answer) and KB search size.
        max_text_chars: longest caption or GMNER text.
        images: uploads kept (decoded) by content id, at most this many ...
        image_bytes: ... and at most this many bytes of pixels (LRU).
        cache_images, cache_bytes: the linker's per-image work (segmenter embeddings, face scans)
            kept for this many images / bytes (LRU).
        precompute: on upload, start the per-image work (segmenter embedding, face scan) in the
            background so that the first prompt finds it done.
        precompute_boxes: the background work of an upload also computes the box segmenter's
            image embedding (LiteMedSAM's encoder: 2-10 s of CPU on a shared 2-core machine). Off
            by default: clicks do not need it, and on a small machine it slows the clicks that
            follow an upload; the first box prompt on an image computes it (once).
        precompute_queue: at most this many uploads wait for their background work; beyond it
            an upload's work is left to its first prompt (a flood of uploads cannot queue
            unbounded work).
        face_scan_side: longer side at which a whole image is scanned for faces once (the face
            signal's ``scan_max_side``); None = the signal's ``max_side`` (2000).
        click_segmenter: GrabCut settings for click prompts (``max_side``, ``iterations``; also
            for boxes when the profile's segmenter is GrabCut);
            measured on six clicks of the test photos: 400 px / 3 iterations ran 147 ms against
            542 ms at the library's 640 / 5, at IoU 0.96-0.98 with it. None = the profile's.
        thumbnail_side: longer side of entity thumbnails (``/v1/kb/entities/{id}/image``).
        api_key: when set, every ``/v1`` route and Label Studio route asks for it (from
            ``PIXLINK_API_KEY``; never serialised).
        cors_origins: origins allowed by CORS; empty = CORS off.
        label_studio_url: the Label Studio host task images may be fetched from
            (``LABEL_STUDIO_URL``); label_studio_api_key its token (``LABEL_STUDIO_API_KEY``,
            never serialised).
        label_studio_timeout: seconds to fetch one task image.
    """

    kb: str
    profile: str = "auto"
    device: str | None = None
    config: dict[str, Any] | None = None
    fusion: str | None = None
    gmner: bool = True
    annotate: bool = True
    threads: int = 2
    max_pending: int = 8
    retry_after: int = 2
    timeout: float = 60.0
    torch_threads: int | None = 1
    max_upload_bytes: int = 20 * 2**20
    max_pixels: int = 40_000_000
    max_prompts: int = 16
    max_k: int = 50
    max_text_chars: int = 2000
    images: int = 64
    image_bytes: int = 1024 * 2**20
    cache_images: int = 32
    cache_bytes: int = 512 * 2**20
    precompute: bool = True
    precompute_boxes: bool = False
    precompute_queue: int = 4
    face_scan_side: int | None = 1024
    click_segmenter: dict[str, int] | None = field(default_factory=lambda: {"max_side": 400, "iterations": 3})
    thumbnail_side: int = 256
    api_key: str | None = None
    cors_origins: list[str] = field(default_factory=list)
    label_studio_url: str | None = None
    label_studio_api_key: str | None = None
    label_studio_timeout: float = 30.0

    SECRETS = ("api_key", "label_studio_api_key")

    def __post_init__(self) -> None:
        if not isinstance(self.kb, str) or not self.kb:
            self._bad("kb", self.kb, "a KB directory is needed")
        if self.profile not in ("offline", "hub", "auto"):
            self._bad("profile", self.profile, "use offline, hub or auto")
        for name in ("threads", "max_pending", "retry_after", "max_upload_bytes", "max_pixels", "max_prompts",
                     "max_k", "max_text_chars", "images", "image_bytes", "cache_images", "cache_bytes",
                     "thumbnail_side", "precompute_queue"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                self._bad(name, v, "must be an integer >= 1")
        if self.max_pending < self.threads:
            self._bad("max_pending", self.max_pending, f"must be >= threads ({self.threads})")
        for name in ("timeout", "label_studio_timeout"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                self._bad(name, v, "must be a number of seconds > 0")
        for name in ("torch_threads", "face_scan_side"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                self._bad(name, v, "must be an integer >= 1 or null")
        if self.click_segmenter is not None and (not isinstance(self.click_segmenter, dict)
                                                  or set(self.click_segmenter) - {"max_side", "iterations",
                                                                                  "click_radius", "min_side"}):
            self._bad("click_segmenter", self.click_segmenter,
                      "a JSON object of GrabCut settings (max_side, iterations, click_radius, min_side) or null")
        if not isinstance(self.cors_origins, list) or not all(isinstance(o, str) and o for o in self.cors_origins):
            self._bad("cors_origins", self.cors_origins, "a list of origins such as https://labelling.example.org")
        if self.label_studio_url is not None:
            from urllib.parse import urlsplit

            u = urlsplit(self.label_studio_url)
            if u.scheme not in ("http", "https") or not u.netloc:
                self._bad("label_studio_url", self.label_studio_url, "an http(s) URL such as http://localhost:8080")

    @staticmethod
    def _bad(what: str, value: Any, reason: str) -> None:
        raise InputError(Errors.E737.format(what=what, value=value, reason=reason))

    # -- environment and transport ------------------------------------------------------------
    def with_environment(self) -> "ServeSettings":
        """A copy with the secrets and Label Studio's host read from the environment
        (``PIXLINK_API_KEY``, ``LABEL_STUDIO_URL``, ``LABEL_STUDIO_API_KEY``) where not set."""
        d = asdict(self)
        d["api_key"] = self.api_key or os.environ.get(API_KEY_ENV) or None
        d["label_studio_url"] = self.label_studio_url or os.environ.get(LABEL_STUDIO_URL_ENV) or None
        d["label_studio_api_key"] = self.label_studio_api_key or os.environ.get(LABEL_STUDIO_KEY_ENV) or None
        return ServeSettings(**d)

    def to_json(self) -> str:
        """JSON without the secrets (they travel through the environment only)."""
        d = asdict(self)
        for k in self.SECRETS:
            d.pop(k)
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ServeSettings":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(Errors.E737.format(what=SETTINGS_ENV, value=text[:80], reason=exc.msg)) from exc
        if not isinstance(d, dict):
            raise InputError(Errors.E737.format(what=SETTINGS_ENV, value=text[:80], reason="expected a JSON object"))
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(Errors.E737.format(what=SETTINGS_ENV, value=unknown, reason=f"unknown keys; known: {sorted(known)}"))
        return cls(**d)

    def public(self) -> dict[str, Any]:
        """The limits a client may know (``GET /ready``): no paths, no secrets."""
        return {"max_upload_bytes": self.max_upload_bytes, "max_pixels": self.max_pixels,
                "max_prompts": self.max_prompts, "max_k": self.max_k, "max_text_chars": self.max_text_chars,
                "timeout": self.timeout, "gmner": self.gmner, "annotate": self.annotate, "api_key": self.api_key is not None}
