"""``pixlink serve``: the REST API, the web page and the Label Studio backend (docs/serve.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import check_input_dir, check_input_file, console, handle_errors


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)


@handle_errors
def serve_command(
    kb: Path = typer.Option(..., "--kb", help="KB directory (pixlink kb build; pixlink kb embed for the dense signals)."),
    profile: str = typer.Option("auto", "--profile", help="Model profile: offline, hub or auto."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0 to serve other machines)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port."),
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes; each loads its own models."),
    threads: int = typer.Option(2, "--threads", min=1, help="Linker calls a worker runs at once (threads sharing one linker)."),
    max_pending: Optional[int] = typer.Option(None, "--max-pending", min=1,
                                              help="Requests a worker admits at once; more get 503 + Retry-After "
                                                   "(default: 4 x --threads)."),
    timeout: float = typer.Option(60.0, "--timeout", min=0.1, help="Seconds a request may take before it is answered 504."),
    device: Optional[str] = typer.Option(None, "--device", help="Torch device: auto, cpu, cuda, cuda:N."),
    config: Optional[Path] = typer.Option(None, "--config", help="LinkerConfig JSON."),
    fusion: Optional[Path] = typer.Option(None, "--fusion", help="Fusion parameters JSON (`pixlink link calibrate`)."),
    gmner: bool = typer.Option(True, "--gmner/--no-gmner", help="Load the GMNER pipeline (POST /v1/gmner)."),
    annotate: bool = typer.Option(True, "--annotate/--no-annotate",
                                  help="Reverse annotation (POST /v1/annotate: image + entity -> region)."),
    max_upload_mb: float = typer.Option(20.0, "--max-upload-mb", min=0.001, help="Largest upload (MB)."),
    max_pixels: int = typer.Option(40_000_000, "--max-pixels", min=1, help="Largest image (width x height)."),
    max_prompts: int = typer.Option(16, "--max-prompts", min=1, help="Prompts (or Label Studio tasks) per request."),
    images: int = typer.Option(64, "--images", min=1, help="Uploads kept in memory (LRU)."),
    cache_images: int = typer.Option(32, "--cache-images", min=1,
                                     help="Images whose per-image work (segmenter embedding, face scan) is kept (LRU)."),
    cors_origin: Optional[list[str]] = typer.Option(None, "--cors-origin",
                                                    help="Allow this browser origin (repeatable); CORS is off without it."),
    precompute: bool = typer.Option(True, "--precompute/--no-precompute",
                                    help="Start an upload's per-image work (face scan) in the background at once."),
    precompute_boxes: bool = typer.Option(False, "--precompute-boxes/--no-precompute-boxes",
                                          help="The background work also runs the box segmenter's image encoder "
                                               "(seconds of CPU per image; the first box prompt does it otherwise)."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn's log level."),
) -> None:
    """Start the service: REST API (/docs), web page (/), Label Studio ML backend (/labelstudio).

    The API key (optional) is read from PIXLINK_API_KEY; Label Studio's host and token from
    LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY.
    """
    import importlib.util
    import os

    from ..errors import Errors, InputError
    from ..serve.settings import SETTINGS_ENV, ServeSettings

    for mod in ("fastapi", "uvicorn", "multipart"):
        if importlib.util.find_spec(mod) is None:
            raise InputError(Errors.E739.format(what="pixlink serve",
                                                reason=f"the package of module {mod!r} is missing; "
                                                       "install it: pip install 'pixlink[serve]'"))
    check_input_dir(kb, "--kb")
    check_input_file(fusion, "--fusion")
    cfg = None
    if config is not None:
        from ..link import LinkerConfig
        from .common import load_config

        cfg = load_config(config, LinkerConfig).to_dict()
    if fusion is not None:
        from ..link import Fusion

        Fusion.load(fusion)  # E410 now, not in each worker
    from ..kb import KB

    KB.open(kb).close()  # E100-E102 now, not in each worker
    settings = ServeSettings(
        kb=str(kb.resolve()), profile=profile, device=device, config=cfg,
        fusion=str(fusion.resolve()) if fusion else None, gmner=gmner, annotate=annotate, threads=threads,
        max_pending=max_pending or 4 * threads, timeout=timeout, max_upload_bytes=int(max_upload_mb * 2**20),
        max_pixels=max_pixels, max_prompts=max_prompts, images=images, cache_images=cache_images, cors_origins=list(cors_origin or []),
        precompute=precompute, precompute_boxes=precompute_boxes,
    ).with_environment()
    os.environ[SETTINGS_ENV] = settings.to_json()
    import uvicorn

    key = "on (PIXLINK_API_KEY)" if settings.api_key else "off"
    console.print(f"pixlink serve: http://{host}:{port}/ (API docs /docs, Label Studio backend /labelstudio); "
                  f"{workers} worker(s) x {threads} thread(s); API key {key}", highlight=False)
    uvicorn.run("pixlink.serve.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level=log_level, timeout_graceful_shutdown=5)
