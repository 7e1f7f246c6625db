"""Training the instance head: on features whose views differ from their reference by a nuisance
(a light and a background, here a random subspace), the learned head finds held-out entities'
references better than the raw cosine does; the saved head is what the backend loads."""

from __future__ import annotations

import numpy as np

from pixlink.train.instance_head import project, save_head, train_head


def _data(rng, n_ent, views, d=48, nuisance=16, scale=8.0):
    refs = rng.normal(size=(n_ent, d)).astype(np.float32)
    basis = np.linalg.qr(rng.normal(size=(d, nuisance)))[0].T  # the nuisance directions
    rows = np.repeat(np.arange(n_ent), views)
    x = refs[rows] + scale * rng.normal(size=(len(rows), nuisance)) @ basis + 0.1 * rng.normal(size=(len(rows), d))
    return refs, x.astype(np.float32), rows, basis


def test_the_head_learns_what_a_view_keeps_of_its_reference():
    rng = np.random.default_rng(0)
    refs, x, rows, basis = _data(rng, 120, 4)
    train = rows < 80  # 40 entities are never seen in training
    w, log = train_head(x[train], rows[train], refs, dim=16, epochs=200)
    assert w.shape == (16, 48) and log["loss_last"] < log["loss_first"]
    held = ~train

    def hits(q, r):
        return float((np.argmax(q @ r.T, axis=1) == rows[held]).mean())

    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    raw = hits(unit(x[held]), unit(refs))
    learned = hits(project(x[held], w), project(refs, w))
    assert learned > raw + 0.2, (raw, learned)
    # the head has learned to ignore the nuisance: little of its input weight lies there
    assert np.linalg.norm(w @ basis.T) < 0.5 * np.linalg.norm(w) * np.sqrt(16 / 48)


def test_mini_batches_against_sampled_references_learn_the_same():
    """A set too large for one batch: each step scores 32 views against their own references
    and 16 drawn at random (of 80); the head still learns what a view keeps."""
    rng = np.random.default_rng(0)
    refs, x, rows, _ = _data(rng, 120, 4)
    train = rows < 80
    w, log = train_head(x[train], rows[train], refs, dim=16, epochs=300, views_per_step=32, references_per_step=16)
    assert log["training"] == {"mode": "mini-batch", "views_per_step": 32, "references_per_step": 16, "steps": 300}
    held = ~train

    def hits(q, r):
        return float((np.argmax(q @ r.T, axis=1) == rows[held]).mean())

    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    raw = hits(unit(x[held]), unit(refs))
    assert hits(project(x[held], w), project(refs, w)) > raw + 0.2
    # a step as large as the set is the full batch
    _, full = train_head(x[train][:40], rows[train][:40], refs, dim=16, epochs=2, views_per_step=40)
    assert full["training"] == {"mode": "full batch", "steps": 2}


def test_saved_head_round_trips(tmp_path):
    from pixlink.models.backends.instance_head import load_head

    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    save_head(tmp_path / "h.safetensors", w, {"layers": [6], "trained_on": "a test"})
    got, info = load_head(tmp_path / "h.safetensors")
    assert np.array_equal(got, w) and info == {"layers": [6], "trained_on": "a test"}


def test_training_views_vary_margin_and_masking_and_repeat_by_seed(tmp_path):
    """Each new photo gives ``crops`` views: tight and loose boxes, some masked to the object
    (its surroundings one flat grey), the same ones again for the same seed."""
    from helpers import need_composite

    need_composite()
    from pixlink.demo.composite import small_set
    from pixlink.train.instance_head import render_views

    cs = small_set(tmp_path, n_logos=3, n_queries=1, n_nil=0, seed=5)
    refs = cs.references
    got = list(render_views(refs, range(len(refs)), {"logo": 4, "flag": 4}, crops=3))
    again = list(render_views(refs, range(len(refs)), {"logo": 4, "flag": 4}, crops=3))
    assert len(got) >= 3 * 3 * 2 and len(got) % 3 == 0  # a photo hiding its object is skipped whole
    assert [r for r, _ in got] == [r for r, _ in again] and all(np.array_equal(a, b) for (_, a), (_, b) in zip(got, again))

    def flat_corners(v):  # a masked view: the four corners (background) are one grey value
        c = np.stack([v[0, 0], v[0, -1], v[-1, 0], v[-1, -1]]).astype(int)
        return bool((c == c[0, 0]).all())

    masked = [flat_corners(v) for _, v in got]
    assert 0 < sum(masked) < len(masked)
    sizes = {v.shape[:2] for _, v in got[:3]}
    assert len(sizes) > 1  # three crops of one photo, three margins
    # partial views: the first view of each photo has the same margin, a window of the box
    part = list(render_views(refs, range(len(refs)), {"logo": 4, "flag": 4}, crops=3, partial=1.0))
    assert [r for r, _ in part] == [r for r, _ in got]
    for (_, whole), (_, p) in zip(got[::3], part[::3]):
        assert p.shape[0] * p.shape[1] < whole.shape[0] * whole.shape[1]


def test_partial_box_is_a_window_inside_the_box_of_the_stated_share():
    from pixlink.train.instance_head import PARTIAL_SIDES, partial_box

    box = np.array([10.0, 20.0, 110.0, 70.0])
    lo, hi = PARTIAL_SIDES
    shares = []
    for seed in range(200):
        x1, y1, x2, y2 = partial_box(box, np.random.default_rng(seed))
        assert box[0] <= x1 < x2 <= box[2] + 1e-9 and box[1] <= y1 < y2 <= box[3] + 1e-9
        fw, fh = (x2 - x1) / 100.0, (y2 - y1) / 50.0
        assert lo - 1e-9 <= fw <= hi + 1e-9 and lo - 1e-9 <= fh <= hi + 1e-9
        shares.append(fw)
    assert max(shares) - min(shares) > 0.3  # drawn, not fixed
    same = partial_box(box, np.random.default_rng(3)), partial_box(box, np.random.default_rng(3))
    assert np.array_equal(*same)
