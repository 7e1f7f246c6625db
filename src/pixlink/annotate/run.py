"""An annotation run into an output folder: resumable, item by item, with progress.

``run.json`` holds the settings (config, profile, KB build); ``report.jsonl`` one record per
item as it is done (accepted / rejected with the rule / error with the code), flushed after each
item, so a killed run started again with the same folder skips the items already written and
redoes none twice (an item whose content changed is redone; its newest record wins). At the end
the outputs are written from the report (:mod:`.outputs`) and ``summary.json`` gives per-rule
counts and the throughput.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import orjson

from .. import __version__
from ..errors import Errors, InputError, PixlinkError
from ..io import iter_jsonl
from ..log import get_logger
from .items import AnnotationItem
from .outputs import LABEL_STUDIO_CONFIG, contact_sheets, labelstudio_tasks, latest_records, manual_sample, maskoven_json

log = get_logger("pixlink.annotate")


def run_settings(annotator: Any) -> dict[str, Any]:
    return {"config": annotator.config.to_dict(), "profile": annotator.profile.name,
            "kb": str(annotator.kb.path), "kb_build_id": getattr(annotator.kb, "build_id", None)}


def run_annotation(annotator: Any, items: Sequence[AnnotationItem], out_dir: str | Path, *, restart: bool = False,
                   progress: bool = True, image_root: str | Path | None = None, sample_n: int = 2000,
                   sheets: bool = True, input_errors: Sequence[Any] = (),
                   labelstudio_url: str | None = None) -> dict[str, Any]:
    """Annotate ``items`` into ``out_dir`` (see the module docstring); returns the summary."""
    from ..progress import progress as make_progress

    out = Path(out_dir)
    out.mkdir(exist_ok=True)
    settings = run_settings(annotator)
    run_file, report = out / "run.json", out / "report.jsonl"
    if run_file.exists() and not restart:
        old = orjson.loads(run_file.read_bytes())
        diff = sorted(k for k in settings if old.get(k) != settings[k])
        if diff:
            raise InputError(Errors.E714.format(path=str(out), what=", ".join(diff)))
    if restart:
        for p in (report, *out.glob("contact_*.png")):
            p.unlink(missing_ok=True)
    run_file.write_bytes(orjson.dumps(settings, option=orjson.OPT_INDENT_2))
    done: set[tuple[str, str]] = set()
    if report.exists():
        for _n, rec in iter_jsonl(report, strict=False):
            if isinstance(rec, dict) and rec.get("status") in ("accepted", "rejected"):
                done.add((rec["id"], rec.get("digest", "")))
    todo = [it for it in items if (it.id, it.digest) not in done]
    reused = len(items) - len(todo)
    t0 = time.perf_counter()
    with open(report, "ab") as fh, make_progress(disable=not progress) as bar:
        task = bar.add_task("annotating", total=len(todo), rate="")
        for i, item in enumerate(todo, 1):
            try:
                rec = annotator.annotate(item).to_record()
            except PixlinkError as exc:
                rec = {"id": item.id, "digest": item.digest, "item": item.to_dict(), "status": "error",
                       "code": exc.code, "error": str(exc)}
            fh.write(orjson.dumps(rec, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
            fh.flush()
            el = time.perf_counter() - t0
            bar.update(task, advance=1, rate=f"{i / el:.2f} items/s" if el > 0 else "")
    seconds = time.perf_counter() - t0
    records = latest_records(rec for _, rec in iter_jsonl(report, strict=False) if isinstance(rec, dict))
    wanted = {it.id for it in items}
    records = [r for r in records if r["id"] in wanted]
    coco = maskoven_json(records, image_root=image_root)
    (out / "maskoven.json").write_bytes(orjson.dumps(coco))
    sample = manual_sample(records, n=sample_n)
    with open(out / "sample.jsonl", "wb") as fh:
        for r in sample:
            fh.write(orjson.dumps({"id": r["id"], "item": r["item"], "entity_label": r.get("entity_label"),
                                   "region": r.get("region"), "flags": r.get("flags")}) + b"\n")
    ls_tasks = labelstudio_tasks(records, image_url=labelstudio_url, image_root=image_root,
                                 model_version=f"pixlink-annotate {__version__}")
    (out / "labelstudio.json").write_bytes(orjson.dumps(ls_tasks))
    (out / "labelstudio.xml").write_text(LABEL_STUDIO_CONFIG)
    sheet_paths = contact_sheets(records, out) if sheets else []
    vp_rows = write_vpwiki(records, out) if annotator.config.mode == "vpwiki" else None
    status = Counter(r["status"] for r in records)
    rules = Counter(r.get("rule") or "ok" for r in records if r["status"] != "error")
    flags = Counter(f for r in records for f in (r.get("flags") or []))
    codes = Counter(r.get("code") for r in records if r["status"] == "error")
    summary = {
        "items": len(items), "input_errors": len(input_errors), "done_now": len(todo), "reused": reused,
        "status": dict(status), "rules": dict(rules), "flags": dict(flags), "error_codes": dict(codes),
        "annotations": len(coco["annotations"]), "entities": len(coco["categories"]),
        "labelstudio_tasks": len(ls_tasks),
        "sample": len(sample), "seconds": round(seconds, 2),
        "items_per_second": round(len(todo) / seconds, 3) if seconds > 0 and todo else None,
        "outputs": {"report": str(report), "maskoven": str(out / "maskoven.json"), "sample": str(out / "sample.jsonl"),
                    "labelstudio": str(out / "labelstudio.json"), "labelstudio_config": str(out / "labelstudio.xml"),
                    "contact_sheets": [str(p) for p in sheet_paths],
                    **({"vpwiki": str(out / "vpwiki.jsonl"), "vpwiki_rows": vp_rows} if vp_rows is not None else {})},
        "input_error_list": [e.to_dict() for e in input_errors][:50],
    }
    (out / "summary.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    return summary


def write_vpwiki(records: Sequence[dict[str, Any]], out: Path) -> int:
    """VPWiki's format for the accepted VPWiki-mode records: ``vpwiki.jsonl`` rows ``{id,
    sentence, mentions, entities, answer, imgPath, type}`` and, per row, a copy of the image with
    the visual prompt (a red box, :func:`pixlink.imaging.red_box`) under ``vp_images/``."""
    from PIL import Image

    from ..imaging import red_box
    from ..io import load_image

    img_dir = out / "vp_images"
    img_dir.mkdir(exist_ok=True)
    n = 0
    with open(out / "vpwiki.jsonl", "wb") as fh:
        for r in records:
            row = r.get("vpwiki")
            if r["status"] != "accepted" or not row or not r.get("region"):
                continue
            rel = f"vp_images/{r['id']}.jpg"
            Image.fromarray(red_box(load_image(r["item"]["image"]), r["region"]["box"])).save(out / rel, quality=92)
            fh.write(orjson.dumps({"id": r["id"], **row, "imgPath": rel}) + b"\n")
            n += 1
    return n
