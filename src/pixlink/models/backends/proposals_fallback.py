"""The weak offline phrase detector (role ``detect``, kind ``classical``): ``proposals_fallback``.

For phrase grounding with no detector weights: boxes of the classical proposals
(:mod:`.classical_proposals`) plus a few sliding windows are scored against the phrase with the
ConSE bridge (``conse_efficientnet``), and person-like phrases are answered with face boxes
(role ``faces``) grown to upper bodies. Every :class:`~pixlink.models.roles.Detection` says
where it came from in ``source`` (``"fallback:proposals+conse"``,
``"fallback:faces->upper_body"``). See docs/models-offline-vision.md for how weak it is.

Also the phrase helpers the offline detectors share: :data:`PERSON_WORDS`,
:func:`is_person_phrase`, :func:`upper_body_box`, :func:`check_phrase_list`.

Boxes are XYXY in original pixels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ... import geometry as geo
from ...errors import Errors, InputError
from ...imaging import crop_box
from ...io import load_image
from ...log import get_logger
from ...vecmath import sigmoid
from .. import roles as R
from ..cvops import check_cv2
from ..registry import Profile, register_backend
from .classical_proposals import ClassicalProposals

log = get_logger("pixlink.models.proposals_fallback")


PERSON_WORDS = frozenset("""
person persons people man men woman women boy boys girl girls child children kid kids baby guy guys
lady ladies gentleman player players face faces crowd someone somebody he she they him her
actor actress singer politician president athlete human humans fan fans couple family team
""".split())


def is_person_phrase(phrase: str, extra: frozenset[str] = frozenset()) -> bool:
    """True when a word of ``phrase`` (lower-cased) is in :data:`PERSON_WORDS` or ``extra``.
    Entity names are not recognised: callers with a PER entity pass e.g. ``"Obama person"``."""
    words = set(re.findall(r"[a-z]+", phrase.lower()))
    return bool(words & (PERSON_WORDS | extra))


def upper_body_box(face_box: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Grow a face box ``(4,)`` XYXY to an upper-body box: 3 face widths wide, from 0.3 face
    heights above the face to 2.5 below it, clipped to the ``(H, W)`` image."""
    x1, y1, x2, y2 = np.asarray(face_box, dtype=np.float64)
    fw, fh = x2 - x1, y2 - y1
    cx = (x1 + x2) / 2
    return geo.clip_box(np.array([cx - 1.5 * fw, y1 - 0.3 * fh, cx + 1.5 * fw, y2 + 2.5 * fh]), image_size)


def check_phrase_list(phrases: Any, backend: str) -> list[str]:
    """The phrases as a list; E353 for a bare string, E380 for an empty phrase."""
    if isinstance(phrases, str):
        raise InputError(Errors.E353.format(backend=backend, what="phrases",
                                            reason="expected a list of strings, got a single string; wrap it in a list"))
    phrases = list(phrases)
    for i, p in enumerate(phrases):
        if not isinstance(p, str) or not p.strip():
            raise InputError(Errors.E380.format(backend=backend, index=i))
    return phrases


@dataclass
class _Proposals:
    boxes: np.ndarray  # (P, 4) XYXY
    kinds: list[str]
    embeds: np.ndarray  # (P, D) ConSE
    labels: list[str]  # top ImageNet class (clean name) of each crop


class ProposalsFallbackDetector:
    """The weak offline :class:`~pixlink.models.roles.PhraseDetector`.

    Args:
        conse: a ConSE encoder (``image_text``); default: built with :func:`.conse.build_conse`.
        faces: a :class:`~pixlink.models.roles.FaceModel`; default: the offline profile's
            ``faces`` backend when it can run, else none (person phrases are then scored with
            ConSE like any phrase, logged at WARNING and marked in ``source``).
        proposals: a :class:`ClassicalProposals`; default settings.
        max_region_boxes: classical region boxes kept (best scored first).
        window_scales: sliding-window sides as fractions of the image side (stride half a window).
        max_per_phrase: detections returned per phrase (after NMS at IoU 0.5).
        device: where a ConSE built here runs (None/``auto``: :func:`pixlink.device.resolve_device`).

    Shared by threads: ``detect`` keeps its state in locals; the backends it calls guard their own.
    """

    name = "proposals_fallback"

    def __init__(self, conse: Any = None, faces: Any = None, proposals: ClassicalProposals | None = None,
                 max_region_boxes: int = 24, window_scales: Sequence[float] = (1.0, 0.5), max_per_phrase: int = 5,
                 use_faces: bool = True, device: str | None = None) -> None:
        from .conse import build_conse

        self.conse = conse if conse is not None else build_conse(device=device)
        self.faces = faces
        self.faces_note = ""
        if self.faces is None and use_faces:
            prof = Profile("offline")
            choice = prof.choose(R.FACES)
            if choice.backend is not None:
                self.faces = prof.get(R.FACES)
            else:
                self.faces_note = f"no faces backend ({choice.reason})"
                log.warning("proposals_fallback: %s; person phrases are scored with ConSE, which cannot see people",
                            self.faces_note)
        self.proposals = proposals or ClassicalProposals()
        self.max_region_boxes = int(max_region_boxes)
        self.window_scales = tuple(float(s) for s in window_scales)
        self.max_per_phrase = int(max_per_phrase)
        self.model_id = (f"proposals_fallback[{self.proposals.model_id}; windows={self.window_scales}] scored by "
                         f"[{self.conse.model_id}]; faces=[{getattr(self.faces, 'model_id', 'none')}]")

    def windows(self, image_size: tuple[int, int]) -> list[np.ndarray]:
        """Sliding windows (XYXY): for each scale s, windows of s x W by s x H at stride s / 2."""
        H, W = image_size
        out = []
        for s in self.window_scales:
            ww, wh = W * s, H * s
            nx = max(1, int(round((W - ww) / (ww / 2))) + 1)
            ny = max(1, int(round((H - wh) / (wh / 2))) + 1)
            for iy in range(ny):
                for ix in range(nx):
                    x1 = 0.0 if nx == 1 else ix * (W - ww) / (nx - 1)
                    y1 = 0.0 if ny == 1 else iy * (H - wh) / (ny - 1)
                    out.append(np.array([x1, y1, x1 + ww, y1 + wh]))
        return out

    def propose(self, image: np.ndarray) -> _Proposals:
        """Region boxes (from :class:`ClassicalProposals`) + windows, deduplicated at box IoU
        0.9, with the ConSE embedding of each crop."""
        img = load_image(image)
        H, W = img.shape[:2]
        boxes: list[np.ndarray] = []
        kinds: list[str] = []
        for mp in self.proposals.generate(img, max_masks=self.max_region_boxes):
            boxes.append(geo.mask_to_box(mp.mask))
            kinds.append("region")
        for b in self.windows((H, W)):
            boxes.append(b)
            kinds.append("window")
        arr = np.stack(boxes)
        # equal scores: a box is dropped when it overlaps an earlier kept one by more than 0.9
        keep = geo.nms(arr, np.zeros(len(arr)), 0.9)
        arr = arr[keep]
        kinds = [kinds[i] for i in keep]
        crops = [crop_box(img, b) for b in arr]
        logits = self.conse.image_encoder.encode_images(crops).logits
        names = self.conse.image_encoder.class_names
        return _Proposals(arr, kinds, self.conse.mix_logits(logits), [names[int(i)] for i in logits.argmax(axis=1)])

    def detect(self, image: np.ndarray, phrases: Sequence[str], threshold: float = 0.1) -> list[R.Detection]:
        """Boxes for each phrase.

        Args:
            image: ``(H, W, 3)`` uint8 RGB.
            phrases: non-empty strings (E380 for an empty one).
            threshold: minimum score (ConSE cosine, clipped to [0, 1]; for face boxes the
                sigmoid of the face detector's score).

        Returns:
            Detections, per phrase best first (at most ``max_per_phrase`` each, NMS at IoU 0.5).
            ``label`` is the top ImageNet class of the box for ConSE boxes, ``"face->upper body"``
            for face boxes; ``source`` starts with ``"fallback:"``.
        """
        phrases = check_phrase_list(phrases, self.name)
        img = load_image(image)
        H, W = img.shape[:2]
        out: list[R.Detection] = []
        props: _Proposals | None = None
        faces: list[R.Face] | None = None
        for phrase in phrases:
            if is_person_phrase(phrase) and self.faces is not None:
                if faces is None:
                    faces = self.faces.detect(img)
                dets = []
                for f in faces:
                    sc = 0.5 if f.score is None else float(sigmoid(f.score))
                    if sc >= threshold:
                        dets.append(R.Detection(box=upper_body_box(f.box, (H, W)), score=float(sc), phrase=phrase,
                                                label="face->upper body", source="fallback:faces->upper_body"))
                dets.sort(key=lambda d: -d.score)
                out.extend(dets[: self.max_per_phrase])
                continue
            if props is None:
                props = self.propose(img)
            t = self.conse.encode_texts([phrase])[0]
            sims = np.clip(props.embeds @ t, 0.0, 1.0)
            cand = np.nonzero(sims >= threshold)[0]
            if not len(cand):
                continue
            keep = [int(cand[j]) for j in geo.nms(props.boxes[cand], sims[cand], 0.5)][: self.max_per_phrase]
            src = "fallback:proposals+conse" + (f" ({self.faces_note})" if is_person_phrase(phrase) else "")
            for k in keep:
                out.append(R.Detection(box=props.boxes[k].copy(), score=float(sims[k]), phrase=phrase,
                                       label=props.labels[k], source=src))
        return out


def check_fallback() -> str | None:
    why = check_cv2()
    if why is not None:
        return why
    from .conse import check as check_conse

    why = check_conse()
    return None if why is None else f"conse_efficientnet: {why}"


@register_backend(
    R.DETECT, "proposals_fallback", "classical", check_fallback, device=True,
    default_model="classical proposals + sliding windows scored by conse_efficientnet; faces -> upper bodies",
    license="Apache-2.0",
    description="WEAK fallback detector: region proposals scored against the phrase with ConSE",
    notes="no detector weights ship offline; person phrases use face boxes; expect low recall and loose boxes",
)
def build_proposals_fallback(conse: Any = None, faces: Any = None, max_region_boxes: int = 24,
                             window_scales: Sequence[float] = (1.0, 0.5), max_per_phrase: int = 5,
                             use_faces: bool = True, device: str | None = None) -> ProposalsFallbackDetector:
    return ProposalsFallbackDetector(conse=conse, faces=faces, max_region_boxes=max_region_boxes,
                                     window_scales=window_scales, max_per_phrase=max_per_phrase, use_faces=use_faces,
                                     device=device)
