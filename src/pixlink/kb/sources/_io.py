"""Opening sources (plain, gzip, bz2, xz by their magic bytes) and streaming them.

* :func:`open_source` gives a binary, decompressed stream plus the raw file (for progress).
* :func:`iter_lines` yields ``(line_number, bytes)`` and turns a compressed stream that ends early
  into a :class:`Bad` E111 item instead of an exception.
* :func:`iter_json_items` streams the items of one big JSON document — a top-level object
  ``{key: value, ...}`` or array ``[value, ...]`` — in constant memory (the codex / FB15k-237 /
  MEL files are single JSON documents, some of them one line of several MB).
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import zlib
from pathlib import Path
from typing import IO, Any, Iterator

from ...errors import Errors, InputError

# Exceptions a decompressing reader raises on a cut or damaged file.
STREAM_ERRORS = (EOFError, zlib.error, lzma.LZMAError, OSError)


class Bad:
    """A problem a reader found: a record it skipped, or a file-level issue."""

    __slots__ = ("code", "level", "message", "item")

    def __init__(self, code: str, message: str, item: str | None = None, level: str = "error") -> None:
        self.code = code
        self.level = level
        self.message = message
        self.item = item

    @classmethod
    def of(cls, message: str, item: str | None = None, level: str = "error") -> "Bad":
        """From a catalogue message ``"[E123] ..."``."""
        code = message[1:message.index("]")] if message.startswith("[E") else "E000"
        return cls(code, message, item, level)


class Opened:
    """A source opened for reading: ``stream`` is binary and decompressed, ``raw`` the file on disk
    (``raw.tell()`` is how far the build has read, for progress bars)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.raw: IO[bytes] = open(path, "rb")
        except OSError as exc:
            raise InputError(Errors.E105.format(path=str(path), reason=f"{type(exc).__name__}: {exc}")) from exc
        head = self.raw.read(6)
        self.raw.seek(0)
        self.compression = None
        if head[:2] == b"\x1f\x8b":
            self.compression = "gzip"
            self.stream: IO[bytes] = gzip.GzipFile(fileobj=self.raw, mode="rb")  # type: ignore[assignment]
        elif head[:3] == b"BZh":
            self.compression = "bz2"
            self.stream = bz2.BZ2File(self.raw, mode="rb")  # type: ignore[assignment]
        elif head[:6] == b"\xfd7zXZ\x00":
            self.compression = "xz"
            self.stream = lzma.LZMAFile(self.raw, mode="rb")  # type: ignore[assignment]
        else:
            self.stream = io.BufferedReader(self.raw, buffer_size=1 << 20)  # type: ignore[arg-type]

    def tell_raw(self) -> int:
        try:
            return self.raw.tell()
        except (OSError, ValueError):
            return 0

    def close(self) -> None:
        if self.stream is not self.raw:
            try:
                self.stream.close()
            except STREAM_ERRORS:
                pass  # closing a truncated stream re-raises its error; the reader already reported it
        self.raw.close()

    def __enter__(self) -> "Opened":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def open_source(path: str | Path) -> Opened:
    p = Path(path)
    if not p.is_file():
        raise InputError(Errors.E105.format(path=str(p), reason="no such file"))
    return Opened(p)


def read_head(path: str | Path, n: int = 1 << 16) -> bytes:
    """The first ``n`` decompressed bytes of a source (for format sniffing)."""
    with open_source(path) as op:
        parts: list[bytes] = []
        got = 0
        read1 = getattr(op.stream, "read1", op.stream.read)
        while got < n:
            try:
                b = read1(n - got)
            except STREAM_ERRORS as exc:
                if got:
                    break  # a cut file: sniff what could be read, the reader reports the cut
                raise InputError(Errors.E105.format(path=str(path), reason=f"cannot decompress ({exc})")) from exc
            if not b:
                break
            parts.append(b)
            got += len(b)
        return b"".join(parts)


def iter_lines(op: Opened, start: int = 0) -> Iterator[tuple[int, bytes | Bad]]:
    """``(line_number, line)`` for every line after the first ``start`` lines. A stream that
    ends early (cut gzip/bz2) yields one ``Bad`` E111 and stops."""
    n = 0
    it = iter(op.stream)
    while True:
        try:
            line = next(it)
        except StopIteration:
            return
        except STREAM_ERRORS as exc:
            yield n + 1, Bad.of(Errors.E111.format(
                path=op.path, reason=f"the {op.compression or 'file'} stream ends or breaks after line {n} ({exc})"))
            return
        n += 1
        if n > start:
            yield n, line


def iter_jsonl_objects(op: "Opened", start: int, path: Path) -> Iterator[tuple[int, Any]]:
    """``(line number, parsed object)`` for each non-blank JSONL line from ``start``; a line
    that is not JSON gives ``(n, Bad)`` (E108) and reading goes on; a damaged stream gives its
    ``Bad`` and stops."""
    import orjson

    from ...errors import Errors

    for n, line in iter_lines(op, start):
        if type(line) is Bad:
            yield n, line
            return
        if not line.strip():
            continue
        try:
            yield n, orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield n, Bad.of(Errors.E108.format(line=n, path=path, reason=str(exc)))


class _Stream:
    """Text buffer over a stream with absolute line accounting, for :func:`iter_json_items`."""

    def __init__(self, fh: IO[str], chunk: int) -> None:
        self.fh = fh
        self.chunk = chunk
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.line = 1  # line number at self.counted
        self.counted = 0

    def fill(self) -> bool:
        if self.eof:
            return False
        data = self.fh.read(max(self.chunk, len(self.buf) - self.pos))
        if not data:
            self.eof = True
            return False
        # drop the consumed prefix, keeping line accounting
        self.line += self.buf.count("\n", self.counted, self.pos)
        self.buf = self.buf[self.pos:] + data
        self.pos = 0
        self.counted = 0
        return True

    def line_at(self, i: int) -> int:
        self.line += self.buf.count("\n", self.counted, i)
        self.counted = i
        return self.line

    def skip_ws(self) -> str | None:
        """Move past whitespace; the next character, or None at the end of the document."""
        while True:
            b, n = self.buf, len(self.buf)
            i = self.pos
            while i < n and b[i] in " \t\r\n":
                i += 1
            self.pos = i
            if i < n:
                return b[i]
            if not self.fill():
                return None


_DECODER = json.JSONDecoder()


class JSONDocError(Exception):
    """Raised by :func:`iter_json_items` when the document stops being valid JSON."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


def iter_json_items(fh: IO[str], chunk: int = 1 << 20) -> Iterator[tuple[int, str | int, Any]]:
    """Stream ``(line, key, value)`` from a JSON document whose top level is an object
    (``key`` is the member name) or an array (``key`` is the 0-based index). ``line`` is the
    1-based line where the item starts. Memory holds one item (plus a read chunk).

    Raises :class:`JSONDocError` (with ``line``) when the document is
    malformed or cut; the items before were already yielded.
    """
    s = _Stream(fh, chunk)
    first = s.skip_ws()
    if first not in ("{", "["):
        raise JSONDocError(1, f"the document must start with '{{' or '[', found {first!r}")
    is_obj = first == "{"
    close = "}" if is_obj else "]"
    s.pos += 1
    index = 0
    c = s.skip_ws()
    if c == close:
        return
    while True:
        if c is None:
            raise JSONDocError(s.line_at(s.pos), "the document ends before its closing bracket (truncated?)")
        start = s.pos
        line = s.line_at(start)
        while True:  # decode key and value, reading more when the buffer ends inside them
            try:
                i = start
                if is_obj:
                    if s.buf[i] != '"':
                        raise JSONDocError(line, f"expected a member name, found {s.buf[i]!r}")
                    key, i = _DECODER.raw_decode(s.buf, i)
                    while i < len(s.buf) and s.buf[i] in " \t\r\n":
                        i += 1
                    if i >= len(s.buf):
                        raise json.JSONDecodeError("buffer end", s.buf, i)
                    if s.buf[i] != ":":
                        raise JSONDocError(s.line_at(i), f"expected ':' after member {key!r}")
                    i += 1
                    while i < len(s.buf) and s.buf[i] in " \t\r\n":
                        i += 1
                else:
                    key = index
                value, end = _DECODER.raw_decode(s.buf, i)
                if end >= len(s.buf) and not s.eof:
                    raise json.JSONDecodeError("buffer end", s.buf, end)  # a number may continue
                break
            except json.JSONDecodeError as exc:
                if s.eof or not _refill_keep(s, start):
                    cut = exc.pos >= len(s.buf.rstrip()) or exc.msg.startswith("Unterminated")
                    reason = "the document ends inside an item (truncated?)" if cut else f"{exc.msg} (malformed)"
                    raise JSONDocError(s.line_at(min(exc.pos, len(s.buf))), reason) from None
                start = s.pos
        s.pos = end
        yield line, key, value
        index += 1
        c = s.skip_ws()
        if c == ",":
            s.pos += 1
            c = s.skip_ws()
            continue
        if c == close:
            s.pos += 1
            if s.skip_ws() is not None:
                raise JSONDocError(s.line_at(s.pos), "extra data after the end of the document")
            return
        if c is None:
            raise JSONDocError(s.line_at(s.pos), "the document ends before its closing bracket (truncated?)")
        raise JSONDocError(s.line_at(s.pos), f"expected ',' or {close!r}, found {c!r}")


def _refill_keep(s: _Stream, start: int) -> bool:
    """Read more, keeping the buffer from ``start``; False at the end of the stream."""
    s.line_at(start)
    s.pos = start
    return s.fill()
