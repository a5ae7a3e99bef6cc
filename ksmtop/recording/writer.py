"""RecordingWriter: a session written one sample at a time, each sample a delta of the one before it.

No Textual or Rich imports here.
"""

from __future__ import annotations

import os
import socket
import threading
import zlib
from pathlib import Path
from typing import Any

from ksmtop import __version__
from ksmtop.codec import snapshot_to_dict, stored_text
from ksmtop.knobs import KNOBS
from ksmtop.model import Snapshot
from ksmtop.outfile import create
from ksmtop.recording.lines import FORMAT, KEYFRAME_SAMPLES, VERSION, dumps
from ksmtop.safetext import safe

GZIP_LEVEL = 9


class RecordingWriter:
    """Writes a session: the header with the first sample, then each sample (and its events) as it comes.

    Every sample is written with one write() and flushed before write() returns (gzip: a sync flush), so a killed
    recorder loses at most the sample being written; with fsync=True it is also on the disk. Every
    KEYFRAME_SAMPLES samples a complete sample is written (gzip: in a new member), so damaged data costs at most
    the samples up to the next one.

    A write error (a full disk, a file size limit, EIO) stops the writer: write() returns False from then on and
    never raises OSError, ``error`` holds one line naming the file and the error, and the file keeps every sample
    written before it (a partly written sample is cut off again). Safe to call write() from a sampling thread
    while another thread reads ``samples``, ``size_bytes`` and ``error``; write() after close() is ignored.

    The file is new (``overwrite``: an existing regular file is replaced at once, see ksmtop.outfile.create).
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
        self._fd = create(self.path, replace=overwrite)  # 0600: names and command lines can be sensitive
        self._zip = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31) if self.compress else None
        self._lock = threading.Lock()
        self._closed = False
        self._written = 0
        self.samples = 0
        self.events = 0
        self.error: str | None = None
        """Why the writer stopped early (one line naming the file), or None."""
        self._prev: dict[str, Any] | None = None

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def failed(self) -> bool:
        return self.error is not None

    @property
    def size_bytes(self) -> int:
        """Bytes written so far (all of them on disk once write() returned)."""
        return self._written

    def header(self, first: Snapshot) -> dict[str, Any]:
        return {
            "type": "header",
            "format": FORMAT,
            "version": VERSION,
            "ksmtop": __version__,
            "host": stored_text(socket.gethostname(), name=True),
            "kernel": stored_text(os.uname().release, name=True),
            "page_size": first.host.page_size,
            "start_time": round(first.time, 3),
            "interval_s": self.interval_s,
            "scope": first.scope,
            "tunables": {k: v for k, v in first.ksm.values.items() if k in KNOBS},
            "guests": [
                {
                    "pid": g.pid,
                    "name": stored_text(g.name, name=True),
                    "kind": stored_text(g.kind, name=True),
                    "start_ticks": g.start_ticks,
                }
                for g in first.guests
            ],
        }

    def write(self, snapshot: Snapshot) -> bool:
        """Append one sample and the events it carries; False when the writer is closed or has failed."""
        with self._lock:
            if self._closed or self.error is not None:
                return False
            state = _state(snapshot)
            full = self._prev is None or self.samples % KEYFRAME_SAMPLES == 0
            lines = [dumps(self.header(snapshot))] if self._prev is None else []
            lines += [dumps({"type": "event", **event}) for event in state["events"]]
            lines.append(dumps(_sample(state, self._prev, self.samples if full else None)))
            data = b"".join(lines)
            if self._zip is not None:
                head = b""
                if full and self._prev is not None:  # end the member; the next one starts with this full sample
                    head = self._zip.flush(zlib.Z_FINISH)
                    self._zip = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
                data = head + self._zip.compress(data) + self._zip.flush(zlib.Z_SYNC_FLUSH)
            if not self._put(data):
                return False
            self._prev = state  # only now: the next delta is taken from what is on disk
            self.samples += 1
            self.events += len(snapshot.events)
            return True

    def close(self, end_time: float | None = None) -> None:
        """Write the end marker and close; the reader warns about files without one (a killed recorder).
        Never raises OSError: a failure to write the end marker goes to ``error``."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._fd < 0:
                return
            if self._prev is not None and self.error is None:
                end = {"type": "end", "time": round(end_time or self._prev["time"], 3), "samples": self.samples}
                data = dumps(end)
                if self._zip is not None:
                    data = self._zip.compress(data) + self._zip.flush(zlib.Z_FINISH)
                self._put(data)
            if self._fd >= 0:
                try:
                    os.close(self._fd)
                except OSError:
                    pass
                self._fd = -1

    def _put(self, data: bytes) -> bool:
        """Write all of ``data`` (and fsync); on an error, stop: cut the file back to what was whole before it."""
        view = memoryview(data)
        try:
            while view:
                done = os.write(self._fd, view)
                view = view[done:]
            if self.fsync:
                os.fsync(self._fd)
        except OSError as exc:
            self._stop(exc)
            return False
        self._written += len(data)
        return True

    def _stop(self, exc: OSError) -> None:
        what = "the end marker" if self._closed else f"sample {self.samples + 1}"
        self.error = (
            f"{safe(str(self.path))}: {exc.strerror or exc} while writing {what}: "
            f"recording stopped, {self.samples} samples kept"
        )
        try:
            os.ftruncate(self._fd, self._written)  # no half sample at the end
        except OSError:
            pass
        try:
            os.close(self._fd)
        except OSError:
            pass
        self._fd = -1


def _state(snapshot: Snapshot) -> dict[str, Any]:
    """Everything a sample stores, rounded and redacted; the next sample is written as its difference."""
    data = snapshot_to_dict(snapshot, stored=True)
    ksm = data.pop("ksm")
    data["ksm_meta"] = {"available": ksm["available"], "choices": ksm["choices"], "error": ksm["error"]}
    data["ksm_values"] = ksm["values"]
    data["guests"] = {g["pid"]: g for g in data["guests"]}
    return data


def _changed(new: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    if old is None:
        return dict(new)
    return {key: value for key, value in new.items() if key not in old or old[key] != value}


def _sample(state: dict[str, Any], prev: dict[str, Any] | None, seq: int | None) -> dict[str, Any]:
    """The sample line: only what changed since ``prev``; with ``seq`` (the sample's number), everything."""
    old = prev or {}
    base = None if seq is not None else prev
    record: dict[str, Any] = {"type": "sample", "time": state["time"], "interval_s": state["interval_s"]}
    if seq is not None:
        record["full"] = True
        record["seq"] = seq
    for key in ("scope", "is_root", "mode", "libvirt_status", "domains"):  # whole values, when they change
        if base is None or old[key] != state[key]:
            record[key] = state[key]
    for key in ("host", "rates"):
        delta = _changed(state[key], None if base is None else old.get(key))
        if delta:
            record[key] = delta
    ksm_delta = _changed(state["ksm_meta"], None if base is None else old.get("ksm_meta"))
    values = _changed(state["ksm_values"], None if base is None else old.get("ksm_values"))
    values.update({k: None for k in old.get("ksm_values", {}) if k not in state["ksm_values"]})
    if values:
        ksm_delta["values"] = values
    if ksm_delta:
        record["ksm"] = ksm_delta
    pids = list(state["guests"])
    if base is None or pids != list(old["guests"]):
        record["pids"] = pids
    guests = []
    for pid, guest in state["guests"].items():
        delta = _changed(guest, None if base is None else old.get("guests", {}).get(pid))
        if delta:
            delta.pop("pid", None)
            guests.append({"pid": pid, **delta})
    if guests:
        record["guests"] = guests
    return record
