"""Text models from the hub: a causal LM for generation, sentence-transformers for embeddings.

Backends:

* ``generate`` / ``hub_lm`` — :class:`HubTextGenerator`: any ``AutoModelForCausalLM`` with its
  tokenizer (default ``HuggingFaceTB/SmolLM2-360M-Instruct``). When the tokenizer has a chat
  template the prompt is sent as one user turn through it; otherwise as plain text.
  ``temperature=0`` decodes greedily (deterministic); a positive temperature samples.
* ``text_embed`` / ``hub_sentence_transformer`` — :class:`HubSentenceEncoder`: any
  sentence-transformers model (default ``BAAI/bge-base-en-v1.5``, 768-d). ``encode(texts,
  query=True)`` uses the model's own ``"query"`` prompt when its config defines one
  (e5-style ``query: ``), else ``query_prompt`` (for bge-en-v1.5 the instruction its card gives
  for retrieval queries), else no prompt.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ...device import default_batch_size, resolve_device
from ...errors import Errors, InputError
from ...log import get_logger
from ...vecmath import l2_normalise
from .. import roles as R
from ..hub import hub_cache_dir, load_pretrained, load_processor, needs, resolve_model
from ..registry import register_backend

log = get_logger("pixlink.models.hub_text")

LM_DEFAULT = "HuggingFaceTB/SmolLM2-360M-Instruct"
ST_DEFAULT = "BAAI/bge-base-en-v1.5"

# Query instructions of models whose sentence-transformers config has no "query" prompt.
KNOWN_QUERY_PROMPTS = {
    "BAAI/bge-base-en-v1.5": "Represent this sentence for searching relevant passages: ",
    "BAAI/bge-small-en-v1.5": "Represent this sentence for searching relevant passages: ",
    "BAAI/bge-large-en-v1.5": "Represent this sentence for searching relevant passages: ",
}


class HubTextGenerator:
    """A hub causal LM as a :class:`~pixlink.models.roles.TextGenerator`.

    Args:
        model: hub id or local directory; cache_dir: download cache (default ``$PIXLINK_CACHE/hub``).
        chat: ``None`` = use the chat template when the tokenizer has one; ``True`` requires it;
            ``False`` sends the raw prompt.
        seed: seed for sampling when ``temperature > 0``.
        device: torch device (``auto``/None: :func:`pixlink.device.resolve_device`).

    Shared by threads: one :meth:`generate` runs at a time (the tokenizer changes its settings
    per call, and sampling seeds torch's global generator).
    """

    def __init__(self, model: str | Path = LM_DEFAULT, cache_dir: str | Path | None = None, *, name: str = "hub_lm",
                 chat: bool | None = None, seed: int = 0, device: str | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        self.name = name
        self.device = torch.device(resolve_device(device))
        self._lock = threading.Lock()
        self.seed = seed
        source, self.model_id, self.is_local = resolve_model(model, name)
        self.cache_dir = hub_cache_dir(cache_dir)
        self.tokenizer = load_processor(source, owner=name, cache_dir=self.cache_dir, kind="tokenizer")
        self._net = load_pretrained(AutoModelForCausalLM.from_pretrained, source, owner=name,
                                    cache_dir=self.cache_dir, what="weights").eval().to(self.device)
        has_template = bool(getattr(self.tokenizer, "chat_template", None))
        if chat is True and not has_template:
            raise InputError(Errors.E313.format(backend=name, option="chat", value=chat,
                                                expected=f"False or None: {self.model_id} has no chat template"))
        self.chat = has_template if chat is None else bool(chat)
        log.info("%s: loaded %s (chat template: %s)", name, self.model_id, self.chat)

    def _encode(self, prompt: str) -> dict[str, Any]:
        if self.chat:
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True, return_dict=True,
                return_tensors="pt")
        return self.tokenizer(prompt, return_tensors="pt")

    def generate(self, prompt: str, max_new_tokens: int = 48, temperature: float = 0.0) -> str:
        """The model's continuation of ``prompt`` (without the prompt), stripped."""
        import torch

        if not isinstance(prompt, str) or not prompt.strip():
            raise InputError(Errors.E308.format(backend=self.name, what="prompt", reason="empty"))
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise InputError(Errors.E313.format(backend=self.name, option="max_new_tokens", value=max_new_tokens,
                                                expected="a positive integer"))
        if temperature < 0:
            raise InputError(Errors.E313.format(backend=self.name, option="temperature", value=temperature,
                                                expected=">= 0"))
        kw: dict[str, Any] = {"max_new_tokens": max_new_tokens}
        if temperature > 0:
            kw.update(do_sample=True, temperature=float(temperature))
        else:
            kw.update(do_sample=False)
        if self.tokenizer.pad_token_id is not None:
            kw["pad_token_id"] = self.tokenizer.pad_token_id
        with self._lock:
            enc = self._encode(prompt).to(self.device)
            if temperature > 0:
                torch.manual_seed(self.seed)
            with torch.inference_mode():
                out = self._net.generate(**enc, **kw)
            new = out[0, enc["input_ids"].shape[1]:]
            return self.tokenizer.decode(new, skip_special_tokens=True).strip()


class HubSentenceEncoder:
    """A sentence-transformers model as a :class:`~pixlink.models.roles.TextEncoder`.

    Args:
        model: hub id or local directory; cache_dir: download cache.
        query_prompt: prefix for ``query=True`` texts when the model defines no ``"query"``
            prompt (default: :data:`KNOWN_QUERY_PROMPTS` for the model, else none).

        device: torch device (``auto``/None: :func:`pixlink.device.resolve_device`).

    Attributes: name, model_id, dim, query_prompt (what ``query=True`` adds, or None), device,
    batch_size (default, follows the device).

    Shared by threads: one :meth:`encode` runs at a time (sentence-transformers' tokenizer
    changes its settings per call).
    """

    def __init__(self, model: str | Path = ST_DEFAULT, cache_dir: str | Path | None = None, *,
                 name: str = "hub_sentence_transformer", query_prompt: str | None = None,
                 device: str | None = None) -> None:
        from sentence_transformers import SentenceTransformer

        self.name = name
        self.device = resolve_device(device)
        self.batch_size = default_batch_size(self.device, *R.TEXT_BATCH)
        self._lock = threading.Lock()
        device = self.device
        source, self.model_id, self.is_local = resolve_model(model, name)
        self.cache_dir = hub_cache_dir(cache_dir)

        def _load(src: str, cache_dir: str) -> Any:
            return SentenceTransformer(src, cache_folder=cache_dir, device=device)

        self._st = load_pretrained(_load, source, owner=name, cache_dir=self.cache_dir, what="sentence-transformers model")
        dim_fn = getattr(self._st, "get_embedding_dimension", None) or self._st.get_sentence_embedding_dimension
        self.dim = int(dim_fn())
        own = (self._st.prompts or {}).get("query")
        self._use_prompt_name = bool(own) and query_prompt is None
        self.query_prompt = own if self._use_prompt_name else (query_prompt or KNOWN_QUERY_PROMPTS.get(self.model_id))
        log.info("%s: loaded %s (D=%d, query prompt %r)", name, self.model_id, self.dim, self.query_prompt)

    def encode(self, texts: Sequence[str], batch_size: int | None = None, query: bool = False) -> np.ndarray:
        """``(N, D)`` float32, rows L2-normalised; ``(0, D)`` for no texts."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise InputError(Errors.E308.format(backend=self.name, what="texts", reason="expected a list of strings"))
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        kw: dict[str, Any] = {}
        if query and self._use_prompt_name:
            kw["prompt_name"] = "query"
        elif query and self.query_prompt:
            kw["prompt"] = self.query_prompt
        bs = self.batch_size if batch_size is None else int(batch_size)
        with self._lock:
            emb = self._st.encode(texts, batch_size=bs, convert_to_numpy=True, normalize_embeddings=True,
                                  show_progress_bar=False, **kw)
        return l2_normalise(emb)


@register_backend(
    R.GENERATE, "hub_lm", "hub", needs("torch", "transformers"), device=True, default_model=LM_DEFAULT, license="Apache-2.0",
    description="Any hub causal LM (AutoModelForCausalLM), chat template when it has one; greedy at T=0",
)
def make_hub_lm(model: str | Path = LM_DEFAULT, cache_dir: str | Path | None = None, chat: bool | None = None,
                seed: int = 0, device: str | None = None) -> HubTextGenerator:
    return HubTextGenerator(model, cache_dir, chat=chat, seed=seed, device=device)


@register_backend(
    R.TEXT_EMBED, "hub_sentence_transformer", "hub", needs("torch", "transformers", "sentence_transformers"),
    device=True, default_model=ST_DEFAULT, license="MIT",
    description="Any hub sentence-transformers model (L2-normalised), query prompt when the model has one",
)
def make_hub_sentence_transformer(model: str | Path = ST_DEFAULT, cache_dir: str | Path | None = None,
                                  query_prompt: str | None = None, device: str | None = None) -> HubSentenceEncoder:
    return HubSentenceEncoder(model, cache_dir, query_prompt=query_prompt, device=device)
