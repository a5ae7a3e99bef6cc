"""The screen's Linux driver (ksmtop/tui/driver.py) on a real terminal: tmux runs `ksmtop replay` as a person
would. Its input thread must sleep while nobody types (Textual's wakes ten times a second), and typing, a lone
Escape and quitting must work as with Textual's own driver."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

SESSION_FILE = Path(__file__).parent / "data" / "session.jsonl"
TEXTUALS_OWN = "textual.drivers.linux_driver:LinuxDriver"

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")


class Terminal:
    def __init__(self, session: str) -> None:
        self.session = session
        self.pid = int(self.tmux("display-message", "-p", "-t", session, "#{pane_pid}").strip())

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True).stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.session)

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.session, *keys)

    def wait(self, condition: Callable[[str], bool], timeout: float = 10) -> float:
        """Seconds until ``condition(screen)`` held; fails the test with the screen after ``timeout``."""
        started = time.monotonic()
        while not condition(text := self.screen()):
            if time.monotonic() - started > timeout:
                pytest.fail(f"the screen did not change as expected in {timeout} s:\n{text}")
            time.sleep(0.05)
        return time.monotonic() - started

    def input_thread(self) -> Path:
        """The thread waiting in select() on the terminal (the kernel's poll_schedule_timeout, with or without
        a timeout): Textual's input thread. The main thread waits in epoll, the others on futexes."""
        tasks = list(Path(f"/proc/{self.pid}/task").iterdir())
        for _ in range(50):  # it may be awake for a moment
            waiting = [task for task in tasks if "poll_schedule" in wchan(task) or "select" in wchan(task)]
            if len(waiting) == 1:
                return waiting[0]
            time.sleep(0.01)
        pytest.fail(f"no single thread waits in select(): {[(task.name, wchan(task)) for task in tasks]}")


def rows(text: str) -> set[str]:
    """The names in the guest table's rows (a name, its PID, maybe a state, its RSS), not names elsewhere."""
    return set(re.findall(r"^ (\S+) +\d+ +(?:\S+ +)?[\d.]+ (?:[KMGT]iB|B) ", text, re.MULTILINE))


def wchan(task: Path) -> str:
    try:
        return (task / "wchan").read_text()
    except OSError:
        return ""


def wakeups(task: Path) -> int:
    status = (task / "status").read_text()
    return int(status.split("voluntary_ctxt_switches:")[1].split()[0])


def start(driver: str | None) -> Iterator[Terminal]:
    session = f"ksmtop-driver-{os.getpid()}-{time.monotonic_ns()}"
    env = f"TEXTUAL_DRIVER={driver} " if driver else ""
    # the pane's size, not the COLUMNS and LINES pytest's environment passed to a tmux server it started
    command = f"env -u COLUMNS -u LINES {env}{sys.executable} -m ksmtop replay {SESSION_FILE}"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "45", command], check=True)
    try:
        terminal = Terminal(session)
        terminal.wait(lambda text: "guest-b" in text and "REPLAY" in text, timeout=30)
        yield terminal
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


@pytest.fixture
def ours() -> Iterator[Terminal]:
    yield from start(None)


@pytest.fixture
def textuals() -> Iterator[Terminal]:
    yield from start(TEXTUALS_OWN)


def idle_wakeups(terminal: Terminal, seconds: float = 3.0) -> int:
    thread = terminal.input_thread()
    before = wakeups(thread)
    time.sleep(seconds)
    return wakeups(thread) - before


def test_the_input_thread_sleeps_while_nobody_types(ours, textuals):
    assert idle_wakeups(textuals) >= 20  # Textual's: select() with a 0.1 s timeout, ten times a second
    assert idle_wakeups(ours) <= 2  # ours: until there is input (the replay is paused at its end: no resize)


def test_typing_a_lone_escape_and_quitting_work_as_with_textuals_driver(ours, textuals):
    timings = {}
    for name, terminal in (("ours", ours), ("textual's", textuals)):
        terminal.keys("/")
        terminal.wait(lambda text: "filter by name" in text)  # the filter has the focus: what is typed goes there
        terminal.keys("guest-a")
        terminal.wait(lambda text: rows(text) == {"guest-a"})  # the filter took the typed text
        terminal.keys("Escape")  # a lone Escape: the parser waits a moment for more, then gives it as a key
        escape_s = terminal.wait(lambda text: rows(text) == {"guest-a", "guest-b", "random-c"})
        pid = terminal.pid
        terminal.keys("q")
        started = time.monotonic()
        while Path(f"/proc/{pid}").exists() and time.monotonic() - started < 10:
            time.sleep(0.02)
        timings[name] = (escape_s, time.monotonic() - started)
        assert not Path(f"/proc/{pid}").exists(), f"{name} driver: q did not quit:\n{terminal.screen()}"
    for escape_s, quit_s in timings.values():
        assert escape_s < 1.0 and quit_s < 3.0, timings  # the end of the app wakes our thread: no wait for input
