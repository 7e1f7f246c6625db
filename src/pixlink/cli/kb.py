"""``pixlink kb``: build a knowledge base from dumps and entity files, describe it, search it,
show an entity with its type / hypernym chain.

``--json`` prints machine-readable JSON on stdout; progress bars and messages go to stderr.
Errors print one ``error: [Exxx] ...`` line and exit with code 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.markup import escape

from .common import check_output_dir, console, handle_errors, print_json

kb_app = typer.Typer(help="Knowledge base: kb build | embed | index | info | search | entity.", no_args_is_help=True)


def _entity_dict(kb: Any, ent: Any) -> dict[str, Any]:
    d = ent.to_dict()
    d["hypernyms"] = [{"relation": r, "id": t, "label": lab, "depth": dep} for r, t, lab, dep in kb.hypernyms(ent.id)]
    d["hypernym_text"] = kb.hypernym_text(ent.id)
    d["image_refs"] = [{"ref": ref, "path": p} for ref, p in kb.image_refs(ent.id)]
    return d


@kb_app.command("build")
@handle_errors
def build_command(
    sources: List[str] = typer.Argument(..., help=(
        "Source files; FORMAT:PATH forces a format (wikidata, wiki6m, mel, fb15k237, codex-types, entity-json, "
        "jsonl, csv), a bare PATH is sniffed. Several sources merge into one KB.")),
    out: Path = typer.Option(..., "--out", "-o", help="The KB directory to write."),
    images: Optional[Path] = typer.Option(None, "--images", help="Directory that resolves image file names (P18, MEL image_list)."),
    lang: str = typer.Option("en", "--lang", help="Language of labels, aliases and descriptions (Wikidata dumps)."),
    resume: bool = typer.Option(False, "--resume", help="Continue a build of the same sources that stopped."),
    force: bool = typer.Option(False, "--force", help="Replace a KB already in --out."),
    max_records: Optional[int] = typer.Option(None, "--max-records", min=1,
                                              help="Stop after N records (a trial run); finish later with --resume."),
    name: Optional[str] = typer.Option(None, "--name", help="KB name in meta.json (default: the directory name)."),
    as_json: bool = typer.Option(False, "--json", help="Print the build report as JSON on stdout."),
) -> None:
    """Import SOURCE files into a KB directory (SQLite + meta.json + build_report.jsonl)."""
    from rich.table import Table

    from ..kb import build_kb

    check_output_dir(out, "--out")
    rep = build_kb(sources, out, images_root=images, lang=lang, resume=resume, progress=not as_json,
                   overwrite=force, max_records=max_records, name=name, max_issues=50)
    if as_json:
        print_json(rep.to_dict())
        return
    t = Table(title=f"KB {out}" + ("" if rep.complete else " (incomplete: re-run with --resume)"))
    for col in ("source", "read", "imported", "merged", "bad", "duplicates", "unmatched", "images", "resolved"):
        t.add_column(col, justify="left" if col == "source" else "right")
    for s in rep.sources:
        c = s.counts
        t.add_row(s.name + (" [red](truncated)[/]" if c.truncated else ""), f"{c.read:,}", f"{c.imported:,}",
                  f"{c.merged:,}", f"{c.bad:,}", f"{c.duplicates:,}", f"{c.unmatched:,}", f"{c.images:,}",
                  f"{c.images_resolved:,}")
    console.print(t)
    if rep.complete:
        cn = rep.counts
        console.print(f"{cn.get('entities', 0):,} entities, {cn.get('aliases', 0):,} aliases, "
                      f"{cn.get('types', 0):,} P31 and {cn.get('parents', 0):,} P279 links, "
                      f"{cn.get('images_resolved', 0):,}/{cn.get('images', 0):,} images resolved "
                      f"in {rep.seconds.get('total', 0):.1f} s", highlight=False)
    if rep.n_issues:
        codes = ", ".join(f"{k}: {v:,}" for k, v in rep.issue_counts.items())
        console.print(f"[yellow]{rep.n_issues:,} reported records[/] ({codes})", highlight=False)
        for i in [i for i in rep.issues if i.level != "info"][:5]:
            console.print(f"  {i.message}", highlight=False, markup=False)
        if rep.report_path:
            console.print(f"all of them in {rep.report_path}", highlight=False)


@kb_app.command("info")
@handle_errors
def info_command(
    kbdir: Path = typer.Argument(..., help="KB directory."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
) -> None:
    """Name, language, counts and sources of a KB."""
    from rich.table import Table

    from ..kb import KB
    from ..link.kbhead import head_summary

    with KB.open(kbdir) as kb:
        info = kb.info()
    info["instance_head"] = head_summary(kbdir)  # the KB's own (pixlink train instance-head), or None
    if as_json:
        print_json(info)
        return
    t = Table(title=f"KB {info['name']}", show_header=False)
    t.add_column("key")
    t.add_column("value")
    for k in ("path", "language", "created", "images_root"):
        t.add_row(k, str(info.get(k)))
    for k, v in info["counts"].items():
        t.add_row(k, f"{v:,}")
    for s in info["sources"]:
        t.add_row("source", f"{s['name']} ({s['counts'].get('imported', 0):,} records) {s['path']}")
    h = info["instance_head"]
    if h is not None:
        held = (h.get("held_out") or {}).get("adapted") or {}
        mode = (h.get("training") or {}).get("mode")
        t.add_row("instance head", f"its own, trained on {h.get('references')} images ({h.get('views')} views"
                                   f"{', ' + mode if mode else ''}; held-out Hits@1 {held.get('hits@1')}) — {h['path']}")
    if info["issues"]:
        t.add_row("reported", ", ".join(f"{k}: {v:,}" for k, v in info["issues"].items()) + f" — {info['build_report']}")
    from rich.console import Console

    Console().print(t)


@kb_app.command("search")
@handle_errors
def search_command(
    kbdir: Path = typer.Argument(..., help="KB directory."),
    query: str = typer.Argument(..., help="Words to look for (label, aliases, description)."),
    k: int = typer.Option(10, "-k", "--k", min=1, help="How many results."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
) -> None:
    """Exact label / alias matches first, then BM25 (case and accents folded)."""
    from rich.console import Console
    from rich.table import Table

    from ..kb import KB

    with KB.open(kbdir) as kb:
        hits = kb.search(query, k=k)
    if as_json:
        print_json([{"rank": i + 1, "score": s, "id": e.id, "label": e.label, "description": e.description,
                     "aliases": list(e.aliases), "types": list(e.types)} for i, (e, s) in enumerate(hits)])
        return
    t = Table(title=f"{query!r} in {kbdir}")
    for col in ("#", "score", "id", "label", "description"):
        t.add_column(col)
    for i, (e, s) in enumerate(hits, 1):
        t.add_row(str(i), f"{s:.3f}", e.id, e.label, e.description)
    Console().print(t)
    if not hits:
        console.print("no match", highlight=False)


@kb_app.command("entity")
@handle_errors
def entity_command(
    kbdir: Path = typer.Argument(..., help="KB directory."),
    entity_id: str = typer.Argument(..., metavar="ID", help="Entity id, e.g. Q76."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
) -> None:
    """One entity: names, description, images, types and hypernym chain (P31 then P279)."""
    from rich.console import Console
    from rich.table import Table

    from ..errors import Errors, KBError
    from ..kb import KB

    with KB.open(kbdir) as kb:
        ent = kb.get(entity_id)
        if ent is None:
            raise KBError(Errors.E114.format(id=entity_id, path=str(kbdir)))
        d = _entity_dict(kb, ent)
    if as_json:
        print_json(d)
        return
    t = Table(title=f"{d['label']} ({d['id']})", show_header=False)
    t.add_column("key")
    t.add_column("value", overflow="fold")
    t.add_row("description", d["description"])
    t.add_row("aliases", ", ".join(d["aliases"]))
    t.add_row("popularity", "" if d["popularity"] is None else f"{d['popularity']:g}")
    t.add_row("source", d["source"])
    for h in d["hypernyms"]:
        rel = "instance of" if h["relation"] == "P31" else "subclass of"
        t.add_row(f"{'  ' * (h['depth'] - 1)}{rel}", f"{h['label'] or '?'} ({h['id']})")
    for im in d["image_refs"]:
        t.add_row("image", im["path"] or f"{im['ref']} (unresolved)")
    for key, v in d["attrs"].items():
        t.add_row(f"attrs.{key}", str(v))
    Console().print(t)
    Console().print(d["hypernym_text"], highlight=False)


@kb_app.command("embed")
@handle_errors
def embed_command(
    kbdir: Path = typer.Argument(..., help="KB directory."),
    profile: str = typer.Option("auto", "--profile", help="Model profile: offline, hub or auto."),
    signals: Optional[str] = typer.Option(None, "--signals",
                                          help="Which signals' vectors to compute, comma-separated (default: all)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Items per encoder call."),
    backend: str = typer.Option("auto", "--index", help="Index backend: auto, exact, ivfpq or hnsw."),
    device: Optional[str] = typer.Option(None, "--device", help="Torch device: auto, cpu, cuda, cuda:N (default: PIXLINK_DEVICE, else auto)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Compute the KB vectors the linker's signals need (cached, resumable), with the profile's models."""
    from ..errors import Errors, InputError
    from ..link.embed import embed_kb
    from ..link.signals import dense_signals

    known = dense_signals()
    wanted = [s.strip() for s in signals.split(",") if s.strip()] if signals is not None else list(known)
    bad = [s for s in wanted if s not in known]
    if bad or not wanted:
        raise InputError(Errors.E010.format(what="--signals", value=signals,
                                            reason=f"give a comma-separated list of {', '.join(known)}"))
    # a signal whose model cannot run here is skipped with a warning (logged by embed_kb)
    from ..device import requested_device
    from ..models import Profile

    prof = Profile(profile, device=requested_device(device) if device else None)
    report = embed_kb(kbdir, prof, wanted, batch_size=batch_size, index_backend=backend, progress=not as_json)
    if as_json:
        print_json(report)
        return
    for sig, r in report.items():
        if "skipped" in r:
            console.print(f"[yellow]{sig}[/]: not built", highlight=False)
            continue
        left = "".join(f"; {n} {'entity' if n == 1 else 'entities'} left out ({why})"
                       for why, n in r.get("left_out", {}).items())
        console.print(f"[bold]{sig}[/]: {r['vectors']} vectors of {r.get('entities', 0)} entities in {r['space']} "
                      f"by {r['model_id']}; {len(r['errors'])} items failed{left}", highlight=False)
        for e in r["errors"][:10]:
            console.print(f"  [red]failed[/] {escape(str(e['item_id']))}: {escape(e['error'])}", highlight=False)


def _knobs(values: Optional[List[str]], what: str) -> dict[str, Any]:
    """``KEY=VALUE`` options (a VALUE that reads as JSON is taken as JSON: numbers, true...)."""
    import json

    from ..errors import Errors, InputError

    out: dict[str, Any] = {}
    for v in values or []:
        key, sep, raw = v.partition("=")
        if not sep or not key.strip():
            raise InputError(Errors.E010.format(what=what, value=v, reason="expected KEY=VALUE"))
        try:
            out[key.strip()] = json.loads(raw)
        except ValueError:
            out[key.strip()] = raw
    return out


@kb_app.command("index")
@handle_errors
def index_command(
    kbdir: Path = typer.Argument(..., help="KB directory."),
    backend: str = typer.Option(..., "--backend", help="milvus, or FAISS files: auto, exact, ivfpq, hnsw."),
    uri: Optional[str] = typer.Option(None, "--uri", help="Milvus: a server URI (http://host:19530) or a Milvus Lite "
                                                          "file path (tests, small KBs)."),
    token: Optional[str] = typer.Option(None, "--token", help="Milvus server token (user:password); "
                                                              "default PIXLINK_MILVUS_TOKEN. Never stored."),
    source: Optional[Path] = typer.Option(None, "--from", help="An embed job's output directory (pixlink jobs run "
                                                               "embed): index its vector shards."),
    space: Optional[str] = typer.Option(None, "--space", help="Only the indexes of this space."),
    model: Optional[str] = typer.Option(None, "--model", help="Only the indexes of this model id."),
    collection: Optional[str] = typer.Option(None, "--collection", help="Milvus collection name (default: "
                                                                        "pixlink_<kb>_<space>_<model hash>)."),
    index_type: str = typer.Option("AUTO", "--index-type", help="Milvus index type: AUTO (FLAT on Lite, HNSW on a "
                                                                "server), FLAT, IVF_FLAT, IVF_PQ, HNSW, DISKANN..."),
    index_param: Optional[List[str]] = typer.Option(None, "--index-param", help="KEY=VALUE: Milvus index params "
                                                                                 "(M=16, nlist=1024) or FAISS knobs."),
    search_param: Optional[List[str]] = typer.Option(None, "--search-param", help="KEY=VALUE: Milvus search params "
                                                                                   "(ef=128, nprobe=16)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Choose what serves the KB's vectors: move them into Milvus or back into FAISS files, or index an embed job's shards."""
    from ..errors import Errors, InputError
    from ..index.dense import BACKENDS, list_indexes
    from ..kb import KB

    if backend not in (*BACKENDS, "milvus"):
        raise InputError(Errors.E225.format(backend=backend, backends=", ".join((*BACKENDS, "milvus"))))
    if backend == "milvus" and not uri:
        raise InputError(Errors.E274.format(name="--uri", value=uri, reason="--backend milvus needs --uri"))
    KB.open(kbdir).close()  # a KB directory (E1xx otherwise)
    knobs = _knobs(index_param, "--index-param")
    options: dict[str, Any] = {}
    if backend == "milvus":
        options = {"index_type": index_type, "index_params": knobs, "search_params": _knobs(search_param, "--search-param")}
    else:
        options = knobs
    reports = []
    if source is not None:
        from ..jobs import build_index_from_job
        from .common import check_input_dir

        check_input_dir(source, "--from")
        reports.append(build_index_from_job(source, kbdir, backend=backend, uri=uri, token=token, collection=collection,
                                            progress=not as_json, **options))
    else:
        from ..index.milvus import reindex

        todo = [i for i in list_indexes(kbdir) if (space is None or i.space == space) and (model is None or i.model_id == model)]
        if not todo:
            raise InputError(Errors.E277.format(what=str(kbdir), reason="the KB has no vectors of that space/model; run "
                                                "`pixlink kb embed` (or an embed job) first"))
        if collection is not None and len(todo) > 1:
            raise InputError(Errors.E274.format(name="--collection", value=collection,
                                                reason=f"{len(todo)} indexes match; name one with --space/--model"))
        for info in todo:
            idx = reindex(info.path, backend, uri=uri, token=token, collection=collection, progress=not as_json, **options)
            reports.append({"space": idx.space, "model_id": idx.model_id, "vectors": len(idx), "entities": idx.n_entities,
                            "backend": idx.backend, "index": str(info.path),
                            "collection": getattr(idx, "collection", None)})
            idx.close()
    if as_json:
        print_json(reports)
        return
    for r in reports:
        where = f" (collection {r['collection']})" if r.get("collection") else ""
        console.print(f"{r['space']} by {r['model_id']}: {r['vectors']} vectors of {r['entities']} entities served by "
                      f"{r['backend']}{where}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``pixlink kb ...`` to the main app."""
    app.add_typer(kb_app, name="kb")
