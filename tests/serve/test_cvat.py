"""The CVAT auto-annotation function, called through cvat-sdk's own interface (its spec checked
by the SDK, its detections validated and remapped by the SDK's annotation driver)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from helpers import need_module

pytestmark = [pytest.mark.slow, pytest.mark.data]


@pytest.fixture(scope="module")
def function(people_kb):
    need_module("cvat_sdk", "the CVAT function needs cvat-sdk")
    from pixlink.serve import cvat

    return cvat.create(kb=str(people_kb), profile="offline", shape="mask")


def context(conv_mask_to_poly: bool = False, conf_threshold=None):
    from cvat_sdk.auto_annotation.driver import _DetectionFunctionContextImpl

    return _DetectionFunctionContextImpl(frame_name="obama_and_biden.jpg", conf_threshold=conf_threshold,
                                         conv_mask_to_poly=conv_mask_to_poly)


def remap(function, shapes, ds_type):
    """The SDK's own check of a function's output against a task's labels (as annotate_task does)."""
    import cvat_sdk.models as models
    from cvat_sdk.auto_annotation.driver import _AnnotationMapper

    ds_labels = [models.Label(id=5, name="entity", type=ds_type, sublabels=[],
                              attributes=[models.Attribute(id=9, name="qid", input_type="text", mutable=False,
                                                           values=[], default_value="")])]
    mapper = _AnnotationMapper(logging.getLogger("test"), function.spec.labels, ds_labels,
                               allow_unmatched_labels=False, conv_mask_to_poly=False)
    return mapper.validate_and_remap(shapes, 0)


def test_spec_is_valid_for_the_sdk(function):
    import cvat_sdk.auto_annotation as cvataa

    # DetectionFunction is a typing Protocol (not runtime-checkable): check its two members
    assert isinstance(function.spec, cvataa.DetectionFunctionSpec) and callable(function.detect)
    (label,) = function.spec.labels
    assert label.name == "entity" and label.type == "mask" and label.attributes[0].name == "qid"


def test_detect_links_the_faces(function, shared_data):
    image = Image.open(shared_data("photos", "obama_and_biden.jpg"))
    shapes = function.detect(context(), image)
    qids = [s.attributes[0].value for s in shapes]
    assert "Q76" in qids and "Q6279" in qids, qids
    assert all(s.type.value == "mask" and s.label_id == 0 for s in shapes)
    # the SDK's mask encoding: [rle..., x1, y1, x2, y2]; the mask decodes inside the image
    from cvat_sdk.masks import decode_mask

    obama = next(s for s in shapes if s.attributes[0].value == "Q76")
    m = decode_mask(obama.points, image_width=image.width, image_height=image.height)
    ys, xs = np.nonzero(m)
    assert m.shape == (image.height, image.width) and m.sum() > 1000
    # inside Obama's head region (his face is at about x 1135-1350, y 390-600)
    assert 1000 < xs.min() < xs.max() < 1450 and 300 < ys.min() < ys.max() < 700
    _, remapped = remap(function, shapes, "mask")
    assert len(remapped) == len(shapes) and all(s.label_id == 5 and s.attributes[0].spec_id == 9 for s in remapped)


def test_polygons_and_threshold(function, shared_data):
    image = Image.open(shared_data("photos", "obama_and_biden.jpg"))
    polys = function.detect(context(conv_mask_to_poly=True), image)
    assert polys and all(s.type.value == "polygon" and len(s.points) >= 6 for s in polys)
    assert function.detect(context(conf_threshold=0.99), image) == []


def test_needs_a_kb(monkeypatch):
    need_module("cvat_sdk")
    from pixlink.errors import InputError
    from pixlink.serve import cvat

    monkeypatch.delenv("PIXLINK_KB", raising=False)
    with pytest.raises(InputError, match="E736"):
        cvat.create()
    with pytest.raises(InputError, match="E010"):
        cvat.create(kb="x", shape="star")
