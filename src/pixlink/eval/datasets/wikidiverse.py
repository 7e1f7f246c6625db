"""WikiDiverse (Wang et al., ACL 2022): Wikinews image-caption pairs with mentions -> Wikipedia.

A JSON list of ``[sentence, image_url, topic, [[mention, type, start, end, wikipedia_url], ...]]``
(``start``/``end``: character offsets of the mention in the sentence, end exclusive). One
:class:`~pixlink.types.Mention` per mention: ``id`` = ``<record>-<i>``, ``text`` = the sentence,
``surface`` = the mention, ``split`` = the topic, ``meta`` = type, offsets, image URL and the
Wikipedia URL.

Gold: WikiDiverse links to Wikipedia pages, pixlink KBs use Wikidata QIDs. With ``url_map``
(a JSON object ``{wikipedia_url or title: QID}``) gold is the QID. A URL missing from the map
is still a linkable mention whose entity we cannot name by QID: its gold stays the Wikipedia
URL (an id no QID KB holds), so it counts as a *miss* of the linker, never as a NIL answer that
a NIL prediction would get right; it is counted (``url_unmapped``) and flagged
``meta["gold_unmapped"] = True``. Without a map, gold is the Wikipedia URL itself (score
against a KB whose ids are URLs). An empty URL or ``"nil"`` is NIL. Offsets that do not match
the mention's text are counted (``offset_mismatch``), not fixed.

Images: ``image`` = ``<image_root>/<file name of the URL>`` when ``image_root`` is given (the
released WikinewsImgs use the URL's file name), else the URL.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

import orjson

from ...errors import DatasetError, Errors, InputError
from ...types import Mention
from .base import LoadReport, LoadResult, as_path, read_records


def _title(url: str) -> str:
    return unquote(urlparse(url).path.rsplit("/", 1)[-1]).replace("_", " ")


def load_wikidiverse(
    path: str | Path, image_root: str | Path | None = None, url_map: str | Path | dict | None = None,
) -> LoadResult[Mention]:
    p = as_path(path)
    mapping: dict | None = None
    if isinstance(url_map, dict):
        mapping = url_map
    elif url_map is not None:
        try:
            mapping = orjson.loads(as_path(url_map).read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise DatasetError(Errors.E600.format(path=str(url_map), reason=str(exc))) from exc
    report = LoadReport(path=str(p), dataset="wikidiverse")
    out: list[Mention] = []
    for idx, (key, rec) in enumerate(read_records(p, report)):
        report.n_records += 1
        try:
            if not isinstance(rec, list) or len(rec) != 4 or not isinstance(rec[3], list):
                raise InputError(Errors.E603.format(item=key, path=str(p),
                                                    reason="expected [sentence, image_url, topic, [mentions]]"))
            sent, img_url, topic, ments = rec
            image = img_url
            if image_root is not None and isinstance(img_url, str):
                image = str(Path(image_root) / unquote(urlparse(img_url).path.rsplit("/", 1)[-1]))
            batch: list[Mention] = []
            for i, m in enumerate(ments):
                if not isinstance(m, list) or len(m) != 5:
                    raise InputError(Errors.E603.format(item=f"{key}-{i}", path=str(p),
                                                        reason="mention is not [mention, type, start, end, url]"))
                surface, typ, s, e, url = m
                if not (isinstance(s, int) and isinstance(e, int) and 0 <= s < e <= len(sent)) or sent[s:e] != surface:
                    report.note("offset_mismatch", "a mention's start/end do not select its text in the sentence")
                gold: str | None
                unmapped = False
                if not url or str(url).strip().lower() in ("nil", "none"):
                    gold = None
                elif mapping is not None:
                    gold = mapping.get(url) or mapping.get(_title(url))
                    if gold is None:
                        gold, unmapped = str(url), True
                        report.note("url_unmapped", "a Wikipedia URL had no QID in url_map; it stays the gold, so the "
                                                    "mention counts as a miss (not as NIL)")
                else:
                    gold = str(url)
                batch.append(Mention(
                    id=f"{key}-{i}", image=image, text=sent, surface=surface, gold=gold, split=topic,
                    meta={"type": typ, "start": s, "end": e, "wikipedia_url": url, "image_url": img_url, "prompt": "image",
                          **({"gold_unmapped": True} if unmapped else {})},
                ))
            out.extend(batch)
        except InputError as exc:
            report.error(idx, key, str(exc))
    if report.counts or report.errors:
        report.log()
    return LoadResult(out, report)
