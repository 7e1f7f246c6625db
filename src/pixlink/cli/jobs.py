"""``pixlink jobs``: batch jobs over a manifest, on this machine or on Ray.

* ``pixlink jobs run {link|gmner|ner|embed} --input MANIFEST --out DIR [--engine local|ray] ...``
* ``pixlink jobs status OUT``: what an output directory holds (counts of the last run).

See docs/jobs.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from .common import check_input_dir, check_input_file, check_output_dir, console, handle_errors, print_json

jobs_app = typer.Typer(help="Batch jobs: link, gmner, ner, embed, annotate over a manifest (local process pool or Ray).",
                       no_args_is_help=True)


def _params(task: str, kb: Optional[Path], profile: str, device: Optional[str], config: Optional[Path],
            fusion: Optional[Path], k: int, signal: Optional[str], batch_size: int) -> dict[str, Any]:
    """The task's parameters from the command's options (checked again by the task)."""
    import json

    from ..errors import Errors, InputError

    check_input_dir(kb, "--kb")
    check_input_file(config, "--config")
    check_input_file(fusion, "--fusion")
    common: dict[str, Any] = {"profile": profile, "device": device}
    if task == "link":
        from ..link import LinkerConfig, LinkerSpec
        from .common import load_config

        if kb is None:
            raise InputError(Errors.E757.format(name="--kb", task=task, reason="a link job needs a KB"))
        cfg = load_config(config, LinkerConfig) if config else LinkerConfig()
        spec = LinkerSpec(kb=str(kb.resolve()), profile=profile, config=cfg.to_dict(),
                          fusion=str(fusion.resolve()) if fusion else None, device=device)
        return {"linker": spec.to_dict(), "k": k}
    if fusion is not None:
        raise InputError(Errors.E757.format(name="--fusion", task=task, reason="only link jobs take fusion parameters"))
    if task == "annotate":
        cfg = json.loads(config.read_text()) if config else {}
        return common | {"kb": str(kb.resolve()) if kb else None, "config": cfg}
    if task == "gmner":
        import dataclasses

        from ..ner.gmner import GMNERConfig
        from .common import load_config

        cfg = dataclasses.asdict(load_config(config, GMNERConfig)) if config else {}
        return common | {"kb": str(kb.resolve()) if kb else None, "config": cfg}
    if config is not None:
        raise InputError(Errors.E757.format(name="--config", task=task,
                                            reason="only link, gmner and annotate jobs take a config"))
    if task == "embed":
        return common | {"kb": str(kb.resolve()) if kb else None, "signal": signal, "batch_size": batch_size}
    return common


@jobs_app.command("run")
@handle_errors
def run_command(
    task: str = typer.Argument(..., help="link, gmner, ner, embed or annotate."),
    manifest: Optional[Path] = typer.Option(None, "--input", "-i",
                                            help="Manifest: JSONL or Parquet, one item a row with a unique id "
                                                 "(embed: default the KB's items)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (run again with the same --out to resume)."),
    kb: Optional[Path] = typer.Option(None, "--kb", help="KB directory (link, embed; gmner: optional)."),
    engine: str = typer.Option("local", "--engine", help="local (a process pool) or ray (Ray Data)."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (default: a local Ray)."),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Worker processes / Ray actors."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Items per worker call."),
    rows_per_part: int = typer.Option(256, "--rows-per-part", min=1, help="Rows per part file (the unit of resume)."),
    cpus_per_worker: float = typer.Option(1.0, "--cpus-per-worker", min=0.0, help="CPUs of each worker (torch threads; Ray resources)."),
    gpus_per_worker: float = typer.Option(0.0, "--gpus-per-worker", min=0.0, help="GPUs of each Ray actor."),
    profile: str = typer.Option("auto", "--profile", help="Model profile: offline, hub or auto."),
    device: Optional[str] = typer.Option(None, "--device", help="Torch device: auto, cpu, cuda, cuda:N."),
    config: Optional[Path] = typer.Option(None, "--config", help="LinkerConfig (link), GMNERConfig (gmner) or "
                                                                 "AnnotateConfig (annotate) JSON."),
    fusion: Optional[Path] = typer.Option(None, "--fusion", help="Fusion parameters JSON (link)."),
    k: int = typer.Option(5, "-k", min=1, help="Candidates per item (link)."),
    signal: Optional[str] = typer.Option(None, "--signal", help="The dense signal whose KB vectors to compute (embed)."),
    images: Optional[Path] = typer.Option(None, "--images", help="Folder relative image paths are in (default: the manifest's)."),
    index: str = typer.Option("auto", "--index", help="embed: index to build from the shards: auto, exact, ivfpq, hnsw, "
                                                     "milvus (with --uri) or none."),
    uri: Optional[str] = typer.Option(None, "--uri", help="embed --index milvus: Milvus URI or Milvus Lite path."),
    jsonl: bool = typer.Option(False, "--jsonl", help="Also write OUT/results.jsonl."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan; load no model, write nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary (or plan) as JSON on stdout."),
) -> None:
    """Run TASK over every item of a manifest; results, per-item errors and a summary go to OUT."""
    from ..jobs import JobSpec, plan_job, run_job

    check_input_file(manifest, "--input")
    check_input_dir(images, "--images")
    check_output_dir(out, "--out")
    if device is not None:
        from ..device import requested_device

        device = requested_device(device)
    spec = JobSpec(task, _params(task, kb, profile, device, config, fusion, k, signal, batch_size))
    opts = dict(engine=engine, workers=workers, batch_size=batch_size, rows_per_part=rows_per_part, address=address,
                cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker, image_root=images)
    if task == "embed" and index not in ("none", "milvus", "auto", "exact", "ivfpq", "hnsw"):
        from ..errors import Errors, InputError

        raise InputError(Errors.E757.format(name="--index", task=task, reason="auto, exact, ivfpq, hnsw, milvus or none"))
    if dry_run:
        plan = plan_job(spec, out, manifest, **opts)
        if as_json:
            print_json(plan)
            return
        for key, v in plan.items():
            if key != "params":
                console.print(f"{key}: {v}", highlight=False)
        return
    summary = run_job(spec, out, manifest, jsonl=jsonl, progress=not as_json, **opts)
    if task == "embed" and index != "none" and summary["counts"]["ok"]:
        from ..jobs import build_index_from_job

        summary["index"] = build_index_from_job(out, backend=index, uri=uri, progress=not as_json)
    if as_json:
        print_json(summary)
        return
    _show(summary)


def _show(summary: dict[str, Any]) -> None:
    from rich.table import Table

    c, r = summary["counts"], summary["run"]
    t = Table(title=f"{summary['task']} job in {summary['out']}" + ("" if summary["complete"] else " (incomplete)"))
    for col in ("items", "done before", "done now", "ok", "failed", "manifest errors", "missing", "items/s", "per worker"):
        t.add_column(col, justify="right")
    t.add_row(str(c["items"]), str(c["done_before"]), str(c["done_now"]), str(c["ok"]), str(c["failed"]),
              str(c["manifest_errors"]), str(c["missing"]), f"{r['items_per_second'] or 0:.3f}",
              f"{r['items_per_second_per_worker'] or 0:.3f}")
    console.print(t)
    if c["failed"] or c["manifest_errors"]:
        console.print(f"errors: {Path(summary['out']) / 'errors.parquet'} (and errors.jsonl)", highlight=False)
    if "index" in summary:
        ix = summary["index"]
        console.print(f"index: {ix['vectors']} vectors of {ix['entities']} entities ({ix['backend']}) at {ix['index']}",
                      highlight=False)
    for n in summary.get("notes", []):
        console.print(f"note: {n}", highlight=False, markup=False)


@jobs_app.command("status")
@handle_errors
def status_command(
    out: Path = typer.Argument(..., help="A job's output directory."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
) -> None:
    """What a job's output directory holds: the job, the ids done, the last run's summary."""
    import json

    from ..errors import Errors, InputError
    from ..jobs.output import JobDir

    check_input_dir(out, "OUT")
    jd = JobDir(out)
    try:
        job = json.loads((out / "job.json").read_text())
    except (OSError, ValueError) as exc:
        raise InputError(Errors.E759.format(out=str(out), reason=f"no readable job.json ({exc})")) from exc
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").is_file() else None
    status = {"task": job["spec"]["task"], "manifest": job.get("manifest"), "parts": len(jd.part_files()),
              "ids_done": len(jd.done_ids()), "running": jd.lock_path.exists(), "summary": summary}
    if as_json:
        print_json(status)
        return
    for key in ("task", "manifest", "parts", "ids_done", "running"):
        console.print(f"{key}: {status[key]}", highlight=False)
    if summary is not None:
        _show(summary)


def register(app: typer.Typer) -> None:
    """Add ``pixlink jobs ...`` to the main app."""
    app.add_typer(jobs_app, name="jobs")
