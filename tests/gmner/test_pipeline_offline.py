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
    # "an organization" names no COCO class: only the weak proposals answer, and ORG entities
    # are mostly not in the picture (P = 0.28 in GMNER train): not groundable, and a note says why
    assert res.backends["detect"] == "coco_fallback"
    assert ent.groundable is False and ent.region is None
    assert any("P(groundable | ORG) = 0.28" in n for n in res.notes), res.notes
    # without the type prior the fallback's best box is taken, and segmented
    loose = GMNERPipeline(Profile("offline"), config=GMNERConfig(expansion_sources=("template",),
                                                                 groundable_prior=None))
    ent2 = next(e for e in loose.run(img, tokens=tokens).entities if e.text == "Philadelphia Phillies")
    assert ent2.groundable and ent2.region is not None and ent2.region.mask is not None and ent2.region.mask.any()
    print({"entities": [e.to_dict() | {"region": e.region.bbox.tolist() if e.region else None} for e in res.entities],
           "notes": res.notes, "timings": res.timings})


def test_people_of_a_post_are_grounded_on_their_bodies(shared_data):
    """Two PER entities on two_people.jpg: the offline cascade boxes each on a person (NanoDet's
    person boxes, IoU > 0.5 with hand-drawn body boxes) and makes a mask inside the box."""
    import numpy as np

    from pixlink import geometry as geo

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    bodies = [np.array([10, 0, 560, 661], float), np.array([580, 0, 1126, 661], float)]
    img = shared_data("photos", "two_people.jpg")
    pipe = GMNERPipeline(Profile("offline"), config=GMNERConfig(expansion_sources=("template",)))
    res = pipe.run(img, text="Barack Obama and Joe Biden at the White House today")
    people = {e.text: e for e in res.entities if e.type == "PER"}
    assert set(people) == {"Barack Obama", "Joe Biden"}, [(e.text, e.type) for e in res.entities]
    for e in people.values():
        assert e.expansion == f"{e.text} (PER) - a person"
        assert e.groundable and e.region is not None
        assert max(geo.box_iou(e.region.bbox, b) for b in bodies) > 0.5, e.region.bbox
        m = e.region.mask
        assert m is not None and m.any()
        x1, y1, x2, y2 = e.region.bbox
        ys, xs = np.nonzero(m)
        assert xs.min() >= x1 - 1 and xs.max() <= x2 + 1 and ys.min() >= y1 - 1 and ys.max() <= y2 + 1


def test_with_a_kb_each_person_gets_the_box_of_their_own_face(shared_data, tmp_path):
    """Obama and Biden named in a post over two_people.jpg, with a KB that holds their
    reference photos (other photos than this one): the detector's person boxes score alike, so
    each entity takes the box whose face matches its linked entity, and links to it."""
    import json

    import numpy as np

    from pixlink import geometry as geo
    from pixlink.kb import build_kb
    from pixlink.link import Linker, LinkerConfig
    from pixlink.link.embed import embed_kb

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    photos = shared_data("photos")
    people = {"Q76": ("Barack Obama", "obama.jpg"), "Q6279": ("Joe Biden", "biden.jpg"),
              "Q357607": ("Kit Harington", "johnsnow_test1.jpg")}
    with open(tmp_path / "people.jsonl", "w") as fh:
        for qid, (label, photo) in people.items():
            fh.write(json.dumps({"id": qid, "label": label, "types": ["Q5"], "images": [str(photos / photo)]}) + "\n")
    build_kb([str(tmp_path / "people.jsonl")], tmp_path / "kb", progress=False)
    embed_kb(tmp_path / "kb", "offline", cache_dir=tmp_path / "cache", progress=False)
    prof = Profile("offline")
    linker = Linker.from_kb(tmp_path / "kb", profile=prof, config=LinkerConfig(segment=False))
    pipe = GMNERPipeline(prof, kb=linker.kb, linker=linker,
                         config=GMNERConfig(expansion_sources=("template",), segment=False))
    res = pipe.run(shared_data("photos", "two_people.jpg"), text="Barack Obama and Joe Biden at the White House today")
    bodies = {"Q76": np.array([10, 0, 560, 661], float), "Q6279": np.array([580, 0, 1126, 661], float)}
    ents = {e.text: e for e in res.entities if e.type == "PER"}
    for name, qid in (("Barack Obama", "Q76"), ("Joe Biden", "Q6279")):
        e = ents[name]
        assert e.groundable and e.region is not None
        assert geo.box_iou(e.region.bbox, bodies[qid]) > 0.5, (name, e.region.bbox, res.notes)
        assert e.link is not None and e.link.prediction == qid, (name, e.link.to_dict()["candidates"][:2])
    assert ents["Barack Obama"].region.bbox.tolist() != ents["Joe Biden"].region.bbox.tolist()
    # the White House is not in this KB: NIL, although the post names Joe Biden, who is
    wh = next(e for e in res.entities if e.text == "White House")
    assert wh.link is not None and wh.link.nil, wh.link.to_dict()["candidates"][:2]
    # Linker.face_scores: Obama's face matches in his box, not in Biden's; Kit Harington's in
    # neither; a box with no face in it (Obama's tie) gives None
    img = shared_data("photos", "two_people.jpg")
    ob, bi = linker.face_scores(img, [bodies["Q76"], bodies["Q6279"]], "Q76")
    assert ob > 0.9 and bi < 0.9 and ob > bi
    assert all(s < 0.9 for s in linker.face_scores(img, [bodies["Q76"], bodies["Q6279"]], "Q357607"))
    assert linker.face_scores(img, [[270, 300, 330, 500]], "Q76") == [None]


def test_type_prior_is_the_gmner_training_rate(shared_data):
    """The shipped P(groundable | type) is what the real GMNER training annotations give."""
    from pixlink.eval.datasets.gmner import load_gmner
    from pixlink.ner.gmner import GMNER_TRAIN_GROUNDABLE_RATE, groundable_rates

    data = load_gmner(shared_data("gmner", "train.txt"), xml_dir=shared_data("gmner", "xml"))
    rates = groundable_rates(data.items)
    assert rates == {"PER": (2340, 3598), "ORG": (622, 2201), "OTHER": (320, 1309), "LOC": (122, 1305)}
    for t, (a, n) in rates.items():
        assert GMNER_TRAIN_GROUNDABLE_RATE[t] == a / n
