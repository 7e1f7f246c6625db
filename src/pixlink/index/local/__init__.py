"""The KB's local features: keypoints and descriptors of every entity image, on disk, with one
FAISS index over all descriptors (instance matching; the ``local`` linking signal).

* :mod:`.store` — :class:`LocalFeatureStore`: the on-disk layout, opening (memory-mapped), the
  nearest-neighbour *votes* of a query's descriptors for KB images, and each image's stored
  features for verification;
* :mod:`.build` — :class:`LocalStoreWriter`: a resumable build (parts committed as they are
  written, then one FAISS index over all descriptors);
* :mod:`.verify` — matching a query's features with one KB image's features and the geometric
  check (RANSAC homography), giving inliers, the homography and the reference's outline in the
  query image.

Layout inside a KB directory::

    KBDIR/local_features/<model-slug>/
        meta.json          model_id, kind (float | binary), dim, kb_build_id, counts, params, index
        images.parquet     one row per image: entity_id, ref, width, height, start, count, thumb_h, thumb_w
        keypoints.npy      (N, 4) float32: x, y, size, angle in the image's own pixels
        descriptors.npy    (N, D) uint8: SIFT bins (compared as RootSIFT) or ORB bits
        colours.npy        (N, 3) uint8: mean RGB of each keypoint's disc
        owner.npy          (N,) int32: the image row of each descriptor
        thumbs.npy         (I, T, T, 4) uint8: each image small (RGB) and its support (alpha)
        faiss.index        FAISS' own file (flat, or IVF with 8-bit codes; binary for ORB)

Like the dense indexes, a store is bound to the model that made it and to the KB build it was
made from (E262, E263): it is never used for another.
"""

from __future__ import annotations

from .build import LocalStoreWriter
from .store import LocalFeatureStore, local_dir, rootsift
from .verify import Verification, match_features, verify_homography

__all__ = ["LocalFeatureStore", "LocalStoreWriter", "Verification", "local_dir", "match_features", "rootsift",
           "verify_homography"]
