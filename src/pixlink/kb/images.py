"""Resolving entity image references to local files.

A reference is what a source gives: an absolute path, a relative path, a bare file name (a
Wikidata P18 value such as ``"Barack Obama.jpg"``, a MEL ``image_list`` entry) or a URL.

* absolute path: kept when the file exists, else reported (E112) and kept as a reference;
* bare file name or relative path: looked up under the images root, then beside the source
  file. A file name is also tried with spaces and underscores swapped (P18 values use spaces,
  files on disk often underscores) and in Wikimedia's hashed layout (``a/ab/Name.jpg``, md5 of
  the underscored name). Not found: reported (E112) when an images root was given or the
  reference is a path; a bare file name with no root is simply kept for a later root;
* URL: its last path segment is looked up as a file name; not found: kept as the URL.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from urllib.parse import unquote, urlsplit


def _variants(name: str) -> list[str]:
    out = [name]
    for v in (name.replace(" ", "_"), name.replace("_", " ")):
        if v not in out:
            out.append(v)
    if "/" not in name and os.sep not in name and name:
        under = name.replace(" ", "_")
        h = hashlib.md5(under.encode("utf-8")).hexdigest()
        out.append(f"{h[0]}/{h[:2]}/{under}")
    return out


class ImageResolver:
    """Resolve references for one source. ``root`` is the images root (or None);
    ``source_dir`` the directory of the source file (relative paths there are tried too)."""

    def __init__(self, root: Path | None, source_dir: Path | None) -> None:
        self.root = root.resolve() if root is not None else None
        self.source_dir = source_dir.resolve() if source_dir is not None else None

    def resolve(self, ref: str) -> tuple[str | None, bool]:
        """``(absolute path or None, report)``: ``report`` says whether a miss is worth a report
        (the reference names a path, or a root was given to find it)."""
        if self.root is None and self.source_dir is None and "/" not in ref and os.sep not in ref:
            return None, False  # a bare file name and nowhere to look (fast path for dumps)
        if ref.startswith(("http://", "https://")):
            name = unquote(urlsplit(ref).path.rsplit("/", 1)[-1])
            if self.root is not None and name:
                for v in _variants(name):
                    p = self.root / v
                    if p.is_file():
                        return str(p), False
            return None, False
        p = Path(ref).expanduser()
        if p.is_absolute():
            return (str(p), False) if p.is_file() else (None, True)
        is_path = "/" in ref or os.sep in ref
        for base in (self.root, self.source_dir):
            if base is None:
                continue
            for v in _variants(ref) if not is_path else [ref]:
                cand = base / v
                if cand.is_file():
                    return str(cand), False
        return None, (self.root is not None or is_path)
