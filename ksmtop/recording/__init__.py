"""Session recordings: JSON Lines (optionally gzip), written one sample at a time, read back as Snapshots.

The format is described in docs/recording.md and docs/recording.schema.json. In short:

    {"type":"header","format":"ksmtop-recording","version":1,"host":...,"kernel":...,"page_size":4096,...}
    {"type":"event","time":...,"kind":"tunable","text":...,"data":{...}}      # attached to the next sample
    {"type":"sample","time":...,"interval_s":...,"host":{...},"guests":[{"pid":1,...}],...}
    {"type":"end","time":...,"samples":N}                                   # written on a clean close

A sample holds only what changed since the sample before it (field names are the model's); the first sample
holds everything. Files are created owner-only (0600); strings are passed through redact() before they are
written. The reader never raises anything but RecordingError, and reports a cut tail as a warning.

No Textual or Rich imports here (tests/unit/test_layering.py checks it).
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import re
import socket
import threading
import types
import typing
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ksmtop import __version__
from ksmtop.collect.ksm import KNOBS
from ksmtop.model import DomainSample, Event, GuestSample, HostSample, KsmRates, KsmState, Snapshot

FORMAT = "ksmtop-recording"
VERSION = 1
MAX_LINE_BYTES = 8 * 1024 * 1024
"""Longest line the reader accepts: a sample of 2,000 processes is under 1 MiB."""
FLOAT_DIGITS = 6
"""Significant digits kept for measured floats (rates, percentages); sample times keep milliseconds."""
_CHUNK = 64 * 1024


class RecordingError(Exception):
    """A file that cannot be read as a recording; the message names the file and the line."""


# --- redaction --------------------------------------------------------------------------------------------

REDACTED = "<redacted>"
_SECRET_OPTION = re.compile(r"(?i)(?<![\w-])(data|password|passwd|passphrase|secret|token|api[_-]?key|auth)=([^,\s]+)")
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+):([^@\s/]+)@")
_SECRET_FLAG = re.compile(r"(?i)((?<!\S)--?(?:password|passwd|passphrase|secret|token)(?:\s+|=))(\S+)")


def redact(text: str) -> str:
    """Hide secrets that qemu command lines and similar strings carry.

    `-object secret,id=s0,data=SECRET` keeps its id but not its data; `password=`, `passphrase=`, `token=` ...
    options, `--password X` flags and passwords in URLs (`iscsi://user:pass@host`) are replaced by <redacted>.
    Options naming a secret object (`password-secret=s0`, `key-secret=`) are ids, not secrets, and stay.
    """
    if "=" not in text and "@" not in text and "-" not in text:
        return text
    text = _SECRET_OPTION.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}:{REDACTED}@", text)
    return _SECRET_FLAG.sub(lambda m: f"{m.group(1)}{REDACTED}", text)


def redact_value(value: Any) -> Any:
    """redact() applied to every string inside dicts, lists and tuples."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(item) for item in value]
    return value


# --- field types (from the model's annotations) -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Type:
    kinds: tuple[type, ...]
    nullable: bool
    required: bool

    def check(self, value: Any) -> bool:
        if value is None:
            return self.nullable
        if isinstance(value, bool):
            return bool in self.kinds
        return isinstance(value, self.kinds)

    def describe(self) -> str:
        names = ["number" if k is float else k.__name__ for k in self.kinds]
        return " or ".join(names + (["null"] if self.nullable else []))


def _field_types(cls: type) -> dict[str, _Type]:
    hints = typing.get_type_hints(cls)
    table = {}
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        args = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        kinds: list[type] = []
        for arg in args:
            if arg is type(None):
                continue
            if arg is float:
                kinds += [float, int]
            elif typing.get_origin(arg) is typing.Literal:
                kinds.append(str)
            else:
                kinds.append(arg)
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        table[f.name] = _Type(tuple(kinds), type(None) in args, required)
    return table


GUEST_TYPES = _field_types(GuestSample)
HOST_TYPES = _field_types(HostSample)
RATES_TYPES = _field_types(KsmRates)
DOMAIN_TYPES = _field_types(DomainSample)
GUEST_FIELDS = tuple(GUEST_TYPES)
_FLOAT_FIELDS = {
    name
    for table in (GUEST_TYPES, HOST_TYPES, RATES_TYPES, DOMAIN_TYPES)
    for name, kind in table.items()
    if float in kind.kinds
}
MODES = ("local", "remote")


def _round(value: Any) -> Any:
    return float(f"{value:.{FLOAT_DIGITS}g}") if isinstance(value, float) else value


def _stored_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as the recording stores it: floats rounded, strings redacted."""
    return {f.name: redact_value(_round(getattr(obj, f.name))) for f in dataclasses.fields(obj)}


def _redacted(text: str | None) -> str | None:
    return None if text is None else redact(text)


def stored(snapshot: Snapshot) -> Snapshot:
    """The snapshot exactly as reading it back from a recording gives it (rounded floats, redacted strings)."""
    return Snapshot(
        time=round(snapshot.time, 3),
        interval_s=_round(snapshot.interval_s),
        scope=snapshot.scope,
        host=HostSample(**_stored_dict(snapshot.host)),
        ksm=KsmState(
            available=snapshot.ksm.available,
            values={k: redact_value(v) for k, v in snapshot.ksm.values.items()},
            choices={k: tuple(v) for k, v in snapshot.ksm.choices.items()},
            error=_redacted(snapshot.ksm.error),
        ),
        rates=KsmRates(**_stored_dict(snapshot.rates)),
        guests=tuple(GuestSample(**_stored_dict(g)) for g in snapshot.guests),
        events=tuple(_event_from(_event_dict(e)) for e in snapshot.events),
        is_root=snapshot.is_root,
        domains=tuple(DomainSample(**_stored_dict(d)) for d in snapshot.domains),
        mode=snapshot.mode,
        libvirt_status=_redacted(snapshot.libvirt_status),
    )


def _event_dict(event: Event) -> dict[str, Any]:
    return {
        "type": "event",
        "time": round(event.time, 3),
        "kind": redact(event.kind),
        "text": redact(event.text),
        "data": redact_value(event.data),
    }


def _event_from(data: dict[str, Any]) -> Event:
    return Event(time=float(data["time"]), kind=data["kind"], text=data["text"], data=dict(data.get("data", {})))


# --- writer -----------------------------------------------------------------------------------------------


def _changed(new: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    if old is None:
        return dict(new)
    return {key: value for key, value in new.items() if key not in old or old[key] != value}


def _dumps(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False) + "\n").encode()


class RecordingWriter:
    """Writes a session: the header with the first sample, then each sample (and its events) as it comes.

    Every sample is flushed to the OS before write() returns (gzip: a sync flush), so a killed recorder loses at
    most the sample being written; with fsync=True it is also on the disk. Safe to call write() from a sampling
    thread while another thread reads ``samples`` and ``size_bytes``; write() after close() is ignored.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        compress: bool | None = None,
        fsync: bool = True,
        overwrite: bool = False,
        interval_s: float | None = None,
    ) -> None:
        self.path = Path(path)
        self.compress = self.path.name.endswith(".gz") if compress is None else compress
        self.fsync = fsync
        self.interval_s = interval_s
        flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        flags |= os.O_TRUNC if overwrite else os.O_EXCL
        self._fd = os.open(self.path, flags, 0o600)  # owner-only: names and command lines can be sensitive
        os.fchmod(self._fd, 0o600)  # an existing file keeps its mode on O_TRUNC; the umask cannot widen it
        self._raw = os.fdopen(self._fd, "wb")
        self._out: Any = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0) if self.compress else None
        self._lock = threading.Lock()
        self._closed = False
        self.samples = 0
        self.events = 0
        self._prev: dict[str, Any] | None = None

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def size_bytes(self) -> int:
        """Bytes on disk so far."""
        try:
            return os.fstat(self._fd).st_size
        except OSError:
            return self.path.stat().st_size if self.path.exists() else 0

    def _emit(self, data: bytes) -> None:
        if self._out is not None:
            self._out.write(data)
        else:
            self._raw.write(data)

    def _flush(self) -> None:
        if self._out is not None:
            self._out.flush()  # Z_SYNC_FLUSH: everything so far decompresses without the rest of the file
        self._raw.flush()
        if self.fsync:
            os.fsync(self._fd)

    def header(self, first: Snapshot) -> dict[str, Any]:
        return {
            "type": "header",
            "format": FORMAT,
            "version": VERSION,
            "ksmtop": __version__,
            "host": redact(socket.gethostname()),
            "kernel": os.uname().release,
            "page_size": first.host.page_size,
            "start_time": round(first.time, 3),
            "interval_s": self.interval_s,
            "scope": first.scope,
            "tunables": {k: v for k, v in first.ksm.values.items() if k in KNOBS},
            "guests": [
                {"pid": g.pid, "name": redact(g.name), "kind": g.kind, "start_ticks": g.start_ticks}
                for g in first.guests
            ],
        }

    def write(self, snapshot: Snapshot) -> bool:
        """Append one sample and the events it carries; False when the writer is closed."""
        with self._lock:
            if self._closed:
                return False
            lines = []
            if self._prev is None:
                lines.append(_dumps(self.header(snapshot)))
            for event in snapshot.events:
                lines.append(_dumps(_event_dict(event)))
            record, self._prev = _encode_sample(snapshot, self._prev)
            lines.append(_dumps(record))
            self._emit(b"".join(lines))
            self._flush()
            self.samples += 1
            self.events += len(snapshot.events)
            return True

    def close(self, end_time: float | None = None) -> None:
        """Write the end marker and close; the reader warns about files without one (a killed recorder)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self._prev is not None:
                    end = {"type": "end", "time": round(end_time or self._prev["time"], 3), "samples": self.samples}
                    self._emit(_dumps(end))
                if self._out is not None:
                    self._out.close()
                self._raw.flush()
                if self.fsync:
                    os.fsync(self._fd)
            finally:
                self._raw.close()


def _encode_sample(snapshot: Snapshot, prev: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The sample line (only what changed since prev) and the new full state to compare the next one with."""
    ksm = snapshot.ksm
    state: dict[str, Any] = {
        "time": round(snapshot.time, 3),
        "interval_s": _round(snapshot.interval_s),
        "scope": snapshot.scope,
        "is_root": snapshot.is_root,
        "mode": snapshot.mode,
        "libvirt_status": _redacted(snapshot.libvirt_status),
        "host": _stored_dict(snapshot.host),
        "ksm_meta": {
            "available": ksm.available,
            "choices": {k: list(v) for k, v in ksm.choices.items()},
            "error": _redacted(ksm.error),
        },
        "ksm_values": {k: redact_value(v) for k, v in ksm.values.items()},
        "rates": _stored_dict(snapshot.rates),
        "guests": {g.pid: _stored_dict(g) for g in snapshot.guests},
        "domains": [_stored_dict(d) for d in snapshot.domains],
    }
    old = prev or {}
    record: dict[str, Any] = {"type": "sample", "time": state["time"], "interval_s": state["interval_s"]}
    for key in ("scope", "is_root", "mode", "libvirt_status", "domains"):  # whole values, when they change
        if prev is None or old[key] != state[key]:
            record[key] = state[key]
    for key in ("host", "rates"):
        delta = _changed(state[key], old.get(key))
        if delta:
            record[key] = delta
    ksm_delta = _changed(state["ksm_meta"], old.get("ksm_meta"))
    values = _changed(state["ksm_values"], old.get("ksm_values"))
    values.update({k: None for k in old.get("ksm_values", {}) if k not in state["ksm_values"]})
    if values:
        ksm_delta["values"] = values
    if ksm_delta:
        record["ksm"] = ksm_delta
    pids = list(state["guests"])
    if prev is None or pids != list(old["guests"]):
        record["pids"] = pids
    guests = []
    for pid, guest in state["guests"].items():
        delta = _changed(guest, old.get("guests", {}).get(pid))
        if delta:
            delta.pop("pid", None)
            guests.append({"pid": pid, **delta})
    if guests:
        record["guests"] = guests
    return record, state


# --- reader -----------------------------------------------------------------------------------------------


@dataclass
class Recording:
    """A recording read back: its header, the snapshots (events attached as live), and what looked wrong."""

    path: Path
    header: dict[str, Any]
    snapshots: list[Snapshot] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    complete: bool = False
    """True when the end marker was read (the recorder closed the file)."""

    @property
    def start_time(self) -> float:
        return float(self.header["start_time"])


class _Damaged(Exception):
    pass


def _decompressed(handle: Any, path: Path, max_piece: int) -> Iterator[bytes]:
    """The bytes of a gzip file (members one after another), in pieces; b"" last when the stream was cut."""
    decomp = zlib.decompressobj(wbits=31)
    data = b""
    while True:
        if not data:
            data = handle.read(_CHUNK)
            if not data:
                if not decomp.eof:
                    yield b""  # the stream ends before its end marker: the file was cut
                return
        if decomp.eof:
            if not data.strip(b"\0"):  # padding after the last member
                data = b""
                continue
            decomp = zlib.decompressobj(wbits=31)  # another member follows
        try:
            piece = decomp.decompress(data, max_piece)
        except zlib.error as exc:
            raise _Damaged(str(exc)) from None
        data = decomp.unused_data if decomp.eof else decomp.unconsumed_tail
        if piece:
            yield piece


def _plain(handle: Any) -> Iterator[bytes]:
    while chunk := handle.read(_CHUNK):
        yield chunk


def _lines(path: Path, max_line: int) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, bytes, ended with a newline) for each line; gzip is recognised by its magic bytes.
    A last item (n, b"", False) says that a gzip stream was cut."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 (closed in finally; this is a generator)
    except OSError as exc:
        raise RecordingError(f"{path}: cannot open: {exc.strerror or exc}") from None
    try:
        compressed = handle.read(2) == b"\x1f\x8b"
        handle.seek(0)
        pieces = _decompressed(handle, path, max_line) if compressed else _plain(handle)
        buffer = b""
        number = 0
        cut = False
        try:
            for piece in pieces:
                if not piece:
                    cut = True
                    break
                buffer += piece
                start = 0
                while (newline := buffer.find(b"\n", start)) >= 0:
                    number += 1
                    if newline - start > max_line:
                        raise RecordingError(f"{path}: line {number} is longer than {max_line} bytes")
                    yield number, buffer[start:newline], True
                    start = newline + 1
                buffer = buffer[start:]
                if len(buffer) > max_line:
                    raise RecordingError(f"{path}: line {number + 1} is longer than {max_line} bytes")
        except _Damaged as exc:
            raise RecordingError(f"{path}: line {number + 1}: the compressed data is damaged ({exc})") from None
        except OSError as exc:
            raise RecordingError(f"{path}: read error after line {number}: {exc.strerror or exc}") from None
        if buffer:
            yield number + 1, buffer, False
        elif cut:
            yield number + 1, b"", False
    finally:
        handle.close()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _loads(raw: bytes) -> Any:
    return json.loads(raw, parse_constant=_reject_constant)


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.number = 0
        self.host: dict[str, Any] = {}
        self.rates: dict[str, Any] = {}
        self.ksm_meta: dict[str, Any] = {"available": True, "choices": {}, "error": None}
        self.ksm_values: dict[str, Any] = {}
        self.guests: dict[int, dict[str, Any]] = {}
        self.pids: list[int] = []
        self.domains: list[dict[str, Any]] = []
        self.top: dict[str, Any] = {}
        self.pending: list[Event] = []

    def fail(self, message: str) -> RecordingError:
        return RecordingError(f"{self.path}: line {self.number}: {message}")

    def check_fields(self, data: Any, types_: dict[str, _Type], where: str) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.fail(f"{where} should be an object, not {type(data).__name__}")
        for key, value in data.items():
            kind = types_.get(key)
            if kind is None:
                continue  # a field this version does not know: ignored (newer writers may add fields)
            if not kind.check(value):
                raise self.fail(f"{where}.{key} should be {kind.describe()}, not {json.dumps(value)[:40]}")
        return {k: v for k, v in data.items() if k in types_}

    def header(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict) or data.get("type") != "header":
            raise self.fail("not a ksmtop recording: the first line is not a header object")
        if data.get("format") != FORMAT:
            raise self.fail(f"not a ksmtop recording: format is {json.dumps(data.get('format'))[:40]}")
        version = data.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise self.fail("the header has no format version")
        if version != VERSION:
            newer = "a newer" if version > VERSION else "an older"
            raise self.fail(f"format version {version} (written by {newer} ksmtop); this ksmtop reads {VERSION}")
        expect = {"host": str, "kernel": str, "page_size": int, "start_time": (int, float), "tunables": dict}
        for key, kind in expect.items():
            if not isinstance(data.get(key), kind) or isinstance(data.get(key), bool):
                raise self.fail(f"header.{key} is missing or of the wrong type")
        if not isinstance(data.get("guests", []), list):
            raise self.fail("header.guests should be a list")
        return data

    def event(self, data: dict[str, Any]) -> Event:
        for key, kind in (("time", (int, float)), ("kind", str), ("text", str), ("data", dict)):
            value = data.get(key, {} if key == "data" else None)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise self.fail(f"event.{key} is missing or of the wrong type")
        return _event_from(data)

    def sample(self, data: dict[str, Any]) -> Snapshot:
        first = not self.top
        if not isinstance(data.get("time"), int | float) or isinstance(data.get("time"), bool):
            raise self.fail("sample.time is missing or not a number")
        interval = data.get("interval_s")
        if interval is not None and (not isinstance(interval, int | float) or isinstance(interval, bool)):
            raise self.fail("sample.interval_s should be a number or null")
        self.top["time"] = float(data["time"])
        self.top["interval_s"] = None if interval is None else float(interval)
        if "scope" in data or first:
            if data.get("scope") not in ("qemu", "ksm"):
                raise self.fail("sample.scope should be 'qemu' or 'ksm'")
            self.top["scope"] = data["scope"]
        if "is_root" in data:
            if not isinstance(data["is_root"], bool):
                raise self.fail("sample.is_root should be true or false")
            self.top["is_root"] = data["is_root"]
        self.connection(data)
        self.host.update(self.check_fields(data.get("host", {}), HOST_TYPES, "host"))
        self.rates.update(self.check_fields(data.get("rates", {}), RATES_TYPES, "rates"))
        self.ksm(data.get("ksm", {}))
        self.guest_rows(data)
        self.domain_rows(data)
        return self.build(first)

    def connection(self, data: dict[str, Any]) -> None:
        """mode and libvirt_status: written when they change; the last value holds until then."""
        if "mode" in data:
            if data["mode"] not in MODES:
                raise self.fail("sample.mode should be 'local' or 'remote'")
            self.top["mode"] = data["mode"]
        if "libvirt_status" in data:
            if data["libvirt_status"] is not None and not isinstance(data["libvirt_status"], str):
                raise self.fail("sample.libvirt_status should be a string or null")
            self.top["libvirt_status"] = data["libvirt_status"]

    def ksm(self, data: Any) -> None:
        if not isinstance(data, dict):
            raise self.fail("sample.ksm should be an object")
        if "available" in data:
            if not isinstance(data["available"], bool):
                raise self.fail("ksm.available should be true or false")
            self.ksm_meta["available"] = data["available"]
        if "error" in data:
            if data["error"] is not None and not isinstance(data["error"], str):
                raise self.fail("ksm.error should be a string or null")
            self.ksm_meta["error"] = data["error"]
        if "choices" in data:
            choices = data["choices"]
            if not isinstance(choices, dict) or not all(
                isinstance(v, list) and all(isinstance(c, str) for c in v) for v in choices.values()
            ):
                raise self.fail("ksm.choices should map names to lists of strings")
            self.ksm_meta["choices"] = choices
        values = data.get("values", {})
        if not isinstance(values, dict):
            raise self.fail("ksm.values should be an object")
        for key, value in values.items():
            if value is None:
                self.ksm_values.pop(key, None)
            elif isinstance(value, bool) or not isinstance(value, int | str):
                raise self.fail(f"ksm.values.{key} should be a number or a string")
            else:
                self.ksm_values[key] = value

    def guest_rows(self, data: dict[str, Any]) -> None:
        if "pids" in data:
            pids = data["pids"]
            if not isinstance(pids, list) or not all(isinstance(p, int) and not isinstance(p, bool) for p in pids):
                raise self.fail("sample.pids should be a list of process IDs")
            self.pids = list(pids)
            self.guests = {pid: row for pid, row in self.guests.items() if pid in set(pids)}
        rows = data.get("guests", [])
        if not isinstance(rows, list):
            raise self.fail("sample.guests should be a list")
        for row in rows:
            row = self.check_fields(row, GUEST_TYPES, "guest")
            pid = row.get("pid")
            if not isinstance(pid, int):
                raise self.fail("a guest has no pid")
            if pid not in self.pids:
                raise self.fail(f"guest {pid} is not in the sample's pids")
            self.guests.setdefault(pid, {}).update(row)
        for pid in self.pids:
            row = self.guests.get(pid, {})
            missing = [name for name, kind in GUEST_TYPES.items() if kind.required and name not in row]
            if missing:
                raise self.fail(f"guest {pid} appears without {', '.join(missing[:3])}")

    def domain_rows(self, data: dict[str, Any]) -> None:
        """The whole domain list, written when it changed; the last list holds until then."""
        if "domains" not in data:
            return
        rows = data["domains"]
        if not isinstance(rows, list):
            raise self.fail("sample.domains should be a list")
        domains = []
        for row in rows:
            row = self.check_fields(row, DOMAIN_TYPES, "domain")
            missing = [name for name, kind in DOMAIN_TYPES.items() if kind.required and name not in row]
            if missing:
                who = f"domain {json.dumps(row['name'])[:40]}" if "name" in row else "a domain"
                raise self.fail(f"{who} appears without {', '.join(missing[:3])}")
            domains.append(row)
        self.domains = domains

    def build(self, first: bool) -> Snapshot:
        if first:
            missing = [n for n, k in HOST_TYPES.items() if k.required and n not in self.host]
            missing += [n for n, k in RATES_TYPES.items() if k.required and n not in self.rates]
            if missing:
                raise self.fail(f"the first sample has no {', '.join(missing[:3])}")
        try:
            snapshot = Snapshot(
                time=self.top["time"],
                interval_s=self.top["interval_s"],
                scope=self.top["scope"],
                host=HostSample(**self.host),
                ksm=KsmState(
                    available=self.ksm_meta["available"],
                    values=dict(self.ksm_values),
                    choices={k: tuple(v) for k, v in self.ksm_meta["choices"].items()},
                    error=self.ksm_meta["error"],
                ),
                rates=KsmRates(**self.rates),
                guests=tuple(GuestSample(**self.guests[pid]) for pid in self.pids),
                events=tuple(self.pending),
                is_root=self.top.get("is_root", True),
                domains=tuple(DomainSample(**row) for row in self.domains),
                mode=self.top.get("mode", "local"),
                libvirt_status=self.top.get("libvirt_status"),
            )
        except (TypeError, ValueError, KeyError) as exc:  # belt and braces: the checks above should catch it
            raise self.fail(f"sample does not fit the model: {exc}") from None
        self.pending = []
        return snapshot


def read_recording(path: str | Path, max_line: int = MAX_LINE_BYTES) -> Recording:
    """Read a whole recording. Raises RecordingError (one message naming the line) for a file that is not a
    readable recording; a cut tail or a missing end marker become warnings in Recording.warnings."""
    path = Path(path)
    reader = _Reader(path)
    recording: Recording | None = None
    lines = _lines(path, max_line)
    try:
        for number, raw, ended in lines:
            reader.number = number
            if not ended:
                if recording is None:
                    raise reader.fail("the file ends inside the header (cut off)")
                where = "in the middle of the compressed stream" if raw == b"" else f"inside line {number}"
                recording.warnings.append(
                    f"{path}: the tail was cut {where} (the recorder was killed?): "
                    f"{len(recording.snapshots)} samples read, at most one lost"
                )
                break
            if not raw.strip():
                continue
            try:
                data = _loads(raw)
            except (ValueError, RecursionError) as exc:
                if recording is None:
                    raise reader.fail(f"not JSON ({str(exc)[:80]}): not a ksmtop recording") from None
                raise reader.fail(f"not JSON: {str(exc)[:80]}") from None
            if recording is None:
                recording = Recording(path=path, header=reader.header(data))
                continue
            if recording.complete:
                recording.warnings.append(f"{path}: line {number}: data after the end marker ignored")
                break
            if not isinstance(data, dict):
                raise reader.fail(f"expected an object, got {type(data).__name__}")
            kind = data.get("type")
            if kind == "sample":
                recording.snapshots.append(reader.sample(data))
            elif kind == "event":
                event = reader.event(data)
                reader.pending.append(event)
                recording.events.append(event)
            elif kind == "end":
                recording.complete = True
            else:
                recording.warnings.append(f"{path}: line {number}: unknown object type {json.dumps(kind)[:40]} skipped")
    except MemoryError:
        raise RecordingError(f"{path}: line {reader.number}: too large to read") from None
    finally:
        lines.close()
    if recording is None:
        raise RecordingError(f"{path}: empty file: no header, not a ksmtop recording")
    if not recording.complete and not any("tail was cut" in w for w in recording.warnings):
        recording.warnings.append(
            f"{path}: the tail was cut after line {reader.number} (no end marker: the recorder was killed?); "
            f"{len(recording.snapshots)} samples read"
        )
    if not recording.snapshots:
        recording.warnings.append(f"{path}: the recording holds no sample")
    return recording
