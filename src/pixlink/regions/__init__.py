"""Prompt -> region (mask + box) and the region views the papers use."""

from .prompt import SegmenterSession, SegmentResult, image_key
from .views import crop, mask_pool, masked_crop, red_box

__all__ = ["SegmenterSession", "SegmentResult", "image_key", "crop", "mask_pool", "masked_crop", "red_box"]
