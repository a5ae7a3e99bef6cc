"""Fleet recordings: FleetSnapshots as JSON Lines (optionally gzip), and their replay as a source.

    {"type":"header","format":"ksmtop-fleet-recording","version":1,"prometheus":URL,"created":T}
    {"type":"fleet","time":...,"hosts":[...],"guests":[...],"host_series":{...},...}   # model.to_dict()
    {"type":"end","time":...,"snapshots":N}                                           # on a clean close

A FleetSnapshot is already what the fleet screen shows (the queries are done), so a recording holds whole
snapshots, not deltas: about 1 KiB per host and 0.3 KiB per guest per look before gzip. Files are created
owner-only; the reader accepts only this format, skips bad lines with a warning, caps line length, and makes
every string safe again (a recording is outside text). The host recording format (docs/recording.md) is not
used: its samples are one host's Snapshots.

FleetReplaySource answers ``sample()`` like FleetSource and has the time controls of ksmtop.replay.ReplaySource
(seek, step, speed, frame_interval, position_text), so the screen's replay keys can drive both.

No UI imports.
"""

from __future__ import annotations

import gzip
import json
import os
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ksmtop import __version__
from ksmtop.fleet.model import FleetSnapshot, from_dict, to_dict
from ksmtop.replay_clock import ReplayClock
from ksmtop.safetext import safe

FORMAT = "ksmtop-fleet-recording"
VERSION = 1
MAX_LINE_BYTES = 16 * 1024 * 1024


class FleetRecordingError(Exception):
    """A file that cannot be read or written as a fleet recording; the message says why."""


class FleetRecordingWriter:
    """Writes FleetSnapshots as they come; each line is flushed, so a killed recorder loses at most one."""

    def __init__(self, path: str | Path, prometheus: str = "", force: bool = False) -> None:
        self.path = Path(path)
        flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_TRUNC if force else os.O_EXCL)
        try:
            fd = os.open(self.path, flags, 0o600)
        except FileExistsError:
            raise FleetRecordingError(f"{self.path} exists (--force overwrites it)") from None
        except OSError as exc:
            raise FleetRecordingError(f"cannot create {self.path}: {exc.strerror}") from None
        raw = os.fdopen(fd, "wb")
        self._handle: IO[bytes] = gzip.GzipFile(fileobj=raw, mode="wb") if self.path.suffix == ".gz" else raw
        self._raw = raw
        self._lock = threading.Lock()
        self.count = 0
        self._line({"type": "header", "format": FORMAT, "version": VERSION, "prometheus": prometheus,
                    "created": time.time(), "ksmtop": __version__})  # fmt: skip

    def _line(self, document: dict[str, Any]) -> None:
        self._handle.write(json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode() + b"\n")
        self._handle.flush()
        if self._handle is not self._raw:
            self._raw.flush()

    def write(self, snapshot: FleetSnapshot) -> None:
        with self._lock:
            self._line({"type": "fleet", **to_dict(snapshot)})
            self.count += 1

    def close(self) -> None:
        with self._lock:
            if self._raw.closed:
                return
            self._line({"type": "end", "time": time.time(), "snapshots": self.count})
            self._handle.close()
            self._raw.close()


@dataclass
class FleetRecording:
    path: Path
    prometheus: str
    snapshots: list[FleetSnapshot] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _lines(path: Path) -> Any:
    with open(path, "rb") as raw:
        magic = raw.read(2)
        raw.seek(0)
        handle: IO[bytes] = gzip.GzipFile(fileobj=raw, mode="rb") if magic == b"\x1f\x8b" else raw
        while True:
            line = handle.readline(MAX_LINE_BYTES + 1)
            if not line:
                return
            yield line


def read_fleet_recording(path: str | Path) -> FleetRecording:
    """Every snapshot of a fleet recording; raises FleetRecordingError only when the file is not one."""
    path = Path(path)
    recording: FleetRecording | None = None
    number = 0
    try:
        for number, line in enumerate(_lines(path), start=1):
            if len(line) > MAX_LINE_BYTES:
                raise FleetRecordingError(f"{path}:{number}: a line longer than {MAX_LINE_BYTES // 2**20} MiB")
            try:
                document = json.loads(line)
            except ValueError:
                if recording is None:
                    raise FleetRecordingError(f"{path}: not a ksmtop fleet recording (no JSON header)") from None
                recording.warnings.append(f"line {number}: not JSON (skipped)")
                continue
            if recording is None:
                if not isinstance(document, dict) or document.get("format") != FORMAT:
                    raise FleetRecordingError(f"{path}: not a ksmtop fleet recording")
                if document.get("version") != VERSION:
                    raise FleetRecordingError(f"{path}: fleet recording version {safe(document.get('version'))}")
                recording = FleetRecording(path, safe(document.get("prometheus", "")))
                continue
            if not isinstance(document, dict) or document.get("type") != "fleet":
                continue
            try:
                recording.snapshots.append(from_dict(document))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                recording.warnings.append(f"line {number}: not a fleet snapshot ({safe(exc)}); skipped")
    except FileNotFoundError:
        raise FleetRecordingError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise FleetRecordingError(f"{path} is a directory") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        if recording is None:
            raise FleetRecordingError(f"{path}: unreadable gzip ({safe(exc)})") from None
        recording.warnings.append(f"cut after line {number} ({safe(exc)}): the recorder was stopped hard")
    except OSError as exc:
        raise FleetRecordingError(f"cannot read {path}: {exc.strerror}") from None
    if recording is None:
        raise FleetRecordingError(f"{path}: empty")
    return recording


class RecordingFleetSource:
    """Another fleet source, recorded: every snapshot it yields is written first."""

    def __init__(self, inner: Any, writer: FleetRecordingWriter) -> None:
        self.inner = inner
        self.writer = writer

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def sample(self) -> FleetSnapshot:
        snapshot = self.inner.sample()
        self.writer.write(snapshot)
        return snapshot

    def close(self) -> None:
        self.writer.close()
        self.inner.close()


class FleetReplaySource(ReplayClock[FleetSnapshot]):
    """A fleet recording played back; read-only, with the time controls of ReplaySource (a ReplayClock)."""

    can_edit = False
    unit = "look"

    def __init__(self, recording: FleetRecording | str | Path, speed: int = 1) -> None:
        if not isinstance(recording, FleetRecording):
            recording = read_fleet_recording(recording)
        if not recording.snapshots:
            raise FleetRecordingError(f"{recording.path}: the recording holds no snapshot")
        self.recording = recording
        self.snapshots = recording.snapshots
        self.description = f"fleet replay {recording.path.name}"
        self.why_read_only = f"replay of {recording.path.name}"
        self.selected: str | None = None
        super().__init__(recording.snapshots, speed)

    def sample(self) -> FleetSnapshot:
        return self.next_frame()

    def select(self, key: str | None) -> None:
        """Guest sparklines are those recorded (of the host selected then)."""
        self.selected = key

    def close(self) -> None:
        pass
