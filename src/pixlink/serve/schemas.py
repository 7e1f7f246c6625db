"""Request bodies of the REST API (pydantic; unknown fields are refused, E724).

Coordinates are original-image pixels: ``box`` XYXY, ``points`` ``[[x, y], ...]`` with
``labels`` 1 (foreground) / 0 (background); ``mask`` is COCO RLE ``{"size": [H, W], "counts":
...}``. No field names a server path: images are uploaded (``POST /v1/images``) or sent inline
as base64 (``image``).
"""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Prompt(Strict):
    """One of ``box``, ``points`` (+ ``labels``) or ``mask``; none = the whole image."""

    box: Optional[list[float]] = Field(None, min_length=4, max_length=4, description="XYXY, original pixels")
    points: Optional[list[list[float]]] = Field(None, min_length=1, max_length=64,
                                                description="clicks [[x, y], ...], original pixels")
    labels: Optional[list[int]] = Field(None, description="1 = foreground, 0 = background, one per point")
    mask: Optional[dict[str, Any]] = Field(None, description="COCO RLE {size: [H, W], counts}")

    def to_linker(self) -> dict[str, Any] | None:
        d = {k: v for k, v in self.model_dump().items() if v is not None}
        return d or None


class ImageRef(Strict):
    image_id: Optional[str] = Field(None, description="id from POST /v1/images")
    image: Optional[str] = Field(None, description="the image file as base64 (uploaded by this call)")


class LinkRequest(ImageRef):
    """``POST /v1/link``: one prompt on one image."""

    prompt: Optional[Prompt] = None
    text: Optional[str] = Field(None, description="the caption that came with the image")
    k: int = Field(5, ge=1, description="candidates to return (at most the server's max_k)")
    surface: Optional[str] = Field(None, description="the mention's words, when known")
    mention_type: Optional[str] = Field(None, description="PER, LOC, ORG or MISC, when known")


class BatchItem(Strict):
    prompt: Optional[Prompt] = None
    text: Optional[str] = None
    k: Optional[int] = Field(None, ge=1)
    surface: Optional[str] = None
    mention_type: Optional[str] = None


class BatchRequest(ImageRef):
    """``POST /v1/link/batch``: several prompts on one image (``text`` / ``k`` are the defaults
    of the items)."""

    prompts: list[BatchItem] = Field(..., min_length=1)
    text: Optional[str] = None
    k: int = Field(5, ge=1)


class GMNERRequest(ImageRef):
    """``POST /v1/gmner``: a post's text and (optionally) its image."""

    text: str = Field(..., min_length=1)


class AnnotateRequest(ImageRef):
    """``POST /v1/annotate``: find where KB entity ``entity`` is in the image (reverse annotation,
    :class:`pixlink.annotate.ReverseAnnotator`)."""

    entity: str = Field(..., min_length=1, max_length=200, description="the KB entity id")
    question: Optional[str] = Field(None, description="an OVEN-style question about the image")
    mode: str = Field("maskoven", pattern="^(maskoven|vpwiki)$",
                      description="maskoven (PL-VEL: the entity's mask) or vpwiki (VP-MEL: a box for a mention)")
    mention: Optional[str] = Field(None, description="the mention's words in the caption (vpwiki)")
    caption: Optional[str] = Field(None, description="the text that came with the image (vpwiki)")
