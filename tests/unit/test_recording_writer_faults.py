"""RecordingWriter after a write error: it stops (write() returns False, never raises OSError), ``error`` names
the file and the error in one line, close() does not raise, and the file keeps every sample before the error.
The faults here are injected at os.write/os.fsync for the writer's own descriptor; the real ENOSPC (a small
tmpfs) and EFBIG (RLIMIT_FSIZE) run in tests/integration/test_recording_faults.py."""

from __future__ import annotations

import errno
import os

import pytest

from ksmtop.recording import RecordingWriter, read_recording, stored
from ksmtop.recording import writer as writer_module
from tests.support.synthetic import synthetic_session

SESSION = synthetic_session(guests=3, samples=30)


class Faulty:
    """os.write / os.fsync that fail for one descriptor once armed (a short write first, as a full disk does)."""

    def __init__(self, monkeypatch, error: int, on: str = "write") -> None:
        self.fd: int | None = None
        self.error = error
        self.on = on
        self.real_write, self.real_fsync = os.write, os.fsync
        monkeypatch.setattr(writer_module.os, "write", self.write)
        monkeypatch.setattr(writer_module.os, "fsync", self.fsync)

    def write(self, fd: int, data) -> int:
        if fd == self.fd and self.on == "write":
            if len(data) > 1:
                return self.real_write(fd, bytes(data[: len(data) // 2]))  # half of it lands
            raise OSError(self.error, os.strerror(self.error))
        return self.real_write(fd, data)

    def fsync(self, fd: int) -> None:
        if fd == self.fd and self.on == "fsync":
            raise OSError(self.error, os.strerror(self.error))
        self.real_fsync(fd)


@pytest.mark.parametrize("name", ["s.jsonl", "s.jsonl.gz"])
@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EFBIG, errno.EIO])
def test_a_write_error_stops_the_writer_and_keeps_every_sample_before_it(tmp_path, monkeypatch, name, error):
    faulty = Faulty(monkeypatch, error)
    path = tmp_path / name
    writer = RecordingWriter(path, fsync=True)
    for snapshot in SESSION[:12]:
        assert writer.write(snapshot) is True
    faulty.fd = writer._fd
    assert writer.write(SESSION[12]) is False  # no OSError
    assert writer.failed and writer.samples == 12
    assert writer.error == f"{path}: {os.strerror(error)} while writing sample 13: recording stopped, 12 samples kept"
    assert writer.write(SESSION[13]) is False
    writer.close()  # no OSError either
    writer.close()
    recording = read_recording(path)
    assert recording.snapshots == [stored(s) for s in SESSION[:12]]
    assert not recording.complete and len(recording.warnings) == 1  # "the tail was cut": no end marker
    assert path.stat().st_size == writer.size_bytes  # the half-written sample was cut off again


@pytest.mark.parametrize("name", ["s.jsonl", "s.jsonl.gz"])
def test_an_fsync_error_stops_the_writer_too(tmp_path, monkeypatch, name):
    faulty = Faulty(monkeypatch, errno.EIO, on="fsync")
    path = tmp_path / name
    writer = RecordingWriter(path, fsync=True)
    for snapshot in SESSION[:5]:
        writer.write(snapshot)
    faulty.fd = writer._fd
    assert writer.write(SESSION[5]) is False
    assert writer.error.startswith(f"{path}: Input/output error while writing sample 6")
    writer.close()
    assert read_recording(path).snapshots == [stored(s) for s in SESSION[:5]]


@pytest.mark.parametrize("name", ["s.jsonl", "s.jsonl.gz"])
def test_an_error_writing_the_end_marker_is_reported_not_raised(tmp_path, monkeypatch, name):
    faulty = Faulty(monkeypatch, errno.ENOSPC)
    path = tmp_path / name
    writer = RecordingWriter(path, fsync=False)
    for snapshot in SESSION:
        writer.write(snapshot)
    faulty.fd = writer._fd
    writer.close()
    assert (
        writer.error
        == f"{path}: No space left on device while writing the end marker: recording stopped, 30 samples kept"
    )
    recording = read_recording(path)
    assert recording.snapshots == [stored(s) for s in SESSION] and not recording.complete


def test_write_is_safe_after_close_and_size_is_what_is_on_disk(tmp_path):
    writer = RecordingWriter(tmp_path / "s.jsonl.gz", fsync=False)
    for snapshot in SESSION[:3]:
        writer.write(snapshot)
    assert writer.size_bytes == (tmp_path / "s.jsonl.gz").stat().st_size
    writer.close()
    assert writer.write(SESSION[3]) is False and writer.error is None
