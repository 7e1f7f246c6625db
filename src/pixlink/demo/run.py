"""``pixlink demo``: the main job on an embedded default.

Builds a small KB from material that registry packages carry (:mod:`pixlink.demo.materials`:
people, flags, logos), computes its vectors with the active profile's models, links every demo
query (a region of a real photo, or a labelled composite, with or without a caption), prints
the answers against the expected ones, and writes an overlay per query plus a summary
(``summary.json``, ``summary.md``) into the output directory.

Offline (no model hub) the packaged models run: dlib faces, EfficientNet-Lite0 image features,
the ConSE image->text bridge, MiniLM text embeddings, spaCy NER for names in captions,
LiteMedSAM box->mask. With the hub reachable (profile ``auto`` or ``hub``) CLIP, SAM and the
other strong models are used instead; the summary says which ran.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..log import get_logger

log = get_logger("pixlink.demo")


@dataclass
class DemoResult:
    out_dir: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    backends: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def correct(self) -> int:
        return sum(1 for r in self.rows if r["correct"])

    def to_dict(self) -> dict[str, Any]:
        return {"out_dir": str(self.out_dir), "n": len(self.rows), "correct": self.correct, "rows": self.rows,
                "backends": self.backends, "notes": self.notes, "seconds": self.seconds}


def run_demo(out_dir: str | Path = "demo-out", profile: str = "auto", *, fetch: bool = True, strict: bool = True,
             progress: bool = True) -> DemoResult:
    """Build the demo KB, embed it, link every query; return the per-query rows."""
    from ..io import dumps, load_image
    from ..kb import KB, build_kb_from_entities
    from ..link import Linker, LinkerConfig
    from ..link.embed import embed_kb
    from ..models import Profile
    from ..viz import link_overlay
    from .materials import build_materials

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    res = DemoResult(out)
    t0 = time.perf_counter()
    mats = build_materials(fetch=fetch, strict=strict)
    res.notes.extend(mats.notes)
    res.seconds["materials"] = round(time.perf_counter() - t0, 2)

    t0 = time.perf_counter()
    kb_dir = out / "kb"
    build_kb_from_entities(mats.entities, kb_dir, overwrite=True, name="pixlink-demo")
    prof = Profile(profile)
    report = embed_kb(kb_dir, prof, progress=progress)  # every KB-side signal, the local-feature store included
    for sig, r in report.items():
        if "skipped" in r:
            res.notes.append(f"{sig} vectors not built: {r['skipped']}")
        errs = r.get("errors", [])
        if errs:
            codes: dict[str, int] = {}
            for e in errs:
                codes[e.get("code") or "?"] = codes.get(e.get("code") or "?", 0) + 1
            res.notes.append(f"{sig}: {len(errs)} of {r.get('items', len(errs))} items not embedded "
                             f"({', '.join(f'{c} x{n}' for c, n in sorted(codes.items()))}; "
                             f"first: {errs[0]['error']})")
    res.seconds["kb_and_vectors"] = round(time.perf_counter() - t0, 2)

    t0 = time.perf_counter()
    linker = Linker(KB.open(kb_dir), prof, LinkerConfig())
    for q in mats.queries:
        img = load_image(q.image)
        link = linker.link(img, {"box": list(q.box)}, text=q.caption, k=3, mention_id=q.id)
        pred = link.prediction
        expected_label = mats.entity(q.expected).label if q.expected else "NIL"
        got_label = link.candidates[0].label if pred else "NIL"
        overlay = link_overlay(img, [link], out / f"{q.id}.jpg")
        res.rows.append({
            "id": q.id, "kind": q.kind, "description": q.description, "caption": q.caption,
            "expected": q.expected, "expected_label": expected_label, "predicted": pred, "predicted_label": got_label,
            "score": link.candidates[0].score if link.candidates else None, "correct": pred == q.expected,
            "signals": link.candidates[0].signals if link.candidates else {}, "overlay": str(overlay),
            "timings": link.timings, "notes": link.notes,
        })
    res.seconds["linking"] = round(time.perf_counter() - t0, 2)
    res.backends = prof.describe()
    (out / "summary.json").write_text(dumps(res.to_dict(), indent=True))
    (out / "summary.md").write_text(_markdown(res))
    return res


def _markdown(res: DemoResult) -> str:
    lines = [f"# pixlink demo: {res.correct} of {len(res.rows)} queries answered as expected", "",
             "| query | kind | caption | expected | answer | score | ok |", "|---|---|---|---|---|---|---|"]
    for r in res.rows:
        score = f"{r['score']:.2f}" if r["score"] is not None else "-"
        lines.append(f"| {r['id']} | {r['kind']} | {r['caption'] or ''} | {r['expected_label']} | "
                     f"{r['predicted_label']} | {score} | {'yes' if r['correct'] else 'NO'} |")
    lines += ["", "Backends: " + ", ".join(f"{k}={v['backend']}" for k, v in res.backends.items())]
    if res.notes:
        lines += ["", "Notes:"] + [f"- {n}" for n in res.notes]
    return "\n".join(lines) + "\n"
