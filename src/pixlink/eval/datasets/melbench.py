"""MELBench (seukgcode/MELBench): WikiMEL (``Wikidata-MEL.json``) and RichpediaMEL
(``Richpedia-MEL.json``), text + image mentions -> Wikidata QIDs.

Both files are a JSON object ``{key: {"id", "sentence", "mentions", "entities", "answer"}}``:

* WikiMEL: ``mentions``, ``entities`` and ``answer`` are **lists** (one tweet-like sentence may
  hold several mentions); one :class:`~pixlink.types.Mention` per list position, id
  ``<id>-<i>`` (``<id>`` alone when there is one).
* RichpediaMEL: they are **strings**; one mention per record.

``gold`` = the answer QID; ``surface`` = the mention's words; ``text`` = the sentence;
``meta["entity_name"]`` = the gold entity's name. The images are not in these files: ``image``
is ``<image_root>/<id>.jpg`` when ``image_root`` is given (WikiMEL/RichpediaMEL name their
images by record id), else ``None`` and the mention is text-only. Lists of unequal lengths or an
answer that is not a QID (``Q<digits>``) fail the record (reported); ``"nil"``/empty answers
are read as NIL.

The files come unsplit and without their KB: :func:`melbench_entities` makes the KB of the
entities the data names (the gold QIDs with the names the records give them), for a text-only
experiment; ``meta["record"]`` groups the mentions of one sentence, so that a split keeps them
together (:func:`pixlink.train.data.split_mentions`).
"""

from __future__ import annotations

import re
from pathlib import Path

from ...errors import Errors, InputError
from ...types import Entity, Mention
from .base import LoadReport, LoadResult, as_path, read_records

_QID = re.compile(r"^Q\d+$")
_NIL = {"", "nil", "none", "null"}


def _gold(v: object, item: str, path: str) -> str | None:
    if v is None or (isinstance(v, str) and v.strip().lower() in _NIL):
        return None
    if not isinstance(v, str) or not _QID.match(v.strip()):
        raise InputError(Errors.E603.format(item=item, path=path, reason=f"answer {v!r} is not a QID"))
    return v.strip()


def load_melbench(
    path: str | Path, image_root: str | Path | None = None, dataset: str | None = None, image_ext: str = ".jpg",
) -> LoadResult[Mention]:
    """Read WikiMEL or RichpediaMEL (``dataset`` = ``"wikimel"`` / ``"richpediamel"``, default
    from the file name)."""
    p = as_path(path)
    name = dataset or ("richpediamel" if "richpedia" in p.name.lower() else "wikimel")
    report = LoadReport(path=str(p), dataset=name)
    out: list[Mention] = []
    for idx, (key, rec) in enumerate(read_records(p, report)):
        report.n_records += 1
        item = str(rec.get("id", key)) if isinstance(rec, dict) else key
        try:
            if not isinstance(rec, dict) or not {"sentence", "mentions", "answer"} <= set(rec):
                raise InputError(Errors.E603.format(item=item, path=str(p), reason="needs sentence, mentions, answer"))
            ments, ents, answers = rec["mentions"], rec.get("entities"), rec["answer"]
            if isinstance(ments, str):
                ments, ents, answers = [ments], [ents], [answers]
            elif not isinstance(ments, list) or not isinstance(answers, list):
                raise InputError(Errors.E603.format(item=item, path=str(p), reason="mentions/answer not lists or strings"))
            ents = ents if isinstance(ents, list) else [None] * len(ments)
            if not (len(ments) == len(answers) == len(ents)) or not ments:
                raise InputError(Errors.E603.format(
                    item=item, path=str(p),
                    reason=f"{len(ments)} mentions, {len(ents)} entities, {len(answers)} answers: lengths differ"))
            golds = [_gold(a, item, str(p)) for a in answers]
            image = str(Path(image_root) / f"{item}{image_ext}") if image_root is not None else None
            for i, (m, e, g) in enumerate(zip(ments, ents, golds)):
                out.append(Mention(
                    id=item if len(ments) == 1 else f"{item}-{i}", image=image, text=rec["sentence"], surface=m,
                    gold=g, split=name, meta={"entity_name": e, "record": item, "prompt": "image" if image else "text"},
                ))
        except InputError as exc:
            report.error(idx, item, str(exc))
    if report.counts or report.errors:
        report.log()
    return LoadResult(out, report)


def melbench_entities(mentions: list[Mention] | tuple[Mention, ...], source: str = "melbench") -> list[Entity]:
    """The entities MELBench mentions name: one :class:`~pixlink.types.Entity` per gold QID.

    ``label`` is the name the records give the entity most often (``meta["entity_name"]``; ties:
    the first seen), ``aliases`` its other names. Mention words (``surface``) are *not* added:
    they are what the linker must resolve, and the test mentions' words would leak into the KB.
    An entity named by no record gets its QID as label. Order: first appearance.
    """
    from collections import Counter

    names: dict[str, Counter] = {}
    for m in mentions:
        if m.gold is None:
            continue
        c = names.setdefault(m.gold, Counter())
        name = m.meta.get("entity_name") if isinstance(m.meta, dict) else None
        if isinstance(name, str) and name.strip():
            c[name.strip()] += 1
    out = []
    for qid, c in names.items():
        ranked = [n for n, _ in sorted(c.items(), key=lambda kv: -kv[1])]  # stable: first seen wins ties
        label = ranked[0] if ranked else qid
        out.append(Entity(id=qid, label=label, aliases=tuple(ranked[1:]), source=source))
    return out
