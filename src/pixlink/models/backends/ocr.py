"""RapidOCR (PP-OCR ONNX models on onnxruntime) for the ``ocr`` role.

``rapidocr==3.10.0`` ships its default models inside the wheel (``rapidocr/models``):
PP-OCRv6 small text detector, PP-OCRv6 small recogniser (Chinese + English + digits) and the
PP-OCR mobile v2 orientation classifier, 27 MB together. The backend passes those files'
paths explicitly (``Det/Cls/Rec.model_path``) so that rapidocr never tries to download one
(it would fetch from modelscope.cn when a file is missing); :func:`packaged_models` lists them
and ``check()`` reports a missing one.

``read(image)`` returns one :class:`~pixlink.models.roles.OCRLine` per detected text line,
top to bottom: ``box`` is the XYXY box (original pixels) around rapidocr's quadrilateral,
``text`` the recognised string, ``score`` the recogniser's confidence in [0, 1]. Lines whose
score is below ``text_score`` (default 0.5, rapidocr's own) are dropped by rapidocr. An image
with no text gives ``[]``.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ...errors import Errors, InputError, ModelUnavailableError
from ...io import load_image
from ...log import get_logger
from .. import roles as R
from ..registry import register_backend

log = get_logger("pixlink.models.ocr")

MODEL_FILES = {
    "Det": "PP-OCRv6_det_small.onnx",
    "Cls": "ch_ppocr_mobile_v2.0_cls_mobile.onnx",
    "Rec": "PP-OCRv6_rec_small.onnx",
}


def packaged_models() -> dict[str, Path]:
    """Stage (``Det``/``Cls``/``Rec``) -> the ONNX file inside the installed rapidocr wheel."""
    spec = importlib.util.find_spec("rapidocr")
    if spec is None or spec.origin is None:
        raise ModelUnavailableError(Errors.E321.format(
            backend="rapidocr", reason="missing package: rapidocr", hint="pip install rapidocr==3.10.0 onnxruntime"))
    root = Path(spec.origin).parent / "models"
    return {stage: root / fname for stage, fname in MODEL_FILES.items()}


class RapidOCRReader:
    """PP-OCRv6 detection + recognition through rapidocr/onnxruntime; see the module docstring.

    Shared by threads: one :meth:`read` runs at a time (rapidocr's engine object keeps
    per-call state; onnxruntime itself would allow concurrent runs)."""

    name = "rapidocr"

    def __init__(self, text_score: float = 0.5, use_cls: bool = True, threads: int | None = None,
                 params: Mapping[str, Any] | None = None) -> None:
        from importlib.metadata import version

        from rapidocr import RapidOCR

        files = packaged_models()
        missing = [str(p) for p in files.values() if not p.is_file()]
        if missing:
            raise ModelUnavailableError(Errors.E321.format(
                backend=self.name, reason=f"model files missing: {missing}",
                hint="pip install --force-reinstall rapidocr==3.10.0"))
        p: dict[str, Any] = {
            "Global.log_level": "error",
            "Global.text_score": float(text_score),
            "Global.use_cls": bool(use_cls),
        }
        for stage, path in files.items():
            p[f"{stage}.model_path"] = str(path)
        if threads is not None:
            p["EngineConfig.onnxruntime.intra_op_num_threads"] = int(threads)
            p["EngineConfig.onnxruntime.inter_op_num_threads"] = 1
        p.update(dict(params or {}))
        self._engine = RapidOCR(params=p)
        self._lock = threading.Lock()
        self.text_score = float(text_score)
        self.model_id = f"rapidocr-{version('rapidocr')}/" + "+".join(Path(f).stem for f in MODEL_FILES.values())

    def read(self, image: np.ndarray) -> list[R.OCRLine]:
        """Text lines of an ``(H, W, 3)`` uint8 RGB image (path/PIL accepted), top to bottom."""
        img = load_image(image)
        # rapidocr treats a 3-channel array as BGR (OpenCV order) and converts it itself.
        with self._lock:
            res = self._engine(np.ascontiguousarray(img[..., ::-1]))
            boxes, txts, scores = getattr(res, "boxes", None), getattr(res, "txts", None), getattr(res, "scores", None)
        if boxes is None or txts is None or len(txts) == 0:
            return []
        h, w = img.shape[:2]
        lines: list[R.OCRLine] = []
        for quad, text, score in zip(np.asarray(boxes, dtype=np.float64), txts, scores):
            q = quad.reshape(-1, 2)
            box = np.array([q[:, 0].min(), q[:, 1].min(), q[:, 0].max(), q[:, 1].max()])
            box = np.clip(box, 0, [w, h, w, h])
            if box[2] <= box[0] or box[3] <= box[1]:
                log.warning("rapidocr: dropped line %r: its box %s has no area inside the image", text, q.tolist())
                continue
            lines.append(R.OCRLine(box=box, text=str(text), score=float(score)))
        lines.sort(key=lambda ln: (round(float(ln.box[1]) / 8), float(ln.box[0])))
        return lines


def _check_rapidocr() -> str | None:
    for mod in ("rapidocr", "onnxruntime"):
        if importlib.util.find_spec(mod) is None:
            return f"missing package: {mod}"
    missing = [p.name for p in packaged_models().values() if not p.is_file()]
    if missing:
        return f"rapidocr wheel lacks {', '.join(missing)} (it would try to download them)"
    return None


@register_backend(
    R.OCR, "rapidocr", "packaged", _check_rapidocr,
    default_model="PP-OCRv6 det/rec small + PP-OCR cls mobile v2 (inside rapidocr==3.10.0)",
    license="Apache-2.0",
    description="RapidOCR: PP-OCRv6 text detection + recognition on onnxruntime, models from the wheel",
    notes="Chinese + English; axis-aligned boxes around rotated lines; ~1-3 s per photo on 2 cores",
)
def build_rapidocr(text_score: float = 0.5, use_cls: bool = True, threads: int | None = None,
                   params: Mapping[str, Any] | None = None) -> RapidOCRReader:
    why = _check_rapidocr()
    if why is not None:
        raise ModelUnavailableError(Errors.E321.format(backend="rapidocr", reason=why,
                                                       hint="pip install rapidocr==3.10.0 onnxruntime"))
    if not 0.0 <= float(text_score) <= 1.0:
        raise InputError(Errors.E320.format(backend="rapidocr", what="text_score", reason=f"{text_score} not in [0, 1]"))
    return RapidOCRReader(text_score=text_score, use_cls=use_cls, threads=threads, params=params)
