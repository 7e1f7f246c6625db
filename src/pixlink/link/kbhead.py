"""A KB's own ``instance`` head: trained on composites of the KB's references, carried by the KB.

``pixlink train instance-head KBDIR`` (:mod:`pixlink.train.instance_adapt`) writes
``KBDIR/models/instance_head.safetensors``: the shipped head's recipe trained on every reference
image of *this* KB (the shipped head never saw them), with, in its metadata, the calibration of
its own cosines (a head that has seen the KB's references puts right and wrong ones at other
cosines than the shipped head). Every linker over that KB, and ``pixlink kb embed``, then runs the
``instance`` signal with that head (:func:`use_kb_head`): the KB's vectors and the queries' are
made by the same head. Its scores are calibrated by the shipped entry (fitted on entities the
head had not seen: cautious), or, with ``LinkerConfig.kb_head_calibration="head"``, by the head's
own (:func:`with_head_calibration`); a fusion file given wins over both. Outputs say so: the
backend's ``model_id`` carries the head's digest and the linker's notes name the head and the
calibration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..log import get_logger
from ..models import roles as R
from .fusion import Fusion

log = get_logger(__name__)

KB_HEAD = Path("models") / "instance_head.safetensors"
"""Where a KB keeps its own instance head, relative to the KB directory."""

HEAD_BACKEND = "efficientnet_lite_instance"
"""The backend a KB's head is made for (its factory takes ``head=``)."""


def kb_head(kb_dir: str | Path) -> Path | None:
    """The KB's own instance head file, or None when it has none."""
    p = Path(kb_dir) / KB_HEAD
    return p if p.is_file() else None


def use_kb_head(kb_dir: str | Path, profile: Any) -> Path | None:
    """Point ``profile``'s ``instance_embed`` role at the KB's own head, when it has one.

    Returns the head's path (None: the KB has none, the profile is unchanged). Raises E391 when
    the profile already runs another head for that role (a profile given another head, or shared
    with a KB that has none and already built the shipped one)."""
    head = kb_head(kb_dir)
    if head is None:
        return None
    chosen = profile.choose(R.INSTANCE_EMBED).backend
    if chosen != HEAD_BACKEND:
        log.warning("KB %s carries its own instance head, for %s; this profile runs %s for instance_embed: the head "
                    "is not used", kb_dir, HEAD_BACKEND, chosen)
        return None
    profile.set_option(R.INSTANCE_EMBED, "head", str(head.resolve()), why=f"KB {str(kb_dir)!r} carries its own head")
    return head


def head_summary(kb_dir: str | Path) -> dict[str, Any] | None:
    """What the KB's own head is (for ``pixlink kb info``): its file and, from its metadata, the
    references and views it was trained on, its held-out figures, calibration and training (full
    batch or mini-batches; None for a head of an earlier release); None without one."""
    from ..models.backends.instance_head import head_metadata

    head = kb_head(kb_dir)
    if head is None:
        return None
    info = head_metadata(head)
    return {"path": str(head), **{k: info.get(k) for k in ("references", "entities", "views", "held_out", "calibration")},
            "training": (info.get("fit") or {}).get("training")}


def head_calibration(head: str | Path) -> dict[str, float] | None:
    """``{"center", "slope"}`` of the head's own cosines (its metadata's ``calibration``), or None."""
    from ..models.backends.instance_head import head_metadata

    cal = head_metadata(head).get("calibration")
    if not cal or cal.get("center") is None:
        return None
    return {"center": float(cal["center"]), "slope": float(cal["slope"])}


def head_fusion(fusion: Fusion, head: str | Path, calibration: str) -> tuple[Fusion, str]:
    """The fusion that scores the KB's own head, and the note that says which: ``calibration``
    ``"given"`` (a fusion file or object was given: as it is), ``"shipped"`` (the fusion as it is:
    the shipped ``instance`` entry) or ``"head"`` (:func:`with_head_calibration`)."""
    if calibration == "head":
        return with_head_calibration(fusion, head)
    if calibration == "shipped":
        return fusion, (f"instance: the KB's own head {str(head)!r}, scored with the shipped calibration "
                        "(kb_head_calibration='head' uses the head's own)")
    return fusion, f"instance: the KB's own head {str(head)!r}, scored by the fusion given ({fusion.name})"


def with_head_calibration(fusion: Fusion, head: str | Path) -> tuple[Fusion, str]:
    """``fusion`` with every ``instance`` entry's centre and slope replaced by the head's own
    (weight, ``yields_to`` and the rest kept), and a note saying so. A head without a
    calibration leaves the fusion as it is, and the note says that too."""
    from dataclasses import replace

    cal = head_calibration(head)
    if cal is None:
        return fusion, (f"instance: the KB's own head {str(head)!r} carries no calibration; the shipped one is used "
                        "for its scores")
    entries = {k: (replace(v, center=cal["center"], slope=cal["slope"]) if k.split(":")[0] == "instance" else v)
               for k, v in fusion.calibration.items()}
    return (replace(fusion, calibration=entries, name=f"{fusion.name}+kb-head"),
            f"instance: the KB's own head {str(head)!r} (its calibration: center {cal['center']:.3f}, "
            f"slope {cal['slope']:.2f})")
