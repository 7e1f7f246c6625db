"""Twitter-2015, Twitter-2017 and Twitter-GMNER CoNLL files -> :class:`~pixlink.types.Post`.

Format (jefferyYu/UMT ``data/``, NUSTM/GMNER ``Twitter10000_v2.0``)::

    IMGID:16_05_01_127
    The\tO
    Philadelphia\tB-ORG
    Phillies\tI-ORG
    <blank line>

One tweet per block: an ``IMGID:<id>`` line, then one ``token<TAB>tag`` line per token (BIO
tags), then a blank line. The image of the tweet is ``<id>.jpg``.

Entity types are kept *as the dataset names them*: PER/LOC/ORG/OTHER for Twitter-2015 and
Twitter-GMNER, PER/LOC/ORG/MISC for Twitter-2017 (:data:`pixlink.spans.DATASET_TYPES`);
:func:`pixlink.spans.align_type` maps a tagger's MISC to OTHER (and back) by the dataset's own
label set. Tags are read by :func:`pixlink.spans.bio_to_spans`.

This is a file format, so it lives on the ground floor: the tagger's training
(:mod:`pixlink.ner`) and the evaluation (:mod:`pixlink.eval.datasets`, which registers it as the
``conll`` format) both read it from here.

Quirks of the real files (checked on ``../shared/data``), and what this reader does:

* Twitter-2015 has ``I-`` tags with no ``B-`` before them (46 in valid, 169 in train:
  after ``O`` or after another type). They are read as conlleval and the UMT / GMNER
  evaluation scripts read them: an ``I-X`` that does not continue an ``X`` entity starts a
  new one. Each repair is counted in the :class:`LoadReport` and listed in ``post.meta``.
* Twitter-2015 valid has a token that is a lone no-break space (``"\\xa0"``): tokens are
  split on the TAB only, so it is kept as a token and token indices stay aligned.
* Files are UTF-8; each line is decoded on its own, so a line that is not UTF-8 fails its
  tweet only (reported), not the file.

A tweet with a malformed line (no TAB, a tag that is not BIO, a type outside the dataset's
label set) is reported in :attr:`LoadReport.errors` with its line number; the others load.
"""

from __future__ import annotations

from pathlib import Path

from .errors import DatasetError, Errors
from .loadreport import LoadReport, LoadResult
from .spans import DATASET_TYPES, bio_to_spans, is_bio
from .types import NamedEntity, Post

__all__ = ["DATASET_TYPES", "dataset_of", "load_conll", "read_conll"]


def dataset_of(path: str | Path) -> str | None:
    """The dataset a CoNLL file belongs to, from its folder name (``.../twitter2017/valid.txt``)."""
    p = Path(path).expanduser()
    for part in (p.parent.name.lower(), p.stem.lower()):
        if part in DATASET_TYPES:
            return part
    return None


class _Block:
    __slots__ = ("image_id", "line", "tokens", "tags", "lines", "bad")

    def __init__(self, image_id: str | None, line: int) -> None:
        self.image_id = image_id
        self.line = line
        self.tokens: list[str] = []
        self.tags: list[str] = []
        self.lines: list[int] = []
        self.bad: str | None = None


def load_conll(
    path: str | Path, dataset: str | None = None, image_root: str | Path | None = None,
    log_report: bool = True,
) -> LoadResult[Post]:
    """Read a Twitter-2015/2017/GMNER CoNLL file into posts, with a :class:`LoadReport`.

    Args:
        path: the CoNLL file.
        dataset: ``"twitter2015"``, ``"twitter2017"``, ``"gmner"`` or ``"riveg"``; sets the label
            set that tags are checked against. ``None``: taken from the folder name when it is
            one of these, else any type is accepted.
        image_root: folder of the tweet images; ``post.image`` is ``<image_root>/<IMGID>.jpg``
            (``<IMGID>.jpg`` without it). Images need not exist.
        log_report: log the report's repairs and errors at WARNING (callers that add to the
            report and log it themselves pass False).

    Returns:
        :class:`LoadResult` of :class:`~pixlink.types.Post`, each with ``id`` = the IMGID
        (made unique with ``#2``... if repeated), ``tokens``, gold ``entities`` (token spans,
        end exclusive, typed as the dataset names them), ``split`` = the file stem
        (``train``/``valid``/``dev``), ``meta`` = ``{"dataset", "image_id", "line"}`` plus
        ``"repairs"`` when a tag was repaired.

    Raises:
        DatasetError: E600 when the file cannot be read; E602 for an unknown ``dataset``;
            E611 when the file holds no readable tweet at all.
    """
    p = Path(path).expanduser()
    if dataset is not None and dataset not in DATASET_TYPES:
        raise DatasetError(Errors.E602.format(name=dataset, names=", ".join(DATASET_TYPES)))
    name = dataset or dataset_of(p)
    labels = DATASET_TYPES.get(name) if name else None
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise DatasetError(Errors.E600.format(path=str(p), reason=f"{type(exc).__name__}: {exc}")) from exc

    report = LoadReport(path=str(p), dataset=name)
    blocks: list[_Block] = []
    cur: _Block | None = None
    lines = raw.split(b"\n")
    if lines and lines[0].startswith(b"\xef\xbb\xbf"):
        lines[0] = lines[0][3:]
    for n, bline in enumerate(lines, start=1):
        bline = bline.rstrip(b"\r")
        try:
            line = bline.decode("utf-8")
        except UnicodeDecodeError as exc:
            if cur is None:
                cur = _Block(None, n)
                blocks.append(cur)
            cur.bad = cur.bad or Errors.E601.format(path=str(p), line=n, reason=f"not UTF-8 ({exc.reason})")
            continue
        if line.startswith("IMGID:"):
            if cur is not None and cur.tokens:
                report.note("imgid_without_blank", "an IMGID line followed a tweet with no blank line between")
            cur = _Block(line[len("IMGID:"):].strip(), n)
            blocks.append(cur)
            continue
        if not line.strip():
            cur = None
            continue
        if cur is None:  # tokens without an IMGID line (plain CoNLL)
            cur = _Block(None, n)
            blocks.append(cur)
            report.note("no_imgid", "a tweet had no IMGID line; it was given an id from its line number")
        if "\t" in line:
            token, _, tag = line.rpartition("\t")
        else:
            token, _, tag = line.rpartition(" ")
            if token:
                report.note("space_separated", "a token line was separated by a space, not a TAB")
        tag = tag.strip()
        if not token and not _:
            cur.bad = cur.bad or Errors.E601.format(path=str(p), line=n, reason=f"{line!r} has no TAB between token and tag")
            continue
        if not token.strip():
            report.note("blank_token", "a token was empty or whitespace only (e.g. a no-break space); it was kept")
        cur.tokens.append(token)
        cur.tags.append(tag)
        cur.lines.append(n)

    posts: list[Post] = []
    seen: dict[str, int] = {}
    root = Path(image_root).expanduser() if image_root is not None else None
    for idx, b in enumerate(blocks):
        report.n_records += 1
        image_id = b.image_id or f"{p.stem}-line{b.line}"
        if b.bad:
            report.error(idx, image_id, b.bad)
            continue
        if not b.tokens:
            report.error(idx, image_id, Errors.E601.format(path=str(p), line=b.line, reason="tweet has no tokens"))
            continue
        bad_i = next((i for i, t in enumerate(b.tags) if not is_bio(t)), None)
        if bad_i is not None:
            report.error(idx, image_id, Errors.E601.format(path=str(p), line=b.lines[bad_i], reason=(
                f"tag {b.tags[bad_i]!r} at token {bad_i} is not O, B-<type> or I-<type>")))
            continue
        spans, repaired = bio_to_spans(b.tags)
        if labels is not None:
            odd = [(s, t) for s, _e, t in spans if t not in labels]
            if odd:
                s, t = odd[0]
                report.error(idx, image_id, Errors.E601.format(
                    path=str(p), line=b.lines[s], reason=f"type {t!r} is not one of {name}'s types {list(labels)}"))
                continue
        post_id = image_id
        if image_id in seen:
            seen[image_id] += 1
            post_id = f"{image_id}#{seen[image_id]}"
            report.note("duplicate_imgid", "an IMGID appeared more than once; later tweets got '#2', '#3'... ids")
        else:
            seen[image_id] = 1
        meta: dict = {"dataset": name, "image_id": image_id, "line": b.line}
        if repaired:
            report.note("i_without_b", "an I- tag did not continue an entity of its type; it started one (conlleval)",
                        len(repaired))
            meta["repairs"] = [f"{b.tags[i]} at token {i} (line {b.lines[i]}) started an entity" for i in repaired]
        ents = [NamedEntity(start=s, end=e, type=t, text=" ".join(b.tokens[s:e])) for s, e, t in spans]
        image = f"{image_id}.jpg"
        posts.append(Post(
            id=post_id, tokens=b.tokens, image=str(root / image) if root is not None else image,
            entities=ents, split=p.stem, meta=meta,
        ))
    if not posts and report.n_records:
        first = report.errors[0].error if report.errors else "no tweets"
        raise DatasetError(Errors.E611.format(path=str(p), n_errors=len(report.errors), first=first))
    if log_report and (not report.ok or report.counts):
        report.log()
    return LoadResult(posts, report)


def read_conll(
    path: str | Path, dataset: str | None = None, image_root: str | Path | None = None,
) -> list[Post]:
    """The posts of a Twitter-2015/2017/GMNER CoNLL file (see :func:`load_conll`).

    Malformed tweets are skipped *and logged at WARNING* with their line numbers; use
    :func:`load_conll` to get the :class:`LoadReport` as data.
    """
    return load_conll(path, dataset=dataset, image_root=image_root).items
