"""Linker configuration: which signals run, how many candidates each recalls, how they fuse.

Every knob can come from a JSON file (``pixlink link --config``) or the Python API; each
signal's own knobs are in ``signal_options[<signal>]`` and documented with the signal
(:mod:`pixlink.link.signals`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import Errors, InputError

VIEWS = ("crop", "masked_crop", "red_box")
MODES = ("fusion", "rerank")


def known_signals() -> tuple[str, ...]:
    from .signals import signal_names

    return signal_names()


@dataclass
class LinkerConfig:
    """Knobs of :class:`~pixlink.link.Linker`.

    Attributes:
        signals: which signals run. ``None`` (the default): every registered signal, each
            skipped with a note when its model or KB vectors are missing. Named explicitly, the
            signals are *required*: one whose KB vectors were not made is an error (E405) when
            the linker is built (no vectors of its space at all) or at the first call that needs
            them (vectors of another model only).
        signal_options: per-signal knobs, e.g. ``{"lexical": {"ner": false}, "face":
            {"min_overlap": 0.6}}`` (see each signal's ``Options``).
        recall_k: candidates each signal recalls before fusion.
        max_candidates: cap on the union of recalled candidates that get fully scored.
        mode: ``"fusion"`` (all signals scored and fused) or ``"rerank"`` (VNEL: recall with
            ``recall_signal`` only, order by ``rerank_signal``).
        recall_signal, rerank_signal: used by ``mode="rerank"``.
        rerank_unscored_factor: in rerank mode, a recalled candidate the re-rank signal cannot
            score (no reference for it) keeps this fraction of its recall score, so that it
            ranks below those the re-ranker could score.
        image_view: view of the region given to image encoders: ``"crop"``, ``"masked_crop"``
            (falls back to a crop when there is no mask) or ``"red_box"`` (VP-MEL).
        crop_margin: context margin of crops, as a fraction of the box size.
        segment: turn box/click prompts into masks with the promptable segmenter.
        fusion_path: JSON with fusion parameters (:class:`~pixlink.link.fusion.Fusion`); ``None``
            = the shipped parameters for the backends that run.
        nil_threshold: overrides the fusion's NIL threshold when set.
        reranker: a trained head (``pixlink train``) that re-scores the best fused candidates:
            its checkpoint directory, or ``{"path", "top_k", "mode", "weight"}``
            (:class:`pixlink.link.rerank.RerankOptions`); ``None``: no re-ranking stage.
        kb_head_calibration: how the ``instance`` scores of a KB's own head (``pixlink train
            instance-head``) are calibrated when no fusion file is given: ``"shipped"`` (the
            shipped entry, fitted on entities the head had not seen: the cautious one) or
            ``"head"`` (the head's own, fitted on held-out composites of the KB's references:
            it trusts composites more, and real photos too; docs/instance-matching.md).
    """

    signals: tuple[str, ...] | None = None
    signal_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    recall_k: int = 50
    max_candidates: int = 200
    mode: str = "fusion"
    recall_signal: str = "v2t"
    rerank_signal: str = "face"
    rerank_unscored_factor: float = 0.5
    image_view: str = "masked_crop"
    crop_margin: float = 0.1
    segment: bool = True
    fusion_path: str | None = None
    nil_threshold: float | None = None
    reranker: str | dict[str, Any] | None = None
    kb_head_calibration: str = "shipped"

    def __post_init__(self) -> None:
        known = known_signals()
        if self.signals is not None:
            if isinstance(self.signals, str) or not all(isinstance(s, str) for s in self.signals):
                raise InputError(Errors.E010.format(what="signals", value=self.signals, reason="expected a list of names"))
            self.signals = tuple(self.signals)
            bad = [s for s in self.signals if s not in known]
            if bad:
                raise InputError(Errors.E010.format(what="signals", value=bad, reason=f"known signals: {known}"))
        if not isinstance(self.signal_options, dict) or not all(isinstance(v, dict) for v in self.signal_options.values()):
            raise InputError(Errors.E010.format(what="signal_options", value=self.signal_options,
                                                reason="expected {signal: {option: value}}"))
        bad = [s for s in self.signal_options if s not in known]
        if bad:
            raise InputError(Errors.E010.format(what="signal_options", value=bad, reason=f"known signals: {known}"))
        if self.mode not in MODES:
            raise InputError(Errors.E010.format(what="mode", value=self.mode, reason=f"use one of {MODES}"))
        for name in (self.recall_signal, self.rerank_signal):
            if name not in known:
                raise InputError(Errors.E010.format(what="rerank signal", value=name, reason=f"known: {known}"))
        if self.image_view not in VIEWS:
            raise InputError(Errors.E010.format(what="image_view", value=self.image_view, reason=f"use one of {VIEWS}"))
        for name in ("recall_k", "max_candidates"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(Errors.E010.format(what=name, value=v, reason="must be an integer >= 1"))
        for name, lo, hi in (("rerank_unscored_factor", 0.0, 1.0), ("crop_margin", 0.0, 5.0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
                raise InputError(Errors.E010.format(what=name, value=v, reason=f"must be a number in [{lo}, {hi}]"))
        if self.nil_threshold is not None and (isinstance(self.nil_threshold, bool)
                                               or not isinstance(self.nil_threshold, (int, float))
                                               or not 0.0 <= self.nil_threshold <= 1.0):
            raise InputError(Errors.E010.format(what="nil_threshold", value=self.nil_threshold, reason="a number in [0, 1]"))
        if self.kb_head_calibration not in ("shipped", "head"):
            raise InputError(Errors.E010.format(what="kb_head_calibration", value=self.kb_head_calibration,
                                                reason="shipped or head"))
        if not isinstance(self.segment, bool):
            raise InputError(Errors.E010.format(what="segment", value=self.segment, reason="true or false"))
        if self.reranker is not None:
            if not isinstance(self.reranker, (str, dict)) or not self.reranker:
                raise InputError(Errors.E010.format(what="reranker", value=self.reranker,
                                                    reason="a checkpoint directory or a dict of reranker options"))
            if isinstance(self.reranker, dict) and not isinstance(self.reranker.get("path"), str):
                raise InputError(Errors.E010.format(what="reranker", value=self.reranker, reason="it needs a 'path'"))

    @property
    def active_signals(self) -> tuple[str, ...]:
        """The signals that run: the ones named, or every registered signal."""
        return self.signals if self.signals is not None else known_signals()

    @property
    def required_signals(self) -> frozenset[str]:
        """Signals named explicitly: missing KB vectors for one of them is an error."""
        return frozenset(self.signals or ())

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["signals"] = list(self.signals) if self.signals is not None else None
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str = "config") -> "LinkerConfig":
        """From a dict (a JSON object), with a coded error naming an unknown key or bad value."""
        if not isinstance(d, dict):
            raise InputError(Errors.E010.format(what=where, value=type(d).__name__, reason="expected a JSON object"))
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise InputError(Errors.E010.format(what=f"{where} keys", value=unknown, reason=f"known keys: {sorted(names)}"))
        try:
            return cls(**d)
        except TypeError as exc:
            raise InputError(Errors.E010.format(what=where, value=d, reason=str(exc))) from exc

    @classmethod
    def from_file(cls, path: str | Path) -> "LinkerConfig":
        """Read a JSON file; a missing file, bad JSON, an unknown key or a bad value is E010/E011."""
        import json

        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(Errors.E010.format(what="config file", value=str(p), reason=f"cannot be read ({exc})")) from exc
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(Errors.E011.format(line=exc.lineno, path=str(p), reason=exc.msg)) from exc
        return cls.from_dict(d, where=f"config {p}")
