"""The roles a model can play, each a small interface with stated shapes and coordinates.

Every task asks for a *role* (``"text_embed"``, ``"segment"``...), never for a library; the
registry (:mod:`pixlink.models.registry`) picks the backend for the active profile.

Conventions: images are ``(H, W, 3)`` uint8 RGB arrays; boxes XYXY in original-image
pixels; masks ``(H, W)`` bool; embeddings ``(N, D)`` float32, L2-normalised unless a method
says otherwise. Every backend has ``name`` (registry name) and ``model_id`` (the exact
weights, used to tag vectors so that an index never mixes models).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

# Role names (the registry's keys).
IMAGE_TEXT = "image_text"  # joint image/text space (CLIP, SigLIP; offline ConSE bridge)
IMAGE_EMBED = "image_embed"  # image <-> image (CLIP vision tower; EfficientNet-Lite)
TEXT_EMBED = "text_embed"  # sentence embeddings (MiniLM, mpnet, any hub model)
FACES = "faces"  # face detection + landmarks + embedding
SEGMENT = "segment"  # promptable segmentation: box / points / mask -> mask
SEGMENT_ALL = "segment_all"  # automatic masks ("segment everything")
DETECT = "detect"  # open-vocabulary detection: phrases -> boxes
NER = "ner"  # named entities of a text
DESCRIBE = "describe"  # VLM: question about an image with a marked region -> text
OCR = "ocr"  # text in an image
GENERATE = "generate"  # text generator for expansions / short descriptions
LOCAL_FEATURES = "local_features"  # keypoints + local descriptors (SIFT/RootSIFT, ORB) for instance matching
INSTANCE_EMBED = "instance_embed"  # image <-> image in a space learned for "the same object" (an ImageEncoder)

ROLES = (IMAGE_TEXT, IMAGE_EMBED, TEXT_EMBED, FACES, SEGMENT, SEGMENT_ALL, DETECT, NER, DESCRIBE, OCR, GENERATE,
         LOCAL_FEATURES, INSTANCE_EMBED)

IMAGE_BATCH = (16, 64)
"""Default batch size of the image encoders: ``(on the CPU, on an accelerator)``
(:func:`pixlink.device.default_batch_size`); a call's ``batch_size`` overrides it."""
TEXT_BATCH = (32, 128)
"""Default batch size of the text encoders: ``(on the CPU, on an accelerator)``."""


@dataclass
class ImageFeatures:
    """Output of an image encoder.

    Attributes:
        embeds: ``(N, D)`` float32, L2-normalised pooled/projected embeddings.
        cls_layers: layer index -> ``(N, C)`` CLS token (or pooled token) of that layer,
            for the layers asked for (IIER uses layers 3, 10, 11, 12 of CLIP ViT-B/32;
            layer 0 is the embedding output, layer L the last).
        patch_tokens: ``(N, P, C)`` last-layer patch tokens when the encoder has them,
            with ``grid = (gh, gw)`` the patch grid (P = gh * gw), for mask pooling.
    """

    embeds: np.ndarray
    cls_layers: dict[int, np.ndarray] = field(default_factory=dict)
    patch_tokens: np.ndarray | None = None
    grid: tuple[int, int] | None = None


@runtime_checkable
class TextEncoder(Protocol):
    name: str
    model_id: str
    dim: int

    def encode(self, texts: Sequence[str], batch_size: int = 32, query: bool = False) -> np.ndarray:
        """``(N, D)`` float32 L2-normalised. ``query=True`` for query-side texts of models
        with separate query/passage prompts (e5)."""
        ...


@runtime_checkable
class ImageEncoder(Protocol):
    name: str
    model_id: str
    dim: int

    def encode_images(self, images: Sequence[np.ndarray], layers: Sequence[int] = (), batch_size: int = 16) -> ImageFeatures:
        ...


@runtime_checkable
class ImageTextEncoder(ImageEncoder, Protocol):
    """A joint space: ``encode_images(...).embeds @ encode_texts(...).T`` is a similarity.

    A backend whose ``encode_texts`` is another text encoder's own (a bridge such as ConSE)
    may set ``text_model_id`` to that encoder's ``model_id``: the KB's text vectors it makes are
    then that encoder's, tagged, cached and indexed once for every signal that uses them."""

    def encode_texts(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        ...


@dataclass
class Face:
    """A detected face: ``box`` XYXY (original pixels), ``landmarks`` ``(K, 2)`` (x, y) or None,
    ``score`` detector confidence (None when the detector gives none)."""

    box: np.ndarray
    landmarks: np.ndarray | None = None
    score: float | None = None


@runtime_checkable
class FaceModel(Protocol):
    name: str
    model_id: str
    dim: int

    def detect(self, image: np.ndarray, upsample: int = 1) -> list[Face]:
        ...

    def embed(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        """``(len(faces), D)`` float32 face descriptors (aligned by the model's landmarks)."""
        ...


@dataclass
class MaskPrediction:
    """``mask`` ``(H, W)`` bool in original pixels; ``score`` the model's quality estimate."""

    mask: np.ndarray
    score: float


@runtime_checkable
class PromptSegmenter(Protocol):
    """Promptable segmentation with the image embedding computed once per image.

    ``embed_image`` returns an opaque handle; ``predict`` takes it with one prompt: a box
    (XYXY), points ``(N, 2)`` with labels ``(N,)`` (1 fg, 0 bg), or a low-res mask, and
    returns candidate masks best first. Backends that cannot take a prompt kind say so in
    ``prompt_kinds`` and raise :class:`~pixlink.errors.ModelUnavailableError` (E3xx) for it.
    """

    name: str
    model_id: str
    prompt_kinds: frozenset[str]  # subset of {"box", "points", "mask"}

    def embed_image(self, image: np.ndarray) -> Any:
        ...

    def predict(
        self, handle: Any, box: np.ndarray | None = None, points: np.ndarray | None = None,
        point_labels: np.ndarray | None = None, multimask: bool = False,
    ) -> list[MaskPrediction]:
        ...


@runtime_checkable
class MaskGenerator(Protocol):
    name: str
    model_id: str

    def generate(self, image: np.ndarray, max_masks: int = 64) -> list[MaskPrediction]:
        ...


@dataclass
class Detection:
    """A box found for a phrase: ``box`` XYXY original pixels, ``score`` in [0, 1],
    ``phrase`` the query phrase it answers, ``label`` what the detector itself calls it
    (a COCO class for the offline fallback), ``source`` the backend that found it."""

    box: np.ndarray
    score: float
    phrase: str
    label: str = ""
    source: str = ""


@runtime_checkable
class PhraseDetector(Protocol):
    name: str
    model_id: str

    def detect(self, image: np.ndarray, phrases: Sequence[str], threshold: float = 0.1) -> list[Detection]:
        ...


@dataclass
class TaggedSpan:
    """A named entity in text: character offsets ``[start, end)``, type (PER/LOC/ORG/MISC
    in pixlink's mapping, or the trained model's own label set), optional score."""

    start: int
    end: int
    type: str
    text: str
    score: float | None = None


@runtime_checkable
class NERTagger(Protocol):
    name: str
    model_id: str
    labels: tuple[str, ...]

    def tag(self, texts: Sequence[str]) -> list[list[TaggedSpan]]:
        ...

    def tag_tokens(self, tokens: Sequence[Sequence[str]]) -> list[list[tuple[int, int, str]]]:
        """For pre-tokenised input (CoNLL): spans as token ``(start, end, type)``, end exclusive."""
        ...


@runtime_checkable
class RegionDescriber(Protocol):
    name: str
    model_id: str

    def describe(self, image: np.ndarray, box: np.ndarray | None, question: str, max_new_tokens: int = 32) -> str:
        ...


@dataclass
class OCRLine:
    box: np.ndarray  # XYXY
    text: str
    score: float


@runtime_checkable
class OCRModel(Protocol):
    name: str
    model_id: str

    def read(self, image: np.ndarray) -> list[OCRLine]:
        ...


@runtime_checkable
class TextGenerator(Protocol):
    name: str
    model_id: str

    def generate(self, prompt: str, max_new_tokens: int = 48, temperature: float = 0.0) -> str:
        ...


@dataclass
class LocalFeatures:
    """Keypoints and local descriptors of one image (role ``local_features``).

    Attributes:
        xy: ``(N, 2)`` float32 keypoint centres ``(x, y)`` in the pixels of the image given.
        size: ``(N,)`` float32 keypoint diameters in those pixels.
        angle: ``(N,)`` float32 orientations in degrees (``-1`` when the detector gives none).
        response: ``(N,)`` float32 detector strengths (larger = stronger).
        descriptors: ``(N, D)`` uint8: SIFT's 128 bins (RootSIFT is made from them at search
            time), or ORB's 256 bits packed in 32 bytes (``kind == "binary"``).
        colour: ``(N, 3)`` uint8 mean RGB of the keypoint's disc (photometric verification).
        kind: ``"float"`` (compared by L2 / cosine after RootSIFT) or ``"binary"`` (Hamming).
        image_size: ``(H, W)`` of the image given.
    """

    xy: np.ndarray
    size: np.ndarray
    angle: np.ndarray
    response: np.ndarray
    descriptors: np.ndarray
    colour: np.ndarray
    kind: str
    image_size: tuple[int, int]

    def __len__(self) -> int:
        return int(self.xy.shape[0])

    @classmethod
    def concat(cls, parts: "Sequence[LocalFeatures]") -> "LocalFeatures":
        """The features of several extractions of one image (views of it, all in its pixels)
        as one set; ``kind`` and ``image_size`` are the first part's."""
        if len(parts) == 1:
            return parts[0]
        cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
        return cls(xy=cat("xy"), size=cat("size"), angle=cat("angle"), response=cat("response"),
                   descriptors=cat("descriptors"), colour=cat("colour"), kind=parts[0].kind,
                   image_size=parts[0].image_size)


@runtime_checkable
class LocalFeatureExtractor(Protocol):
    """Keypoints + descriptors; ``model_id`` names the descriptor and the settings that change
    it (a KB's descriptors are only compared with queries of the same ``model_id``)."""

    name: str
    model_id: str
    kind: str  # "float" or "binary"
    dim: int  # bytes per descriptor row

    def extract(self, image: np.ndarray, mask: np.ndarray | None = None, max_features: int | None = None
                ) -> LocalFeatures:
        """Features of an ``(H, W, 3)`` uint8 RGB image (only inside ``mask`` ``(H, W)`` bool
        when given), at most ``max_features`` of them chosen strongest-first and spread over
        the image."""
        ...
