"""Textual's Linux driver with an input thread that sleeps until there is input.

Textual's thread waits for keys in select() with a 0.1 s timeout, so that it sees the end of the app and the end
of a lone Escape (the parser waits a moment for the rest of an escape sequence) in time: ten wake-ups a second,
0.13% of a core here whatever the app does, a seventh of what the whole screen costs with three guests. This one
waits as long as nothing is pending: until input arrives, until the parser's own deadline when it holds part of a
sequence, or until the app ends (setting the exit event also writes to a pipe the thread watches). Everything
else is Textual's. The loop follows Textual 8's LinuxDriver.run_input_thread; tests/tui/test_driver.py drives
the real screen through tmux (a lone Escape, typed text, quitting) and checks the thread sleeps.
"""

from __future__ import annotations

import os
import selectors
import threading
from codecs import getincrementaldecoder

from textual._parser import ParseError
from textual._time import get_time
from textual._xterm_parser import XTermParser
from textual.drivers.linux_driver import LinuxDriver

FALLBACK_WAIT_S = 0.1
"""How long to wait when the parser's deadline cannot be read (another Textual): what Textual waits."""
_UNKNOWN = object()


class _WakingEvent(threading.Event):
    """The driver's exit event: setting it also wakes the input thread out of its select()."""

    def __init__(self, wake_fd: int) -> None:
        super().__init__()
        self._wake_fd = wake_fd

    def set(self) -> None:
        super().set()
        try:
            os.write(self._wake_fd, b"\0")
        except OSError:
            pass  # closed: the thread has ended already


__all__ = ["LinuxDriver", "QuietLinuxDriver"]


class QuietLinuxDriver(LinuxDriver):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._wake_read, self._wake_write = os.pipe()  # kept until close(): input restarts after a suspend
        os.set_blocking(self._wake_write, False)
        self.exit_event = _WakingEvent(self._wake_write)

    def close(self) -> None:
        super().close()
        for fd in (self._wake_read, self._wake_write):
            try:
                os.close(fd)
            except OSError:
                pass

    def run_input_thread(self) -> None:
        selector = selectors.SelectSelector()
        selector.register(self.fileno, selectors.EVENT_READ)
        selector.register(self._wake_read, selectors.EVENT_READ)
        parser = XTermParser(self._debug)
        decode = getincrementaldecoder("utf-8")().decode

        def wait() -> float | None:
            """Seconds until the parser gives up on a partial sequence; None: nothing pending."""
            deadline = getattr(parser, "_timeout_time", _UNKNOWN)
            if deadline is _UNKNOWN:
                return FALLBACK_WAIT_S
            return None if deadline is None else max(0.0, deadline - get_time())

        def process(events: list[tuple[selectors.SelectorKey, int]], final: bool = False) -> None:
            for key, mask in events:
                if key.fd == self._wake_read:
                    os.read(self._wake_read, 64)
                    continue
                if mask & selectors.EVENT_READ:
                    data = decode(os.read(self.fileno, 1024 * 4), final=final)
                    if not data:
                        break  # stdin piped and at its end
                    for event in parser.feed(data):
                        self.process_message(event)
            for event in parser.tick():
                self.process_message(event)

        try:
            while not self.exit_event.is_set():
                process(selector.select(wait()))
            selector.unregister(self.fileno)
            process(selector.select(0.1), final=True)
        finally:
            selector.close()
            try:
                for _ in parser.feed(""):
                    pass
            except (EOFError, ParseError):
                pass
