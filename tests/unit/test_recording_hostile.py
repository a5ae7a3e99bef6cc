"""Hostile recordings (tests/support/hostile_recordings.py) and special files: one clear RecordingError, or a
Recording whose every string is safe to show, that export and a second recording take without an exception."""

from __future__ import annotations

import os
import stat

import pytest

from ksmtop.recording import RecordingError, read_recording
from tests.support.hostile_recordings import HOSTILE, check_accepted


@pytest.mark.parametrize("case", HOSTILE, ids=[case.name for case in HOSTILE])
def test_hostile_recording(tmp_path, case):
    path = case.build(tmp_path / f"{case.name}.jsonl")
    if not case.accepted:
        with pytest.raises(RecordingError) as caught:
            read_recording(path)
        message = str(caught.value)
        assert message.startswith(f"{path}: ") and case.expect in message and "\n" not in message
        return
    recording = read_recording(path)
    assert len(recording.snapshots) == 6
    if case.expect:
        assert any(case.expect in warning for warning in recording.warnings), recording.warnings
    else:
        assert recording.warnings == []
    check_accepted(recording, tmp_path)


def test_controls_in_every_string_come_out_escaped(tmp_path):
    case = next(c for c in HOSTILE if c.name == "controls-everywhere")
    recording = read_recording(case.build(tmp_path / "c.jsonl"))
    first = recording.snapshots[0]
    escaped = "\\x1b]0;TITLE\\x07\\x1b[31mred\\x9b2J\\u202eevil\\x00"
    assert first.guests[0].name == "vm" + escaped
    assert first.guests[1].kind == "qemu" + escaped
    assert first.ksm.error == "ksm error" + escaped
    assert first.libvirt_status == "connected" + escaped
    assert first.domains[0].name == "web" + escaped and first.domains[0].state == "running" + escaped
    assert first.host.trace_status == "perf off" + escaped
    assert first.ksm.values["advisor_mode"] == "none" + escaped and first.ksm.values["knob" + escaped] == 1
    assert first.ksm.choices["advisor_mode"] == ("none" + escaped, "scan-time")
    assert recording.header["host"] == "host" + escaped and recording.header["guests"][0]["name"] == "vm" + escaped
    event = recording.events[0]
    assert (event.kind, event.text) == ("note" + escaped, "event" + escaped)
    assert event.data == {"key" + escaped: ["value" + escaped, {"deep": escaped}]}
    assert recording.snapshots[1].events == (event,)


def test_markup_comes_out_as_the_same_plain_text(tmp_path):
    from tests.support.hostile_recordings import MARKUP

    case = next(c for c in HOSTILE if c.name == "markup-everywhere")
    recording = read_recording(case.build(tmp_path / "m.jsonl"))
    assert recording.snapshots[0].guests[0].name == "vm" + MARKUP
    assert recording.events[0].text == "event" + MARKUP and type(recording.events[0].text) is str


def test_header_interval_is_a_number_or_null_after_reading(tmp_path):
    """session_cli.replay uses header["interval_s"] as the app's interval: the reader vouches for it."""
    case = next(c for c in HOSTILE if c.name == "controls-everywhere")
    recording = read_recording(case.build(tmp_path / "c.jsonl"))
    assert recording.header["interval_s"] is None or recording.header["interval_s"] > 0
    assert set(recording.header) <= {
        "type", "format", "version", "ksmtop", "host", "kernel", "page_size", "start_time", "interval_s", "scope",
        "tunables", "guests",
    }  # fmt: skip


@pytest.mark.parametrize("kind", ["fifo", "directory", "device", "socket"])
def test_a_special_file_is_refused_at_once(tmp_path, kind):
    """open(O_NONBLOCK) and fstat before reading: a FIFO without a writer does not hang the reader."""
    path = tmp_path / kind
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "device":
        if os.geteuid() != 0:
            pytest.skip("mknod needs root")
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 5))  # /dev/zero: reading would never end
    else:
        import socket

        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
        server.close()
    with pytest.raises(RecordingError, match="not a regular file") as caught:
        read_recording(path)
    assert str(caught.value).startswith(f"{path}: is a")


def test_a_symlink_to_a_recording_reads(tmp_path):
    from tests.support.hostile_recordings import write_base

    target = write_base(tmp_path / "real.jsonl")
    (tmp_path / "link.jsonl").symlink_to(target)
    assert len(read_recording(tmp_path / "link.jsonl").snapshots) == 6


def test_a_file_name_with_controls_is_shown_escaped(tmp_path):
    """`ksmtop replay *.jsonl` in a directory where another user left '\\x1b]0;x\\x07.jsonl'."""
    from ksmtop.safetext import is_safe

    path = tmp_path / "\x1b]0;TITLE\x07.jsonl"
    path.write_bytes(b"not json\n")
    with pytest.raises(RecordingError) as caught:
        read_recording(path)
    assert is_safe(str(caught.value), 10_000) and "\\x1b]0;TITLE\\x07.jsonl: line 1: not JSON" in str(caught.value)
    fifo = tmp_path / "\x1b[31m.fifo"
    os.mkfifo(fifo)
    with pytest.raises(RecordingError) as caught:
        read_recording(fifo)
    assert is_safe(str(caught.value), 10_000)
