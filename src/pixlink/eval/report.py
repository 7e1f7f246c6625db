"""Results as the papers show them: ``results.json``, a Markdown table, and plots.

Tables (figures in %, two decimals, as the papers print them):

* NER — UMT / Twitter-2015/2017 papers (Yu et al. 2020, Table 2): one row per system, the F1
  of each type, then overall P, R, F1.
* Linking — MEL / VNEL papers: Hits@1/3/5/10/20 (= Recall@k), MRR, and NIL accuracy, one row
  for all items then one per split (seen / unseen ...).
* GMNER — Yu et al. 2023 (Table 2) and RiVEG: P, R, F1 of GMNER, MNER and EEG side by side
  (and SMNER / EES / mIoU for masks).

Plots (matplotlib, Agg backend): ``hits_at_k.png`` (Hits@k against k, per split) and
``f1_vs_iou.png`` (GMNER / EEG F1 against the IoU threshold).

Below the table ``results.md`` says what became of every input record
(:func:`accounting`: loaded, rejected at load with their codes, not run, image missing, failed
in the system, scored) and how much of an earlier run was reused (``results["resume"]``).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from ..io import dumps
from ..log import get_logger

log = get_logger(__name__)


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def ner_table(results: dict[str, Any], system: str) -> str:
    types = list(results.get("labels") or results["per_type"])
    head = ["System", *[f"{t} F1" for t in types], "P", "R", "F1"]
    cells = [system, *[_pct(results["per_type"].get(t, {}).get("f1")) for t in types],
             _pct(results["precision"]), _pct(results["recall"]), _pct(results["f1"])]
    lines = [_row(head), _row(["---"] * len(head)), _row(cells), "",
             "Per type (counts):", "", _row(["Type", "gold", "pred", "correct", "P", "R", "F1"]),
             _row(["---"] * 7)]
    for t in types:
        r = results["per_type"].get(t)
        if r:
            lines.append(_row([t, str(r["n_gold"]), str(r["n_pred"]), str(r["n_correct"]),
                               _pct(r["precision"]), _pct(r["recall"]), _pct(r["f1"])]))
    return "\n".join(lines)


def _ks(results: dict[str, Any]) -> list[int]:
    return sorted(int(k.split("@")[1]) for k in results if k.startswith("hits@"))


def mrr_key(results: dict[str, Any]) -> str:
    """``"mrr@k"`` when the ranking was cut at k (``ranking_cut_at``), else ``"mrr"``."""
    cut = results.get("ranking_cut_at")
    return f"mrr@{cut}" if cut else "mrr"


def link_table(results: dict[str, Any], system: str) -> str:
    ks = _ks(results)
    mk = mrr_key(results)
    head = ["System", "Split", "n", *[f"Hits@{k}" for k in ks], mk.replace("mrr", "MRR"), "Acc.", "NIL acc."]
    lines = [_row(head), _row(["---"] * len(head))]
    rows = [("all", results)] + list((results.get("per_split") or {}).items())
    for name, r in rows:
        lines.append(_row([system, name, str(r["n"]), *[_pct(r.get(f"hits@{k}")) for k in ks], _pct(r.get(mk)),
                           _pct(r.get("accuracy")), _pct(r.get("nil_accuracy"))]))
    return "\n".join(lines)


def gmner_table(results: dict[str, Any], system: str) -> str:
    variants = [v for v in ("gmner", "mner", "eeg", "smner", "ees") if v in results]
    head = ["System"] + [f"{v.upper()} {m}" for v in variants for m in ("P", "R", "F1")]
    cells = [system] + [_pct(results[v][m]) for v in variants for m in ("precision", "recall", "f1")]
    lines = [_row(head), _row(["---"] * len(head)), _row(cells)]
    if "miou" in results:
        lines += ["", f"Mask mIoU over groundable gold entities: {_pct(results['miou']['miou'])} "
                      f"(over those predicted with a mask: {_pct(results['miou']['miou_matched'])})"]
    g = results.get("gmner")
    if g:
        lines += ["", f"GMNER correct: {g['n_correct_groundable']} groundable + {g['n_correct_ungroundable']} "
                      f"ungroundable of {g['n_gold']} gold ({g['n_gold_groundable']} groundable); "
                      f"{results.get('iou_rule') or 'IoU > ' + str(results['iou_threshold'])}."]
    return "\n".join(lines)


def accounting(results: dict[str, Any]) -> dict[str, Any]:
    """What became of every input record of a run, from its results and ``load_report``.

    Returns ``{"input_records", "rejected_at_load", "rejected_codes": {code: n},
    "loaded_records", "loaded_items", "not_run", "missing_image", "unlabelled", "scored",
    "failed"}``: ``input_records = rejected_at_load + loaded_records``; the loaded records gave
    ``loaded_items`` (one record may hold several mentions) ``= not_run + missing_image +
    unlabelled + scored``, where ``not_run`` are loaded items the runner was not given (e.g.
    ``--limit``); ``failed`` items (the system failed on them) are among ``scored``, where they
    count as wrong. Without a ``load_report`` the load figures are ``None``.
    """
    lr = results.get("load_report") or None
    n_items = int(results.get("n_items", results.get("n", 0)))
    missing = int(results.get("n_missing_image", 0))
    unlabelled = int(results.get("n_unlabelled", 0))
    out: dict[str, Any] = {"input_records": None, "rejected_at_load": None, "rejected_codes": None,
                           "loaded_records": None, "loaded_items": None, "not_run": None, "missing_image": missing,
                           "unlabelled": unlabelled, "scored": n_items - missing - unlabelled,
                           "failed": int(results.get("n_errors", 0))}
    if lr:
        codes = lr.get("error_codes")
        if codes is None:  # a load report without per-code counts: count the errors it lists
            codes = dict(Counter(e.get("code") or "?" for e in lr.get("errors") or []))
        loaded_items = lr.get("n_items")
        out.update(input_records=int(lr.get("n_records", 0)), rejected_at_load=int(lr.get("n_errors", 0)),
                   rejected_codes=codes, loaded_records=int(lr.get("n_loaded", 0)), loaded_items=loaded_items,
                   not_run=None if loaded_items is None else int(loaded_items) - n_items)
    return out


def _accounting_lines(results: dict[str, Any]) -> list[str]:
    a = results.get("accounting") or accounting(results)
    lines = []
    if a["input_records"] is not None:
        codes = ", ".join(f"{c} x{n}" for c, n in sorted(a["rejected_codes"].items()))
        items = a["loaded_items"]
        lines.append(f"- input records: {a['input_records']}; rejected at load: {a['rejected_at_load']}"
                     + (f" ({codes}; see `load_report` in results.json)" if a["rejected_at_load"] else "")
                     + f"; loaded: {a['loaded_records']}"
                     + (f" (giving {items} items)" if items is not None and items != a["loaded_records"] else ""))
        if a["not_run"]:
            lines.append(f"- loaded but not run (--limit): {a['not_run']}")
    if a["missing_image"]:
        lines.append(f"- image not on this machine (left out of the figures): {a['missing_image']}")
    if a["unlabelled"]:
        lines.append(f"- unlabelled (counted, not scored): {a['unlabelled']}")
    lines.append(f"- scored (`n`): {a['scored']}" + (f", of which {a['failed']} failed in the system and count as wrong"
                                                      if a["failed"] else ""))
    res = results.get("resume") or {}
    if res.get("reused") or res.get("redone"):
        why = ", ".join(f"{n} because {k}" for k, n in (res.get("redone_because") or {}).items())
        lines.append(f"- resumed: {res['reused']} reused from an earlier run, {res['redone']} redone"
                     + (f" ({why})" if why else "") + f", {res.get('new', 0)} new")
    return ["Items:", "", *lines]


def markdown(results: dict[str, Any], title: str = "") -> str:
    system = str(results.get("system") or "pixlink")
    task = results.get("task")
    parts = [f"# {title or f'pixlink eval {task}'}", ""]
    if results.get("data"):
        parts += [f"Data: `{results['data']}` ({results.get('n', '?')} items scored)", ""]
    if task == "ner":
        parts.append(ner_table(results, system))
    elif task == "link":
        parts.append(link_table(results, system))
    elif task == "gmner":
        parts.append(gmner_table(results, system))
    parts += ["", *_accounting_lines(results)]
    for note in results.get("notes") or []:
        parts += ["", f"- note: {note}"]
    return "\n".join(parts) + "\n"


def plot_hits_at_k(results: dict[str, Any], path: Path) -> Path | None:
    ks = _ks(results)
    if not ks or results.get(f"hits@{ks[0]}") is None:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    splits = list((results.get("per_split") or {}).items())
    rows = [("all", results)] + (splits if len(splits) > 1 else [])
    for name, r in rows:
        ys = [r.get(f"hits@{k}") for k in ks]
        if all(y is not None for y in ys):
            ax.plot(ks, [100 * y for y in ys], marker="o", label=f"{name} (n={r['n_linkable']})")
    ax.set_xlabel("k")
    ax.set_ylabel("Hits@k (%)")
    ax.set_xscale("log")
    ax.set_xticks(ks)
    ax.set_xticklabels([str(k) for k in ks])
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_f1_vs_iou(results: dict[str, Any], path: Path) -> Path | None:
    curves = results.get("f1_vs_iou")
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, pts in curves.items():
        ax.plot([p["iou"] for p in pts], [100 * p["f1"] for p in pts], marker="o", label=name.upper())
    ax.axvline(results.get("iou_threshold", 0.5), color="grey", ls=":", lw=1)
    ax.set_xlabel("IoU threshold")
    ax.set_ylabel("F1 (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(results: dict[str, Any], out: Path, title: str = "") -> dict[str, str]:
    """Write ``results.json``, ``results.md`` and the task's plot into ``out``; return the paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, str] = {}
    (out / "results.json").write_text(dumps(results, indent=True) + "\n", encoding="utf-8")
    paths["json"] = str(out / "results.json")
    (out / "results.md").write_text(markdown(results, title), encoding="utf-8")
    paths["markdown"] = str(out / "results.md")
    if results.get("task") == "link":
        p = plot_hits_at_k(results, out / "hits_at_k.png")
        if p:
            paths["plot"] = str(p)
    elif results.get("task") == "gmner":
        p = plot_f1_vs_iou(results, out / "f1_vs_iou.png")
        if p:
            paths["plot"] = str(p)
    return paths
