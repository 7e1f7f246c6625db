"""RiVEG's auxiliary knowledge: extra context generated for each post, appended to it.

RiVEG (Li et al., 2024) asks a large language model to explain the named things a tweet
mentions and feeds the tweet *plus* that explanation to the NER model, tagging only the
tweet's words. :class:`AuxKnowledge` is that step, pluggable: it takes any object of the
``generate`` role (:class:`pixlink.models.roles.TextGenerator`: the packaged Gemma 3 270M
offline, any hub LM with the ``hub`` profile), or builds one from a profile.

The tagger runs without it by default; pass ``Tagger(aux=AuxKnowledge(...))`` (or
``pixlink ner tag --aux``) to use it. The shipped head was trained on tweets alone, so
context is extra evidence the head was not tuned on: measure before relying on it.

Failures: with ``on_error="raise"`` (default) a generator failure raises E506; with
``on_error="skip"`` the post is tagged without context, the failure is logged at WARNING and
recorded in :attr:`AuxKnowledge.notes` (the tagger copies them into its own ``notes``).
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from ..errors import Errors, InputError, PixlinkError
from ..log import get_logger

log = get_logger(__name__)

DEFAULT_PROMPT = (
    "Tweet: Barack Obama visits Paris with Angela Merkel .\n"
    "Background: Barack Obama is a former president of the United States. Paris is the capital "
    "of France. Angela Merkel is a former chancellor of Germany.\n\n"
    "Tweet: {text}\n"
    "Background:"
)
"""The prompt (``{text}`` = the post): one worked example, so that a small *base* LM (the
packaged Gemma 3 270M) continues with background knowledge; an instruction alone made it
repeat the instruction. The first paragraph of the continuation is kept."""


class AuxKnowledge:
    """Generate a short context for each post with a ``generate``-role model.

    Args:
        generator: an object with ``generate(prompt, max_new_tokens=..., temperature=...) -> str``;
            None = ``Profile(profile).get("generate")``.
        profile: profile name used when ``generator`` is None (default: ``PIXLINK_PROFILE``).
        prompt: template with ``{text}``.
        max_new_tokens: generation budget per post.
        max_chars: the context is cut to this many characters (at a word boundary).
        on_error: ``"raise"`` or ``"skip"`` (see the module doc).
    """

    def __init__(self, generator: Any = None, profile: str | None = None, prompt: str = DEFAULT_PROMPT,
                 max_new_tokens: int = 64, max_chars: int = 600, on_error: str = "raise") -> None:
        if "{text}" not in prompt:
            raise InputError(Errors.E500.format(what="aux prompt", index="-", reason="it must contain {text}"))
        if on_error not in ("raise", "skip"):
            raise InputError(Errors.E500.format(what="aux on_error", index="-", reason="expected 'raise' or 'skip'"))
        if generator is None:
            from ..config import default_profile
            from ..models import Profile

            generator = Profile(profile or default_profile()).get("generate")
        if not callable(getattr(generator, "generate", None)):
            raise InputError(Errors.E500.format(what="aux generator", index="-",
                                                reason="it has no generate(prompt, max_new_tokens) method"))
        self.generator = generator
        self.prompt = prompt
        self.max_new_tokens = int(max_new_tokens)
        self.max_chars = int(max_chars)
        self.on_error = on_error
        self.notes: list[str] = []

    @property
    def name(self) -> str:
        return str(getattr(self.generator, "name", type(self.generator).__name__))

    def clean(self, out: str) -> str:
        """First paragraph of the generation, cut where it starts to repeat the prompt's
        format (``Tweet:`` / ``Background:``), repeated sentences dropped (small LMs loop),
        whitespace collapsed, cut to ``max_chars``."""
        text = out.strip().split("\n\n")[0]
        text = re.split(r"\b(?:Tweet|Background|Post):", text)[0]
        text = re.sub(r"\s+", " ", text).strip()
        seen: set[str] = set()
        kept = []
        for sent in re.split(r"(?<=[.!?])\s+", text):
            key = sent.strip().lower()
            if key and key not in seen:
                seen.add(key)
                kept.append(sent.strip())
        text = " ".join(kept)
        if len(text) > self.max_chars:
            text = text[: self.max_chars].rsplit(" ", 1)[0]
        return text

    def context(self, text: str, index: int = 0) -> str | None:
        """The context for one post ('' when the generator says nothing)."""
        try:
            out = self.generator.generate(self.prompt.format(text=text), max_new_tokens=self.max_new_tokens)
        except (PixlinkError, RuntimeError, ValueError, OSError) as exc:
            reason = f"{self.name}: {type(exc).__name__}: {exc}"
            if self.on_error == "raise":
                raise InputError(Errors.E506.format(index=index, reason=reason)) from exc
            msg = f"aux knowledge skipped for post {index} ({reason}); tagged without context"
            log.warning(msg)
            self.notes.append(msg)
            return None
        if not isinstance(out, str):
            raise InputError(Errors.E506.format(index=index, reason=f"{self.name} returned {type(out).__name__}, not text"))
        return self.clean(out)

    def contexts(self, texts: Sequence[str]) -> list[str | None]:
        """One context per post (None where generation failed with ``on_error="skip"``)."""
        self.notes = []
        return [self.context(t, i) for i, t in enumerate(texts)]
