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

    def encoding_problem(self) -> tuple[str, str] | None:
        """``(encoding, evidence)`` when the (decompressed) text is UTF-16 or UTF-32, not UTF-8
        (see :func:`foreign_encoding`); looks at the first bytes without consuming them."""
        try:
            head = self.stream.peek(4096)[:4096]  # type: ignore[attr-defined]
        except STREAM_ERRORS:
            return None  # a cut or damaged stream: the reader reports it
        return foreign_encoding(head)

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


_BOMS = ((b"\x00\x00\xfe\xff", "UTF-32", "big-endian"), (b"\xff\xfe\x00\x00", "UTF-32", "little-endian"),
         (b"\xfe\xff", "UTF-16", "big-endian"), (b"\xff\xfe", "UTF-16", "little-endian"))
UTF8_BOM = b"\xef\xbb\xbf"


def foreign_encoding(head: bytes) -> tuple[str, str] | None:
    """``(encoding, evidence)`` when ``head`` (a file's first bytes) is UTF-16 or UTF-32 text:
    a byte order mark, or — without one — NUL bytes in the places ASCII text in that encoding
    has them. ``None`` for anything else (UTF-8 is checked where it is decoded)."""
    for bom, enc, order in _BOMS:
        if head.startswith(bom):
            return enc, f"it starts with the {enc} {order} byte order mark"
    n = len(head) - len(head) % 4
    if n < 8 or b"\x00" not in head[:n]:
        return None
    quads = n // 4
    nul = [sum(1 for i in range(k, n, 4) if head[i] == 0) / quads for k in range(4)]
    if nul[1] > 0.9 and nul[2] > 0.9 and nul[3] > 0.9 and nul[0] < 0.1:
        return "UTF-32", "no byte order mark, but three NUL bytes after each character (little-endian)"
    if nul[0] > 0.9 and nul[1] > 0.9 and nul[2] > 0.9 and nul[3] < 0.1:
        return "UTF-32", "no byte order mark, but three NUL bytes before each character (big-endian)"
    even, odd = (nul[0] + nul[2]) / 2, (nul[1] + nul[3]) / 2
    if odd > 0.9 and even < 0.1:
        return "UTF-16", "no byte order mark, but a NUL byte after each character (little-endian)"
    if even > 0.9 and odd < 0.1:
        return "UTF-16", "no byte order mark, but a NUL byte before each character (big-endian)"
    return None


def encoding_bad(path: Path, problem: str, how: str = "") -> Bad:
    """The file-level :class:`Bad` (E123) of a source that is not UTF-8 text."""
    return Bad.of(Errors.E123.format(path=path, problem=problem, how=how))


def foreign_encoding_bad(path: Path, found: tuple[str, str]) -> Bad:
    enc, evidence = found
    return encoding_bad(path, f"the file is {enc} ({evidence})", f" (e.g. `iconv -f {enc} -t UTF-8 IN > OUT`)")


def not_utf8(data: bytes) -> str | None:
    """Why ``data`` is not UTF-8 (the first bad byte and where), or ``None`` when it is."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"byte 0x{data[exc.start]:02X} at position {exc.start + 1} is not UTF-8 (Latin-1 or Windows-1252 text?)"
    return None


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
        if n == 1 and line.startswith(UTF8_BOM):
            line = line[len(UTF8_BOM):]  # a UTF-8 byte order mark is UTF-8 all the same
        if n > start:
            yield n, line


def iter_jsonl_objects(op: "Opened", start: int, path: Path) -> Iterator[tuple[int, Any]]:
    """``(line number, parsed object)`` for each non-blank JSONL line from ``start``; a line
    that is not JSON gives ``(n, Bad)`` (E108) and reading goes on; a damaged stream gives its
    ``Bad`` and stops."""
    import orjson

    for n, line in iter_lines(op, start):
        if type(line) is Bad:
            yield n, line
            return
        if not line.strip():
            continue
        try:
            yield n, orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield n, Bad.of(Errors.E108.format(line=n, path=path, reason=json_line_reason(line, exc)))


def json_line_reason(line: bytes, exc: Exception) -> str:
    """Why a line is not JSON: its encoding when it is not UTF-8, else the parser's message."""
    enc = not_utf8(line)
    return f"{enc}; convert the file to UTF-8" if enc else str(exc)


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
