"""The real ksmtop in a pseudo-terminal, as a person runs it: no escape sequence from a guest's name or from a
recording reaches the terminal raw. A local user can start a process called qemu-system-x86_64 with
``-name guest=<ESC>]0;TITLE<BEL>...``; a recording can come from anyone. The bytes ksmtop writes to the
terminal are read from the pty's master side and searched for the hostile sequences."""

from __future__ import annotations

import dataclasses
import fcntl
import os
import select
import signal
import struct
import subprocess
import sys
import termios
import time

from ksmtop.model import Event
from ksmtop.recording import RecordingWriter, read_recording
from tests.conftest import REPO
from tests.support.mergeable import start_guest_like, stop_all

SESSION = REPO / "tests" / "tui" / "data" / "session.jsonl"
TITLE = b"\x1b]0;PWNED-TITLE\x07"
COLOUR = b"\x1b[31mRED-NAME"
CLEAR = b"\x1b[2J"
HOSTILE = (TITLE + COLOUR + CLEAR).decode()


def run_in_pty(argv: list[str], seconds: float, size: tuple[int, int] = (170, 48)) -> bytes:
    """Everything the program writes to its terminal in ``seconds``, then q; the program must end."""
    master, slave = os.openpty()
    columns, rows = size
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(columns), "LINES": str(rows)}
    process = subprocess.Popen(
        argv, cwd=REPO, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True, close_fds=True
    )
    os.close(slave)
    output = bytearray()

    def drain(until: float) -> None:
        while time.monotonic() < until:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    return
                if not chunk:
                    return
                output.extend(chunk)

    try:
        drain(time.monotonic() + seconds)
        try:
            os.write(master, b"q")
        except OSError:  # the program already ended
            pass
        drain(time.monotonic() + 5)
        assert process.wait(timeout=10) == 0, bytes(output[-2000:])
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        os.close(master)
    return bytes(output)


def assert_nothing_raw(output: bytes) -> None:
    assert output, "nothing reached the terminal"
    for sequence in (TITLE, COLOUR, CLEAR, b"\x1b]0;PWNED"):
        assert sequence not in output, sequence
    assert b"PWNED-TITLE" in output  # the name is on the screen, escaped


def test_a_hostile_recording_replays_with_no_raw_escape_on_the_terminal(tmp_path):
    path = tmp_path / "hostile.jsonl"
    recording = read_recording(SESSION)
    with RecordingWriter(path) as writer:
        for index, snapshot in enumerate(recording.snapshots):
            guests = tuple(dataclasses.replace(g, name=f"{HOSTILE}{g.name}") for g in snapshot.guests)
            events = (Event(snapshot.time, "note", f"note {HOSTILE}"),) if index == 1 else snapshot.events
            writer.write(dataclasses.replace(snapshot, guests=guests, events=events))
    output = run_in_pty([sys.executable, "-m", "ksmtop", "replay", str(path)], seconds=6)
    assert_nothing_raw(output)


def test_a_process_named_with_escape_sequences_reaches_the_terminal_escaped():
    stand_ins = start_guest_like(1, 2, HOSTILE)
    try:
        output = run_in_pty([sys.executable, "-m", "ksmtop", "--no-libvirt"], seconds=6)
    finally:
        stop_all(stand_ins)
    assert_nothing_raw(output)


def test_the_check_sees_a_raw_sequence():
    """The search above could pass on a terminal that shows nothing: a program that prints the title does fail."""
    output = run_in_pty(
        [
            sys.executable,
            "-c",
            f"import sys, time; sys.stdout.write({HOSTILE!r}); sys.stdout.flush(); time.sleep(0.5)",
        ],
        1,
    )
    assert TITLE in output


def test_when_the_screen_crashes_anyway_the_exit_status_says_so(tmp_path):
    """A bug that ends the screen (here: drawing raises) must not look like a clean quit to a script."""
    script = tmp_path / "crash.py"
    script.write_text(
        "import sys\n"
        "import ksmtop.tui.app as app\n"
        "def broken(self):\n"
        "    raise RuntimeError('a drawing bug')\n"
        "app.KsmTopApp._draw = broken\n"
        "from ksmtop.cli import main\n"
        f"raise SystemExit(main(['replay', {str(SESSION)!r}]))\n"
    )
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 48, 170, 0, 0))
    process = subprocess.Popen(
        [sys.executable, str(script)], cwd=REPO, stdin=slave, stdout=slave, stderr=slave, start_new_session=True
    )
    os.close(slave)
    try:
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                try:
                    os.read(master, 65536)
                except OSError:
                    break
        assert process.wait(timeout=10) != 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        os.close(master)
