"""``pixlink_ner``: pixlink's own trained tweet NER, the first choice of the ``ner`` role.

A head trained by ``pixlink ner train`` (committed in ``pixlink/ner/weights``, a few MB)
on the frozen features of a packaged encoder (all-mpnet-base-v2 from its five part packages in
``requirements-nodeps.txt``; ``minilm`` is the lighter option). See :mod:`pixlink.ner.tagger` and ``docs/ner.md``.

This module registers the backend; the model registry finds it through the entry point
``ner.pixlink_ner = "pixlink.ner.backend"`` of the group ``pixlink.backends`` in pixlink's
``pyproject.toml`` (so that :mod:`pixlink.models` imports no task package). The tagger runs on
the CPU (it takes no ``device`` yet).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from ..errors import Errors, ModelUnavailableError
from ..models import roles as R
from ..models.registry import register_backend


def _weights_dir(weights: str | Path | None = None) -> Path:
    if weights is not None:
        return Path(weights)
    return Path(__file__).resolve().parent / "weights"  # as pixlink.ner.tagger.default_weights_dir()


def check(weights: str | Path | None = None) -> str | None:
    """None when the tagger can run here, else why not."""
    w = _weights_dir(weights)
    for f in ("model.safetensors", "config.json"):
        if not (w / f).exists():
            return f"trained NER weights missing: {w / f} (run `pixlink ner train` or reinstall pixlink)"
    try:
        cfg = json.loads((w / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"{w / 'config.json'} is not readable JSON: {exc}"
    for mod in ("torch", "transformers", "safetensors"):
        if importlib.util.find_spec(mod) is None:
            return f"missing package: {mod} (pip install -e '.[offline]')"
    from .backbone import check_backbone

    why = check_backbone(str(cfg.get("backbone", "")))
    if why is not None:
        return f"{why} (named in {w / 'config.json'})"
    return None


@register_backend(
    R.NER, "pixlink_ner", "trained", check,
    default_model="pixlink-ner: 3 BiLSTM-CRF heads on frozen all-mpnet-base-v2 features",
    license="Apache-2.0 (head, pixlink); backbone Apache-2.0",
    description="pixlink's tweet NER trained on Twitter-2015/2017 (+GMNER), PER/LOC/ORG/MISC",
    notes="label_scheme='OTHER' or a dataset name names the fourth type as that dataset does; "
          "aux=True appends generated auxiliary knowledge (generate role)",
)
def build(weights: str | Path | None = None, label_scheme: str | None = None, aux: Any = None,
          threads: int | None = None, batch_size: int = 32) -> Any:
    """The :class:`pixlink.ner.Tagger`. ``aux``: None/False (default), True (an
    :class:`~pixlink.ner.AuxKnowledge` over the active profile's ``generate`` model), or an
    AuxKnowledge instance."""
    why = check(weights)
    if why is not None:
        raise ModelUnavailableError(Errors.E300.format(role="ner", profile="-", reason=f"pixlink_ner: {why}"))
    from .aux import AuxKnowledge
    from .tagger import Tagger

    if aux is True:
        aux = AuxKnowledge()
    elif aux is False:
        aux = None
    return Tagger(weights=weights, label_scheme=label_scheme, aux=aux, threads=threads, batch_size=batch_size)
