"""The bytes of a recording: sealed JSON lines, plain or in gzip members, written and read back.

Every line a writer of this version writes ends with its own checksum, the last member of the object:
``{...,"crc":"1a2b3c4d"}``, the CRC-32 of the bytes before ``,"crc":``. A reader that finds a line whose checksum
does not match knows the line is damaged, without trusting anything after it. gzip files are a series of
members; a new member starts every KEYFRAME_SAMPLES samples with a complete sample, so the reader can resume
at the next member after damaged data.

No Textual or Rich imports here.
"""

from __future__ import annotations

import json
import math
import os
import stat
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ksmtop.outfile import kind_of
from ksmtop.safetext import safe

FORMAT = "ksmtop-recording"
VERSION = 1
MAX_LINE_BYTES = 8 * 1024 * 1024
"""Longest line the reader accepts: a sample of 2,000 processes is under 1 MiB."""
KEYFRAME_SAMPLES = 60
"""Every this many samples the writer stores a complete sample (and, gzip, starts a new member)."""
MAX_DIGITS = 24
"""Longest integer literal the reader parses (a 64-bit counter has 20 digits)."""
GZIP_MAGIC = b"\x1f\x8b\x08"
_CHUNK = 64 * 1024
_CRC_HEAD = b',"crc":"'
_CRC_TAIL_LEN = len(_CRC_HEAD) + 8 + 2  # ,"crc":"xxxxxxxx"}
_HEX = frozenset(b"0123456789abcdef")


class RecordingError(Exception):
    """A file that cannot be read as a recording; the message names the file and the line."""


# --- sealed lines ---------------------------------------------------------------------------------------


def seal(body: bytes) -> bytes:
    """A JSON object's text (ending with its closing brace) with its CRC-32 as the last member, and a newline."""
    head = body[:-1]  # without the closing brace
    return head + b'%s%08x"}\n' % (_CRC_HEAD, zlib.crc32(head))


def dumps(obj: dict[str, Any]) -> bytes:
    """One sealed line: compact JSON, its CRC-32 as the last member, a newline."""
    return seal(json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode())


def is_sealed(raw: bytes) -> bool:
    """True when the line ends like a sealed one (whether or not its checksum matches)."""
    return len(raw) > _CRC_TAIL_LEN and raw[-_CRC_TAIL_LEN:].startswith(_CRC_HEAD) and raw.endswith(b'"}')


def seal_matches(raw: bytes) -> bool:
    """True when a sealed line's checksum matches its bytes."""
    digits = raw[-10:-2]
    if not is_sealed(raw) or not set(digits) <= _HEX:
        return False
    return zlib.crc32(raw[:-_CRC_TAIL_LEN]) == int(digits, 16)


class BadNumber(ValueError):
    pass


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise BadNumber(f"an integer of {len(text.lstrip('-'))} digits is out of range")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadNumber(f"{text[:30]} is out of range")
    return value


def _reject_constant(name: str) -> Any:
    raise BadNumber(f"{name} is not a number JSON allows")


def loads(raw: bytes) -> Any:
    """JSON, with numbers a counter can hold: no NaN/Infinity, no 1e999, no 4000-digit integers (BadNumber)."""
    return json.loads(raw, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_reject_constant)


# --- reading --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Line:
    number: int
    """1-based, counting the lines read (after damaged gzip data: the lines read, not the lines written)."""
    raw: bytes
    """Without the newline."""
    ended: bool
    """False for the last bytes of a file that do not end with a newline (or b"" for a cut gzip stream)."""


class Damaged(Exception):
    """The compressed data cannot be decompressed (or decompresses into nonsense) from here."""

    def __init__(self, member: int, reason: str) -> None:
        super().__init__(reason)
        self.member = member


class LineTooLong(Exception):
    def __init__(self, number: int) -> None:
        super().__init__(number)
        self.number = number


def open_recording(path: Path) -> IO[bytes]:
    """The file opened for reading, if it is a regular file. O_NONBLOCK: a FIFO does not wait for a writer."""
    shown = safe(str(path))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        try:
            kind = kind_of(os.stat(path).st_mode)  # a socket cannot be opened at all: say what it is
        except OSError:
            kind = None
        if kind is not None:
            raise RecordingError(f"{shown}: is {kind}, not a regular file: not a recording") from None
        raise RecordingError(f"{shown}: cannot open: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise RecordingError(f"{shown}: is {kind_of(mode)}, not a regular file: not a recording")
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


class LineStream:
    """The lines of a recording, plain or gzip (recognised by its magic bytes).

    next() returns the next Line, or None at the end; it raises Damaged when gzip data cannot be decompressed
    (resync() then moves on to the next gzip member, if there is one) and LineTooLong.
    """

    def __init__(self, handle: IO[bytes], max_line: int = MAX_LINE_BYTES) -> None:
        self.handle = handle
        self.max_line = max_line
        self.compressed = handle.read(2) == GZIP_MAGIC[:2]
        handle.seek(0)
        self.number = 0
        self.buffer = b""
        self.start = 0
        self.member = 0
        """File offset of the gzip member being read."""
        self.members = 0
        self._data = b""
        self._offset = 0  # file offset just after what has been read from the file
        self._decomp = zlib.decompressobj(wbits=31)
        self._fed = False
        self._cut = False
        self._done = False
        self._damage: Damaged | None = None

    def next(self) -> Line | None:
        while True:
            newline = self.buffer.find(b"\n", self.start)
            if newline >= 0:
                raw = self.buffer[self.start : newline]
                self.start = newline + 1
                self.number += 1
                if len(raw) > self.max_line:
                    raise LineTooLong(self.number)
                return Line(self.number, raw, True)
            if len(self.buffer) - self.start > self.max_line:
                raise LineTooLong(self.number + 1)
            if not self._fill():
                rest = self.buffer[self.start :]
                self.buffer, self.start = b"", 0
                if rest:
                    self.number += 1
                    return Line(self.number, rest, False)
                if self._cut:
                    self._cut = False
                    return Line(self.number + 1, b"", False)
                return None

    def _fill(self) -> bool:
        """More bytes in the buffer; False at the end of the file."""
        if self.start:
            self.buffer, self.start = self.buffer[self.start :], 0
        if not self.compressed:
            chunk = self.handle.read(_CHUNK)
            self.buffer += chunk
            return bool(chunk)
        while not self._done:
            if not self._data:
                self._data = self.handle.read(_CHUNK)
                self._offset += len(self._data)
                if not self._data:
                    self._done = True
                    self._cut = self._fed and not self._decomp.eof  # a member without its end: the file was cut
                    return False
            if self._decomp.eof:
                if not self._data.strip(b"\0"):  # padding after the last member
                    self._data = b""
                    continue
                self._decomp = zlib.decompressobj(wbits=31)  # another member follows
                self._fed = False
                self.member = self._offset - len(self._data)
                self.members += 1
            saved = self._decomp.copy()
            try:
                piece = self._decomp.decompress(self._data, 4 * _CHUNK)
            except zlib.error as exc:
                # zlib drops what the failing call decoded: decode the same bytes again one at a time, so every
                # byte before the damage gives its output.
                self._decomp = saved
                piece = self._salvage(self._data)
                self._damage = Damaged(self.member, str(exc))
                self._data = b""
                self._done = True
                self.buffer += piece
                break
            self._fed = True
            self._data = self._decomp.unused_data if self._decomp.eof else self._decomp.unconsumed_tail
            if piece:
                self.buffer += piece
                return True
        if self._damage is not None:
            if b"\n" in self.buffer:  # the lines decoded before the damage first
                return True
            damage, self._damage = self._damage, None
            raise damage
        return False

    def _salvage(self, data: bytes) -> bytes:
        pieces = []
        for at in range(len(data)):
            try:
                pieces.append(self._decomp.decompress(data[at : at + 1]))
            except zlib.error:
                break
            if self._decomp.eof:
                break
        return b"".join(pieces)

    def resync(self) -> bool:
        """Drop what is buffered and go on at the next gzip member header after the current member's start;
        False when there is none (plain files: always True, lines stand alone)."""
        if not self.compressed:
            return True
        self.buffer, self.start = b"", 0
        self._cut = False
        self._damage = None
        position = self.member + 1
        self.handle.seek(position)
        carry = b""
        while True:
            chunk = self.handle.read(_CHUNK)
            if not chunk:
                self._done = True
                return False
            block = carry + chunk
            found = block.find(GZIP_MAGIC)
            if found >= 0:
                self.member = position - len(carry) + found
                self.handle.seek(self.member)
                self._offset = self.member
                self._data = b""
                self._decomp = zlib.decompressobj(wbits=31)
                self._fed = False
                self._done = False
                return True
            carry = block[-(len(GZIP_MAGIC) - 1) :]
            position += len(chunk)
