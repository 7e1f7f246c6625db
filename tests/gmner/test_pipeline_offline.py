"""The RiVEG cascade with the packaged (offline) models on the real shared tweet."""

import os

import pytest

from pixlink.models import Profile
from pixlink.ner.gmner import GMNERConfig, GMNERPipeline

pytestmark = [pytest.mark.slow, pytest.mark.data]


def test_phillies_tweet_end_to_end_offline(shared_data, capsys):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    img = shared_data("riveg", "16_05_01_127.jpg")
    tokens = shared_data("riveg", "16_05_01_127.conll").read_text().split("\n")[1:]
    tokens = [t.split("\t")[0] for t in tokens if t.strip()]
    pipe = GMNERPipeline(Profile("offline"), config=GMNERConfig(expansion_sources=("template",)))
    res = pipe.run(img, tokens=tokens)
    found = [(e.text, e.type) for e in res.entities]
    assert ("Philadelphia Phillies", "ORG") in found, found
    assert res.backends["ner"] == "pixlink_ner"
    ent = next(e for e in res.entities if e.text == "Philadelphia Phillies")
    assert ent.expansion == "Philadelphia Phillies (ORG) - an organization"
    assert ent.groundable in (True, False)  # decided by the offline detector
    if ent.groundable:
        assert ent.region is not None and ent.region.mask is not None and ent.region.mask.any()
    assert any("fallback" in n for n in res.notes) or res.backends.get("detect") != "proposals_fallback"
    print({"entities": [e.to_dict() | {"region": e.region.bbox.tolist() if e.region else None} for e in res.entities],
           "notes": res.notes, "timings": res.timings})
